//! Host tests: the userspace rxkad client ↔ `netboot-configd --rxkad-keys`,
//! and configd's `key` / `token` subcommands.
//!
//! Layout: a temp directory per test holds the server key file (`key new`),
//! tokens (`token`, or minted with the pure API for cases the command
//! refuses to make), and the config directory; configd runs as a child on
//! 127.0.0.1 with an ephemeral port (its `listening on` line). Configs:
//! `mac-52-54-00-12-34-56.json` holds a CHAP secret, `mac-…-57` none,
//! `mac-…-58` a secret with `"serve_secrets_insecure": true`. Every
//! assertion is on the fetched config or the exact refusal (abort code and
//! the error text the agent logs). Tampering, replay, OpenAFS and the
//! kernel client are in tests/vm_rxkad.rs and the interop tests.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::config::proto::{self, Identity};
use netboot::config::{fetch_config, AttemptError, Config, FetchError};
use netboot::plan::ConfigServer;
use netboot::rxkad::files::{self, Holder, Token};
use netboot::rxkad::{code, Level};
use netboot::rxrpc::call::CallError;
use netboot::rxrpc::udp::UdpTransport;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use support::configd::Configd;

use support::configd::CONFIGD;
const MAC: &str = "52:54:00:12:34:56";
const MAC_PLAIN: &str = "52:54:00:12:34:57";
const MAC_ALLOWED: &str = "52:54:00:12:34:58";
const CHAP_SECRET: &str = "rxkad-chap-secret-1";

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netboot-rxkad-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("configs")).expect("mkdir");
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(CONFIGD)
        .args(args)
        .output()
        .expect("run configd")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn p(d: &Path, name: &str) -> String {
    d.join(name).to_string_lossy().into_owned()
}

/// The config directory: a secret, a secret-free and an allowed-secret file.
fn configs(d: &Path) -> PathBuf {
    let c = d.join("configs");
    let secret = format!(
        r#"{{"version":1,"initiator":"iqn.2026-12.test:secret","chap":{{"username":"u","password":"{CHAP_SECRET}"}}}}"#
    );
    std::fs::write(c.join("mac-52-54-00-12-34-56.json"), &secret).expect("write");
    std::fs::write(
        c.join("mac-52-54-00-12-34-57.json"),
        r#"{"version":1,"initiator":"iqn.2026-12.test:plain"}"#,
    )
    .expect("write");
    std::fs::write(
        c.join("mac-52-54-00-12-34-58.json"),
        format!(
            r#"{{"version":1,"serve_secrets_insecure":true,"chap":{{"username":"u","password":"{CHAP_SECRET}"}}}}"#
        ),
    )
    .expect("write");
    c
}

/// A key file with kvnos 1 and 2, made by the subcommand.
fn keys(d: &Path) -> String {
    let k = p(d, "rxkad.keys");
    ok(&["key", "new", "--kvno", "1", "--out", &k]);
    ok(&["key", "new", "--kvno", "2", "--out", &k, "--append"]);
    k
}

fn token(d: &Path, name: &str, keys: &str, who: &[&str], extra: &[&str]) -> Token {
    let out = p(d, name);
    let mut args = vec!["token", "--keys", keys, "--out", &out];
    args.extend_from_slice(who);
    args.extend_from_slice(extra);
    ok(&args);
    let text = std::fs::read_to_string(&out).expect("token");
    Token::parse(&text, &out).expect("parse token")
}

fn fetch(addr: SocketAddr, mac: &str, sec: Option<(&Token, Level)>) -> Result<Config, FetchError> {
    let mut t = UdpTransport::new(proto::MAX_REPLY + 8);
    if let Some((tok, level)) = sec {
        t = t.secured(tok.clone(), level);
    }
    let servers = vec![ConfigServer {
        host: addr.ip().to_string(),
        port: Some(addr.port()),
    }];
    let id = Identity {
        mac: mac.into(),
        ..Identity::default()
    };
    fetch_config(&mut t, &servers, &id, Duration::from_secs(3), 0)
}

/// The one attempt's error, and the text the agent would log.
fn refusal(r: Result<Config, FetchError>) -> (AttemptError, String) {
    match r {
        Err(e @ FetchError::AllFailed(_)) => {
            let text = e.to_string();
            let FetchError::AllFailed(v) = e else {
                unreachable!()
            };
            (v.into_iter().next().expect("one attempt").1, text)
        }
        other => panic!("not refused: {other:?}"),
    }
}

fn aborted(r: Result<Config, FetchError>, want: i32) -> String {
    let (e, text) = refusal(r);
    assert_eq!(e, AttemptError::Call(CallError::Aborted(want)), "{text}");
    text
}

fn chap_secret(c: &Config) -> String {
    c.chap.as_ref().expect("chap").secret.expose().to_string()
}

#[test]
fn subcommands_write_secret_files_and_refuse_to_overwrite() {
    let d = tempdir("files");
    let k = keys(&d);
    let mode = |f: &str| std::fs::metadata(f).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&k), 0o600);
    let text = std::fs::read_to_string(&k).expect("read");
    let parsed = files::parse_key_file(&text, &k).expect("key file");
    assert_eq!(
        parsed.iter().map(|k| k.kvno).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_ne!(parsed[0].key, parsed[1].key);
    // No overwrite without --force; a kvno twice is refused.
    let again = run(&["key", "new", "--kvno", "3", "--out", &k]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists; give --force to replace it"));
    let twice = run(&["key", "new", "--kvno", "2", "--out", &k, "--append"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already has kvno 2"));
    let bad = run(&["key", "new", "--kvno", "213", "--out", &p(&d, "x")]);
    assert_eq!(bad.status.code(), Some(2));

    // OpenAFS KeyFile: count, then kvno + key per key, big-endian.
    let kf = p(&d, "KeyFile");
    ok(&["key", "openafs", "--keys", &k, "--out", &kf]);
    let b = std::fs::read(&kf).expect("KeyFile");
    assert_eq!(b.len(), 4 + 2 * 12);
    assert_eq!(&b[0..8], &[0, 0, 0, 2, 0, 0, 0, 1]);
    assert_eq!(&b[8..16], &parsed[0].key);
    assert_eq!(&b[16..20], &[0, 0, 0, 2]);
    assert_eq!(mode(&kf), 0o600);

    // Token: the highest kvno by default, expiry printed, 0600, no overwrite.
    let out = p(&d, "t");
    let printed = ok(&[
        "token",
        "--keys",
        &k,
        "--machine",
        MAC,
        "--out",
        &out,
        "--lifetime",
        "2h",
    ]);
    let t = Token::parse(&std::fs::read_to_string(&out).expect("t"), &out).expect("token");
    assert_eq!(t.kvno, 2);
    assert_eq!(t.principal(), "netboot.mac-52-54-00-12-34-56");
    assert!(t.expiry - t.start >= 7200 && t.expiry - t.start < 7200 + 300);
    assert!(
        printed.contains(&format!(
            "until {} (expiry {})",
            files::utc(t.expiry),
            t.expiry
        )),
        "{printed}"
    );
    assert_eq!(mode(&out), 0o600);
    let again = run(&["token", "--keys", &k, "--fleet", "lab", "--out", &out]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists; give --force"));
    ok(&[
        "token", "--keys", &k, "--fleet", "lab", "--out", &out, "--force", "--kvno", "1",
    ]);
    let t = Token::parse(&std::fs::read_to_string(&out).expect("t"), &out).expect("token");
    assert_eq!((t.kvno, t.principal().as_str()), (1, "netboot.fleet-lab"));
    let long = run(&[
        "token",
        "--keys",
        &k,
        "--fleet",
        "lab",
        "--out",
        &p(&d, "u"),
        "--lifetime",
        "31d",
    ]);
    assert_eq!(long.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&long.stderr).contains("1 s .. 30 d"));
    // The key never shows: not in the output, not in an error.
    let key_hex = files::to_hex(&parsed[0].key);
    assert!(!printed.contains(&key_hex));

    // --help of every subcommand documents its files.
    for (args, want) in [
        (&["key", "--help"][..], "key = 1 f1e2d3c4b5a69788"),
        (&["key", "new", "--help"][..], "--append"),
        (&["key", "openafs", "--help"][..], "KeyFile"),
        (&["token", "--help"][..], "/etc/netboot/config.token"),
        (&["--help"][..], "serve_secrets_insecure"),
    ] {
        let h = ok(args);
        assert!(h.contains(want), "{args:?}: {h}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn secured_fetches_and_the_secrets_policy() {
    let d = tempdir("policy");
    let k = keys(&d);
    let c = configs(&d);
    let configd = Configd::start(&c, &["--rxkad-keys", &k]);
    let machine = token(&d, "m", &k, &["--machine", MAC], &[]);
    let fleet = token(&d, "f", &k, &["--fleet", "rack7"], &["--kvno", "1"]);

    // encrypt: the CHAP secret comes back, machine and fleet tokens alike.
    let got = fetch(configd.addr, MAC, Some((&machine, Level::Encrypt))).expect("encrypt fetch");
    assert_eq!(chap_secret(&got), CHAP_SECRET);
    assert_eq!(got.initiator.as_deref(), Some("iqn.2026-12.test:secret"));
    let got = fetch(configd.addr, MAC, Some((&fleet, Level::Encrypt))).expect("fleet fetch");
    assert_eq!(chap_secret(&got), CHAP_SECRET);
    let log = configd.log_until(|l| l.contains("[encrypt netboot.fleet-rack7]"));
    assert!(
        log.iter()
            .any(|l| l.contains("[encrypt netboot.fleet-rack7]") && l.contains("(108 bytes)")),
        "{log:?}"
    );

    // auth: integrity only, so no secrets; a secret-free config is served.
    let text = aborted(
        fetch(configd.addr, MAC, Some((&machine, Level::Auth))),
        proto::NBCONF_SECRETS_REFUSED,
    );
    assert!(
        text.contains("(NBCONF_SECRETS_REFUSED): the config holds CHAP secrets"),
        "{text}"
    );
    let got = fetch(configd.addr, MAC_PLAIN, Some((&fleet, Level::Auth))).expect("auth fetch");
    assert_eq!(got.initiator.as_deref(), Some("iqn.2026-12.test:plain"));

    // Plain: secrets refused, a secret-free config served, an explicit
    // allowance honoured (and not sent on).
    aborted(
        fetch(configd.addr, MAC, None),
        proto::NBCONF_SECRETS_REFUSED,
    );
    let got = fetch(configd.addr, MAC_PLAIN, None).expect("plain fetch");
    assert!(got.chap.is_none());
    let got = fetch(configd.addr, MAC_ALLOWED, None).expect("allowed fetch");
    assert_eq!(chap_secret(&got), CHAP_SECRET);
    assert!(!got.serve_secrets_insecure, "configd strips the directive");
    let plain_refusal = |l: &str| {
        l.contains("[plain]")
            && l.contains("refused: the document holds CHAP secrets and the call is not secured")
            && l.contains("NBCONF_SECRETS_REFUSED")
    };
    let log = configd.log_until(plain_refusal);
    assert!(log.iter().any(|l| plain_refusal(l)), "{log:?}");

    // A machine token for another MAC.
    let text = aborted(
        fetch(configd.addr, MAC_PLAIN, Some((&machine, Level::Encrypt))),
        proto::NBCONF_WRONG_MACHINE,
    );
    assert!(
        text.contains("the token belongs to another machine"),
        "{text}"
    );
    let wrong = |l: &str| {
        l.contains("the token is for machine 52:54:00:12:34:56, the request names mac \"52:54:00:12:34:57\"")
            && l.contains("NBCONF_WRONG_MACHINE")
    };
    let log = configd.log_until(wrong);
    assert!(log.iter().any(|l| wrong(l)), "{log:?}");
    // The connection after a refusal still works (a new one is made).
    assert!(fetch(configd.addr, MAC, Some((&machine, Level::Encrypt))).is_ok());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn expired_unknown_and_foreign_tokens_are_refused_clearly() {
    let d = tempdir("expired");
    let k = keys(&d);
    let c = configs(&d);
    let configd = Configd::start(&c, &["--rxkad-keys", &k]);
    // Two hours long, started three hours ago (the CLI's --start).
    let start = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 3 * 3600)
        .to_string();
    let old = token(
        &d,
        "old",
        &k,
        &["--machine", MAC],
        &["--lifetime", "2h", "--start", &start],
    );
    let text = aborted(
        fetch(configd.addr, MAC, Some((&old, Level::Encrypt))),
        code::RXKADEXPIRED,
    );
    let server = configd.addr.to_string();
    assert!(
        text.contains(&format!(
            "{server}: call aborted with code 19270409 (RXKADEXPIRED): the token has expired"
        )),
        "{text}"
    );

    // A token of a kvno the server does not hold, and one sealed with a
    // foreign key under a kvno it does hold: built with the pure API.
    let foreign = netboot::rxkad::ticket::ServerKey {
        kvno: 9,
        key: netboot::rxkad::ticket::fix_parity([0x91, 0x37, 0x5b, 0x1d, 0x02, 0x46, 0x8a, 0xce]),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    let t9 = Token::mint(&foreign, &Holder::Machine(MAC.into()), now, 3600, [3; 8]).expect("mint");
    aborted(
        fetch(configd.addr, MAC, Some((&t9, Level::Encrypt))),
        code::RXKADUNKNOWNKEY,
    );
    let forged = netboot::rxkad::ticket::ServerKey { kvno: 2, ..foreign };
    let t2 = Token::mint(&forged, &Holder::Machine(MAC.into()), now, 3600, [3; 8]).expect("mint");
    let (e, text) = refusal(fetch(configd.addr, MAC, Some((&t2, Level::Encrypt))));
    assert!(
        matches!(e, AttemptError::Call(CallError::Aborted(c)) if (code::RXKADINCONSISTENCY..=code::RXKADILLEGALLEVEL).contains(&c)),
        "{text}"
    );
    // Still serving good tokens after all that.
    let good = token(&d, "good", &k, &["--machine", MAC], &[]);
    assert!(fetch(configd.addr, MAC, Some((&good, Level::Encrypt))).is_ok());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn min_level_refuses_plain_calls_and_lower_levels() {
    let d = tempdir("minlevel");
    let k = keys(&d);
    let c = configs(&d);
    let configd = Configd::start(&c, &["--rxkad-keys", &k, "--min-level", "encrypt"]);
    let t = token(&d, "t", &k, &["--machine", MAC_PLAIN], &[]);
    let text = aborted(
        fetch(configd.addr, MAC_PLAIN, None),
        proto::NBCONF_SECURITY_REQUIRED,
    );
    assert!(text.contains("the server takes only rxkad calls"), "{text}");
    // Our client set to auth refuses a challenge that asks for encrypt.
    let (e, text) = refusal(fetch(configd.addr, MAC_PLAIN, Some((&t, Level::Auth))));
    match e {
        AttemptError::Call(CallError::Security(e)) => {
            assert_eq!(e.code, code::RXKADLEVELFAIL, "{text}")
        }
        other => panic!("{other:?}: {text}"),
    }
    assert!(fetch(configd.addr, MAC_PLAIN, Some((&t, Level::Encrypt))).is_ok());
    // --min-level without keys is a usage error.
    let o = run(&["--dir", &p(&d, "configs"), "--min-level", "auth"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("--min-level auth|encrypt needs --rxkad-keys FILE"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn config_fetch_tool_takes_a_token() {
    let d = tempdir("tool");
    let k = keys(&d);
    let c = configs(&d);
    let configd = Configd::start(&c, &["--rxkad-keys", &k]);
    token(&d, "t", &k, &["--machine", MAC], &[]);
    let server = format!("rxrpc:{}", configd.addr);
    let netboot = env!("CARGO_BIN_EXE_netboot");
    let fetch = |extra: &[&str]| {
        Command::new(netboot)
            .args(["config-fetch", &server, "--mac", MAC, "--timeout", "3"])
            .args(extra)
            .output()
            .expect("run netboot")
    };
    let o = fetch(&["--token", &p(&d, "t")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: serde_json::Value = serde_json::from_str(&out).expect("plan json");
    assert_eq!(plan["iscsi"]["chap"]["username"], "u");
    assert_eq!(plan["iscsi"]["chap"]["password"], "***");
    assert!(!out.contains(CHAP_SECRET));
    let o = fetch(&[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("(NBCONF_SECRETS_REFUSED)"), "{err}");
    let o = fetch(&["--token", &p(&d, "t"), "--security", "auth"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("(NBCONF_SECRETS_REFUSED)"));
    let o = fetch(&["--token", &p(&d, "nope")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--token \"") && err.contains("nope\": No such file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
