//! Fuzz the command-line parser: arbitrary bytes (as /proc/cmdline may hold)
//! must give a plan or an error, never a panic, and both must render. And
//! the masker's invariant: a credential the line holds (found here without
//! the masker: the values of credential keys, the password fields of root
//! paths, in the kernel's reading and in words split on white space) never
//! shows in an error, raw or `{:?}`-escaped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::cmdline::{rootpath, tokenize};

/// Keys whose value is a credential.
fn credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (k.contains("password") || k.contains("secret")) && k != "netboot.secrets"
}

/// The password fields of a root path's credentials (the parser's split).
fn root_path_secrets(value: &str, out: &mut Vec<String>) {
    let v = value.strip_prefix("iscsi:").unwrap_or(value);
    if let (Some(auth), _) = rootpath::split_auth(v) {
        if let Some(chap) = rootpath::parse_auth(auth) {
            out.push(chap.secret.expose().to_string());
            if let Some(m) = chap.mutual {
                out.push(m.secret.expose().to_string());
            }
        }
    }
}

/// Credentials of the line, found independently of the masker.
fn credentials(line: &str) -> Vec<String> {
    // Nothing after a NUL exists for the kernel, nor for an error.
    let line = line.split('\0').next().unwrap_or("");
    let mut out = Vec::new();
    for a in tokenize::tokenize(line).args {
        let Some(v) = a.value else { continue };
        if credential_key(&a.key) {
            out.push(v.clone());
        }
        if matches!(a.key.as_str(), "iscsi" | "iscsiroot" | "netroot" | "root") {
            root_path_secrets(&v, &mut out);
        }
    }
    for word in line.split([' ', '\t', '\n', '\x0b', '\x0c', '\r']) {
        let Some((k, v)) = word.split_once('=') else { continue };
        let k = k.trim_start_matches('"');
        let name = |b: u8| b.is_ascii_alphanumeric() || b"._-[]".contains(&b);
        if !k.bytes().all(name) {
            continue;
        }
        let k = tokenize::normalize_key(k);
        if credential_key(&k) {
            out.push(v.to_string());
        }
        if matches!(k.as_str(), "iscsi" | "iscsiroot" | "netroot" | "root") {
            root_path_secrets(v, &mut out);
        }
    }
    // The mask itself shows `***`.
    out.retain(|c| !c.is_empty() && !c.bytes().all(|b| b == b'*'));
    out
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match netboot::cmdline::parse_plan(&line) {
        Ok(plan) => {
            let json = serde_json::to_value(&plan).unwrap_or_default();
            // Every CHAP secret reaches the JSON as "***", never in clear.
            let paths = json["paths"].as_array().cloned().unwrap_or_default();
            for p in paths.iter().chain([&json["iscsi"]]) {
                let chap = &p["chap"];
                if !chap.is_null() {
                    assert_eq!(chap["password"], "***");
                    if !chap["mutual"].is_null() {
                        assert_eq!(chap["mutual"]["password"], "***");
                    }
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            // Debug shows the same masked line, nothing else.
            assert_eq!(format!("{e:?}"), format!("CmdlineError({msg:?})"));
            for c in credentials(&line) {
                let escaped = format!("{c:?}");
                let escaped = &escaped[1..escaped.len() - 1];
                assert!(
                    !msg.contains(&c) && !msg.contains(escaped),
                    "credential {c:?} shown in {msg:?}"
                );
            }
        }
    }
    // Each root path on its own, too (others call it directly).
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("iscsi=") {
            let _ = netboot::cmdline::rootpath::parse(v).map_err(|e| e.to_string());
        }
    }
});
