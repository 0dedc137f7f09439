//! The masker's invariant as a property: random credentials (starting
//! with `iqn.`, holding `:`, `@`, `=`, quotes, backslashes, non-ASCII) in
//! every error path that echoes input — command-line parse errors,
//! root-path errors (`plan`, `probe`, DHCP option 17), config errors,
//! `discover`'s portal argument — never show in the error text, raw or
//! escaped. A seeded generator, so a failure names a reproducible case.

use super::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// A small, seeded PCG-style generator (no dependency; reproducible).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// Pieces of credentials: target-name prefixes, the root path's own
/// separators, quotes, escapes, non-ASCII.
const PIECES: &[&str] = &[
    "iqn.",
    "eui.",
    "naa.",
    ":",
    "@",
    "\"",
    "=",
    "\\",
    "é",
    "€",
    "-",
    ".",
    "/",
    "[",
    "]",
    ",",
    "2026-11",
    "org.example",
    "Q7",
    "zz",
    "k9",
    "\u{7f}",
    "\u{301}",
];

/// One credential: 3..9 pieces around a distinctive core, so that finding
/// it in an error means it leaked (not that a message happens to hold it).
fn credential(r: &mut Rng) -> String {
    let mut s = String::new();
    if r.below(3) == 0 {
        s.push_str(r.pick(&["iqn.", "eui.", "naa."]));
    }
    let core = r.below(3);
    for i in 0..3 + r.below(7) {
        if i == core {
            s.push_str("Sx");
            s.push_str(&r.next().to_string());
        }
        s.push_str(r.pick(PIECES));
    }
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Every error text the inputs built around `s` and `t` produce.
fn errors(s: &str, t: &str, pad: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let pad = "p".repeat(pad);
    let tgt = "iqn.2026-11.org.example:root";
    // --- the kernel command line ------------------------------------------
    let lines = [
        format!("iscsi=u:{s}@198.18.0.1::99999::{tgt}"),
        format!("iscsi=u:{s}:{tgt}:{t}@198.18.0.1:9:::{tgt}"),
        format!("netroot=iscsi:u:{s}@h:::{tgt}"),
        format!("root=iscsi:{s}@198.18.0.256::::{tgt}"),
        format!("iscsi=u:{s}@[2001:db8::zz]::::{tgt}"),
        format!("iscsi=u:{s}@198.18.0.1::::{tgt}\u{1}x"),
        // An unclosed quote pulls the root path into another key's value.
        format!("netboot.log=\"x iscsi=u:{s}@198.18.0.1::::{tgt}"),
        format!("netboot.log=\"{pad} iscsi=u:{s}:t:{t}@198.18.0.1::::{tgt}"),
        format!("netboot.on_fail=\"x rd.iscsi.password={s}"),
        format!("netboot.on_fail=x\"rd.iscsi.in.password={t}"),
        format!("rd.iscsi.username=u rd.iscsi.password={s} netboot.log=bad"),
        format!("rd.iscsi.username=u \"rd.iscsi.password={s} y\" iscsi=198.18.0.1::0::{tgt}"),
        // The secret echoed by another key: the masker knows it anyway.
        format!("iscsi=u:{s}@198.18.0.1::::{tgt} netboot.timeout={pad}{s}"),
        format!(
            "rd.iscsi.in.username={tgt} rd.iscsi.in.password={t} rd.iscsi.username=u \
             rd.iscsi.password={s} netboot.events={pad}{t}"
        ),
        format!("rd.iscsi.param=node.session.auth.password={s} ip=eth0:{t}"),
        format!("netboot.param.CHAP_Secret={s}\u{7f}"),
        format!("netboot.param.MaxBurstLength={s} rd.iscsi.password={s}"),
        format!("iscsi=u:{s}@198.18.0.1::::{tgt} ip=dhcp6 init=x{s}"),
        format!("root=iscsi:u:{s}@198.18.0.1::::{tgt} netboot.x{s}=1"),
    ];
    for line in &lines {
        if let Err(e) = crate::cmdline::parse_plan(line) {
            out.push((line.clone(), format!("{e} {e:?}")));
        }
    }
    // The secrets file's passwords, applied before the line.
    let file = format!("rd.iscsi.username=u\nrd.iscsi.password={s}\n");
    if let Ok(before) = crate::cmdline::secrets::file_args(&file, "/etc/s") {
        let line = format!("netboot.scheduler={pad}{s}");
        if let Err(e) = crate::cmdline::parse_plan_with(&line, &before) {
            out.push((line, e.to_string()));
        }
    }
    // --- one root path: `netboot probe ROOT-PATH`, DHCP option 17 ---------
    let paths = [
        format!("u:{s}@198.18.0.1::99999::{tgt}"),
        format!("iscsi:u:{s}:{tgt}:{t}@198.18.0.1::x::{tgt}"),
        format!("{s}@h"),
        format!("u:{s}@h"),
        format!("u:{s}:t:{t}@bad_host!::::{tgt}"),
        format!("u:{s}@198.18.0.1::::{pad}{s} x"),
    ];
    for p in &paths {
        if let Err(e) = rootpath::parse(p) {
            out.push((p.clone(), e.to_string()));
        }
        if let Err(e) = crate::boot::dhcp_root_path_parse("eth0", p) {
            out.push((format!("dhcp {p}"), e));
        }
        let mut bytes = p.as_bytes().to_vec();
        bytes.push(0xff);
        if let Err(e) = crate::cli::common::text_secret(
            "ROOT-PATH",
            OsStr::from_bytes(&bytes),
            Masker::for_root_path,
        ) {
            out.push((format!("{p}\\xff"), e));
        }
    }
    // --- `netboot discover PORTAL` ------------------------------------------
    let portals = [
        format!("u:{s}"),
        format!("u:{s}:t:{t}"),
        format!("u:{s}@bad host"),
        format!("u:{s}:t:{t}@h:99999"),
        format!("{s}@h"),
        format!("u:{s}@[fe80::zz]"),
    ];
    for p in &portals {
        if let Err(e) = crate::cli::discover::portal_of(OsStr::new(p)) {
            out.push((format!("discover {p}"), e));
        }
        let mut bytes = p.as_bytes().to_vec();
        bytes.push(0xfe);
        if let Err(e) = crate::cli::discover::portal_of(OsStr::from_bytes(&bytes)) {
            out.push((format!("discover {p}\\xfe"), e));
        }
    }
    // --- a config document ---------------------------------------------------
    let (js, jt) = (json_str(s), json_str(t));
    let docs = [
        format!(r#"{{"version":1,"chap":{{"username":"u","password":{js}}},"timeout_ms":{js}}}"#),
        format!(
            r#"{{"version":1,"paths":[{{"server":{},"target":"t","chap":{{"username":"u","password":{jt}}}}}]}}"#,
            json_str(&format!("u:{s}@198.18.0.1"))
        ),
        format!(
            r#"{{"version":1,"iscsi":{{"login_params":[{{"key":"CHAP_Secret","value":{js}}}],
              "node_params":[{{"key":"node.session.auth.password","value":{jt}}}]}}}}"#
        ),
        format!(
            r#"{{"version":1,"chap":{{"username":"{tgt}","password":{js},
              "mutual":{{"username":"{tgt}","password":{jt}}}}},"log":{},"ip":[{jt}]}}"#,
            json_str(&format!("{pad}{s}"))
        ),
        format!(
            r#"{{"version":1,"paths":[{{"server":"h","target":{js},"chap":{{"username":"u","password":{js}}}}}]}}"#
        ),
    ];
    for d in &docs {
        if let Err(e) = crate::config::parse_config(d.as_bytes()) {
            out.push((d.clone(), e.to_string()));
        }
    }
    out
}

/// Every form in which a credential would count as shown.
fn shown_forms(c: &str) -> Vec<String> {
    let once = debug_inner(c);
    vec![c.to_string(), debug_inner(&once), once]
}

/// `MASK_SEED=N MASK_ROUNDS=M cargo test --lib no_credential` explores
/// further than the default 400 rounds of the fixed seed.
fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_credential_in_any_error_ever() {
    let mut r = Rng(knob("MASK_SEED", 0x5eed_1212_2026_1201));
    let mut checked = 0;
    let rounds = knob("MASK_ROUNDS", 400) as usize;
    for round in 0..rounds {
        let (s, t) = (credential(&mut r), credential(&mut r));
        // Pads that put the credential across the 120-character cut of a
        // quote, and far from it.
        let pad = [0, 100 + r.below(30), 5][round % 3];
        for (input, err) in errors(&s, &t, pad) {
            checked += 1;
            for c in [&s, &t] {
                for f in shown_forms(c) {
                    assert!(
                        !err.contains(&f),
                        "round {round}: credential {c:?} (as {f:?}) shown for {input:?}:\n{err}"
                    );
                }
            }
            assert!(!err.contains('\n'), "multi-line error for {input:?}: {err}");
        }
    }
    // Most inputs are errors by construction; the property was exercised.
    assert!(checked > rounds * 30, "only {checked} errors checked");
}

#[test]
fn issue_12_cases_are_masked_exactly() {
    let e = |line: &str| match crate::cmdline::parse_plan(line) {
        Ok(_) => "parsed".to_string(),
        Err(e) => e.to_string(),
    };
    // A password and a target user name that are target names.
    assert_eq!(
        e("iscsi=u:iqn.2026-11.pw:iqn.2026-11.org.t:iqn.pw2@198.18.0.1::99999::iqn.2026-11.t:root"),
        r#"invalid iscsi=: port "99999" in "u:***:iqn.2026-11.org.t:***@198.18.0.1::99999::iqn.2026-11.t:root" is not 1..65535"#
    );
    assert_eq!(
        e("netroot=iscsi:u:iqn.S3cret@198.18.0.1:7:::iqn.2026-11.t:root"),
        r#"invalid netroot=: protocol "7" in "iscsi:u:***@198.18.0.1:7:::iqn.2026-11.t:root" is not empty or 6 (TCP)"#
    );
    // An unclosed quote before a credentialed root path.
    assert_eq!(
        e("netboot.log=\"verbose iscsi=u:S3cret@198.18.0.1::::iqn.a:x"),
        r#"invalid netboot.log=: "verbose iscsi=u:***@198.18.0.1::::iqn.a:x" is not one of off, error, warn, warning, info, debug, trace"#
    );
    // A credential cut by the quote's elision: its visible start masked.
    let pad = "p".repeat(110);
    let got = e(&format!(
        "netboot.log=\"{pad} iscsi=u:S3cretPw0rd@198.18.0.1::::iqn.a:x"
    ));
    assert_eq!(
        got,
        format!(
            r#"invalid netboot.log=: "{pad} iscsi=u:***"… is not one of off, error, warn, warning, info, debug, trace"#
        )
    );
    // discover USER:SECRET without @HOST.
    assert_eq!(
        crate::cli::discover::portal_of(OsStr::new("user:S3cret")).err(),
        Some(r#"invalid portal "user:***" (expected HOST[:PORT] or [IPv6][:PORT])"#.to_string())
    );
    // DHCP option 17, with a forged newline: masked and escaped.
    assert_eq!(
        crate::boot::dhcp_root_path_parse("eth0", "u:iqn.S3cret@198.18.0.1::::iqn.t\nok").err(),
        Some(
            r#"root path "u:***@198.18.0.1::::iqn.t\nok" from DHCP on eth0: target name in "u:***@198.18.0.1::::iqn.t\nok" is longer than 223 bytes or has spaces or control characters"#
                .to_string()
        )
    );
}

#[test]
fn forms_elision_and_debug() {
    let mut m = Masker::new();
    m.secret("a\"b\\c\u{1}");
    m.secret("***");
    m.secret("");
    assert_eq!(format!("{m:?}"), "Masker(<1 candidates>)");
    assert_eq!(m.mask("raw a\"b\\c\u{1} end"), "raw *** end");
    assert_eq!(m.mask(r#"debug "a\"b\\c\u{1}" end"#), r#"debug "***" end"#);
    assert_eq!(
        m.mask(r#"twice "\"a\\\"b\\\\c\\u{1}\"" end"#),
        r#"twice "\"***\"" end"#
    );
    assert_eq!(m.mask("escaped a\"b\\c\\u{1} end"), "escaped *** end");
    // Cut by a quote's elision: the visible start goes too.
    assert_eq!(m.mask(r#"cut "xx a\"b"… end"#), r#"cut "xx ***"… end"#);
    assert_eq!(m.mask(r#"cut "xx q"… end"#), r#"cut "xx q"… end"#);
    assert_eq!(Masker::new().mask("x"), "x");
    // Fuzz-found: a credential holding `*` reappears next to a mask.
    let mut m = Masker::new();
    m.secret("\u{fffd}*");
    m.secret("zzz");
    assert_eq!(m.mask("a\u{fffd}zzz b"), "a***** b");
    let mut m = Masker::new();
    m.secret("q*");
    assert_eq!(m.mask("q*"), "***");
}

#[test]
fn overlap_is_the_longest_start_that_ends_the_text() {
    assert_eq!(overlap(b"xxabab", b"ababc"), 4);
    assert_eq!(overlap(b"xxaab", b"aabaab"), 3);
    assert_eq!(overlap(b"abc", b"d"), 0);
    assert_eq!(overlap(b"", b"abc"), 0);
    assert_eq!(overlap(b"aaaa", b"aaaaaaa"), 4);
    assert_eq!(overlap(b"ab", b"ab"), 2);
}

#[test]
fn readings_of_a_command_line() {
    let m = Masker::for_cmdline(
        "netboot.log=\"x iscsi=u:iqn.pw1@h::::iqn.t \"y\"rd.iscsi.in.password=pw2 \
         rd.iscsi.param=node.session.auth.password=pw3 netboot.secrets=/etc/s \
         iscsi=198.18.0.1::::iqn.a@b",
        &[],
    );
    let text = "iqn.pw1 pw2 pw3 /etc/s 198.18.0.1 iqn.a@b";
    assert_eq!(m.mask(text), "*** *** *** /etc/s 198.18.0.1 iqn.a@b");
    // A user name is not a credential.
    let m = Masker::for_root_path("iscsi:user:pw:tuser:tpw@h::::t");
    assert_eq!(m.mask("user pw tuser tpw"), "user *** tuser ***");
    // Mistyped: every field but the user name.
    let m = Masker::for_root_path("user:a:b@h::::t");
    assert_eq!(m.mask("user a b"), "user *** ***");
}
