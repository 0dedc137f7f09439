//! Fuzz the rxkad file parsers (src/rxkad/files.rs): arbitrary text as a
//! server key file and as a token file must give keys / a token or an
//! error, never a panic; what parses re-encodes to text that parses to the
//! same value (round trip), the kernel key payload has its fixed layout,
//! and no error shows the secret value of a line (a key, session key or
//! ticket).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::rxkad::files::{encode_key_file, parse_key_file, Token};

/// Hex values of secret fields, as written in the input (only those that
/// occur once in it: a value that is also, say, another line's name may
/// rightly be shown as that name).
fn secret_values(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            match k {
                "session_key" | "ticket" if v.len() >= 8 => out.push(v),
                "key" => {
                    if let Some(hex) = v.split_ascii_whitespace().nth(1) {
                        if hex.len() >= 8 {
                            out.push(hex);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Real secrets are hex, at least 16 digits (a session key); shorter or
    // non-hex values may coincide with the fixed text of a message.
    out.retain(|s| {
        s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) && text.matches(s).count() == 1
    });
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let secrets = secret_values(text);
    match parse_key_file(text, "/k") {
        Ok(keys) => {
            let again = parse_key_file(&encode_key_file(&keys), "/k").expect("round trip");
            let mut a: Vec<_> = keys.iter().map(|k| (k.kvno, k.key)).collect();
            a.sort();
            let b: Vec<_> = again.iter().map(|k| (k.kvno, k.key)).collect();
            assert_eq!(a, b);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(
                secrets.iter().all(|s| !m.contains(s)),
                "key file error shows a secret"
            );
        }
    }
    match Token::parse(text, "/t") {
        Ok(t) => {
            assert_eq!(Token::parse(&t.encode(), "/t").expect("round trip"), t);
            let p = t.kernel_key_v1();
            assert_eq!(p.len(), 24 + t.ticket.len());
            assert_eq!(&p[0..4], &1u32.to_ne_bytes());
            assert!(!format!("{t:?}").contains(&netboot::rxkad::files::to_hex(&t.session_key)));
        }
        Err(e) => {
            let m = e.to_string();
            assert!(
                secrets.iter().all(|s| !m.contains(s)),
                "token error shows a secret"
            );
        }
    }
});
