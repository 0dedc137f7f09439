//! RxRPC config fetches under real `tc netem` (issue 5), inside a QEMU guest: the build
//! machine's kernel has no sch_netem (so `tests/rxrpc.rs`'s netns netem tests skip there),
//! Debian's guest kernels have it. `qemu/netem/run.sh` builds the netem initramfs
//! (`qemu/netem/build.sh`: busybox, iproute2 `ip`/`tc`, `target/dist/netboot{,-configd}`,
//! sch_netem and AF_RXRPC modules) and boots it once per kernel under TCG, without a NIC.
//! The guest's init (`qemu/netem/init.sh`) puts netem on the loopback of a private netns, runs
//! netboot-configd there and [`N`] `netboot config-fetch` calls per transport (`udp`: the
//! userspace client, `kernel`: the guest kernel's AF_RXRPC) and qdisc:
//!
//! - none (lo's default noqueue qdisc: the baseline);
//! - `loss 10%`;
//! - `delay 5ms reorder 25% 50% duplicate 30%`.
//!
//! Every call must get its config, and the guest's counters must show that netem really
//! dropped packets in the loss case and delivered duplicates in the other, so the test cannot
//! pass on a path netem did not touch.
//!
//! One `#[test]` boots the kernels one after another (TCG is slow, the machine has 2 cores).
//! Prerequisites: root (the initramfs builder makes device nodes), qemu-system-x86,
//! busybox-static, iproute2, cpio, kmod, file, the kernels (`qemu/kernel.sh 6.1`,
//! `qemu/kernel.sh 6.12`) and `target/dist/netboot`, `target/dist/netboot-configd`
//! (scripts/build.sh). Without them the test prints `skipped: …`; with `NETBOOT_REQUIRE_VM=1`
//! (CI) that is a failure instead. `--nocapture` shows the numbers.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod support;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Fetches per transport and qdisc. Each boot takes ~20 s of wall time under TCG.
const N: u32 = 30;
/// Per-boot limit enforced by run.sh (QEMU is killed by PID past it).
const BOOT_TIMEOUT_S: u32 = 240;
const KERNELS: [&str; 2] = ["6.1", "6.12"];
/// `clean`: no netem (the baseline, separating a transport that fails anyway from one that
/// fails under netem); `loss`; `dupreorder`.
const CASES: [&str; 3] = ["clean", "loss", "dupreorder"];
const TRANSPORTS: [&str; 2] = ["udp", "kernel"];

/// Print `skipped: reason` past libtest's capture, or panic when `NETBOOT_REQUIRE_VM=1`.
fn skip(reason: &str) {
    support::skip_unless_required("NETBOOT_REQUIRE_VM", "the netem VM test", reason);
}

fn on_path(tool: &str) -> bool {
    support::which(tool).is_some()
}

/// What is missing for the netem boots, if anything.
fn missing_prerequisite() -> Option<String> {
    if !support::is_root() {
        return Some("building the initramfs needs root (mknod)".into());
    }
    for t in [
        "qemu-system-x86_64",
        "cpio",
        "depmod",
        "modprobe",
        "ldd",
        "file",
        "apt-get",
    ] {
        if !on_path(t) {
            return Some(format!("{t} not found (run scripts/setup.sh)"));
        }
    }
    for f in ["/usr/bin/busybox", "/usr/sbin/ip", "/usr/sbin/tc"] {
        if !Path::new(f).is_file() {
            return Some(format!(
                "{f} not found (apt-get install busybox-static iproute2)"
            ));
        }
    }
    for b in ["netboot", "netboot-configd"] {
        let p = Path::new(REPO).join("target/dist").join(b);
        if !p.is_file() {
            return Some(format!("{} missing (run scripts/build.sh)", p.display()));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// console parsing

/// `key=value` fields of one console line after its tag; values may be `"quoted"` (no escapes).
fn fields(rest: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut s = rest.trim_start();
    while let Some(eq) = s.find('=') {
        let key = s[..eq].trim().to_string();
        let after = &s[eq + 1..];
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            },
            None => match after.find(' ') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        out.insert(key, value.to_string());
        s = next.trim_start();
    }
    out
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Run {
    qdisc: String,
    ok: Option<u32>,
    /// Calls made: fewer than `planned` when the guest gave up after repeated failures.
    n: Option<u32>,
    planned: Option<u32>,
    ms: Option<u64>,
    dropped: Option<u64>,
    sent_pkts: Option<u64>,
    udp_out: Option<u64>,
    udp_in: Option<u64>,
    in_minus_out: Option<i64>,
}

/// The guest's `NETEM-RESULT` and `NETEM-STATS` lines, by (case, transport).
fn parse_console(console: &str) -> HashMap<(String, String), Run> {
    let mut runs: HashMap<(String, String), Run> = HashMap::new();
    for line in console.lines() {
        // The kernel may interleave its messages; the tag can follow other text.
        let (tag, rest) = if let Some(i) = line.find("NETEM-RESULT ") {
            ("result", &line[i + "NETEM-RESULT ".len()..])
        } else if let Some(i) = line.find("NETEM-STATS ") {
            ("stats", &line[i + "NETEM-STATS ".len()..])
        } else {
            continue;
        };
        let f = fields(rest);
        let (Some(case), Some(transport)) = (f.get("case"), f.get("transport")) else {
            continue;
        };
        let run = runs.entry((case.clone(), transport.clone())).or_default();
        if let Some(q) = f.get("qdisc") {
            run.qdisc = q.clone();
        }
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        if tag == "result" {
            run.ok = num("ok").and_then(|v| u32::try_from(v).ok());
            run.n = num("n").and_then(|v| u32::try_from(v).ok());
            run.planned = num("planned").and_then(|v| u32::try_from(v).ok());
            run.ms = num("ms");
        } else {
            run.dropped = num("dropped");
            run.sent_pkts = num("sent_pkts");
            run.udp_out = num("udp_out");
            run.udp_in = num("udp_in");
            run.in_minus_out = f.get("in_minus_out").and_then(|v| v.parse().ok());
        }
    }
    runs
}

#[test]
fn parse_console_reads_results_and_stats() {
    let console = "\
[    1.2] random kernel line\n\
NETEM-RESULT case=loss qdisc=\"loss 10%\" transport=udp ok=29 n=30 planned=30 ms=2250\n\
NETEM-STATS case=loss qdisc=\"loss 10%\" transport=udp sent_pkts=100 dropped=7 udp_out=101 udp_in=94 in_minus_out=-7\n\
junk NETEM-RESULT case=dupreorder qdisc=\"delay 5ms reorder 25% 50% duplicate 30%\" transport=kernel ok=3 n=5 planned=30 ms=2409\n\
NETEM-RESULT case=x\n\
NETEM-STATS qdisc=\"unterminated\n";
    let runs = parse_console(console);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let loss = &runs[&("loss".to_string(), "udp".to_string())];
    assert_eq!(loss.qdisc, "loss 10%");
    assert_eq!(
        (loss.ok, loss.n, loss.planned, loss.ms),
        (Some(29), Some(30), Some(30), Some(2250))
    );
    assert_eq!((loss.dropped, loss.in_minus_out), (Some(7), Some(-7)));
    assert_eq!(
        (loss.udp_out, loss.udp_in, loss.sent_pkts),
        (Some(101), Some(94), Some(100))
    );
    let dup = &runs[&("dupreorder".to_string(), "kernel".to_string())];
    assert_eq!(dup.qdisc, "delay 5ms reorder 25% 50% duplicate 30%");
    assert_eq!(
        (dup.ok, dup.n, dup.planned, dup.dropped),
        (Some(3), Some(5), Some(30), None)
    );
}

// ---------------------------------------------------------------------------------------------
// the boots

/// Boot `kernel` once; returns the console, or why the boot failed.
fn boot(kernel: &str) -> Result<(String, f64), String> {
    let dir = Path::new(REPO).join("target/vm/netem");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = dir.join(format!("serial-{kernel}.log"));
    let started = Instant::now();
    let out = Command::new(Path::new(REPO).join("qemu/netem/run.sh"))
        .args(["--kernel", kernel, "--n", &N.to_string()])
        .args(["--timeout", &BOOT_TIMEOUT_S.to_string()])
        .arg("--log")
        .arg(&log)
        .current_dir(REPO)
        .output()
        .map_err(|e| format!("cannot run qemu/netem/run.sh: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok((console, wall))
    } else {
        let lines: Vec<&str> = console.lines().collect();
        let from = lines.len().saturating_sub(60);
        Err(format!(
            "qemu/netem/run.sh --kernel {kernel} failed ({}) after {wall:.1} s\n--- stderr ---\n{}\n--- last 60 console lines ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            lines.get(from..).unwrap_or_default().join("\n")
        ))
    }
}

/// Check every case ran for both transports, every call got its config, and netem really
/// dropped (loss) or duplicated (dupreorder) packets on each transport's calls. Prints the
/// numbers; returns what is wrong, one line per problem.
fn check(kernel: &str, console: &str) -> Vec<String> {
    let runs = parse_console(console);
    let mut problems = Vec::new();
    for case in CASES {
        for transport in TRANSPORTS {
            let key = (case.to_string(), transport.to_string());
            let at = format!("kernel {kernel} {case}/{transport}");
            let Some(r) = runs.get(&key) else {
                problems.push(format!("{at}: no NETEM-RESULT line"));
                continue;
            };
            let _ = writeln!(
                std::io::stderr(),
                "netem kernel={kernel} qdisc=\"{}\" transport={transport}: ok={:?}/{:?} of {:?} \
                 ms={:?} netem sent={:?} dropped={:?} udp out={:?} in={:?} in-out={:?}",
                r.qdisc,
                r.ok,
                r.n,
                r.planned,
                r.ms,
                r.sent_pkts,
                r.dropped,
                r.udp_out,
                r.udp_in,
                r.in_minus_out
            );
            if r.planned != Some(N) || r.n != Some(N) || r.ok != Some(N) {
                problems.push(format!("{at}: not every call got its config: {r:?}"));
            }
            if case == "clean" {
                // No netem: nothing to prove about the qdisc.
            } else if case == "loss" {
                if r.dropped.unwrap_or(0) == 0 {
                    problems.push(format!("{at}: netem dropped nothing: {r:?}"));
                }
            } else {
                if r.dropped != Some(0) {
                    problems.push(format!("{at}: netem dropped packets: {r:?}"));
                }
                if r.in_minus_out.unwrap_or(0) <= 0 {
                    problems.push(format!("{at}: no duplicate was delivered: {r:?}"));
                }
            }
        }
    }
    if !problems.is_empty() {
        problems.extend(
            console
                .lines()
                .filter(|l| l.contains("NETEM-ERR") || l.contains("NETEM-FAIL"))
                .map(|l| format!("  {l}")),
        );
    }
    problems
}

#[test]
fn netem_loss_duplicate_reorder_in_guest() {
    if let Some(reason) = missing_prerequisite() {
        return skip(&reason);
    }
    for kernel in KERNELS {
        if let Err(e) = Command::new(Path::new(REPO).join("qemu/kernel.sh"))
            .arg(kernel)
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).into_owned())
                }
            })
        {
            return skip(&format!("kernel {kernel} unavailable: {e}"));
        }
    }
    let mut problems = Vec::new();
    for kernel in KERNELS {
        match boot(kernel) {
            Ok((console, wall)) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "netem kernel={kernel}: boot + 6 x {N} fetches in {wall:.1} s wall"
                );
                problems.extend(check(kernel, &console));
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
