//! Host tests for boot events over NETLINK_CONNECTOR.
//!
//! Needs root (CAP_NET_ADMIN) in the initial network namespace, where the
//! kernel's connector socket lives (reference §1.4). Without root each test
//! prints `SKIPPED: <test>: <why>` and passes, unless NETBOOT_REQUIRE_ROOT=1
//! (then it fails). The cost of emitting is measured by `bench/emit_cost.rs`.
//!
//! Tests run in parallel: each uses its own group and idx (see `chan`), so a
//! listener only ever sees its own test's messages.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::events::listen::{Item, Listener};
use netboot::events::sock::CnSocket;
use netboot::events::{
    step, BootOutcome, BootReport, Emitter, EventRecord, EventsTarget, Facts, Recorder,
};
use netboot::klog;
use netboot::netlink::connector::{CbId, CnMsg, MAX_DATA_LEN};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netboot");

/// Root and a working connector; `false` means "skip" (`SKIPPED: …`
/// printed, or a failure under NETBOOT_REQUIRE_ROOT=1).
fn have_root() -> bool {
    if !support::root_or_skip(
        "NETBOOT_REQUIRE_ROOT",
        "joining a connector group: CAP_NET_ADMIN",
    ) {
        return false;
    }
    match CnSocket::open().and_then(|s| s.join(31)) {
        Ok(()) => true,
        Err(e) => {
            support::skip_unless_required(
                "NETBOOT_REQUIRE_ROOT",
                "the connector tests",
                &format!("connector unavailable: {e}"),
            );
            false
        }
    }
}

/// A group and `{idx, val}` of this test alone: groups 11..=32 by test
/// number, idx from our pid so two test runs at once do not mix either.
fn chan(n: u32) -> (u32, CbId) {
    let group = 11 + (n % 22);
    let idx = 0x4e42_0000 | ((std::process::id() & 0xfff) << 4) | (n & 0xf);
    (group, CbId { idx, val: n })
}

fn target(n: u32) -> Option<EventsTarget> {
    let (group, id) = chan(n);
    Some(EventsTarget {
        group,
        idx: id.idx,
        val: id.val,
    })
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netboot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// `netboot events --json --group G --id I.V --count N --timeout 5`, started
/// and subscribed (its "listening" line has been read from stderr).
struct Sub {
    child: Child,
    stderr: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

fn listen(n: u32, count: u32) -> Sub {
    let (group, id) = chan(n);
    let child = Command::new(BIN)
        .args(["events", "--json", "--group", &group.to_string()])
        .args(["--id", &format!("{:#x}.{}", id.idx, id.val)])
        .args(["--count", &count.to_string(), "--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netboot events");
    Sub::from_child(child)
}

impl Sub {
    fn from_child(mut child: Child) -> Sub {
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        assert!(
            first.contains("listening on group"),
            "listener did not start: {first:?}"
        );
        Sub {
            child,
            stderr: rx,
            reader,
        }
    }
}

impl Sub {
    /// Wait for exit; (exit code, stdout JSON lines, stderr lines).
    fn finish(mut self) -> (i32, Vec<Value>, Vec<String>) {
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let code = self.child.wait().expect("wait").code().unwrap_or(-1);
        let _ = self.reader.join(); // stderr fully read
        let err: Vec<String> = self.stderr.try_iter().collect();
        let lines = out
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}\nstderr: {err:?}"))
            })
            .collect();
        (code, lines, err)
    }
}

/// Every event kind, through the recorder; returns the report path.
fn boot_script(emitter: Emitter, dir: &std::path::Path, secret: &str) -> PathBuf {
    let mut rec = Recorder::new(
        emitter,
        serde_json::json!({"root": "iscsi:198.18.0.1::::iqn.x", "chap": "***"}),
    )
    .with_report_path(dir.join("run/netboot/boot.json"));
    let s = rec.start(step::NET_LINK, Facts::new().str("ifname", "eth0"));
    rec.finish::<str>(s, Ok(Facts::new().u64("mtu", 1500)));
    let s = rec.start(
        step::ISCSI_LOGIN,
        Facts::new()
            .str("portal", "198.18.0.1:3260")
            .str("leak", secret),
    );
    rec.finish(s, Err(&format!("CHAP rejected for secret {secret}")));
    rec.emitter()
        .log(log::Level::Warn, &format!("retrying with {secret}"));
    rec.finish_boot(BootOutcome::failed(
        step::ISCSI_LOGIN,
        &format!("auth failed ({secret})"),
    ))
    .expect("report written")
}

fn kinds(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|v| v["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn subprocess_listener_sees_every_event_type_in_order() {
    if !have_root() {
        return;
    }
    let sub = listen(1, 7);
    let dir = tmp("roundtrip");
    let report = boot_script(Emitter::new(target(1), vec![]), &dir, "x");
    let (code, lines, err) = sub.finish();
    assert_eq!(code, 0, "stderr: {err:?}");
    assert_eq!(
        kinds(&lines),
        [
            "boot_start",
            "step_start",
            "step_end",
            "step_start",
            "step_end",
            "log",
            "boot_end"
        ]
    );
    let seqs: Vec<u64> = lines
        .iter()
        .map(|v| v["seq"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(lines[2]["step"], "net.link");
    assert_eq!(lines[2]["result"], "ok");
    assert_eq!(lines[2]["facts"]["mtu"], 1500);
    assert_eq!(lines[4]["result"], "error");
    assert_eq!(lines[6]["outcome"], "failed:iscsi.login");
    let r = BootReport::read(&report).expect("report parses");
    assert_eq!(r.steps.len(), 2);
    assert_eq!(r.outcome, "failed:iscsi.login");
    assert_eq!(r.steps[0].facts["ifname"], "eth0");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn human_mode_prints_one_line_per_event() {
    if !have_root() {
        return;
    }
    let (group, id) = chan(7);
    let child = Command::new(BIN)
        .args([
            "events",
            "--group",
            &group.to_string(),
            "--id",
            &format!("{}.{}", id.idx, id.val),
        ])
        .args(["--count", "7", "--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut sub = Sub::from_child(child);
    let dir = tmp("human");
    boot_script(
        Emitter::new(target(7), vec!["hunter2hunter2".into()]),
        &dir,
        "hunter2hunter2",
    );
    let mut out = String::new();
    if let Some(mut o) = sub.child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let code = sub.child.wait().expect("wait").code();
    println!("{out}");
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[0].contains("boot             start"), "{out}");
    assert!(lines[2].contains("net.link         ok"), "{out}");
    assert!(
        lines[4].contains(r#"error="CHAP rejected for secret ***""#),
        "{out}"
    );
    assert!(!out.contains("hunter2"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Receive `n` events in-process (the same Listener the CLI uses).
fn recv_in_process(sock: &CnSocket, id: CbId, n: usize) -> (Vec<(u32, Value)>, Listener) {
    let mut l = Listener::new(id);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out with {} of {n} events: {got:?}",
            got.len()
        );
        if let Some((len, from)) = sock.recv(&mut buf, Some(left)).expect("recv") {
            for item in l.feed(&buf[..len], from) {
                if let Item::Event { seq, payload, .. } = item {
                    got.push((seq, payload));
                }
            }
        }
    }
    (got, l)
}

fn joined(n: u32) -> (CnSocket, CbId) {
    let (group, id) = chan(n);
    let s = CnSocket::open().expect("socket");
    s.join(group).expect("join");
    (s, id)
}

/// `join` binds again with an `nl_groups` mask, and a bind replaces the
/// groups bound before (af_netlink.c `netlink_bind`): a second join must
/// keep the first group.
#[test]
fn a_second_join_keeps_the_first_group() {
    if !have_root() {
        return;
    }
    let ((g1, id1), (g2, id2)) = (chan(8), chan(9));
    let rx = CnSocket::open().expect("socket");
    rx.join(g1).expect("join first");
    rx.join(g2).expect("join second");
    // The kernel does not loop a multicast back to its sender: send from
    // another socket.
    let tx = CnSocket::open().expect("socket");
    let msg = |id, seq| CnMsg {
        id,
        seq,
        ack: 0,
        flags: 0,
        data: b"{}".to_vec(),
    };
    let sent = [
        msg(id1, 1).encode_nl(tx.portid()).expect("encode"),
        msg(id2, 2).encode_nl(tx.portid()).expect("encode"),
    ];
    send_dgram(&tx, g1, &sent[0]);
    send_dgram(&tx, g2, &sent[1]);
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while got.len() < 2 {
        match rx
            .recv(&mut buf, Some(Duration::from_secs(2)))
            .expect("recv")
        {
            Some((n, _)) => got.push(buf[..n].to_vec()),
            None => panic!("timed out; got {} of 2 datagrams: {got:?}", got.len()),
        }
    }
    assert_eq!(got, sent, "one datagram per group, in order");
}

#[test]
fn in_process_listener_and_redaction_everywhere() {
    if !have_root() {
        return;
    }
    let secret = "Sup3r\"S3cret!";
    let (sock, id) = joined(2);
    let dir = tmp("redact");
    let emitter = Emitter::new(target(2), vec![secret.to_string()]);
    let report = boot_script(emitter, &dir, secret);
    let (got, l) = recv_in_process(&sock, id, 7);
    assert_eq!(l.stats.lost + l.stats.malformed, 0);
    for (_, p) in &got {
        let text = p.to_string();
        assert!(!text.contains("Sup3r"), "secret in payload {text}");
    }
    assert!(got
        .iter()
        .any(|(_, p)| p["error"] == "CHAP rejected for secret ***"));
    assert!(got.iter().any(|(_, p)| p["msg"] == "retrying with ***"));
    assert!(got.iter().any(|(_, p)| p["facts"]["leak"] == "***"));
    let text = std::fs::read_to_string(&report).expect("report");
    assert!(!text.contains("Sup3r"), "secret in report {text}");
    assert!(text.contains("auth failed (***)"));
    // Log lines, both formats.
    let r = netboot::plan::secret::Redactor::new(vec![secret.to_string()]);
    for line in klog::kmsg_records(log::Level::Error, &format!("login {secret} failed"), &r) {
        assert_eq!(line, "<3>netboot: login *** failed\n");
    }
    assert_eq!(
        klog::text_lines(log::Level::Info, secret, &r),
        "netboot: INFO: ***\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Multicast a raw datagram. In a non-initial netns the kernel's unicast
/// copy is refused after the multicast went out (reference §1.4): not an error.
fn send_dgram(s: &CnSocket, group: u32, bytes: &[u8]) {
    match s.send_group(group, bytes) {
        Ok(_) | Err(rustix::io::Errno::CONNREFUSED) => {}
        Err(e) => panic!("send to group {group}: {e}"),
    }
}

/// Send raw cn_msgs with chosen seqs, as a second agent would.
fn send_raw(n: u32, seqs: &[u32], ack: u32) {
    let (group, id) = chan(n);
    let s = CnSocket::open().expect("socket");
    for &seq in seqs {
        let data = format!(r#"{{"v":1,"event":"log","t_us":{seq},"level":"info","msg":"n{seq}"}}"#);
        let m = CnMsg {
            id,
            seq,
            ack,
            flags: 0,
            data: data.into_bytes(),
        };
        send_dgram(&s, group, &m.encode_nl(s.portid()).expect("encode"));
    }
}

#[test]
fn gaps_in_seq_are_reported_exactly() {
    if !have_root() {
        return;
    }
    let sub = listen(3, 5);
    send_raw(3, &[0, 1, 5, 6, 10], 77);
    let (code, lines, err) = sub.finish();
    assert_eq!(code, 0, "stderr: {err:?}");
    let lost: Vec<&Value> = lines.iter().filter(|v| v["event"] == "lost").collect();
    assert_eq!(lost.len(), 2, "{lines:?}");
    assert_eq!(
        (
            lost[0]["count"].as_u64(),
            lost[0]["first_seq"].as_u64(),
            lost[0]["last_seq"].as_u64()
        ),
        (Some(3), Some(2), Some(4))
    );
    assert_eq!(
        (
            lost[1]["count"].as_u64(),
            lost[1]["first_seq"].as_u64(),
            lost[1]["last_seq"].as_u64()
        ),
        (Some(3), Some(7), Some(9))
    );
    assert!(
        err.iter().any(|l| l.contains("5 events, 6 lost")),
        "{err:?}"
    );
}

#[test]
fn garbage_on_the_group_is_skipped() {
    if !have_root() {
        return;
    }
    let (group, id) = chan(4);
    let sub = listen(4, 2);
    let s = CnSocket::open().expect("socket");
    let mut random = [0u8; 64];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).expect("random");
    let mut short = CnMsg {
        id,
        seq: 0,
        ack: 0,
        flags: 0,
        data: b"{}".to_vec(),
    }
    .encode_nl(0)
    .expect("enc");
    short[0] = 20; // nlmsg_len covers the header and 4 bytes of cn_msg only
    let garbage: Vec<Vec<u8>> = vec![
        random.to_vec(),
        vec![1, 2, 3],
        short,
        CnMsg {
            id,
            seq: 0,
            ack: 0,
            flags: 0,
            data: b"not json at all".to_vec(),
        }
        .encode_nl(0)
        .expect("enc"),
        CnMsg {
            id,
            seq: 1,
            ack: 0,
            flags: 0,
            data: b"[1,2]".to_vec(),
        }
        .encode_nl(0)
        .expect("enc"),
        CnMsg {
            id: CbId {
                idx: id.idx + 1,
                val: 0,
            },
            seq: 0,
            ack: 0,
            flags: 0,
            data: b"{}".to_vec(),
        }
        .encode_nl(0)
        .expect("enc"),
    ];
    for g in &garbage {
        send_dgram(&s, group, g);
    }
    let mut e = Emitter::new(target(4), vec![]);
    e.log(log::Level::Info, "after garbage 1");
    e.log(log::Level::Info, "after garbage 2");
    let (code, lines, err) = sub.finish();
    assert_eq!(code, 0, "stderr: {err:?}");
    let msgs: Vec<&str> = lines.iter().filter_map(|v| v["msg"].as_str()).collect();
    assert_eq!(msgs, ["after garbage 1", "after garbage 2"], "{lines:?}");
    let skipped = err
        .iter()
        .filter(|l| l.contains("skipped malformed"))
        .count();
    assert!(skipped >= 4, "{err:?}");
}

#[test]
fn oversized_event_arrives_truncated_and_valid() {
    if !have_root() {
        return;
    }
    let (sock, id) = joined(5);
    let mut e = Emitter::new(target(5), vec![]);
    let mut facts = Facts::new();
    for i in 0..64 {
        facts = facts.str(&format!("k{i:02}"), "ü".repeat(2000));
    }
    e.step_end(step::DISK_WAIT, 1, Err(&"x".repeat(40_000)), &facts);
    let (got, _) = recv_in_process(&sock, id, 1);
    let p = &got[0].1;
    assert!(p.to_string().len() <= MAX_DATA_LEN);
    let r: EventRecord = serde_json::from_value(p.clone()).expect("schema");
    assert!(r.truncated);
    assert_eq!(r.step.as_deref(), Some("disk.wait"));
    assert_eq!(e.stats().truncated, 1);
}

const FIXTURE: &str = r#"{
  "v": 1,
  "plan": {"roots": ["iscsi:198.18.0.1::3260:0:iqn.2026-01.test:root"]},
  "steps": [
    {"step": "pseudofs", "start_us": 120, "duration_us": 850, "result": "ok", "facts": {}},
    {"step": "modules", "start_us": 1000, "duration_us": 1830000, "result": "ok", "facts": {"count": 7}},
    {"step": "net.link", "start_us": 1831000, "duration_us": 210000, "result": "ok", "facts": {"ifname": "eth0"}},
    {"step": "iscsi.login", "start_us": 2045000, "duration_us": 812345, "result": "error",
     "error": "CHAP rejected", "facts": {"portal": "198.18.0.1:3260"}}
  ],
  "outcome": "failed:iscsi.login",
  "error": "CHAP rejected",
  "total_us": 2860000,
  "boot_us": 3100000
}"#;

const RENDERED: &str = "\
boot failed:iscsi.login in 2.860s (4 steps, 1 not ok)
error: CHAP rejected

slowest first:
    1.830s modules
   812.3ms iscsi.login  (error)
   210.0ms net.link
     850us pseudofs

in order:
      start   duration  step             result  details
  +0.000120      850us  pseudofs         ok
  +0.001000     1.830s  modules          ok      count=7
  +1.831000    210.0ms  net.link         ok      ifname=eth0
  +2.045000    812.3ms  iscsi.login      error   portal=198.18.0.1:3260 error=\"CHAP rejected\"

timeline (ms since the agent started; one column = 57.1 ms):
step               start     end    took  0                                            2857 ms
pseudofs               0       1       1  |#                                                 |
modules                1    1831    1830  |#################################                 |
net.link            1831    2041     210  |                                ####              |
iscsi.login         2045    2857     812  |                                   xxxxxxxxxxxxxxx|
";

#[test]
fn report_renders_fixture_and_names_bad_paths() {
    let dir = tmp("report");
    let good = dir.join("boot.json");
    std::fs::write(&good, FIXTURE).expect("write fixture");
    let out = Command::new(BIN)
        .arg("report")
        .arg(&good)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), RENDERED);

    let missing = dir.join("nope.json");
    let out = Command::new(BIN)
        .arg("report")
        .arg(&missing)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"v\":1").expect("write");
    let out = Command::new(BIN)
        .arg("report")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "netboot report: {} is not a netboot boot report",
            bad.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn report_write_is_atomic_and_redacted() {
    let dir = tmp("atomic");
    let path = dir.join("sub/boot.json");
    let mut rec = Recorder::new(
        Emitter::new(None, vec!["pw123456".into()]),
        serde_json::json!({"x": "pw123456"}),
    )
    .with_report_path(&path);
    let s = rec.start(step::ROOT_MOUNT, Facts::new());
    let _unfinished = rec.start(step::SWITCH_ROOT, Facts::new());
    rec.finish::<str>(s, Ok(Facts::new().str("fstype", "ext4")));
    assert_eq!(rec.finish_boot(BootOutcome::Ok).expect("written"), path);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.contains("pw123456"));
    assert!(!dir.join("sub/boot.json.tmp").exists());
    let r = BootReport::read(&path).expect("parse");
    assert_eq!(r.steps[0].facts["fstype"], "ext4");
    assert_eq!(r.steps[1].result, "error", "open step closed as error");
    let _ = std::fs::remove_dir_all(dir);
}
