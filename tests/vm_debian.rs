//! VM scenarios for life after switch_root on a real Debian 12 root (issue 14, items 2, 3, 5
//! and 6 for iscsid): systemd as init, Debian's open-iscsi, booted by netboot's initramfs.
//! iscsid adopts the root session at start-up and the resident (`@netboot-resident`) steps
//! aside; a target restart during writes is recovered by iscsid; `systemctl poweroff` and
//! `systemctl reboot` end the VM within a measured bound, with no logout of the root's session
//! and no I/O error. Same rig as tests/vm.rs (`qemu/boot.sh`), 6.1 kernel, one VM at a time.
//!
//! The root image comes from `qemu/debian-root.sh` (mmdebstrap from the host's configured
//! Debian archive, cached by content hash under `${NETBOOT_CACHE:-/var/cache/netboot}`; ~4 min
//! cold, seconds warm). Its `nbtest.service` (after multi-user.target; script
//! `qemu/debian/nbtest`) waits until the system itself has started `iscsid.service` (nothing
//! in it touches iscsid's socket before), then until iscsid's adoption is done, and prints on
//! the console (straight to /dev/console, whole lines):
//!
//! ```text
//!   NBTEST start at=T                            guest uptime
//!   ISCSID active at=T                           iscsid.service started by the system
//!   ADOPTED N at=T                               iscsid's "is operational" lines; LOGGED_IN
//!   --- session --- iscsiadm -m session, -P 3 excerpt --- end ---
//!   --- sysfs --- targetname= initiatorname= creator= state= --- end ---
//!   FAILED units: …                              systemctl --failed (empty)
//!   INITIATORNAME file: InitiatorName=…          /etc/iscsi/initiatorname.iscsi, untouched
//!   RESIDENT absent | RESIDENT present pid=P rss=R
//!   --- recovery.json --- … --- end ---   --- iscsid journal --- … --- end ---
//!   WRITER started / stall / files=N bad=M …     with nbtest.writer=S (as qemu/root-init.sh)
//!   NBTEST poweroff at=T | NBTEST reboot at=T    then `systemctl --no-block poweroff|reboot`
//! ```
//!
//! | scenario | rig | kernel command line extras | expected |
//! |----------|-----|----------------------------|----------|
//! | d1 | — | `nbtest.end=poweroff` | iscsid started by the system, adopted the session with our initiator name, resident handed over; poweroff within [`SHUTDOWN_BOUND_S`], `/` remounted ro, no logout, no I/O error |
//! | d2 | `--tgt-restart 5:5` after `WRITER started` | `nbtest.writer=30 nbtest.end=reboot` | iscsid recovers (conn error → "operational after recovery"), every file verifies; reboot within the bound ("reboot: Restarting system") |
//!
//! Measured (`MEASURE vm_debian …` lines): target back → I/O flowing (the stalled write's end,
//! as the rig saw it: boot.sh's `fault: resumed … back+S`), the shutdown time (guest uptime
//! from `NBTEST poweroff|reboot` to the kernel's `reboot:` line), boot to the test unit.
//!
//! Prerequisites as in tests/vm.rs plus mmdebstrap; without them a test prints `skipped: …`,
//! with `NETBOOT_REQUIRE_VM=1` that is a failure. Run one at a time:
//! `cargo test --test vm_debian -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
mod vm_support;

use vm_support::*;

type Run = FaultRun;

/// systemd under TCG on a loaded machine: boot ~30–60 s, writer 30 s, verification, shutdown.
const TIMEOUT_S: u32 = 420;
/// The documented bound from `systemctl poweroff|reboot` to the kernel's `reboot:` line
/// (guest uptime; measured 4–6 s under TCG).
const SHUTDOWN_BOUND_S: f64 = 30.0;
/// The writer's marker for the fault clock, and the stalled write that returned.
const MARKER: &str = "WRITER started";
const STALL: &str = "WRITER stall";
/// The initiator name netboot uses by default (iqn.2026-11.org.netboot:<MAC>).
const OUR_INAME_PREFIX: &str = "iqn.2026-11.org.netboot:";

fn measure(name: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "MEASURE vm_debian {name}: {what}");
}

/// The Debian root image (qemu/debian-root.sh caches it; DEBIAN_ROOT=path on stdout).
fn debian_image() -> PathBuf {
    artifact("debian-root.path", |out| {
        let s = script(&["qemu/debian-root.sh"])?;
        let p = s
            .lines()
            .find_map(|l| l.strip_prefix("DEBIAN_ROOT="))
            .ok_or_else(|| format!("qemu/debian-root.sh printed no DEBIAN_ROOT=: {s}"))?;
        fs::write(out, p).map_err(|e| e.to_string())?;
        Ok(s)
    });
    let f = work_dir().join("debian-root.path");
    PathBuf::from(fs::read_to_string(&f).unwrap_or_default().trim())
}

fn boot_debian(name: &str, extra: &str, rig: &[&str]) -> Run {
    let console = work_dir().join(format!("console-debian-{name}.log"));
    let _ = fs::remove_file(&console);
    let append = format!(
        "{BASE_CMDLINE} iscsi={ROOT_PATH} rw systemd.show_status=1 \
         systemd.journald.forward_to_console=1 {extra}"
    );
    let mut c = Command::new(Path::new(REPO).join("qemu/boot.sh"));
    c.current_dir(REPO)
        .args(["--kernel", "6.1", "--initrd"])
        .arg(netboot_initrd_with("6.1", "netboot-debian", &[]))
        .arg("--image")
        .arg(debian_image())
        .args(["--target", IQN, "--append", &append])
        .args(["--timeout", &TIMEOUT_S.to_string()])
        .arg("--console")
        .arg(&console)
        .args(rig);
    run_boot_sh(name, &mut c, &console)
}

// ---------------------------------------------------------------------------------------------
// readers (pure; tested in `readers` below)

/// The rest of the first line holding `marker`, from the marker on (systemd's status output
/// may be glued in front of a line on the shared console).
fn after<'c>(console: &'c str, marker: &str) -> Option<&'c str> {
    console
        .lines()
        .find_map(|l| l.find(marker).and_then(|i| l.get(i..)))
}

/// The value of `key=` in a line of space-separated `key=value` words.
fn field<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The value of a `key+value` word (boot.sh's `marker+3.1 back+2.0`).
fn plus<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn field_f64(line: &str, key: &str) -> Option<f64> {
    field(line, key)?.trim_end_matches(';').parse().ok()
}

/// The printk timestamp of the first line holding `text`: `[   48.05] text` (the first
/// bracketed number before `text`: `[  40.5] iscsid[162]: …` is 40.5, not the pid).
fn printk_time(console: &str, text: &str) -> Option<f64> {
    console.lines().find_map(|l| {
        let head = l.get(..l.find(text)?)?;
        head.match_indices('[').find_map(|(open, _)| {
            let rest = head.get(open + 1..)?;
            rest.get(..rest.find(']')?)?.trim().parse().ok()
        })
    })
}

/// The lines of `--- NAME ---` … `--- end ---` (the first such section).
fn section<'c>(console: &'c str, name: &str) -> Vec<&'c str> {
    let head = format!("--- {name} ---");
    console
        .lines()
        .skip_while(|l| !l.contains(&head))
        .skip(1)
        .take_while(|l| !l.contains("--- end ---"))
        .collect()
}

/// The lines of the last `--- NAME ---` … `--- end ---`.
fn last_section<'c>(console: &'c str, name: &str) -> Vec<&'c str> {
    let head = format!("--- {name} ---");
    let Some(i) = console.rfind(&head) else {
        return Vec::new();
    };
    section(console.get(i..).unwrap_or_default(), name)
}

/// `key=value` of the sysfs section.
fn sysfs(console: &str, key: &str) -> Option<String> {
    section(console, "sysfs")
        .iter()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
}

/// The value after `key:` in the session section (`Iface Initiatorname: …`).
fn session_value(console: &str, key: &str) -> Option<String> {
    section(console, "session")
        .iter()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Console lines that tell of a logout of an iSCSI session (iscsiadm's messages, iscsid's,
/// the kernel's session teardown).
fn logout_lines(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter(|l| {
            l.contains("Logging out of session")
                || l.contains("Logout of [sid")
                || l.contains("session1: session logout")
                || l.contains("iscsi_session_teardown")
                || l.contains("Removing iscsi session")
        })
        .collect()
}

/// Shutdown: uptime of `NBTEST <end> at=` → printk time of the kernel's `reboot:` line.
fn shutdown_time(console: &str, end: &str, kernel_line: &str) -> Option<f64> {
    let start = field_f64(after(console, &format!("NBTEST {end} at="))?, "at")?;
    Some(printk_time(console, kernel_line)? - start)
}

// ---------------------------------------------------------------------------------------------
// the checks both scenarios share

fn debian_prepare() -> Option<std::sync::MutexGuard<'static, ()>> {
    let g = prepare("6.1", false)?;
    if !on_path("mmdebstrap") {
        skip("mmdebstrap not found (apt-get install mmdebstrap): the Debian root cannot be built");
        return None;
    }
    Some(g)
}

/// iscsid started by the system, adopted the session (our initiator name, the rig's target),
/// the resident handed over and is gone, no failed unit, no I/O error, no logout.
fn assert_adopted(r: &Run) {
    let c = &r.b.console;
    let t = r.tail();
    let iscsid = after(c, "ISCSID ").unwrap_or_else(|| panic!("no ISCSID line\n{t}"));
    assert!(
        iscsid.starts_with("ISCSID active"),
        "iscsid.service was not started by the system within 60 s: {iscsid}\n{t}"
    );
    let adopted = after(c, "ADOPTED ").unwrap_or_else(|| panic!("no ADOPTED line\n{t}"));
    assert!(
        !adopted.starts_with("ADOPTED 0"),
        "iscsid never said the connection is operational: {adopted}\n{t}"
    );
    assert!(
        c.contains("tcp: [1] 198.18.0.1:3260,1 iqn.2026-11.test:root"),
        "iscsiadm -m session does not list the root session\n{t}"
    );
    let iname = session_value(c, "Iface Initiatorname")
        .unwrap_or_else(|| panic!("no Iface Initiatorname in iscsiadm -P 3\n{t}"));
    assert!(
        iname.starts_with(OUR_INAME_PREFIX),
        "iscsiadm shows initiator {iname:?}, not netboot's\n{t}"
    );
    assert_eq!(
        sysfs(c, "initiatorname").as_deref(),
        Some(iname.as_str()),
        "sysfs and iscsiadm disagree on the initiator name\n{t}"
    );
    assert_eq!(sysfs(c, "state").as_deref(), Some("LOGGED_IN"), "{t}");
    assert!(
        c.contains("iSCSI Session State: LOGGED_IN"),
        "iscsiadm -P 3: session not LOGGED_IN\n{t}"
    );
    assert!(
        c.contains("iSCSI Connection State: LOGGED IN"),
        "iscsiadm -P 3: iscsid does not know the connection as LOGGED IN (not adopted)\n{t}"
    );
    // The administrator's name file stays as the package made it.
    let file = after(c, "INITIATORNAME file: ").unwrap_or_default();
    assert!(
        file.contains("InitiatorName=iqn.1993-08.org.debian:01:"),
        "/etc/iscsi/initiatorname.iscsi changed: {file}\n{t}"
    );
    let failed = after(c, "FAILED units:").unwrap_or_else(|| panic!("no FAILED line\n{t}"));
    assert_eq!(failed.trim(), "FAILED units:", "failed units\n{t}");
    assert!(
        after(c, "RESIDENT absent").is_some(),
        "the resident still runs after iscsid started\n{t}"
    );
    let rj = section(c, "recovery.json").join("\n");
    assert!(
        rj.contains("\"handed_to_iscsid\""),
        "recovery.json does not say handed to iscsid:\n{rj}\n{t}"
    );
    assert!(
        c.contains("recovery: session 1: iscsid runs"),
        "no kmsg line of the resident stepping aside\n{t}"
    );
    assert!(!c.contains("I/O error"), "I/O error on the console\n{t}");
    let lo = logout_lines(c);
    assert!(
        lo.is_empty(),
        "the root's session was logged out: {lo:?}\n{t}"
    );
    // The resident left before iscsid's first log line (its sync_session login).
    let left = printk_time(c, "recovery: session 1: iscsid runs");
    let started = printk_time(c, "iSCSI daemon with pid=");
    measure(
        "hand-over",
        &format!("resident left at {left:?} s, iscsid daemon started at {started:?} s (journal)"),
    );
}

/// `/` remounted read-only by systemd-shutdown, then the kernel's `reboot:` line within the
/// bound.
fn assert_shutdown(r: &Run, end: &str, kernel_line: &str) {
    let c = &r.b.console;
    let t = r.tail();
    assert_eq!(r.b.code, Some(0), "QEMU did not exit by itself\n{t}");
    assert!(
        c.contains("Remounting '/' read-only"),
        "systemd-shutdown did not remount / read-only\n{t}"
    );
    assert!(
        c.contains("All filesystems unmounted"),
        "systemd-shutdown did not finish unmounting\n{t}"
    );
    let s = shutdown_time(c, end, kernel_line)
        .unwrap_or_else(|| panic!("no NBTEST {end} line or no '{kernel_line}'\n{t}"));
    measure(
        &format!("{end} time"),
        &format!(
            "{s:.2} s (systemctl {end} → '{kernel_line}', guest uptime; bound {SHUTDOWN_BOUND_S} s)"
        ),
    );
    assert!(
        s <= SHUTDOWN_BOUND_S,
        "{end} took {s:.2} s > {SHUTDOWN_BOUND_S} s\n{t}"
    );
    // The session stayed logged in until the end: sd's cache flush went to the target.
    assert!(
        !c.contains("Synchronize Cache(10) failed"),
        "the last cache flush failed\n{t}"
    );
}

// ---------------------------------------------------------------------------------------------
// scenarios

/// d1: iscsid adopts the root session at start-up; `systemctl poweroff` ends the VM.
#[test]
fn d1_iscsid_adopts_then_poweroff() {
    let Some(_g) = debian_prepare() else { return };
    let r = boot_debian("d1", "nbtest.end=poweroff", &[]);
    let c = &r.b.console;
    assert!(
        c.contains("NBTEST start"),
        "the test unit never ran\n{}",
        r.tail()
    );
    if let Some(s) = after(c, "NBTEST start at=").and_then(|l| field_f64(l, "at")) {
        measure(
            "boot",
            &format!(
                "test unit started at {s:.2} s guest uptime (wall {:?} s)",
                r.b.wall
            ),
        );
    }
    assert_adopted(&r);
    assert_shutdown(&r, "poweroff", "reboot: Power down");
}

/// d2: tgtd killed and back 5 s later while the root writes; iscsid recovers; every file
/// verifies; `systemctl reboot` ends the VM.
#[test]
fn d2_tgt_restart_recovered_by_iscsid_then_reboot() {
    let Some(_g) = debian_prepare() else { return };
    let r = boot_debian(
        "d2",
        "nbtest.writer=30 nbtest.end=reboot",
        &[
            "--tgt-restart",
            "5:5",
            "--fault-after",
            MARKER,
            "--fault-resumed",
            STALL,
        ],
    );
    let c = &r.b.console;
    let t = r.tail();
    assert_adopted(&r);
    assert!(
        r.fault.iter().any(|l| l.contains("killed")) && r.fault.iter().any(|l| l.contains("back")),
        "the rig did not restart tgtd\n{t}"
    );
    let v = after(c, "WRITER files=").unwrap_or_else(|| panic!("no WRITER verdict\n{t}"));
    let n = |k| field(v, k).and_then(|x| x.parse::<u64>().ok());
    assert!(n("files").unwrap_or(0) > 0, "no file written: {v}\n{t}");
    assert_eq!(n("bad"), Some(0), "files differ: {v}\n{t}");
    assert_eq!(n("errors"), Some(0), "writes failed: {v}\n{t}");
    assert!(
        c.contains("detected conn error"),
        "the kernel never saw the connection fail (no fault hit the session)\n{t}"
    );
    // The journal excerpt printed after the writer (the console also carries forwarded
    // journal lines: count in one place only).
    let journal = last_section(c, "iscsid journal")
        .iter()
        .filter(|l| l.contains("operational after recovery"))
        .count();
    assert!(
        journal >= 2,
        "iscsid did not report a recovery after the adoption (\"operational after recovery\" ×{journal})\n{t}"
    );
    assert!(
        !c.contains("recovery: session 1: reconnect"),
        "the resident acted after the hand-over\n{t}"
    );
    if let Some(l) = r.fault.iter().find(|l| l.starts_with("fault: resumed")) {
        measure(
            "target back → I/O flowing (iscsid)",
            &format!("{} s ({l})", plus(l, "back+").unwrap_or("?")),
        );
    } else {
        panic!("the rig saw no stalled write return after the target came back\n{t}");
    }
    // The fault's stall: the longest (TCG alone makes 1 s stalls now and then).
    if let Some(l) = c
        .lines()
        .filter_map(|l| l.find(STALL).and_then(|i| l.get(i..)))
        .max_by(|a, b| {
            let t = |l: &str| field_f64(l, "took").unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        })
    {
        measure("longest stall (guest clock)", l);
    }
    measure("writer", v);
    assert_shutdown(&r, "reboot", "reboot: Restarting system");
}

#[cfg(test)]
mod readers {
    use super::*;

    #[test]
    fn reads_the_console() {
        let c = "x\n[  1.0] foo\u{1b}[0m] Reached targetISCSID active at=12.5\n\
                 [   48.051644] reboot: Power down\n\
                 NBTEST poweroff at=43.39\n--- sysfs ---\nstate=LOGGED_IN\n--- end ---\n\
                 --- session ---\n\t\tIface Initiatorname: iqn.2026-11.org.netboot:5254\n--- end ---\n";
        assert_eq!(after(c, "ISCSID "), Some("ISCSID active at=12.5"));
        assert_eq!(printk_time(c, "reboot: Power down"), Some(48.051644));
        assert_eq!(
            printk_time(
                "[  40.5] iscsid[162]: iSCSI daemon with pid=",
                "iSCSI daemon"
            ),
            Some(40.5)
        );
        let s = shutdown_time(c, "poweroff", "reboot: Power down").unwrap_or(0.0);
        assert!((s - 4.661644).abs() < 1e-6);
        assert_eq!(sysfs(c, "state").as_deref(), Some("LOGGED_IN"));
        assert_eq!(
            session_value(c, "Iface Initiatorname").as_deref(),
            Some("iqn.2026-11.org.netboot:5254")
        );
        assert!(logout_lines(c).is_empty());
        assert_eq!(
            plus("fault: resumed 'W' t=5 marker+1 back+3.08", "back+"),
            Some("3.08")
        );
        assert!(!logout_lines("Logging out of session [sid: 1, target: t]").is_empty());
    }
}
