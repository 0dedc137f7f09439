//! VM scenarios for life after switch_root on the busybox root (issue 14, items 5 and 6):
//! the resident recovery process (`@netboot-resident`) reconnects the root session when the
//! target is killed and restarted or the guest's link drops, the documented outcome when the
//! target stays away longer than the replacement timeout, and `netboot.recovery=off` leaving
//! no resident. Same rig as tests/vm.rs (`qemu/boot.sh`, shared helpers in
//! `tests/vm_support`), 6.1 kernel, one VM at a time.
//!
//! The root (`recovery.img`, built by `qemu/mkroot.sh`; its `/sbin/init` is
//! `qemu/root-init.sh`) is mounted read-write (`rw`) and runs the writer
//! (`nbtest.writer=SECONDS`): for that long it writes 16 KiB of random data per file with
//! `dd conv=fsync` (files `/nbtest/f0..f499`, reused in turn; their sha256 kept in the tmpfs
//! /run), then `sync`, `drop_caches` and re-reads every file. It prints
//!
//! ```text
//!   WRITER started at=T seconds=S                         guest uptime
//!   WRITER stall file=N from=T0 to=T1 took=D result=ok|error   a write that took ≥ 1 s
//!   WRITER write-error file=N at=T: …                     a write that failed
//!   WRITER files=N bad=M errors=E writes=W stalls=K at=T  the verification
//!   RESIDENT present pid=P rss=R kB | RESIDENT absent     argv[0] @netboot-resident
//!   --- recovery.json --- … --- end ---   --- status --- … --- end ---
//! ```
//!
//! The fault (boot.sh `--tgt-restart AT:DOWN` / `--link-down AT:DUR`) starts AT seconds
//! after the console shows `WRITER started` (`--fault-after`), so TCG's speed does not
//! matter; boot.sh prints the rig's `fault:` steps with their times, which put "target
//! back" on the guest's clock: `WRITER started at=` + the fault's `marker+` (the guest's
//! clock follows the host's under TCG; the marker is seen within 0.1 s).
//!
//! ```text
//!   netns nbvm-<pid>-<random>
//!   ┌─────────────────────────────────────────────────────────────────────────┐
//!   │ br0 198.18.0.1/24                                                       │
//!   │   198.18.0.1:3260  tgtd portal; a, c, e: SIGKILLed AT s after WRITER    │
//!   │                    started, nothing listens for DOWN s, then a new tgtd │
//!   │                    with the same target, LUN and backing file           │
//!   │   127.0.0.1:7100   (netns loopback) b: QEMU's monitor, `set_link n0`    │
//!   │  └─ tap0 ── QEMU virtio-net-pci ── guest eth0 198.18.0.2/24             │
//!   │             b: link off for DUR s (guest sees carrier loss)             │
//!   └─────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! | scenario | fault                          | kernel command line extras | expected |
//! |----------|--------------------------------|----------------------------|----------|
//! | a        | `--tgt-restart 5:5`            | `nbtest.writer=40` | one recovery, every file verifies, no I/O error |
//! | b        | `--link-down 5:10`             | `nbtest.writer=40`, noop_out 2 s + 2 s | the same |
//! | c        | `--tgt-restart 5:20`           | `nbtest.writer=45`, replacement_timeout=5 | I/O errors after 5 s (expected), bounded retries, one recovery, no hang |
//! | e        | `--tgt-restart 5:5`            | `netboot.recovery=off`, replacement_timeout=10 | no resident, no `recovery:` line, not recovered |
//!
//! b shortens the NOP-Out ping (`node.conn[0].timeo.noop_out_interval=2`,
//! `…noop_out_timeout=2`): with the defaults (5 s idle + 5 s) the kernel declares the
//! connection dead about 10 s after the last frame, racing the link's return after 10 s;
//! with 2 + 2 it does so well inside the outage, so the scenario always exercises the
//! resident (a link back before the ping timeout is recovered by TCP alone).
//!
//! Measurements are printed as `MEASURE vm_recovery …` lines: target (or link) back → I/O
//! flowing again on the guest's clock (end of the stalled write) and as the rig saw it (the
//! stall line on the console), the resident's "recovered in", and its VmRSS.
//!
//! Prerequisites as in tests/vm.rs; without them a test prints `skipped: …`, with
//! `NETBOOT_REQUIRE_VM=1` that is a failure. Run one at a time:
//! `cargo test --test vm_recovery -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

mod support;
mod vm_support;

use vm_support::*;

type Run = FaultRun;

/// What starts the fault clock.
const MARKER: &str = "WRITER started";
/// A stalled write that returned: I/O flows again (or failed: `result=error`).
const STALL: &str = "WRITER stall";
/// The resident's lines (kmsg text, after the printk timestamp).
const RECOVERY: &str = "netboot: recovery:";
const RECOVERED: &str = "recovered in";
/// The resident's longest pause between attempts (src/recovery/resident.rs MAX_BACKOFF, 2 s),
/// with slack for the printed rounding.
const MAX_BACKOFF_S: f64 = 2.05;
/// Per-boot limit: boot ~10 s, writer ≤ 45 s, verification ~10 s, and a stall of up to the
/// default replacement timeout (120 s) if recovery does not happen.
const TIMEOUT_S: u32 = 300;

/// A measurement or fact for the reader, past libtest's capture.
fn measure(name: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "MEASURE vm_recovery {name}: {what}");
}

// ---------------------------------------------------------------------------------------------
// artifacts and the boot

/// The agent's initramfs (plain build; its own name so that a concurrent run of another
/// VM test binary does not rewrite it under us).
fn recovery_initrd(kernel: &str) -> std::path::PathBuf {
    netboot_initrd_with(kernel, "netboot-recovery", &[])
}

/// The busybox root with the writer (64 MiB: 500 × 16 KiB files fit many times over).
fn writer_image() -> std::path::PathBuf {
    artifact("recovery.img", |out| {
        script(&["qemu/mkroot.sh", out, "--label", "nbroot"])
    })
}

/// One boot through `qemu/boot.sh` with the writer; the console, and boot.sh's `fault:`
/// lines (which [`vm_support::boot_with`] does not keep).
fn boot_writer(name: &str, extra_cmdline: &str, rig: &[&str]) -> Run {
    let console = work_dir().join(format!("console-{name}.log"));
    let _ = fs::remove_file(&console);
    let append = format!("{BASE_CMDLINE} iscsi={ROOT_PATH} rw {extra_cmdline}");
    let mut c = Command::new(Path::new(REPO).join("qemu/boot.sh"));
    c.current_dir(REPO)
        .args(["--kernel", "6.1", "--initrd"])
        .arg(recovery_initrd("6.1"))
        .arg("--image")
        .arg(writer_image())
        .args(["--target", IQN, "--append", &append])
        .args(["--timeout", &TIMEOUT_S.to_string()])
        .arg("--console")
        .arg(&console)
        .args(["--fault-after", MARKER, "--fault-resumed", STALL])
        .args(rig);
    run_boot_sh(name, &mut c, &console)
}

// ---------------------------------------------------------------------------------------------
// readers (pure; tested in `readers` below)

/// `[   12.345678] text` → (12.345678, "text").
fn kmsg(line: &str) -> Option<(f64, &str)> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (ts, text) = rest.split_once(']')?;
    let t = ts.trim().parse().ok()?;
    Some((t, text.strip_prefix(' ').unwrap_or(text)))
}

/// The value of `key=` in a line of space-separated `key=value` words.
fn field<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn field_f64(line: &str, key: &str) -> Option<f64> {
    field(line, key)?.trim_end_matches(';').parse().ok()
}

/// The writer's verification line (the last: a dying root's console may repeat output).
#[derive(Debug, PartialEq)]
struct Verdict {
    files: u64,
    bad: u64,
    errors: u64,
    writes: u64,
}

fn verdict(console: &str) -> Option<Verdict> {
    let l = console.lines().rfind(|l| l.starts_with("WRITER files="))?;
    let n = |k| field(l, k).and_then(|v| v.parse().ok());
    Some(Verdict {
        files: n("files")?,
        bad: n("bad")?,
        errors: n("errors")?,
        writes: n("writes")?,
    })
}

/// `WRITER stall` lines: (from, to, took, ok).
fn stalls(console: &str) -> Vec<(f64, f64, f64, bool)> {
    console
        .lines()
        .filter(|l| l.starts_with(STALL))
        .filter_map(|l| {
            Some((
                field_f64(l, "from")?,
                field_f64(l, "to")?,
                field_f64(l, "took")?,
                field(l, "result")? == "ok",
            ))
        })
        .collect()
}

/// `WRITER started at=`.
fn writer_start(console: &str) -> Option<f64> {
    console
        .lines()
        .find(|l| l.starts_with(MARKER))
        .and_then(|l| field_f64(l, "at"))
}

/// `RESIDENT present pid=P rss=R kB` → Some(R kB); `RESIDENT absent` → None; no line → Err.
fn resident(console: &str) -> Result<Option<u64>, ()> {
    let l = console
        .lines()
        .find(|l| l.starts_with("RESIDENT "))
        .ok_or(())?;
    if l == "RESIDENT absent" {
        return Ok(None);
    }
    field(l, "rss")
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or(())
}

/// The rig's `fault:` step containing `what`, and its `key+` value (`marker+`, `back+`).
fn fault_time(fault: &[String], what: &str, key: &str) -> Option<f64> {
    let l = fault.iter().find(|l| l.contains(what))?;
    l.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('+'))?
        .parse()
        .ok()
}

/// The resident's kmsg lines, with printk times.
fn recovery_lines(console: &str) -> Vec<(f64, &str)> {
    console
        .lines()
        .filter_map(kmsg)
        .filter(|(_, t)| t.starts_with(RECOVERY))
        .collect()
}

/// "recovered in S s (K attempts)" → (S, K).
fn recovered(line: &str) -> Option<(f64, u32)> {
    let rest = line.split_once(RECOVERED)?.1.trim_start();
    let (s, rest) = rest.split_once(" s (")?;
    let k = rest.split_whitespace().next()?;
    Some((s.parse().ok()?, k.parse().ok()?))
}

/// "…; next in X s" → X.
fn next_in(line: &str) -> Option<f64> {
    line.rsplit_once("next in ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Section lines without the kernel's own `[   5.123456] …` messages.
fn section_json(b: &Booted, name: &str) -> Option<serde_json::Value> {
    let text = kernel_lines_removed(&b.section(name));
    if text.trim().is_empty() {
        return None;
    }
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{}", b.tail())),
    )
}

// ---------------------------------------------------------------------------------------------
// shared checks

/// QEMU powered off by itself (no hang) and the root's init ran.
fn assert_finished(r: &Run) {
    assert_eq!(
        r.b.code,
        Some(0),
        "boot.sh failed or timed out\n{}",
        r.tail()
    );
    assert!(
        r.b.console.contains("NETBOOT-ROOT-OK"),
        "no NETBOOT-ROOT-OK\n{}",
        r.tail()
    );
    assert!(
        verdict(&r.b.console).is_some(),
        "the writer printed no verdict\n{}",
        r.tail()
    );
}

/// The resident is there; returns its VmRSS (kB).
fn assert_resident(r: &Run) -> u64 {
    match resident(&r.b.console) {
        Ok(Some(rss)) => rss,
        Ok(None) => panic!(
            "RESIDENT absent: no @netboot-resident process\n{}",
            r.tail()
        ),
        Err(()) => panic!("no (parsable) RESIDENT line\n{}", r.tail()),
    }
}

/// Exactly one "connection error" and one "recovered in" line; returns (printk time of
/// the error, recovered-in seconds, attempts).
fn assert_one_recovery(r: &Run) -> (f64, f64, u32) {
    let lines = recovery_lines(&r.b.console);
    let errors: Vec<_> = lines
        .iter()
        .filter(|(_, t)| t.contains("connection error"))
        .collect();
    let ok: Vec<_> = lines
        .iter()
        .filter(|(_, t)| t.contains(RECOVERED))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "want one connection error line, got {errors:#?}\n{}",
        r.tail()
    );
    assert_eq!(
        ok.len(),
        1,
        "want one {RECOVERED:?} line, got {ok:#?}\n{}",
        r.tail()
    );
    let (s, k) = recovered(ok[0].1)
        .unwrap_or_else(|| panic!("unparsable recovery line {:?}\n{}", ok[0].1, r.tail()));
    (errors[0].0, s, k)
}

/// recovery.json: `recoveries` == `want`; `netboot status` printed something.
fn assert_history(r: &Run, want: u64) {
    let h = section_json(&r.b, "recovery.json")
        .unwrap_or_else(|| panic!("no recovery.json on the console\n{}", r.tail()));
    let n = find_key(&h, "recoveries").and_then(|v| v.as_u64());
    assert_eq!(n, Some(want), "recovery.json recoveries: {h}\n{}", r.tail());
    let status = kernel_lines_removed(&r.b.section("status"));
    assert!(
        status.contains("session"),
        "`/run/netboot/netboot status` printed no session state: {status:?}\n{}",
        r.tail()
    );
}

/// Target/link back → I/O flowing, on the guest's clock and as the rig saw it; `back` is
/// the rig step's name (`back` or `link up`). The stalled write that counts is the longest
/// one that succeeded and returned after the target was back (on the guest's clock, with
/// 0.5 s for the marker's detection).
fn measure_resume(name: &str, r: &Run, back: &str) {
    let c = &r.b.console;
    let guest_back = writer_start(c).zip(fault_time(&r.fault, back, "marker"));
    let Some(guest_back) = guest_back.map(|(s, m)| s + m) else {
        measure(
            name,
            &format!("no {back:?} mark to measure from (fault {:?})", r.fault),
        );
        return;
    };
    let rig = fault_time(&r.fault, "resumed", "back").map_or("?".into(), |x| format!("{x:.2}"));
    let stall = stalls(c)
        .into_iter()
        .filter(|&(_, to, _, ok)| ok && to >= guest_back - 0.5)
        .max_by(|a, b| a.2.total_cmp(&b.2));
    match stall {
        Some((from, to, took, _)) => measure(
            name,
            &format!(
                "target back at guest {guest_back:.2} s; stalled write {from:.2}..{to:.2} \
                 ({took:.2} s); back → I/O flowing {:.2} s (guest clock), {rig} s (rig: next \
                 stall line)",
                to - guest_back
            ),
        ),
        None => measure(
            name,
            &format!(
                "target back at guest {guest_back:.2} s; no stalled write succeeded after it \
                 (stalls {:?})",
                stalls(c)
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// scenarios

/// a. tgtd SIGKILLed 5 s into the writes, back 5 s later: the resident reconnects, every
/// file verifies after a cache drop, no I/O error, one recovery in the kmsg and history.
#[test]
fn a_target_killed_and_restarted() {
    let name = "rec-a-tgt-restart";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let r = boot_writer(name, "nbtest.writer=40", &["--tgt-restart", "5:5"]);
    assert_finished(&r);
    measure_resume(name, &r, "back");
    let rss = assert_resident(&r);
    measure(name, &format!("resident VmRSS {rss} kB"));
    let (_, secs, attempts) = assert_one_recovery(&r);
    measure(
        name,
        &format!("recovered in {secs} s ({attempts} attempts)"),
    );
    let v = verdict(&r.b.console).unwrap_or_else(|| panic!("{}", r.tail()));
    assert!(
        v.files > 0 && v.bad == 0 && v.errors == 0,
        "writer: {v:?}\n{}",
        r.tail()
    );
    assert!(
        !r.b.console.contains("I/O error"),
        "I/O error on the console\n{}",
        r.tail()
    );
    assert_history(&r, 1);
}

/// b. The guest's link down for 10 s during the writes: the kernel's NOP-Out ping fails,
/// the resident reconnects once the link is back; the same checks as a.
#[test]
fn b_link_down_10s() {
    let name = "rec-b-link-down";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let r = boot_writer(
        name,
        "nbtest.writer=40 rd.iscsi.param=node.conn[0].timeo.noop_out_interval=2 \
         rd.iscsi.param=node.conn[0].timeo.noop_out_timeout=2",
        &["--link-down", "5:10"],
    );
    assert_finished(&r);
    assert!(
        r.fault
            .iter()
            .any(|l| l.contains("link down") && l.ends_with("monitor: ok")),
        "the rig did not take the link down\n{}",
        r.tail()
    );
    measure_resume(name, &r, "link up");
    let rss = assert_resident(&r);
    measure(name, &format!("resident VmRSS {rss} kB"));
    let (_, secs, attempts) = assert_one_recovery(&r);
    measure(
        name,
        &format!("recovered in {secs} s ({attempts} attempts)"),
    );
    let v = verdict(&r.b.console).unwrap_or_else(|| panic!("{}", r.tail()));
    assert!(
        v.files > 0 && v.bad == 0 && v.errors == 0,
        "writer: {v:?}\n{}",
        r.tail()
    );
    assert!(
        !r.b.console.contains("I/O error"),
        "I/O error on the console\n{}",
        r.tail()
    );
    assert_history(&r, 1);
}

/// c. The target away for 20 s with replacement_timeout=5: the documented outcome — the
/// kernel fails the queued I/O after 5 s (I/O errors are expected here; ext4 aborts its
/// journal and goes read-only), the resident keeps trying with bounded pauses and
/// reconnects when the target is back; the VM finishes within the bound, no hang.
#[test]
fn c_target_gone_past_replacement_timeout() {
    let name = "rec-c-past-replacement";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let r = boot_writer(
        name,
        "nbtest.writer=45 rd.iscsi.param=node.session.timeo.replacement_timeout=5",
        &["--tgt-restart", "5:20"],
    );
    assert_finished(&r);
    let wall = r.b.wall.unwrap_or(f64::NAN);
    measure(
        name,
        &format!("VM finished, wall {wall:.1} s (bound {TIMEOUT_S} s)"),
    );
    assert!(
        r.b.console
            .contains("session recovery timed out after 5 secs"),
        "the kernel's replacement timeout did not fire\n{}",
        r.tail()
    );
    assert!(
        r.b.console.contains("I/O error"),
        "no I/O error although the target was away past the replacement timeout\n{}",
        r.tail()
    );
    let lines = recovery_lines(&r.b.console);
    let attempts: Vec<_> = lines
        .iter()
        .filter(|(_, t)| t.contains(" failed: "))
        .collect();
    assert!(
        attempts.len() >= 2,
        "want several failed attempts while the target is away, got {attempts:#?}\n{}",
        r.tail()
    );
    for (_, t) in &attempts {
        let x = next_in(t).unwrap_or_else(|| panic!("attempt line without 'next in': {t}"));
        assert!(
            x <= MAX_BACKOFF_S,
            "pause {x} s > {MAX_BACKOFF_S} s: {t}\n{}",
            r.tail()
        );
    }
    let (err_t, secs, k) = assert_one_recovery(&r);
    measure(
        name,
        &format!("error at {err_t:.2} s, recovered in {secs} s after {k} attempts"),
    );
    assert!(
        secs >= 15.0,
        "recovered in {secs} s while the target was away 20 s\n{}",
        r.tail()
    );
    measure_resume(name, &r, "back");
    if let Some(v) = verdict(&r.b.console) {
        measure(name, &format!("writer after the outage: {v:?}"));
    }
    assert_history(&r, 1);
}

/// e. `netboot.recovery=off`: no resident process, no `recovery:` line; with the target
/// restarted the session is not recovered (the kernel fails I/O after replacement_timeout,
/// shortened to 10 s to keep the run short) — the baseline the other scenarios improve on.
#[test]
fn e_recovery_off_leaves_no_resident() {
    let name = "rec-e-off";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let r = boot_writer(
        name,
        "nbtest.writer=30 netboot.recovery=off \
         rd.iscsi.param=node.session.timeo.replacement_timeout=10",
        &["--tgt-restart", "5:5"],
    );
    assert_finished(&r);
    assert_eq!(
        resident(&r.b.console),
        Ok(None),
        "want RESIDENT absent\n{}",
        r.tail()
    );
    let lines = recovery_lines(&r.b.console);
    assert!(
        lines.is_empty(),
        "recovery lines with recovery=off: {lines:#?}\n{}",
        r.tail()
    );
    assert!(
        r.b.console
            .contains("session recovery timed out after 10 secs"),
        "the session was not left to time out\n{}",
        r.tail()
    );
    measure_resume(name, &r, "back");
    if let Some(v) = verdict(&r.b.console) {
        measure(name, &format!("writer without recovery: {v:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// the rig's fault option, without a VM

/// `boot.sh --tgt-restart`'s machinery (rig_fault_start) seen from a second client on br0
/// (rig_probe): the portal answers until the marker appears on the "console", is refused
/// after the SIGKILL, answers again with the same target and backing file after DOWN s;
/// the rig logs its steps (with the resumed line) and rig_cleanup leaves neither tgtd.
#[test]
fn rig_tgt_restart() {
    let _guard = VM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !support::is_root() {
        skip("the rig needs root (network namespaces, tgtd)");
        return;
    }
    if let Some(t) = ["ip", "tgtd", "tgtadm", "timeout", "truncate", "bash"]
        .iter()
        .find(|t| support::which(t).is_none())
    {
        skip(&format!("{t} not found (run scripts/setup.sh)"));
        return;
    }
    let body = format!(
        "set -euo pipefail\n. qemu/rig.sh\nrig_workdir=$(mktemp -d /tmp/nbrig.XXXXXX)\n\
         trap 'rig_cleanup; rm -rf \"$rig_workdir\"' EXIT\n\
         img=$rig_workdir/disk.img; truncate -s 4M \"$img\"\n\
         rig_netns_up\necho \"netns=$rig_ns\"\n\
         rig_tgt_start \"$img\" 1 {IQN}\necho \"first=$rig_tgt_pid\"\n\
         c=$rig_workdir/console; : >\"$c\"\n\
         rig_fault_start tgt-restart 0.5:2 \"$c\" GO AGAIN \"$img\" 1 {IQN}\n\
         echo \"before=$(rig_probe 198.18.0.1 3260 2)\"\n\
         echo GO >>\"$c\"\n\
         sleep 1.5\necho \"during=$(rig_probe 198.18.0.1 3260 2)\"\n\
         for i in $(seq 50); do [ \"$(rig_probe 198.18.0.1 3260 2)\" = open ] && break; sleep 0.1; done\n\
         echo \"after=$(rig_probe 198.18.0.1 3260 2)\"\n\
         echo AGAIN >>\"$c\"\nsleep 0.5\n\
         sed 's/^/log=/' \"$rig_fault_log\"\n\
         rig_fault_stop\necho \"second=$rig_tgt_pid\"\n\
         echo \"lun=$(tgtadm -C \"$rig_tgt_ctl\" --lld iscsi --mode target --op show | grep -c \"Backing store path: $img\")\"\n"
    );
    let out = Command::new("bash")
        .args(["-c", &body])
        .current_dir(REPO)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!(
        "script:\n{body}\nexit: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the rig script failed\n{all}");
    let get = |k: &str| -> Vec<&str> {
        stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(key, _)| *key == k)
            .map(|(_, v)| v)
            .collect()
    };
    let one = |k: &str| {
        get(k)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no {k}=\n{all}"))
    };
    assert_eq!(one("before"), "open", "{all}");
    assert_eq!(one("during"), "refused", "{all}");
    assert_eq!(one("after"), "open", "{all}");
    assert_eq!(
        one("lun"),
        "1",
        "the new tgtd lacks the backing file\n{all}"
    );
    let (first, second) = (one("first"), one("second"));
    assert_ne!(first, second, "{all}");
    let log = get("log");
    for step in [
        "marker 'GO' seen",
        &format!("tgtd {first} killed"),
        &format!("tgtd {second} back"),
        "resumed 'AGAIN'",
    ] {
        assert!(
            log.iter().any(|l| l.contains(step)),
            "no {step:?} in the fault log\n{all}"
        );
    }
    for pid in [first, second] {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_ne!(comm.trim(), "tgtd", "tgtd {pid} outlived the rig\n{all}");
    }
    let ns = one("netns");
    assert!(
        !Path::new("/run/netns").join(ns).exists(),
        "netns {ns} left\n{all}"
    );
}

// ---------------------------------------------------------------------------------------------
// pure helpers

#[test]
fn readers() {
    let console = "\
WRITER started at=10.56 seconds=30\n\
WRITER stall file=0 from=10.56 to=12.28 took=1.72 result=ok\n\
[   15.792757]  connection1:0: detected conn error (1020)\n\
[   15.800000] netboot: recovery: session 1: connection error ISCSI_ERR_TCP_CONN_CLOSE (1020); reconnecting\n\
[   16.100000] netboot: recovery: session 1 attempt 1 via 198.18.0.1:3260 failed: refused; next in 0.25 s\n\
[   21.000000] netboot: recovery: session 1 recovered in 5.2 s (6 attempts) via 198.18.0.1:3260\n\
WRITER stall file=55 from=15.77 to=21.02 took=5.25 result=ok\n\
WRITER files=63 bad=0 errors=1 writes=64 stalls=2 at=43.36\n\
WRITER files=63 bad=2 errors=1 writes=64 stalls=2 at=43.36\n\
RESIDENT present pid=123 rss=812 kB\n";
    assert_eq!(writer_start(console), Some(10.56));
    assert_eq!(
        verdict(console),
        Some(Verdict {
            files: 63,
            bad: 2,
            errors: 1,
            writes: 64
        })
    );
    let s = stalls(console);
    assert_eq!(s.len(), 2);
    assert_eq!(s[1], (15.77, 21.02, 5.25, true));
    assert_eq!(resident(console), Ok(Some(812)));
    assert_eq!(resident("RESIDENT absent\n"), Ok(None));
    assert_eq!(resident("nothing\n"), Err(()));
    let lines = recovery_lines(console);
    assert_eq!(lines.len(), 3);
    assert_eq!(next_in(lines[1].1), Some(0.25));
    assert_eq!(recovered(lines[2].1), Some((5.2, 6)));
    assert_eq!(
        recovered("recovered in 1.0 s (1 attempt) via x"),
        Some((1.0, 1))
    );
    let fault = vec![
        "fault: marker 'WRITER started' seen t=15.96 marker+0.04".to_string(),
        "fault: tgtd 8551 back t=26.30 marker+10.36".to_string(),
        "fault: resumed 'WRITER stall' t=36.67 marker+21.41 back+11.07".to_string(),
    ];
    assert_eq!(fault_time(&fault, "back", "marker"), Some(10.36));
    assert_eq!(fault_time(&fault, "resumed", "back"), Some(11.07));
    assert_eq!(fault_time(&fault, "link up", "marker"), None);
    assert_eq!(kmsg("NETBOOT-ROOT-OK"), None);
}
