//! What the VM test binaries share (tests/vm.rs, tests/vm_glue.rs): the prerequisite gate,
//! the artifacts (initramfs images, root images) built once per process, one boot through
//! `qemu/boot.sh` and the readers of what the root prints on the console ([`Booted`],
//! boot.json). The rig's network and disk layout are documented at the top of tests/vm.rs;
//! each test binary documents its own scenarios. Include it next to `mod support;`.
#![allow(dead_code)] // each test binary uses a different part of this module
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use crate::support;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub(crate) const REPO: &str = env!("CARGO_MANIFEST_DIR");
pub(crate) const IQN: &str = "iqn.2026-11.test:root";
pub(crate) const CHAP_USER: &str = "chapuser";
pub(crate) const CHAP_SECRET: &str = "chapsecret1234";
pub(crate) const WRONG_SECRET: &str = "wrongsecret999";
/// The part of the command line every netboot scenario shares (issue 3).
pub(crate) const BASE_CMDLINE: &str = "ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off \
     netboot.on_fail=halt netboot.timeout=60";
pub(crate) const ROOT_PATH: &str = "198.18.0.1::3260:1:iqn.2026-11.test:root";
/// Per-boot limit enforced by boot.sh; a good boot takes 6–10 s of wall time under TCG.
pub(crate) const BOOT_TIMEOUT_S: u32 = 120;

/// One VM at a time, across all tests of this binary.
pub(crate) static VM_LOCK: Mutex<()> = Mutex::new(());
/// Artifacts (initramfs, root images) built by this process, by name.
pub(crate) static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

// ---------------------------------------------------------------------------------------------
// gate and artifacts

/// Print `skipped: reason` past libtest's capture, or panic when `NETBOOT_REQUIRE_VM=1`.
pub(crate) fn skip(reason: &str) {
    support::skip_unless_required("NETBOOT_REQUIRE_VM", "the VM rig", reason);
}

pub(crate) fn on_path(tool: &str) -> bool {
    support::which(tool).is_some()
}

/// What is missing for a VM boot, if anything.
pub(crate) fn missing_prerequisite(reference: bool) -> Option<String> {
    if !support::is_root() {
        return Some("the VM rig needs root (network namespaces, tap, tgtd)".into());
    }
    let mut tools = vec![
        "qemu-system-x86_64",
        "tgtd",
        "tgtadm",
        "ip",
        "cpio",
        "depmod",
        "modprobe",
        "mkfs.ext4",
        "sfdisk",
        "apt-get",
    ];
    if reference {
        tools.push("iscsistart");
    }
    for t in tools {
        if !on_path(t) {
            return Some(format!("{t} not found (run scripts/setup.sh)"));
        }
    }
    if !Path::new("/usr/bin/busybox").is_file() {
        return Some("/usr/bin/busybox not found (apt-get install busybox-static)".into());
    }
    None
}

pub(crate) fn netboot_bin() -> PathBuf {
    Path::new(REPO).join("target/dist/netboot")
}

pub(crate) fn work_dir() -> PathBuf {
    let d = Path::new(REPO).join("target/vm/test");
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    d
}

/// Run a rig script; Err carries its exit status and output.
pub(crate) fn script(args: &[&str]) -> Result<String, String> {
    let out = Command::new(Path::new(REPO).join(args[0]))
        .args(&args[1..])
        .current_dir(REPO)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{} failed ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Build `name` once per process with `build(path)`.
pub(crate) fn artifact(name: &str, build: impl FnOnce(&str) -> Result<String, String>) -> PathBuf {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let map = built.get_or_insert_with(HashMap::new);
    if let Some(p) = map.get(name) {
        return p.clone();
    }
    let path = work_dir().join(name);
    let path_s = path.to_string_lossy().into_owned();
    if let Err(e) = build(&path_s) {
        panic!("building {name}: {e}");
    }
    map.insert(name.to_string(), path.clone());
    path
}

/// Check the kernel is fetchable (kernel.sh caches it; CI fetches both before the tests).
pub(crate) fn kernel_ready(version: &str) -> Option<String> {
    script(&["qemu/kernel.sh", version])
        .err()
        .map(|e| format!("kernel {version} unavailable: {e}"))
}

pub(crate) fn netboot_initrd(kernel: &str) -> PathBuf {
    netboot_initrd_with(kernel, "netboot", &[])
}

/// The agent's initramfs for `kernel`, built once per `name` with `extra` builder options.
pub(crate) fn netboot_initrd_with(kernel: &str, name: &str, extra: &[&str]) -> PathBuf {
    let bin = netboot_bin();
    artifact(&format!("{name}-{kernel}.cpio.gz"), |out| {
        let bin = bin.to_string_lossy();
        let mut args = vec!["initramfs/build.sh", "--kernel", kernel, "--netboot", &bin];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out]);
        script(&args)
    })
}

pub(crate) fn plain_image() -> PathBuf {
    artifact("plain.img", |out| {
        script(&["qemu/mkroot.sh", out, "--label", "nbroot"])
    })
}

// ---------------------------------------------------------------------------------------------
// one boot

pub(crate) struct Vm<'a> {
    pub(crate) name: &'a str,
    pub(crate) kernel: &'a str,
    pub(crate) initrd: PathBuf,
    pub(crate) image: PathBuf,
    pub(crate) chap: Option<String>,
    pub(crate) mutual: Option<String>,
    pub(crate) append: String,
    /// Serve this directory with netboot-configd on the bridge (198.18.0.1:7260).
    pub(crate) configd: Option<PathBuf>,
}

pub(crate) struct Booted {
    pub(crate) name: String,
    /// boot.sh's exit code: 0 = QEMU exited by itself, 2 = timeout, 1 = anything else.
    pub(crate) code: Option<i32>,
    pub(crate) wall: Option<f64>,
    pub(crate) console: String,
    pub(crate) stderr: String,
}

impl Booted {
    pub(crate) fn tail(&self) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        let from = lines.len().saturating_sub(50);
        format!(
            "scenario {}: boot.sh exit {:?}, wall {:?} s\n--- boot.sh stderr ---\n{}\n--- last 50 console lines ---\n{}",
            self.name,
            self.code,
            self.wall,
            self.stderr,
            lines.get(from..).unwrap_or_default().join("\n")
        )
    }

    /// QEMU powered off by itself and the root's init ran.
    pub(crate) fn assert_root_ok(&self) {
        assert_eq!(self.code, Some(0), "boot failed\n{}", self.tail());
        assert!(
            self.console.contains("NETBOOT-ROOT-OK"),
            "no NETBOOT-ROOT-OK on the console\n{}",
            self.tail()
        );
    }

    /// The lines between `--- NAME ---` and the next `--- end ---`.
    pub(crate) fn section(&self, name: &str) -> Vec<&str> {
        let head = format!("--- {name} ---");
        self.console
            .lines()
            .skip_while(|l| l.trim_end() != head)
            .skip(1)
            .take_while(|l| l.trim_end() != "--- end ---")
            .collect()
    }

    /// `key=value` lines of the iscsi section (one session, one connection).
    pub(crate) fn iscsi(&self) -> HashMap<String, String> {
        self.section("iscsi")
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// Console lines other than the kernel's own echo of its command line, which carries
    /// whatever the operator typed (init/main.c prints "Kernel command line:" and the
    /// "Unknown kernel command line parameters" it hands to init).
    pub(crate) fn agent_lines(&self) -> impl Iterator<Item = &str> {
        self.console.lines().filter(|l| {
            // The kernel itself echoes its command line ("Command line:",
            // "Kernel command line:", "Unknown kernel command line
            // parameters"); everything else must be free of secrets.
            !l.contains("Command line:")
                && !l.contains("Kernel command line:")
                && !l.contains("Unknown kernel command line")
        })
    }

    pub(crate) fn assert_no_secret(&self, secrets: &[&str]) {
        for l in self.agent_lines() {
            for s in secrets {
                assert!(
                    !l.contains(s),
                    "secret {s:?} on the console: {l}\n{}",
                    self.tail()
                );
            }
        }
    }
}

pub(crate) fn boot(vm: Vm) -> Booted {
    boot_with(vm, &[])
}

/// Take the VM lock and check every prerequisite; `None` = skipped.
pub(crate) fn prepare(kernel: &str, reference: bool) -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = VM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = missing_prerequisite(reference) {
        skip(&r);
        return None;
    }
    if !reference && !netboot_bin().is_file() {
        skip(&format!(
            "{} missing: run `bash scripts/build.sh` first",
            netboot_bin().display()
        ));
        return None;
    }
    if let Some(r) = kernel_ready(kernel) {
        skip(&r);
        return None;
    }
    Some(guard)
}

pub(crate) fn netboot_vm<'a>(name: &'a str, kernel: &'a str, extra: &str) -> Vm<'a> {
    Vm {
        name,
        kernel,
        initrd: netboot_initrd(kernel),
        image: plain_image(),
        chap: None,
        mutual: None,
        append: format!("{BASE_CMDLINE} {extra}"),
        configd: None,
    }
}

// ---------------------------------------------------------------------------------------------
// readers of the root's report

/// A key anywhere in a JSON document (boot.json's layout belongs to the agent).
pub(crate) fn find_key<'v>(v: &'v serde_json::Value, key: &str) -> Option<&'v serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

pub(crate) fn assert_iscsi_report(b: &Booted, user: Option<&str>) {
    let kv = b.iscsi();
    let get = |k: &str| kv.get(k).map(String::as_str).unwrap_or("<missing>");
    assert_eq!(get("targetname"), IQN, "targetname\n{}", b.tail());
    assert_eq!(get("tpgt"), "1", "tpgt\n{}", b.tail());
    assert_eq!(get("persistent_address"), "198.18.0.1", "{}", b.tail());
    assert_eq!(get("persistent_port"), "3260", "{}", b.tail());
    if let Some(u) = user {
        assert_eq!(get("username"), u, "session username\n{}", b.tail());
    }
    let mrdsl: u64 = get("max_recv_dlength")
        .parse()
        .unwrap_or_else(|_| panic!("max_recv_dlength not a number\n{}", b.tail()));
    assert!(mrdsl > 0, "max_recv_dlength = 0\n{}", b.tail());
    let json = b.section("boot.json").join("\n");
    if !json.trim().is_empty() {
        let v: serde_json::Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("boot.json does not parse: {e}\n{}", b.tail()));
        if let Some(n) = find_key(&v, "MaxRecvDataSegmentLength") {
            let agent = n
                .as_u64()
                .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or_else(|| panic!("MaxRecvDataSegmentLength = {n}\n{}", b.tail()));
            assert_eq!(
                mrdsl,
                agent,
                "kernel max_recv_dlength vs the agent's negotiated MaxRecvDataSegmentLength\n{}",
                b.tail()
            );
        }
    }
}

/// The agent's initramfs with initramfs/events-wrapper.sh as /init: it starts `netboot events
/// --json` (writing /run/netboot/events.jsonl, which the root prints as its `events` section)
/// before it execs the agent as PID 1.
pub(crate) fn events_initrd(kernel: &str) -> PathBuf {
    netboot_initrd_with(
        kernel,
        "netboot-events",
        &["--busybox", "--extra-init", "initramfs/events-wrapper.sh"],
    )
}

/// Where the first kernel timestamp `[    5.123456] ` starts in `line`, if any.
fn kernel_stamp_at(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    (0..b.len()).filter(|&i| b[i] == b'[').find(|&i| {
        let rest = &b[i + 1..];
        let digits = rest.iter().skip_while(|c| **c == b' ').collect::<Vec<_>>();
        let int = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        let frac = digits
            .get(int + 1..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
        int > 0
            && digits.get(int) == Some(&&b'.')
            && frac > 0
            && digits.get(int + 1 + frac) == Some(&&b']')
    })
}

/// The serial console carries the kernel's printk and the root's userspace output on one
/// line discipline: a kernel message can land in the middle of a line the root's init is
/// printing (`"step": "ro[    3.90] EXT4-fs …` then `ot.mount"` on the next line). Inside a
/// `--- NAME ---` … `--- end ---` section (only the root's init prints those), move such a
/// message onto its own line and join the two halves of the userspace line again. Outside
/// them lines stay as they are (the firmware's "Booting from ROM.." runs into the kernel's
/// first line and belongs to nothing after it).
pub(crate) fn untangle_console(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending = String::new();
    let mut in_section = false;
    let emit = |out: &mut String, l: &str| {
        out.push_str(l);
        out.push('\n');
    };
    for line in raw.lines() {
        if !in_section {
            emit(&mut out, line);
            let t = line.trim_end();
            in_section = t.starts_with("--- ") && t.ends_with(" ---") && t != "--- end ---";
            continue;
        }
        match kernel_stamp_at(line) {
            Some(p) if !line[..p].trim().is_empty() => {
                pending.push_str(&line[..p]);
                emit(&mut out, &line[p..]);
            }
            Some(_) => emit(&mut out, line),
            None => {
                let whole = format!("{pending}{line}");
                pending.clear();
                if whole.trim_end() == "--- end ---" {
                    in_section = false;
                }
                emit(&mut out, &whole);
            }
        }
    }
    if !pending.is_empty() {
        emit(&mut out, &pending);
    }
    out
}

/// Section lines without the kernel's own `[   5.123456] …` messages.
pub(crate) fn kernel_lines_removed(lines: &[&str]) -> String {
    lines
        .iter()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('[')
                && t.contains("] ")
                && t[1..]
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_digit()))
        })
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn boot_json(b: &Booted) -> serde_json::Value {
    serde_json::from_str(&kernel_lines_removed(&b.section("boot.json")))
        .unwrap_or_else(|e| panic!("boot.json does not parse: {e}\n{}", b.tail()))
}

/// The facts of `step` in boot.json and its result.
pub(crate) fn step_of<'v>(
    report: &'v serde_json::Value,
    step: &str,
) -> Option<&'v serde_json::Value> {
    report["steps"]
        .as_array()?
        .iter()
        .find(|s| s["step"].as_str() == Some(step))
}

/// [`boot`] with extra `qemu/boot.sh` options (`--dhcp`, `--dhcp-root-path`, `--tgt-delay`,
/// `--blackhole`, `--no-panic-arg`; a later `--timeout` overrides [`BOOT_TIMEOUT_S`]).
pub(crate) fn boot_with(vm: Vm, extra: &[&str]) -> Booted {
    let console = work_dir().join(format!("console-{}.log", vm.name));
    let _ = fs::remove_file(&console);
    let timeout = BOOT_TIMEOUT_S.to_string();
    let mut c = Command::new(Path::new(REPO).join("qemu/boot.sh"));
    c.current_dir(REPO)
        .args(["--kernel", vm.kernel, "--initrd"])
        .arg(&vm.initrd)
        .arg("--image")
        .arg(&vm.image)
        .args([
            "--target",
            IQN,
            "--append",
            &vm.append,
            "--timeout",
            &timeout,
        ])
        .arg("--console")
        .arg(&console)
        .args(extra);
    if let Some(chap) = &vm.chap {
        c.args(["--chap", chap]);
    }
    if let Some(m) = &vm.mutual {
        c.args(["--mutual-chap", m]);
    }
    if let Some(d) = &vm.configd {
        c.arg("--configd").arg(d);
    }
    run_boot_sh(vm.name, &mut c, &console).b
}

/// One boot through `qemu/boot.sh` with the rig's fault log (`boot: fault: …` lines, from
/// `--tgt-restart`, `--link-down`, `--fault-after`).
pub(crate) struct FaultRun {
    pub(crate) b: Booted,
    pub(crate) fault: Vec<String>,
}

impl FaultRun {
    pub(crate) fn tail(&self) -> String {
        format!(
            "--- fault ---\n{}\n{}",
            self.fault.join("\n"),
            self.b.tail()
        )
    }
}

/// Run a prepared `qemu/boot.sh` command whose console goes to `console`; boot.sh's stdout
/// (wall time, fault lines) and stderr both end up in [`Booted::stderr`].
pub(crate) fn run_boot_sh(name: &str, c: &mut Command, console: &Path) -> FaultRun {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run qemu/boot.sh: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let wall = stdout
        .lines()
        .find_map(|l| l.strip_prefix("boot: wall="))
        .and_then(|w| w.trim().parse().ok());
    let fault = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("boot: "))
        .filter(|l| l.starts_with("fault:"))
        .map(str::to_string)
        .collect();
    FaultRun {
        b: Booted {
            name: name.to_string(),
            code: out.status.code(),
            wall,
            console: untangle_console(&fs::read_to_string(console).unwrap_or_default()),
            stderr: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        },
        fault,
    }
}
