//! The command-line surface of both binaries, run as built: every command
//! answers `-h`/`--help` on stdout with exit 0, `--version` prints the
//! package version, and bad arguments (unknown, not UTF-8, out of range)
//! exit 2 with exact text on stderr — never a panic. Needs no root and no
//! network: every case here stops before a socket is opened.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const CONFIGD: &str = env!("CARGO_BIN_EXE_netboot-configd");
const COMMANDS: &[&str] = &[
    "plan",
    "discover",
    "probe",
    "events",
    "report",
    "config-fetch",
];

/// (exit code, stdout, stderr) of `bin args…`.
fn run<S: AsRef<OsStr>>(bin: &str, args: &[S]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn usage_of(cmd: &str) -> String {
    let (code, out, _) = run(NETBOOT, &[cmd, "--help"]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("usage: "))
        .unwrap_or_default();
    format!("{line} (--help for details)\n")
}

#[test]
fn every_command_answers_help_on_stdout() {
    for cmd in COMMANDS {
        for flag in ["--help", "-h"] {
            let (code, out, err) = run(NETBOOT, &[cmd, flag]);
            assert_eq!((code, err.as_str()), (0, ""), "{cmd} {flag}");
            assert!(
                out.starts_with(&format!("netboot {cmd}: ")),
                "{cmd} {flag}: {out}"
            );
            assert!(out.contains(&format!("\nusage: netboot {cmd} ")), "{out}");
            assert!(out.contains("\n  -h, --help "), "{out}");
        }
        // `help CMD` prints the same text; --help wins wherever it stands.
        let (_, direct, _) = run(NETBOOT, &[cmd, "--help"]);
        assert_eq!(
            run(NETBOOT, &["help", cmd]),
            (0, direct.clone(), String::new())
        );
        assert_eq!(
            run(NETBOOT, &[cmd, "--json", "x", "--help"]).1,
            direct,
            "{cmd}"
        );
    }
}

#[test]
fn help_lists_options_with_defaults_and_ranges() {
    let (_, out, _) = run(NETBOOT, &["events", "--help"]);
    for want in [
        "  --group G     connector multicast group, 1..32, decimal or 0x hex (default 26)\n",
        "  --count N     exit 0 after N events, 0..1000000000 (default: no limit)\n",
        "  --timeout S   total wall time (not idle time), in seconds, 0.001..86400,\n",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    let (_, out, _) = run(NETBOOT, &["probe", "--help"]);
    assert!(
        out.contains("0.001..86400, fractions allowed (default 10)\n"),
        "{out}"
    );
    let (_, out, _) = run(NETBOOT, &["config-fetch", "--help"]);
    assert!(out.contains("0..100 (default 0)\n"), "{out}");
}

#[test]
fn top_level_help_lists_every_command() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let (code, out, err) = run(NETBOOT, args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
        assert!(out.contains("\ncommands:\n"), "{out}");
        for cmd in COMMANDS {
            assert!(out.contains(&format!("\n  {cmd:<12}  ")), "{cmd} in {out}");
        }
    }
    // No command at all is a usage error, on stderr.
    let (code, out, err) = run::<&str>(NETBOOT, &[]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.starts_with("usage: netboot COMMAND"), "{err}");
}

#[test]
fn configd_answers_help() {
    for flag in ["--help", "-h"] {
        let (code, out, err) = run(CONFIGD, &[flag]);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(
            out.starts_with("netboot-configd: serve netboot configs"),
            "{out}"
        );
        assert!(out.contains("\nusage: netboot-configd --dir DIR "), "{out}");
        assert!(
            out.contains("calls in progress at once, 1..100000 (default 256); more wait in\n"),
            "{out}"
        );
    }
}

#[test]
fn version_of_both_binaries() {
    let want = format!("netboot {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"]] {
        assert_eq!(run(NETBOOT, args), (0, want.clone(), String::new()));
    }
    assert_eq!(run(CONFIGD, &["--version"]), (0, want, String::new()));
}

#[test]
fn unknown_arguments_exit_2_with_one_line_and_usage() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["events", "--bogus"],
            "netboot events: unknown option \"--bogus\"\n",
        ),
        // The value after `=` of an unknown option is not echoed.
        (
            &["probe", "--initator=user:secret@h"],
            "netboot probe: unknown option \"--initator\"\n",
        ),
        (
            &["report", "a", "b"],
            "netboot report: unexpected argument \"b\"\n",
        ),
        (
            &["events", "--json=yes"],
            "netboot events: --json takes no value\n",
        ),
        (
            &["config-fetch", "rxrpc:h", "--retries"],
            "netboot config-fetch: --retries needs a value (N)\n",
        ),
        (
            &["config-fetch", "rxrpc:h", "--transport", "tcp"],
            "netboot config-fetch: --transport \"tcp\": expected udp or kernel\n",
        ),
    ];
    for (args, first) in cases {
        let (code, out, err) = run(NETBOOT, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        assert_eq!(err, format!("{first}{}", usage_of(args[0])), "{args:?}");
    }
    assert_eq!(
        run(NETBOOT, &["bogus"]),
        (
            2,
            String::new(),
            "netboot: unknown command \"bogus\"\n\
             usage: netboot COMMAND [ARGS]; netboot --help lists the commands\n"
                .into()
        )
    );
    let (code, _, err) = run(CONFIGD, &["--dir", "/nonexistent", "--bogus"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "netboot-configd: unknown option \"--bogus\"\n\
         usage: netboot-configd --dir DIR [--listen ADDR:PORT]... [--max-calls N] (--help for details)\n"
    );
}

#[test]
fn non_utf8_arguments_are_named_not_panics() {
    let bad = OsStr::from_bytes(b"ab\xff\x1bc");
    let cases: &[(&[&OsStr], &str)] = &[
        (
            &[OsStr::new("events"), OsStr::new("--group"), bad],
            "netboot events: --group \"ab\\xFF\\u{1b}c\": not valid UTF-8\n",
        ),
        (
            &[OsStr::new("events"), bad],
            "netboot events: unexpected argument \"ab\\xFF\\u{1b}c\"\n",
        ),
        (
            &[
                OsStr::new("discover"),
                OsStr::new("--initiator"),
                bad,
                OsStr::new("h"),
            ],
            "netboot discover: --initiator \"ab\\xFF\\u{1b}c\": not valid UTF-8\n",
        ),
        // A root path is shown without what stands before its last '@'.
        (
            &[
                OsStr::new("probe"),
                OsStr::from_bytes(b"iscsi:user:s\xffcret@h\xfe::::iqn.2026-11.test:x"),
            ],
            "netboot probe: ROOT-PATH \"***@h\\xFE::::iqn.2026-11.test:x\": not valid UTF-8\n",
        ),
        (
            &[
                OsStr::new("config-fetch"),
                OsStr::from_bytes(b"rxrpc:h\xff"),
            ],
            "netboot config-fetch: server \"rxrpc:h\\xFF\": not valid UTF-8\n",
        ),
        (
            &[
                OsStr::new("config-fetch"),
                OsStr::new("rxrpc:h"),
                OsStr::new("--mac"),
                bad,
            ],
            "netboot config-fetch: --mac \"ab\\xFF\\u{1b}c\": not valid UTF-8\n",
        ),
    ];
    for (args, first) in cases {
        let (code, out, err) = run(NETBOOT, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        let cmd = args[0].to_str().unwrap_or_default();
        assert_eq!(err, format!("{first}{}", usage_of(cmd)), "{args:?}");
    }
    // An unknown command that is not UTF-8.
    let (code, _, err) = run(NETBOOT, &[bad]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("netboot: unknown command \"ab\\xFF\\u{1b}c\"\n"),
        "{err}"
    );
    // configd: --listen needs text; --dir is a path and may be any bytes.
    let (code, _, err) = run(CONFIGD, &[OsStr::new("--listen"), bad]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("netboot-configd: --listen \"ab\\xFF\\u{1b}c\": not valid UTF-8\n"),
        "{err}"
    );
    let (code, _, err) = run(
        CONFIGD,
        &[OsStr::new("--dir"), OsStr::from_bytes(b"/nonexistent/\xff")],
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("netboot-configd: cannot read --dir \"/nonexistent/\\xFF\": "),
        "{err}"
    );
}

#[test]
fn numbers_are_capped_and_named() {
    let cases: &[(&[&str], &str)] = &[
        // Once Duration::from_secs_f64 panicked on this.
        (
            &["events", "--timeout", "1e19"],
            "netboot events: --timeout \"1e19\": expected seconds 0.001..86400\n",
        ),
        (
            &["events", "--timeout", "NaN"],
            "netboot events: --timeout \"NaN\": expected seconds 0.001..86400\n",
        ),
        (
            &["events", "--count", "1000000001"],
            "netboot events: --count \"1000000001\": expected a number 0..1000000000\n",
        ),
        (
            &["events", "--group", "0x21"],
            "netboot events: --group \"0x21\": expected a group number 1..32\n",
        ),
        (
            &["events", "--id", "0x1ffffffff.1"],
            "netboot events: --id \"0x1ffffffff.1\": expected IDX.VAL, two numbers 0..4294967295, e.g. 0x4e42.1\n",
        ),
        (
            &["probe", "--timeout", "0", "iscsi:h::::iqn.x"],
            "netboot probe: --timeout \"0\": expected seconds 0.001..86400\n",
        ),
        (
            &["discover", "--timeout=86400.5", "h"],
            "netboot discover: --timeout \"86400.5\": expected seconds 0.001..86400\n",
        ),
        (
            &["config-fetch", "rxrpc:h", "--timeout", "-1"],
            "netboot config-fetch: --timeout \"-1\": expected seconds 0.001..86400\n",
        ),
        (
            &["config-fetch", "rxrpc:h", "--retries", "18446744073709551616"],
            "netboot config-fetch: --retries \"18446744073709551616\": expected a number 0..100\n",
        ),
    ];
    for (args, first) in cases {
        let (code, out, err) = run(NETBOOT, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        assert_eq!(err, format!("{first}{}", usage_of(args[0])), "{args:?}");
    }
    let (code, _, err) = run(CONFIGD, &["--dir", "/x", "--max-calls", "100001"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("netboot-configd: --max-calls \"100001\": expected a number 1..100000\n"),
        "{err}"
    );
}

#[test]
fn echoed_control_characters_stay_escaped() {
    // A portal and an initiator with a newline and an escape sequence:
    // echoed escaped, so each error is one line and cannot drive the
    // terminal.
    let cases: &[(&[&str], &str)] = &[
        (
            &["discover", "h\n\u{1b}[2J"],
            "netboot discover: invalid portal \"h\\n\\u{1b}[2J\" (expected HOST[:PORT] or [IPv6][:PORT])\n",
        ),
        (
            &["discover", "--initiator", "iqn.a\r\u{1b}[2J", "h"],
            "netboot discover: --initiator \"iqn.a\\r\\u{1b}[2J\": expected an iqn., eui. or naa. name of at most 223 bytes without spaces\n",
        ),
    ];
    for (args, first) in cases {
        let (code, out, err) = run(NETBOOT, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        assert_eq!(err, format!("{first}{}", usage_of(args[0])), "{args:?}");
    }
    // A report path with a newline, in an exit-1 error.
    let (code, _, err) = run(NETBOOT, &["report", "/nonexistent/a\nb"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("netboot report: cannot read boot report /nonexistent/a\\nb: "),
        "{err}"
    );
}

/// Issue 12 defect 1: `discover` masks every credential of its argument,
/// also one whose `@HOST` was forgotten, and one starting with `iqn.`.
#[test]
fn discover_never_echoes_a_secret() {
    let cases: &[(&str, &str)] = &[
        (
            "user:S3cretPw",
            "netboot discover: invalid portal \"user:***\" (expected HOST[:PORT] or [IPv6][:PORT])\n",
        ),
        (
            "user:S3cretPw:iqn.2026-11.org.t:iqn.Mut7alPw",
            "netboot discover: invalid portal \"user:***:iqn.2026-11.org.t:***\" (expected HOST[:PORT] or [IPv6][:PORT])\n",
        ),
        (
            "user:iqn.S3cretPw@bad host",
            "netboot discover: invalid portal \"bad host\" (expected HOST[:PORT] or [IPv6][:PORT])\n",
        ),
        (
            "user:S3c@retPw@h:99999",
            "netboot discover: invalid portal \"h:***\" (expected HOST[:PORT] or [IPv6][:PORT])\n",
        ),
    ];
    for (arg, first) in cases {
        let (code, out, err) = run(NETBOOT, &["discover", arg]);
        assert_eq!((code, out.as_str()), (2, ""), "{arg:?}");
        assert_eq!(err, format!("{first}{}", usage_of("discover")), "{arg:?}");
        for s in ["S3cretPw", "Mut7alPw", "S3c@retPw", "retPw"] {
            assert!(!err.contains(s), "{s} leaked for {arg:?}: {err}");
        }
    }
}

/// Issue 12 defect 4: a forged `boot.json` cannot add lines to `netboot
/// report`; defect 8: the report is read with a cap.
#[test]
fn report_escapes_a_forged_file_and_caps_its_size() {
    let dir = std::env::temp_dir().join(format!("netboot-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let f = dir.join("boot.json");
    std::fs::write(
        &f,
        r#"{"v":1,"outcome":"failed:iscsi.login\nboot ok in 1.0s (13 steps, 0 not ok)",
            "total_us":1,"steps":[{"step":"iscsi.login","start_us":0,"duration_us":1,
            "result":"error","facts":{"mac":"52:54\n+0.000003","target":"iqn.x\n+0.000002        1us  root.mount       ok"}}]}"#,
    )
    .expect("write");
    let (code, out, err) = run(NETBOOT, &["report", f.to_str().expect("utf-8")]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "boot failed:iscsi.login\\nboot ok in 1.0s (13 steps, 0 not ok) in 1us (1 steps, 1 not ok)\n\
         \n\
         slowest first:\n\
         \x20      1us iscsi.login  (error)\n\
         \n\
         in order:\n\
         \x20     start   duration  step             result  details\n\
         \x20 +0.000000        1us  iscsi.login      error   \
         mac=52:54\\n+0.000003 target=\"iqn.x\\n+0.000002        1us  root.mount       ok\"\n\
         \n\
         timeline (ms since the agent started; one column = 0.0 ms):\n\
         step               start     end    took  0                                               0 ms\n\
         iscsi.login            0       0       0  |xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx|\n"
    );
    let (code, out, err) = run(NETBOOT, &["report", "/dev/zero"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "netboot report: /dev/zero is not a netboot boot report: longer than 16777216 bytes\n"
    );
}
