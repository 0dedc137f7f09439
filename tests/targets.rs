//! `netboot discover` and `netboot probe` against real iSCSI targets (tgtd and istgt) on
//! 127.0.0.1, plus the failure paths: wrong CHAP secret, missing credentials, a mutual-CHAP
//! target that does not prove itself, nothing listening, a black hole, a silent target.
//!
//! Layout: every case is a function taking the target kind; `per_target!` turns it into one
//! `#[test]` per target (`probe_chap::tgtd`, `probe_chap::istgt`) so a failure names the
//! target. The `peer_*` tests drive the same targets with libiscsi's tools (iscsi-inq,
//! iscsi-readcapacity16, iscsi-ls): when they pass and a netboot test fails, the bug is in
//! netboot, not in the rig.
//!
//! Needs root, tgt, istgt, libiscsi-bin, iproute2. Without them each test prints
//! `skipped: …`; set `NETBOOT_REQUIRE_TARGETS=1` to make that a failure.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use support::{run, Auth, BlackHole, Kind, Output, Silent, Target, TargetOpts};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");

/// Hard limit for one netboot invocation; a login on loopback takes milliseconds.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Every secret any test uses; none of them may ever appear in netboot's output.
const SECRETS: &[&str] = &[
    "chapsecret1234",
    "tgtsecret56789",
    "wrongsecret999",
    "wrongtarget777",
];

/// One `#[test]` per target kind for a case `fn case(kind: Kind)`.
macro_rules! per_target {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn tgtd() {
                super::$case(super::Kind::Tgtd)
            }
            #[test]
            fn istgt() {
                super::$case(super::Kind::Istgt)
            }
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// helpers

fn netboot(args: &[&str]) -> Output {
    let mut c = Command::new(NETBOOT);
    c.args(args);
    run(c, CMD_TIMEOUT)
}

/// ROOT-PATH `iscsi:[creds@]127.0.0.1::PORT::IQN` (RFC 4173 / dracut form, empty proto and
/// lun fields).
fn root_path(creds: &str, portal_host: &str, port: u16, iqn: &str) -> String {
    let at = if creds.is_empty() { "" } else { "@" };
    format!("iscsi:{creds}{at}{portal_host}::{port}::{iqn}")
}

fn target_root(t: &Target, creds: &str) -> String {
    root_path(creds, t.host_literal(), t.port(), t.iqn())
}

fn context(out: &Output, t: Option<&Target>) -> String {
    format!(
        "{}\n{}",
        out.describe(),
        t.map(Target::log).unwrap_or_default()
    )
}

fn assert_no_secret(out: &Output, t: Option<&Target>) {
    for s in SECRETS {
        if out.stdout.contains(s) || out.stderr.contains(s) {
            panic!(
                "a CHAP secret ({s:?}) appears in netboot's output\n{}",
                context(out, t)
            );
        }
    }
}

fn expect_ok(out: &Output, t: &Target) {
    if out.timed_out || out.code() != Some(0) {
        panic!("expected exit 0\n{}", context(out, Some(t)));
    }
    assert_no_secret(out, Some(t));
}

/// Exit 1 and exactly one stderr line `netboot CMD: …`; returns that line.
fn expect_failure<'a>(out: &'a Output, cmd: &str, t: Option<&Target>) -> &'a str {
    if out.timed_out || out.code() != Some(1) {
        panic!("expected exit 1 from netboot {cmd}\n{}", context(out, t));
    }
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let prefix = format!("netboot {cmd}: ");
    match lines.as_slice() {
        [line] if line.starts_with(&prefix) => {
            assert_no_secret(out, t);
            line
        }
        _ => panic!(
            "expected exactly one stderr line starting {prefix:?}\n{}",
            context(out, t)
        ),
    }
}

fn expect_contains(line: &str, needles: &[&str], out: &Output, t: Option<&Target>) {
    let lower = line.to_lowercase();
    for n in needles {
        if !lower.contains(&n.to_lowercase()) {
            panic!("error line lacks {n:?}: {line:?}\n{}", context(out, t));
        }
    }
}

fn json(out: &Output, t: &Target) -> Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", context(out, Some(t))))
}

fn start(kind: Kind, auth: Auth) -> Option<Target> {
    Target::start(kind, &TargetOpts::with_auth(auth))
}

/// Check a `probe --json` document: target, portal, and the disk LUN with the backing size.
fn check_probe_json(out: &Output, t: &Target) {
    let v = json(out, t);
    let fail = |why: &str| -> ! { panic!("probe JSON: {why}\n{}", context(out, Some(t))) };
    if v["target"] != t.iqn() {
        fail(&format!("\"target\" is not {:?}", t.iqn()));
    }
    if v["portal"] != t.portal().as_str() {
        fail(&format!("\"portal\" is not {:?}", t.portal()));
    }
    let Some(luns) = v["luns"].as_array() else {
        fail("no \"luns\" array")
    };
    let Some(disk) = luns
        .iter()
        .find(|l| l["lun"].as_u64() == Some(t.disk_lun()))
    else {
        fail(&format!(
            "no LUN {} (the backing file) listed",
            t.disk_lun()
        ))
    };
    if disk["device_type"] != 0 {
        fail("disk LUN device_type is not 0 (direct access)");
    }
    if disk["size_bytes"].as_u64() != Some(t.backing_size()) {
        fail(&format!("disk size_bytes is not {}", t.backing_size()));
    }
    let (bs, blocks) = (disk["block_size"].as_u64(), disk["blocks"].as_u64());
    if bs != Some(512) || blocks.zip(bs).map(|(n, b)| n * b) != Some(t.backing_size()) {
        fail("block_size must be 512 and blocks * block_size == size_bytes");
    }
    for k in ["vendor", "product"] {
        if disk[k].as_str().is_none_or(|s| s.trim().is_empty()) {
            fail(&format!("disk {k} is empty"));
        }
    }
    // tgt's LUN 0 is its controller (device type 0x0c): no capacity to report.
    if t.kind() == Kind::Tgtd {
        match luns.iter().find(|l| l["lun"] == 0) {
            Some(c) if c["size_bytes"].is_null() && c["device_type"] != 0 => {}
            _ => fail("tgt controller at LUN 0 missing, or reported with a size"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// discover

fn discover_plain(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let out = netboot(&["discover", "--timeout", "5", &t.portal()]);
    expect_ok(&out, &t);
    // iscsiadm style: `ADDRESS:PORT,TPGT TARGETNAME`
    let want_prefix = format!("{},", t.portal());
    let found = out.stdout.lines().any(|l| {
        l.split_once(' ').is_some_and(|(addr, name)| {
            name == t.iqn()
                && addr.starts_with(&want_prefix)
                && addr[want_prefix.len()..].parse::<u16>().is_ok()
        })
    });
    if !found {
        panic!(
            "no line `{}<tpgt> {}` in discover output\n{}",
            want_prefix,
            t.iqn(),
            context(&out, Some(&t))
        );
    }
}

fn discover_json(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let out = netboot(&["discover", "--timeout", "5", "--json", &t.portal()]);
    expect_ok(&out, &t);
    expect_discovered(&out, &t, "127.0.0.1");
}

/// `discover --json` lists the target with `address`, the target's port and a TPGT.
fn expect_discovered(out: &Output, t: &Target, address: &str) {
    let v = json(out, t);
    let ok = v.as_array().is_some_and(|targets| {
        targets.iter().any(|e| {
            e["target"] == t.iqn()
                && e["portals"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["address"] == address
                            && p["port"].as_u64() == Some(u64::from(t.port()))
                            && p["tpgt"].is_u64()
                    })
                })
        })
    });
    if !ok {
        panic!(
            "discover JSON lacks {{target: {:?}, portals: [{{address: {address}, port: {}, tpgt: N}}]}}\n{}",
            t.iqn(),
            t.port(),
            context(out, Some(t))
        );
    }
}

// Discovery on a CHAP-protected target still works without credentials: both targets guard
// only the normal session (tgt: account bound to tid 1; istgt: DiscoveryAuthMethod None).
fn discover_chap_target_open(kind: Kind) {
    let Some(t) = start(kind, Auth::chap()) else {
        return;
    };
    let out = netboot(&["discover", "--timeout", "5", "--json", &t.portal()]);
    expect_ok(&out, &t);
    if !out.stdout.contains(t.iqn()) {
        panic!("target not listed\n{}", context(&out, Some(&t)));
    }
}

// ---------------------------------------------------------------------------------------------
// probe

fn probe_noauth(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let out = netboot(&["probe", "--timeout", "5", "--json", &target_root(&t, "")]);
    expect_ok(&out, &t);
    check_probe_json(&out, &t);
}

fn probe_plain(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let out = netboot(&["probe", "--timeout", "5", &target_root(&t, "")]);
    expect_ok(&out, &t);
    if !out.stdout.contains(t.iqn()) {
        panic!(
            "plain probe output does not name the target\n{}",
            context(&out, Some(&t))
        );
    }
}

fn probe_chap(kind: Kind) {
    let Some(t) = start(kind, Auth::chap()) else {
        return;
    };
    let out = netboot(&[
        "probe",
        "--timeout",
        "5",
        "--json",
        &target_root(&t, "chapuser:chapsecret1234"),
    ]);
    expect_ok(&out, &t);
    check_probe_json(&out, &t);
}

fn probe_chap_missing_credentials(kind: Kind) {
    let Some(t) = start(kind, Auth::chap()) else {
        return;
    };
    let out = netboot(&["probe", "--timeout", "5", &target_root(&t, "")]);
    let line = expect_failure(&out, "probe", Some(&t));
    expect_contains(line, &["auth"], &out, Some(&t));
}

fn probe_chap_wrong_secret(kind: Kind) {
    let Some(t) = start(kind, Auth::chap()) else {
        return;
    };
    let out = netboot(&[
        "probe",
        "--timeout",
        "5",
        &target_root(&t, "chapuser:wrongsecret999"),
    ]);
    let line = expect_failure(&out, "probe", Some(&t));
    expect_contains(line, &["authentication failed", "chapuser"], &out, Some(&t));
}

fn probe_mutual_chap(kind: Kind) {
    let Some(t) = start(kind, Auth::mutual()) else {
        return;
    };
    let creds = "chapuser:chapsecret1234:targetuser:tgtsecret56789";
    let out = netboot(&["probe", "--timeout", "5", "--json", &target_root(&t, creds)]);
    expect_ok(&out, &t);
    check_probe_json(&out, &t);
}

fn probe_mutual_wrong_target_secret(kind: Kind) {
    let Some(t) = start(kind, Auth::mutual()) else {
        return;
    };
    // The target proves itself with tgtsecret56789; we expect wrongtarget777, so its
    // CHAP_R cannot verify and netboot must refuse the session.
    let creds = "chapuser:chapsecret1234:targetuser:wrongtarget777";
    let out = netboot(&["probe", "--timeout", "5", &target_root(&t, creds)]);
    let line = expect_failure(&out, "probe", Some(&t));
    expect_contains(line, &["mutual"], &out, Some(&t));
}

// tgt allows one session per initiator and target: a second probe only works if the first
// logged out (or at least closed) properly.
fn probe_twice(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let root = target_root(&t, "");
    for round in 1..=2 {
        let out = netboot(&["probe", "--timeout", "5", "--json", &root]);
        if out.code() != Some(0) {
            panic!("probe #{round} failed\n{}", context(&out, Some(&t)));
        }
        check_probe_json(&out, &t);
    }
}

fn probe_initiator_name(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let iqn = "iqn.2026-11.test:netboot-initiator";
    let out = netboot(&[
        "probe",
        "--timeout",
        "5",
        "--initiator",
        iqn,
        "--json",
        &target_root(&t, ""),
    ]);
    expect_ok(&out, &t);
    // Both targets log the initiator name of each login (tgtd only with -d, istgt with -t).
    if kind == Kind::Istgt && !t.log().contains(iqn) {
        panic!(
            "istgt did not see initiator {iqn}\n{}",
            context(&out, Some(&t))
        );
    }
}

fn probe_unknown_target(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let root = root_path("", "127.0.0.1", t.port(), "iqn.2026-11.test:nosuchtarget");
    let out = netboot(&["probe", "--timeout", "5", &root]);
    let line = expect_failure(&out, "probe", Some(&t));
    expect_contains(line, &["nosuchtarget"], &out, Some(&t));
}

/// The root path's LUN decides: the disk's LUN is marked in the listing, and
/// a LUN the target does not have is an error naming the LUNs it does have.
fn probe_root_lun(kind: Kind) {
    let Some(t) = start(kind, Auth::None) else {
        return;
    };
    let disk = t.disk_lun();
    let root = format!("iscsi:127.0.0.1::{}:{disk}:{}", t.port(), t.iqn());
    let out = netboot(&["probe", "--timeout", "5", &root]);
    expect_ok(&out, &t);
    let marked = out
        .stdout
        .lines()
        .any(|l| l.starts_with(&format!("* LUN {disk} ")) && l.contains(" bytes "));
    if !marked {
        panic!(
            "the root LUN {disk} is not marked with '*'\n{}",
            context(&out, Some(&t))
        );
    }
    let root = format!("iscsi:127.0.0.1::{}:42:{}", t.port(), t.iqn());
    let out = netboot(&["probe", "--timeout", "5", &root]);
    let line = expect_failure(&out, "probe", Some(&t));
    expect_contains(
        line,
        &[
            "no LUN 42",
            &format!("LUNs {}", if disk == 1 { "0, 1" } else { "0" }),
        ],
        &out,
        Some(&t),
    );
}

/// Discovery CHAP (istgt: tgt has no discovery authentication): the
/// credentials ride on the portal argument, one-way and mutual; without them
/// or with a wrong secret, one clear line and no secret printed.
#[test]
fn discover_with_chap_istgt() {
    for (auth, creds) in [
        (Auth::chap(), "chapuser:chapsecret1234"),
        (
            Auth::mutual(),
            "chapuser:chapsecret1234:targetuser:tgtsecret56789",
        ),
    ] {
        let opts = TargetOpts {
            discovery_auth: true,
            ..TargetOpts::with_auth(auth)
        };
        let Some(t) = Target::start(Kind::Istgt, &opts) else {
            return;
        };
        let out = netboot(&[
            "discover",
            "--timeout",
            "5",
            &format!("{creds}@{}", t.portal()),
        ]);
        expect_ok(&out, &t);
        if !out.stdout.contains(t.iqn()) {
            panic!(
                "discovery with CHAP does not list {}\n{}",
                t.iqn(),
                context(&out, Some(&t))
            );
        }
        let out = netboot(&["discover", "--timeout", "5", &t.portal()]);
        let line = expect_failure(&out, "discover", Some(&t));
        expect_contains(line, &["requires authentication"], &out, Some(&t));
        let out = netboot(&[
            "discover",
            "--timeout",
            "5",
            &format!("chapuser:wrongsecret999@{}", t.portal()),
        ]);
        let line = expect_failure(&out, "discover", Some(&t));
        expect_contains(line, &["authentication failed", "chapuser"], &out, Some(&t));
    }
}

/// IPv6: the target listens on [::1]; discovery lists it bracketed and the
/// probe goes through an `iscsi:[::1]::PORT::IQN` root path, with mutual CHAP.
fn ipv6_discover_and_probe(kind: Kind) {
    let opts = TargetOpts {
        ipv6: true,
        ..TargetOpts::with_auth(Auth::mutual())
    };
    let Some(t) = Target::start(kind, &opts) else {
        return;
    };
    let out = netboot(&["discover", "--timeout", "5", "--json", &t.portal()]);
    expect_ok(&out, &t);
    expect_discovered(&out, &t, "::1");
    let creds = "chapuser:chapsecret1234:targetuser:tgtsecret56789";
    let out = netboot(&["probe", "--timeout", "5", "--json", &target_root(&t, creds)]);
    expect_ok(&out, &t);
    check_probe_json(&out, &t);
}

per_target!(
    probe_root_lun,
    ipv6_discover_and_probe,
    discover_plain,
    discover_json,
    discover_chap_target_open,
    probe_noauth,
    probe_plain,
    probe_chap,
    probe_chap_missing_credentials,
    probe_chap_wrong_secret,
    probe_mutual_chap,
    probe_mutual_wrong_target_secret,
    probe_twice,
    probe_initiator_name,
    probe_unknown_target,
);

// ---------------------------------------------------------------------------------------------
// network failures (no target involved)

const IQN: &str = "iqn.2026-11.test:root";

#[test]
fn probe_nothing_listening() {
    let port = support::free_port(); // released again: connect gets RST
    let out = netboot(&[
        "probe",
        "--timeout",
        "5",
        &root_path("", "127.0.0.1", port, IQN),
    ]);
    let line = expect_failure(&out, "probe", None);
    expect_contains(line, &["connect", "refused"], &out, None);
    if out.elapsed > Duration::from_secs(5) {
        panic!(
            "refused connect took longer than the timeout\n{}",
            out.describe()
        );
    }
}

#[test]
fn discover_nothing_listening() {
    let port = support::free_port();
    let out = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{port}")]);
    let line = expect_failure(&out, "discover", None);
    expect_contains(line, &["connect", "refused"], &out, None);
}

/// `--timeout 2` must end the command within 2 s plus this much (process start, teardown).
const SLACK: Duration = Duration::from_millis(1500);

fn expect_timed_out(out: &Output, cmd: &str, extra: &str) {
    let line = expect_failure(out, cmd, None);
    if !line.to_lowercase().contains("timed out") {
        panic!(
            "error line lacks \"timed out\": {line:?}\n{}\n{extra}",
            out.describe()
        );
    }
    if out.elapsed > Duration::from_secs(2) + SLACK || out.elapsed < Duration::from_millis(1500) {
        panic!(
            "--timeout 2 but the command took {:?}\n{}\n{extra}",
            out.elapsed,
            out.describe()
        );
    }
}

#[test]
fn probe_black_hole_times_out() {
    let Some(bh) = BlackHole::new() else { return };
    let root = root_path("", BlackHole::ADDR, 3260, IQN);
    let out = run(
        bh.exec(NETBOOT, &["probe", "--timeout", "2", &root]),
        CMD_TIMEOUT,
    );
    expect_timed_out(&out, "probe", &bh.stats());
}

#[test]
fn discover_black_hole_times_out() {
    let Some(bh) = BlackHole::new() else { return };
    let out = run(
        bh.exec(NETBOOT, &["discover", "--timeout", "2", &bh.portal(3260)]),
        CMD_TIMEOUT,
    );
    expect_timed_out(&out, "discover", &bh.stats());
}

// TCP connects but the "target" never answers the Login Request: the timeout must cover the
// login exchange too, not just connect(2).
#[test]
fn probe_silent_target_times_out() {
    let s = Silent::new();
    let (host, port) = s
        .portal()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.parse().expect("port")))
        .expect("portal");
    let out = netboot(&["probe", "--timeout", "2", &root_path("", &host, port, IQN)]);
    expect_timed_out(&out, "probe", "");
}

#[test]
fn discover_silent_target_times_out() {
    let s = Silent::new();
    let out = netboot(&["discover", "--timeout", "2", &s.portal()]);
    expect_timed_out(&out, "discover", "");
}

// ---------------------------------------------------------------------------------------------
// peers: libiscsi against the same targets, to prove the rig (not netboot) is right

fn peer_url(t: &Target, creds: &str, lun: u64, query: &str) -> String {
    let at = if creds.is_empty() { "" } else { "@" };
    format!("iscsi://{creds}{at}{}/{}/{lun}{query}", t.portal(), t.iqn())
}

fn peer(tool: &str, args: &[&str]) -> Output {
    let mut c = Command::new(tool);
    c.args(args);
    run(c, Duration::from_secs(20))
}

fn start_peer(kind: Kind, auth: Auth) -> Option<Target> {
    support::require(&["iscsi-inq", "iscsi-readcapacity16", "iscsi-ls"])?;
    start(kind, auth)
}

fn peer_expect(out: &Output, t: &Target, ok: bool, needle: &str) {
    let good = (out.code() == Some(0)) == ok && !out.timed_out && out.stdout.contains(needle);
    if !good {
        panic!(
            "peer check: expected {} with {needle:?} in stdout\n{}",
            if ok { "success" } else { "failure" },
            context(out, Some(t))
        );
    }
}

fn peer_noauth(kind: Kind) {
    let Some(t) = start_peer(kind, Auth::None) else {
        return;
    };
    let url = peer_url(&t, "", t.disk_lun(), "");
    peer_expect(&peer("iscsi-inq", &[&url]), &t, true, "DIRECT_ACCESS");
    let size = format!("Total size:{}", t.backing_size());
    peer_expect(&peer("iscsi-readcapacity16", &[&url]), &t, true, &size);
}

fn peer_chap(kind: Kind) {
    let Some(t) = start_peer(kind, Auth::chap()) else {
        return;
    };
    let lun = t.disk_lun();
    let good = peer_url(&t, "chapuser%chapsecret1234", lun, "");
    peer_expect(&peer("iscsi-inq", &[&good]), &t, true, "DIRECT_ACCESS");
    // Without credentials and with a wrong secret the target must refuse.
    peer_expect(
        &peer("iscsi-inq", &[&peer_url(&t, "", lun, "")]),
        &t,
        false,
        "",
    );
    peer_expect(
        &peer(
            "iscsi-inq",
            &[&peer_url(&t, "chapuser%wrongsecret999", lun, "")],
        ),
        &t,
        false,
        "",
    );
}

fn peer_mutual_chap(kind: Kind) {
    let Some(t) = start_peer(kind, Auth::mutual()) else {
        return;
    };
    let lun = t.disk_lun();
    // libiscsi: target_user/target_password URL arguments request mutual CHAP.
    let good = peer_url(
        &t,
        "chapuser%chapsecret1234",
        lun,
        "?target_user=targetuser&target_password=tgtsecret56789",
    );
    peer_expect(&peer("iscsi-inq", &[&good]), &t, true, "DIRECT_ACCESS");
    let bad = peer_url(
        &t,
        "chapuser%chapsecret1234",
        lun,
        "?target_user=targetuser&target_password=wrongtarget777",
    );
    peer_expect(&peer("iscsi-inq", &[&bad]), &t, false, "");
}

per_target!(peer_noauth, peer_chap, peer_mutual_chap);

// iscsi-ls (libiscsi 1.19) never returns after istgt's SendTargets response (it spins after
// the Text Response, see tests/fixtures/README.md), so the discovery peer check is tgtd only.
#[test]
fn peer_discover_tgtd() {
    let Some(t) = start_peer(Kind::Tgtd, Auth::None) else {
        return;
    };
    let out = peer("iscsi-ls", &[&format!("iscsi://{}", t.portal())]);
    let want = format!("Target:{} Portal:{},1", t.iqn(), t.portal());
    peer_expect(&out, &t, true, &want);
}

// Two targets of each kind side by side: private ports, control channels, pid files.
#[test]
fn rig_parallel_targets() {
    let Some(a) = Target::tgtd(&TargetOpts::default()) else {
        return;
    };
    let Some(b) = Target::tgtd(&TargetOpts::default()) else {
        return;
    };
    let Some(c) = Target::istgt(&TargetOpts::default()) else {
        return;
    };
    let Some(d) = Target::istgt(&TargetOpts::default()) else {
        return;
    };
    let ports = [a.port(), b.port(), c.port(), d.port()];
    let mut uniq = ports.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    assert!(
        uniq.len() == 4,
        "targets share a port: {ports:?}\n{}{}{}{}",
        a.log(),
        b.log(),
        c.log(),
        d.log()
    );
    if support::which("iscsi-readcapacity16").is_some() {
        for t in [&a, &b, &c, &d] {
            let url = peer_url(t, "", t.disk_lun(), "");
            peer_expect(
                &peer("iscsi-readcapacity16", &[&url]),
                t,
                true,
                "Total size:67108864",
            );
        }
    }
}

// The black hole really swallows SYNs: a plain connect from bash neither succeeds nor fails,
// it is still waiting when we kill it, and the qdisc counted the drops.
#[test]
fn peer_black_hole_swallows_syn() {
    let Some(_) = support::require(&["bash"]) else {
        return;
    };
    let Some(bh) = BlackHole::new() else { return };
    let script = format!("exec 3<>/dev/tcp/{}/3260", BlackHole::ADDR);
    let out = run(bh.exec("bash", &["-c", &script]), Duration::from_secs(2));
    let stats = bh.stats();
    if !out.timed_out || !stats.contains("dropped") || stats.contains("dropped 0,") {
        panic!(
            "connect into the black hole did not hang\n{}\n{stats}",
            out.describe()
        );
    }
}

// The silent target really is silent: libiscsi's login hangs until we kill it.
#[test]
fn peer_silent_target_hangs() {
    let Some(_) = support::require(&["iscsi-inq"]) else {
        return;
    };
    let s = Silent::new();
    let url = format!("iscsi://{}/{IQN}/0", s.portal());
    let out = peer_timeout("iscsi-inq", &[&url], Duration::from_secs(2));
    if !out.timed_out {
        panic!(
            "iscsi-inq against a silent listener did not hang\n{}",
            out.describe()
        );
    }
}

fn peer_timeout(tool: &str, args: &[&str], limit: Duration) -> Output {
    let mut c = Command::new(tool);
    c.args(args);
    run(c, limit)
}
