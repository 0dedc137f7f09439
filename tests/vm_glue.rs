//! VM scenarios for the boot's glue around the login (tests/vm.rs covers the login itself):
//! the login deadline with retries and failover over several root paths, the crash route of
//! PID 1 without `panic=` on the command line, and credentials that never appear on the
//! command line (a secrets file in the initramfs, DHCP option 17). Same rig as tests/vm.rs
//! (`qemu/boot.sh`, shared helpers in `tests/vm_support`), 6.1 kernel, one VM at a time.
//!
//! Network layout (one per boot, created and deleted by `qemu/rig.sh`); what a scenario adds
//! is marked with its letter:
//!
//! ```text
//!   netns nbvm-<pid>-<random>
//!   ┌─────────────────────────────────────────────────────────────────────────┐
//!   │ br0 198.18.0.1/24                                                       │
//!   │   198.18.0.1:3260  tgtd portal; o: tgtd starts 30 s after QEMU          │
//!   │                    (boot.sh --tgt-delay 30), refused (RST) until then   │
//!   │   198.18.0.1:3999  q: nothing listens: refused                          │
//!   │   198.18.0.9/32    p, q: black hole for port 3260 (boot.sh --blackhole):│
//!   │                    the rig answers ARP, but every TCP segment from      │
//!   │                    198.18.0.9:3260 is routed to `blackhole`, so a SYN   │
//!   │                    gets nothing back and the connect times out          │
//!   │   dnsmasq on br0   t: lease 198.18.0.2/24, router 198.18.0.1, option 17 │
//!   │  └─ tap0 ── QEMU virtio-net-pci ── guest eth0 198.18.0.2/24             │
//!   └─────────────────────────────────────────────────────────────────────────┘
//!   netns nbvm-<pid>-<random>-p (rig test only: rig_probe)
//!     eth0 198.18.0.3/24 ── veth ── pv0 on br0: a second client on the guest's segment
//! ```
//!
//! | scenario | root paths (`iscsi=`, failover order)  | rig                          | kernel command line extras |
//! |----------|----------------------------------------|------------------------------|----------------------------|
//! | o        | 198.18.0.1:3260                        | `--tgt-delay 30`             | `netboot.timeout=90` |
//! | p        | 198.18.0.9:3260, 198.18.0.1:3260       | `--blackhole 198.18.0.9`     | |
//! | q        | 198.18.0.1:3999, 198.18.0.9:3260       | `--blackhole 198.18.0.9`     | `netboot.timeout=20`, events on the console |
//! | r        | `chapuser:wrongsecret999@`198.18.0.1:3260 | `--chap`                  | `netboot.timeout=60` |
//! | s        | 198.18.0.1:3260                        | `--no-panic-arg`             | `netboot.on_fail=reboot netboot.reboot_delay=1` / `halt`; initramfs has /etc/netboot/test-crash |
//! | t        | none: DHCP option 17 `iscsi:chapuser:chapsecret1234@198.18.0.1::3260:1:IQN` | `--dhcp-root-path`, `--chap` | `ip=dhcp root=dhcp`, events recorded |
//! | u        | 198.18.0.1:3260                        | `--chap`                     | `netboot.secrets=/etc/netboot/secrets` (file in the initramfs) |
//! | v        | 198.18.0.1:3260                        |                              | `rd.iscsi.param=node.session.timeo.replacement_timeout=30`, `…MaxRecvDataSegmentLength=65536` |
//!
//! Disk layout: as in tests/vm.rs (tgt target `iqn.2026-11.test:root`, LUN 1 = a fresh sparse
//! copy of `plain.img`, ext4 labelled `nbroot`, whose `/sbin/init` prints `NETBOOT-ROOT-OK`,
//! mountinfo, the session's sysfs attributes, boot.json and the recorded events, then powers
//! off).
//!
//! Times: the console carries the kernel's printk timestamps (`[   12.345678] …`, seconds
//! since boot); boot.json and the connector events carry `start_us`/`t_us` (µs since the agent
//! started) and `boot_us` (CLOCK_BOOTTIME at agent start, the printk time base in a VM that
//! never suspends), so the two line up. Measurements are printed as `vm_glue: …` lines.
//!
//! `rig_blackhole_and_late_target` checks the rig itself without a VM. Prerequisites as in
//! tests/vm.rs; without them a test prints `skipped: …`, with `NETBOOT_REQUIRE_VM=1` that is a
//! failure. Run one at a time: `cargo test --test vm_glue -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
mod vm_support;

use vm_support::*;

/// The address `boot.sh --blackhole` turns into a black hole for port 3260.
const BLACKHOLE: &str = "198.18.0.9";
const BLACKHOLE_PORTAL: &str = "198.18.0.9:3260";
const LIVE_PORTAL: &str = "198.18.0.1:3260";
/// A port on the rig's address where nothing listens: every connect is refused.
const CLOSED_PORTAL: &str = "198.18.0.1:3999";
/// The guest's static address, as in [`BASE_CMDLINE`], without its policy and timeout.
const STATIC_IP: &str = "ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off";
/// The agent's one failure line (kmsg text, after the printk timestamp).
const LOGIN_FAILED: &str = "netboot: boot failed at iscsi.login:";
/// Where the secrets file and the crash marker go in the initramfs.
const SECRETS_IN_INITRD: &str = "/etc/netboot/secrets";
const CRASH_MARKER_IN_INITRD: &str = "/etc/netboot/test-crash";
/// Scenario q's `netboot.timeout=`.
const Q_TIMEOUT_S: u32 = 20;

/// A measurement for the reader, past libtest's capture (as `support::skip_unless_required`).
fn report(name: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "vm_glue: {name}: {what}");
}

// ---------------------------------------------------------------------------------------------
// the console's printk timestamps

/// `[   12.345678] text` → (12.345678, "text"); `None` for lines without a timestamp.
fn kmsg(line: &str) -> Option<(f64, &str)> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (ts, text) = rest.split_once(']')?;
    let t = ts.trim().parse().ok()?;
    Some((t, text.strip_prefix(' ').unwrap_or(text)))
}

/// printk time of the first console line whose text contains `needle`.
fn kmsg_time_of(b: &Booted, needle: &str) -> Option<f64> {
    b.agent_lines()
        .filter_map(kmsg)
        .find(|(_, text)| text.contains(needle))
        .map(|(t, _)| t)
}

/// printk time at which the agent started: its first line ("… starting as PID 1"), or the
/// kernel's "Run /init as init process" (init/main.c) if the agent's line is missing.
fn agent_start(b: &Booted) -> (f64, &'static str) {
    if let Some(t) = kmsg_time_of(b, "starting as PID 1") {
        return (t, "the agent's \"starting as PID 1\" line");
    }
    if let Some(t) = kmsg_time_of(b, "as init process") {
        return (t, "the kernel's \"Run /init as init process\" line");
    }
    panic!("no agent start on the console\n{}", b.tail());
}

/// The agent's failure lines for the login (kmsg text starting with [`LOGIN_FAILED`]), with
/// their printk times.
fn login_failures(b: &Booted) -> Vec<(f64, &str)> {
    b.agent_lines()
        .filter_map(kmsg)
        .filter(|(_, text)| text.starts_with(LOGIN_FAILED))
        .collect()
}

/// Exactly one login failure line, naming every portal and the policy; returns it.
fn the_login_failure<'b>(b: &'b Booted, portals: &[&str], policy: &str) -> (f64, &'b str) {
    let lines = login_failures(b);
    assert_eq!(
        lines.len(),
        1,
        "want exactly one line starting {LOGIN_FAILED:?}, got {lines:#?}\n{}",
        b.tail()
    );
    let (t, line) = lines[0];
    for p in portals {
        assert!(
            line.contains(p),
            "the failure line does not name portal {p}: {line}\n{}",
            b.tail()
        );
    }
    let policy = format!("; netboot.on_fail={policy}");
    assert!(
        line.contains(&policy),
        "the failure line does not end with {policy:?}: {line}\n{}",
        b.tail()
    );
    (t, line)
}

/// QEMU ended by itself (power-off or reboot), the root never ran, and the kernel said how.
fn assert_ended_without_root(b: &Booted, kernel_says: &str) {
    assert_ne!(b.code, Some(2), "QEMU did not exit by itself\n{}", b.tail());
    assert_eq!(b.code, Some(0), "boot.sh failed\n{}", b.tail());
    assert!(
        !b.console.contains("NETBOOT-ROOT-OK"),
        "the root's init ran: the boot should have failed\n{}",
        b.tail()
    );
    assert!(
        b.console.contains(kernel_says),
        "no {kernel_says:?} on the console\n{}",
        b.tail()
    );
}

// ---------------------------------------------------------------------------------------------
// boot.json and the connector events

/// The `iscsi.login` steps of boot.json, in order: one per attempt.
fn login_steps(report: &serde_json::Value) -> Vec<&serde_json::Value> {
    report["steps"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["step"] == "iscsi.login").collect())
        .unwrap_or_default()
}

/// Every attempt carries the contract's facts: `path` (index), `attempt`, `portal`.
fn assert_attempt_facts(b: &Booted, attempts: &[&serde_json::Value]) {
    for a in attempts {
        let f = &a["facts"];
        assert!(
            f["path"].is_u64() && f["attempt"].is_u64() && f["portal"].is_string(),
            "an iscsi.login step without the facts path, attempt and portal: {a}\n{}",
            b.tail()
        );
    }
}

/// `path=P attempt=A portal=X result (error)` per attempt, for the report.
fn attempt_summary(attempts: &[&serde_json::Value]) -> String {
    attempts
        .iter()
        .map(|a| {
            let f = &a["facts"];
            format!(
                "  path={} attempt={} portal={} start={:.3}s took={:.3}s {} {}",
                f["path"],
                f["attempt"],
                f["portal"].as_str().unwrap_or("?"),
                a["start_us"].as_f64().unwrap_or(f64::NAN) / 1e6,
                a["duration_us"].as_f64().unwrap_or(f64::NAN) / 1e6,
                a["result"].as_str().unwrap_or("?"),
                a["error"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The connector events a listener printed straight on the console (see
/// [`console_events_initrd`]): every line that parses as a JSON object. Kernel messages
/// may break a line on the serial console; such a line is skipped.
fn console_events(b: &Booted) -> Vec<serde_json::Value> {
    b.console
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"].is_string())
        .collect()
}

/// `secret` nowhere on the console (the kernel's echo of its command line included: these
/// command lines carry none) and nowhere in boot.json or the recorded events.
fn assert_secret_nowhere(b: &Booted, secret: &str) {
    for l in b.console.lines() {
        assert!(
            !l.contains(secret),
            "secret {secret:?} on the console: {l}\n{}",
            b.tail()
        );
    }
    let report = boot_json(b).to_string();
    assert!(
        !report.contains(secret),
        "secret {secret:?} in boot.json: {report}\n{}",
        b.tail()
    );
    for e in b.section("events") {
        assert!(
            !e.contains(secret),
            "secret {secret:?} in a recorded event: {e}\n{}",
            b.tail()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// artifacts

/// A file for the initramfs, written into the test work dir.
fn work_file(name: &str, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = work_dir().join(name);
    fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", p.display()));
    p
}

fn add_arg(src: &Path, dest: &str) -> String {
    format!("{}:{dest}", src.display())
}

/// The agent's initramfs with `netboot events --json` printing on the console (the
/// listener inherits /init's stdout, /dev/console): the events of a boot that fails are
/// visible too, where events-wrapper.sh's file would be lost with the initramfs. Made from
/// initramfs/events-wrapper.sh by dropping its redirection to /run/netboot/events.jsonl.
fn console_events_initrd(kernel: &str) -> PathBuf {
    let wrapper = Path::new(REPO).join("initramfs/events-wrapper.sh");
    let text = fs::read_to_string(&wrapper)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", wrapper.display()));
    let to_file = ">/run/netboot/events.jsonl ";
    assert!(
        text.contains(to_file),
        "{} no longer redirects the listener with {to_file:?}; update console_events_initrd",
        wrapper.display()
    );
    let script = work_file(
        "events-console-wrapper.sh",
        &text.replace(to_file, ""),
        0o755,
    );
    let script = script.to_string_lossy().into_owned();
    netboot_initrd_with(
        kernel,
        "netboot-events-console",
        &["--busybox", "--extra-init", &script],
    )
}

/// The agent's initramfs with /etc/netboot/test-crash: the agent panics on purpose right
/// after reading its command line.
fn crash_initrd(kernel: &str) -> PathBuf {
    let marker = work_file(
        "test-crash",
        "tests/vm_glue.rs: panic right after reading the command line\n",
        0o644,
    );
    netboot_initrd_with(
        kernel,
        "netboot-test-crash",
        &["--add", &add_arg(&marker, CRASH_MARKER_IN_INITRD)],
    )
}

/// The agent's initramfs with a secrets file holding this rig's CHAP credentials.
fn secrets_initrd(kernel: &str) -> PathBuf {
    let text = format!(
        "# CHAP for the rig's target (tests/vm_glue.rs); the command line names only this file\n\
         rd.iscsi.username={CHAP_USER}\n\
         rd.iscsi.password={CHAP_SECRET}\n"
    );
    let file = work_file("secrets", &text, 0o600);
    netboot_initrd_with(
        kernel,
        "netboot-secrets",
        &["--add", &add_arg(&file, SECRETS_IN_INITRD)],
    )
}

fn vm<'a>(name: &'a str, initrd: PathBuf, append: String) -> Vm<'a> {
    Vm {
        name,
        kernel: "6.1",
        initrd,
        image: plain_image(),
        chap: None,
        mutual: None,
        append,
        configd: None,
    }
}

// ---------------------------------------------------------------------------------------------
// the rig itself (no VM): black hole, closed port, late target, cleanup

/// What the rig test needs: root and the tools rig.sh runs.
fn rig_prerequisite() -> Option<String> {
    if !support::is_root() {
        return Some("the rig needs root (network namespaces, tgtd)".into());
    }
    ["ip", "tgtd", "tgtadm", "timeout", "truncate", "bash"]
        .iter()
        .find(|t| support::which(t).is_none())
        .map(|t| format!("{t} not found (run scripts/setup.sh)"))
}

/// Run a bash script that sources qemu/rig.sh (its work dir and cleanup set up); its
/// `key=value` lines.
fn rig_script(body: &str) -> (Vec<(String, String)>, String) {
    let script = format!(
        "set -euo pipefail\n. qemu/rig.sh\nrig_workdir=$(mktemp -d /tmp/nbrig.XXXXXX)\n\
         trap 'rig_cleanup; rm -rf \"$rig_workdir\"' EXIT\n\
         truncate -s 4M \"$rig_workdir/disk.img\"\n{body}"
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(REPO)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!(
        "script:\n{script}\nexit: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the rig script failed\n{all}");
    let kv = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (kv, all)
}

fn get<'a>(kv: &'a [(String, String)], key: &str, all: &str) -> &'a str {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the rig script printed no {key}=\n{all}"))
}

/// Nothing the script started is left: the process is gone (or its PID is another
/// program's now), the namespaces and tgtd's control socket are deleted.
fn assert_rig_gone(pid: &str, netns: &str, ctl: Option<&str>, all: &str) {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        comm.trim() != "tgtd" && comm.trim() != "bash",
        "process {pid} ({}) outlived the rig\n{all}",
        comm.trim()
    );
    for ns in [netns.to_string(), format!("{netns}-p")] {
        assert!(
            !Path::new("/run/netns").join(&ns).exists(),
            "netns {ns} outlived the rig\n{all}"
        );
    }
    if let Some(ctl) = ctl {
        let sock = format!("/var/run/tgtd/socket.{ctl}");
        assert!(!Path::new(&sock).exists(), "{sock} left behind\n{all}");
    }
}

/// The rig options the scenarios rely on, probed from a second client on br0 (rig_probe):
/// the black hole swallows SYNs to port 3260 (other ports of that address refuse), a closed
/// port refuses, a delayed tgtd refuses until its time and then accepts, and rig_cleanup
/// leaves no process, namespace or socket behind — also when the delay has not run out.
#[test]
fn rig_blackhole_and_late_target() {
    let _guard = VM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = rig_prerequisite() {
        skip(&r);
        return;
    }
    let (kv, all) = rig_script(&format!(
        "rig_netns_up\n\
         echo \"netns=$rig_ns\"\n\
         rig_blackhole_add {BLACKHOLE}\n\
         t0=$EPOCHREALTIME\n\
         echo \"blackhole=$(rig_probe {BLACKHOLE} 3260 3)\"\n\
         echo \"blackhole_s=$(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN {{ print b - a }}')\"\n\
         echo \"blackhole_other_port=$(rig_probe {BLACKHOLE} 3261 3)\"\n\
         echo \"closed=$(rig_probe 198.18.0.1 3999 3)\"\n\
         t0=$EPOCHREALTIME\n\
         rig_tgt_start_later 3 \"$rig_workdir/disk.img\" 1 {IQN}\n\
         echo \"before=$(rig_probe 198.18.0.1 3260 2)\"\n\
         r=none\n\
         for _ in $(seq 50); do r=$(rig_probe 198.18.0.1 3260 2); [ \"$r\" = open ] && break; sleep 0.2; done\n\
         echo \"after=$r\"\n\
         echo \"opened_s=$(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN {{ print b - a }}')\"\n\
         read -r pid ctl <\"$rig_tgt_pidfile\"\n\
         echo \"tgtd=$pid\"\n\
         echo \"ctl=$ctl\"\n\
         echo \"tgtd_comm=$(cat /proc/$pid/comm)\"\n"
    ));
    let secs = |k: &str| -> f64 {
        get(&kv, k, &all)
            .parse()
            .unwrap_or_else(|_| panic!("{k} is not a number\n{all}"))
    };
    assert_eq!(get(&kv, "blackhole", &all), "timeout", "{all}");
    assert!(secs("blackhole_s") >= 2.9, "{all}");
    assert_eq!(get(&kv, "blackhole_other_port", &all), "refused", "{all}");
    assert_eq!(get(&kv, "closed", &all), "refused", "{all}");
    assert_eq!(get(&kv, "before", &all), "refused", "{all}");
    assert_eq!(get(&kv, "after", &all), "open", "{all}");
    let opened = secs("opened_s");
    assert!(
        (3.0..6.0).contains(&opened),
        "the delayed tgtd accepted {opened} s after rig_tgt_start_later 3\n{all}"
    );
    assert_eq!(get(&kv, "tgtd_comm", &all), "tgtd", "{all}");
    report(
        "rig",
        &format!("black hole held a connect for 3 s; delayed tgtd accepting after {opened:.2} s"),
    );
    assert_rig_gone(
        get(&kv, "tgtd", &all),
        get(&kv, "netns", &all),
        Some(get(&kv, "ctl", &all)),
        &all,
    );

    // Cleanup before the delay ran out: the job goes, no tgtd is ever started.
    let (kv, all) = rig_script(
        "rig_netns_up\n\
         echo \"netns=$rig_ns\"\n\
         rig_tgt_start_later 30 \"$rig_workdir/disk.img\" 1 iqn.2026-11.test:root\n\
         echo \"job=$rig_tgt_later_pid\"\n\
         pidfile=$rig_tgt_pidfile\n\
         sleep 0.5\n\
         rig_cleanup\n\
         echo \"pidfile_left=$([ -e \"$pidfile\" ] && echo yes || echo no)\"\n",
    );
    assert_eq!(get(&kv, "pidfile_left", &all), "no", "{all}");
    assert_rig_gone(get(&kv, "job", &all), get(&kv, "netns", &all), None, &all);
}

// ---------------------------------------------------------------------------------------------
// o–r: the login deadline, retries and failover

/// o. The target comes up 30 s after QEMU starts (`--tgt-delay 30`); until then every
/// connect is refused. With `netboot.timeout=90` the agent keeps retrying (backoff capped at
/// 4 s) and boots; boot.json lists every attempt, the failed ones with their error.
#[test]
fn o_target_up_late_login_retries_until_it_answers() {
    let name = "o-target-late";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm(
            name,
            netboot_initrd("6.1"),
            format!("{STATIC_IP} netboot.on_fail=halt netboot.timeout=90 iscsi={ROOT_PATH}"),
        ),
        &["--tgt-delay", "30"],
    );
    b.assert_root_ok();
    let report_json = boot_json(&b);
    let attempts = login_steps(&report_json);
    report(name, &format!("attempts:\n{}", attempt_summary(&attempts)));
    assert!(
        attempts.len() >= 2,
        "want at least 2 iscsi.login attempts (refused, then ok), got {}\n{}",
        attempts.len(),
        b.tail()
    );
    assert_attempt_facts(&b, &attempts);
    let (last, failed) = attempts.split_last().expect("attempts");
    assert_eq!(
        last["result"],
        "ok",
        "the last attempt: {last}\n{}",
        b.tail()
    );
    for a in failed {
        assert_eq!(a["result"], "error", "an attempt before the last: {a}");
        assert!(
            a["error"].as_str().is_some_and(|e| !e.is_empty()),
            "a failed attempt without its error: {a}\n{}",
            b.tail()
        );
        assert_eq!(a["facts"]["portal"], LIVE_PORTAL, "{a}");
    }
    let bench = b
        .console
        .lines()
        .find_map(|l| l.split_once("BENCH init=").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no BENCH line\n{}", b.tail()));
    let mut it = bench.split_whitespace();
    let init: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let mounted: f64 = it
        .next()
        .and_then(|v| v.strip_prefix("mounted="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    report(
        name,
        &format!(
            "agent start → root mounted {:.2} s in the guest (BENCH init={init:.3} \
             mounted={mounted:.3}); {} attempts; QEMU wall {:?} s",
            mounted - init,
            attempts.len(),
            b.wall
        ),
    );
    assert!(mounted > init, "BENCH init={init} mounted={mounted}");
}

/// p. The first root path is black-holed (its connects time out), the second is live: the
/// agent gives up on the first within its 5 s connect bound and is logged in through the
/// second within 8 s of starting the login.
#[test]
fn p_blackholed_first_path_fails_over_to_the_second() {
    let name = "p-blackhole-failover";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm(
            name,
            netboot_initrd("6.1"),
            format!("{BASE_CMDLINE} iscsi={BLACKHOLE}::3260:1:{IQN} iscsi={ROOT_PATH}"),
        ),
        &["--blackhole", BLACKHOLE],
    );
    b.assert_root_ok();
    let report_json = boot_json(&b);
    let attempts = login_steps(&report_json);
    report(name, &format!("attempts:\n{}", attempt_summary(&attempts)));
    assert_attempt_facts(&b, &attempts);
    let ok = attempts
        .iter()
        .find(|a| a["result"] == "ok")
        .unwrap_or_else(|| panic!("no successful iscsi.login step\n{}", b.tail()));
    assert_eq!(
        ok["facts"]["path"],
        1,
        "logged in through {ok}\n{}",
        b.tail()
    );
    assert_eq!(ok["facts"]["portal"], LIVE_PORTAL, "{ok}");
    let first = attempts.first().expect("attempts");
    assert_eq!(first["facts"]["path"], 0, "the first attempt: {first}");
    assert_eq!(first["facts"]["portal"], BLACKHOLE_PORTAL, "{first}");
    assert_eq!(first["result"], "error", "{first}");
    let us = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let login_start = us(first, "start_us");
    let logged_in = us(ok, "start_us").saturating_add(us(ok, "duration_us"));
    let took = logged_in.saturating_sub(login_start) as f64 / 1e6;
    report(
        name,
        &format!("first login attempt → logged in through path 1: {took:.2} s (boot.json)"),
    );
    assert!(
        took <= 8.0,
        "logged in through the second path {took:.2} s after the login began, want ≤ 8 s\n{}",
        b.tail()
    );
}

/// q. Every path is dead — a closed port (refused, retried) and the black hole (timeouts) —
/// with `netboot.timeout=20`: one failure line naming both portals with their last errors
/// and the policy, when the deadline passes (20 ± 2 s after the agent's start), then
/// `halt` powers off. The events go straight to the console (the initramfs is lost on a
/// failed boot), which gives the module step's end and every attempt.
#[test]
fn q_all_paths_dead_fail_once_at_the_deadline() {
    let name = "q-all-dead-deadline";
    let timeout_s = f64::from(Q_TIMEOUT_S);
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm(
            name,
            console_events_initrd("6.1"),
            format!(
                "{STATIC_IP} netboot.on_fail=halt netboot.timeout={Q_TIMEOUT_S} \
                 iscsi=198.18.0.1::3999:1:{IQN} iscsi={BLACKHOLE}::3260:1:{IQN}"
            ),
        ),
        &["--blackhole", BLACKHOLE],
    );
    assert_ended_without_root(&b, "reboot: Power down");
    let (failed_at, line) = the_login_failure(&b, &[CLOSED_PORTAL, BLACKHOLE_PORTAL], "halt");
    report(name, &format!("failure line: {line}"));
    let (started, mark) = agent_start(&b);
    let events = console_events(&b);
    let boot_us = events
        .iter()
        .find(|e| e["event"] == "boot_start")
        .and_then(|e| e["boot_us"].as_u64());
    let modules_end = events
        .iter()
        .find(|e| e["event"] == "step_end" && e["step"] == "modules")
        .and_then(|e| e["t_us"].as_u64());
    let attempts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "step_end" && e["step"] == "iscsi.login")
        .collect();
    report(
        name,
        &format!(
            "{} login attempts on the console:\n{}",
            attempts.len(),
            attempts
                .iter()
                .map(|e| format!(
                    "  t={:.3}s {} {}",
                    e["t_us"].as_f64().unwrap_or(f64::NAN) / 1e6,
                    e["facts"],
                    e["error"].as_str().unwrap_or("")
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    let (Some(boot_us), Some(modules_end)) = (boot_us, modules_end) else {
        panic!(
            "the console has no boot_start / modules step_end event (listener not \
             running?); agent start → failure line {:.2} s by {mark}\n{}",
            failed_at - started,
            b.tail()
        );
    };
    let modules_done = (boot_us + modules_end) as f64 / 1e6;
    // netboot.timeout counts from the agent's start (README "Retries,
    // failover and the deadline"); the module figure is reported only.
    let deadline = failed_at - started;
    report(
        name,
        &format!(
            "printk times: agent start {started:.3} ({mark}), modules done {modules_done:.3} \
             (boot_us + t_us of the modules step_end event), failure line {failed_at:.3}: \
             modules done → failure {deadline:.2} s, agent start → failure {:.2} s \
             (netboot.timeout={timeout_s})",
            failed_at - started
        ),
    );
    assert!(
        (deadline - timeout_s).abs() <= 2.0,
        "failure {deadline:.2} s after the agent started, want {timeout_s} ± 2 s\n{}",
        b.tail()
    );
    let power_down = kmsg_time_of(&b, "reboot: Power down").unwrap_or(f64::NAN);
    assert!(
        power_down >= failed_at,
        "power-off at {power_down} before the failure line at {failed_at}\n{}",
        b.tail()
    );
}

/// r. A wrong CHAP secret is fatal for its path (0x0201): with the only path out, the boot
/// fails at once, long before `netboot.timeout=60`, within 10 s of the agent's start.
#[test]
fn r_wrong_chap_fails_long_before_the_deadline() {
    let name = "r-wrong-chap-fast";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut v = vm(
        name,
        netboot_initrd("6.1"),
        format!(
            "{STATIC_IP} netboot.on_fail=halt netboot.timeout=60 \
             iscsi={CHAP_USER}:{WRONG_SECRET}@{ROOT_PATH}"
        ),
    );
    v.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    let b = boot_with(v, &[]);
    assert_ended_without_root(&b, "reboot: Power down");
    let (failed_at, line) = the_login_failure(&b, &[LIVE_PORTAL], "halt");
    let (started, mark) = agent_start(&b);
    let took = failed_at - started;
    report(
        name,
        &format!("agent start ({mark}) → failure line {took:.2} s: {line}"),
    );
    assert!(
        took <= 10.0,
        "the failure line came {took:.2} s after the agent started, want ≤ 10 s\n{}",
        b.tail()
    );
    b.assert_no_secret(&[WRONG_SECRET, CHAP_SECRET]);
}

// ---------------------------------------------------------------------------------------------
// s: PID 1 crashes without `panic=` on the command line

/// Boot the crash initramfs without `panic=-1`; the crash line comes first, then the policy.
fn crash_boot(name: &str, policy: &str) -> Booted {
    let b = boot_with(
        vm(
            name,
            crash_initrd("6.1"),
            format!("{STATIC_IP} netboot.timeout=60 {policy} iscsi={ROOT_PATH}"),
        ),
        &["--no-panic-arg", "--timeout", "60"],
    );
    let cmdline = b
        .console
        .lines()
        .find(|l| l.contains("Kernel command line:"))
        .unwrap_or_default();
    assert!(
        !cmdline.contains("panic="),
        "panic= on the command line despite --no-panic-arg: {cmdline}\n{}",
        b.tail()
    );
    assert!(
        b.agent_lines().any(|l| l.contains("test-crash")),
        "no agent line naming test-crash (the crash route did not run)\n{}",
        b.tail()
    );
    b
}

/// s. `netboot.on_fail=reboot netboot.reboot_delay=1`: the deliberate panic ends in the
/// agent's fatal-signal handler, which reboots (QEMU's -no-reboot then exits).
#[test]
fn s_crash_without_panic_arg_reboots() {
    let name = "s-crash-reboot";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = crash_boot(name, "netboot.on_fail=reboot netboot.reboot_delay=1");
    assert_ended_without_root(&b, "reboot: Restarting system");
    report(name, &format!("QEMU exited after {:?} s", b.wall));
}

/// s. The same with `netboot.on_fail=halt`: the handler powers off.
#[test]
fn s_crash_without_panic_arg_powers_off() {
    let name = "s-crash-halt";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = crash_boot(name, "netboot.on_fail=halt");
    assert_ended_without_root(&b, "reboot: Power down");
    report(name, &format!("QEMU exited after {:?} s", b.wall));
}

// ---------------------------------------------------------------------------------------------
// t–u: credentials that never appear on the command line

/// t. The root path with its CHAP credentials comes from DHCP option 17; the command line
/// names no target. The boot logs in with them, and the secret is nowhere: not on the
/// console, not in boot.json, not in the connector events recorded in the guest.
#[test]
fn t_dhcp_root_path_with_credentials_keeps_the_secret() {
    let name = "t-dhcp-root-path-chap";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let served = format!("iscsi:{CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH}");
    let mut v = vm(
        name,
        events_initrd("6.1"),
        "ip=dhcp root=dhcp netboot.on_fail=halt netboot.timeout=60".into(),
    );
    v.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    let b = boot_with(v, &["--dhcp-root-path", &served]);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    assert!(
        b.section("events").iter().any(|l| l.contains("boot_end")),
        "no events recorded in the guest\n{}",
        b.tail()
    );
    assert_secret_nowhere(&b, CHAP_SECRET);
}

/// u. `netboot.secrets=/etc/netboot/secrets` names a file in the initramfs with the CHAP
/// keys; the command line carries none. The boot logs in with CHAP and the secret is
/// nowhere on the console nor in boot.json.
#[test]
fn u_secrets_file_supplies_chap() {
    let name = "u-secrets-file";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut v = vm(
        name,
        secrets_initrd("6.1"),
        format!("{BASE_CMDLINE} iscsi={ROOT_PATH} netboot.secrets={SECRETS_IN_INITRD}"),
    );
    v.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    let b = boot_with(v, &[]);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    assert_secret_nowhere(&b, CHAP_SECRET);
}

/// v. `rd.iscsi.param=` reaches the kernel (it was parsed and then ignored before): the
/// session's replacement timeout and our declared MaxRecvDataSegmentLength come from the
/// node keys, as the session's sysfs attributes show (default runs show 120 and 262144).
#[test]
fn v_node_params_reach_the_kernel() {
    let name = "v-node-params";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm(
            name,
            netboot_initrd("6.1"),
            format!(
                "{BASE_CMDLINE} iscsi={ROOT_PATH} \
                 rd.iscsi.param=node.session.timeo.replacement_timeout=30 \
                 rd.iscsi.param=node.conn[0].iscsi.MaxRecvDataSegmentLength=65536"
            ),
        ),
        &[],
    );
    b.assert_root_ok();
    assert_iscsi_report(&b, None);
    let kv = b.iscsi();
    let get = |k: &str| kv.get(k).map(String::as_str).unwrap_or("<missing>");
    report(
        name,
        &format!(
            "recovery_tmo={} max_recv_dlength={}",
            get("recovery_tmo"),
            get("max_recv_dlength")
        ),
    );
    assert_eq!(
        get("recovery_tmo"),
        "30",
        "session recovery_tmo\n{}",
        b.tail()
    );
    assert_eq!(
        get("max_recv_dlength"),
        "65536",
        "connection max_recv_dlength\n{}",
        b.tail()
    );
}

// ---------------------------------------------------------------------------------------------
// pure helpers

#[test]
fn kmsg_timestamps_and_failure_lines() {
    assert_eq!(
        kmsg("[   12.345678] netboot: hi"),
        Some((12.345678, "netboot: hi"))
    );
    assert_eq!(kmsg("  [0.5]x"), Some((0.5, "x")));
    assert_eq!(kmsg("NETBOOT-ROOT-OK"), None);
    assert_eq!(kmsg("[abc] x"), None);
    let b = Booted {
        name: "parse".into(),
        code: Some(0),
        wall: Some(1.0),
        console: "[    0.000000] Kernel command line: console=ttyS0 iscsi=a:b@c\n\
                  [    1.500000] Run /init as init process\n\
                  [    1.600000] netboot: netboot 0.1.0 starting as PID 1\n\
                  {\"seq\":0,\"v\":1,\"event\":\"boot_start\",\"t_us\":0,\"boot_us\":1600000}\n\
                  {\"seq\":1,\"v\":1,\"event\":\"step_e[    2.0] broken\n\
                  [   21.700000] netboot: boot failed at iscsi.login: path 0 198.18.0.1:3999: \
                  refused; path 1 198.18.0.9:3260: timed out; netboot.on_fail=halt\n\
                  [   21.900000] reboot: Power down\n"
            .into(),
        stderr: String::new(),
    };
    assert_eq!(agent_start(&b).0, 1.6);
    let (t, line) = the_login_failure(&b, &[CLOSED_PORTAL, BLACKHOLE_PORTAL], "halt");
    assert_eq!(t, 21.7);
    assert!(line.starts_with(LOGIN_FAILED));
    let ev = console_events(&b);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["boot_us"], 1_600_000);
    assert_eq!(kmsg_time_of(&b, "reboot: Power down"), Some(21.9));
}
