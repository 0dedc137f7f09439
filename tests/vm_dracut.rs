//! The dracut integration (`dracut/90netboot`): a real dracut 059 initramfs (Debian 12's
//! dracut-core) with our module, in both flavours, booted against the rig's tgtd; and the
//! module's build-time shell (hostonly `cmdline()` from the live session in sysfs, `check()`,
//! `install()`) against a fake sysfs tree with dracut's helpers stubbed.
//!
//! Build chain (as root; the images are cached, see `qemu/dracut/build.sh`):
//!
//! ```text
//!   qemu/kernel.sh 6.1              Debian's kernel package, modules under KROOT/lib/modules/KVER
//!   scripts/build.sh                target/dist/netboot (the binary the module installs: NETBOOT_BIN)
//!   qemu/dracut/build.sh --kernel 6.1 --flavour systemd|shell
//!       dracut --no-hostonly --no-early-microcode --kver KVER --kmoddir KROOT/lib/modules/KVER
//!              --add netboot --omit "kernel-modules kernel-modules-extra network … iscsi …"
//!              [--omit systemd …]   with a private dracutbasedir = /usr/lib/dracut + our module
//!     → ${NETBOOT_CACHE:-/var/cache/netboot}/dracut-<hash of module files, binary, KVER, flavour>/initrd.img
//!   qemu/dracut/root-image.sh       qemu/mkroot.sh's ext4 root (label nbroot) + /etc/os-release,
//!                                   without which systemd refuses to switch root
//! ```
//!
//! Network layout: as tests/vm.rs (netns, br0 198.18.0.1/24, tgtd portal 198.18.0.1:3260, tap0 ──
//! QEMU virtio-net-pci). In these initramfs images udev renames the NIC (eth0 → ens3: the module
//! installs 99-default.link), so `ip=` names no interface: [`STATIC_IP`].
//! Disk layout: tgt target `iqn.2026-11.test:root`, LUN 1 = a fresh copy of the root image
//! (ext4 over the whole LUN, label `nbroot`; `/sbin/init` = qemu/root-init.sh: prints
//! `BENCH rootinit=`, `NETBOOT-ROOT-OK`, mountinfo, the iSCSI sysfs section, boot.json, powers off).
//!
//! | scenario | flavour | kernel command line (after `console=ttyS0 panic=-1`) | expect |
//! |----------|---------|--------------------------------------------------------|--------|
//! | a | systemd | [`STATIC_IP`] `netroot=iscsi:ROOT_PATH rd.iscsi.initiator=IQN_A rd.iscsi.username=chapuser rd.iscsi.password=… root=LABEL=nbroot` [`TAIL`] | root reached; the session's initiator is IQN_A, CHAP user chapuser; netboot ran after the rename (iface ens3); no secret on the console |
//! | b | shell   | [`STATIC_IP`] `root=iscsi:ROOT_PATH` [`TAIL`] | root reached through rootfs-block's mount of the LUN |
//! | c | systemd | as a with the wrong secret | netboot's one line, then dracut's emergency path (`Boot has failed`, rd.emergency=poweroff), QEMU exits |
//! | d | shell   | `root=iscsi:chapuser:WRONG@ROOT_PATH` [`TAIL`] | netboot's one line, then dracut's `die` (FATAL, init exits, panic=-1 reboots), QEMU exits |
//! | e | shell, token (`--config-token`) | [`STATIC_IP`] `netboot.config=rxrpc:198.18.0.1` [`TAIL`]; configd `--rxkad-keys` serves the paths with CHAP | root reached with the fetched initiator and CHAP; `config.fetch` security `encrypt`; no token key material or CHAP secret on the console |
//!
//! Measurements (no timed assertions) are printed as `MEASURE dracut …` lines: the initramfs
//! size and build time, and /init → root: the kernel's "Run /init as init process" printk time
//! to the root's `BENCH rootinit=` uptime.
//!
//! Prerequisites: those of tests/vm.rs plus dracut-core (`dracut`, /usr/lib/dracut/modules.d)
//! and debugfs (e2fsprogs). Without them a VM test prints `SKIPPED: …`; with
//! `NETBOOT_REQUIRE_VM=1` that is a failure. The fake-sysfs tests need only sh and bash. Run one
//! at a time: `cargo test --test vm_dracut -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

mod support;
mod vm_support;

use support::configd::run_tool;
use vm_support::*;

/// Static address without an interface name: udev renames eth0 before netboot runs.
const STATIC_IP: &str = "ip=198.18.0.2::198.18.0.1:255.255.255.0::";
/// dracut's emergency path ends the VM (rd.shell=0: no shell; systemd: rd.emergency=poweroff;
/// shell flavour: `die` exits init, panic=-1 reboots, -no-reboot ends QEMU); netboot's deadline.
const TAIL: &str = "rd.shell=0 rd.emergency=poweroff netboot.timeout=60";
/// Scenario a's initiator name (dracut spelling, rd.iscsi.initiator=).
const IQN_A: &str = "iqn.2026-11.test:dracut-a";
/// netboot attach's one failure line (README "netboot attach").
const ATTACH_FAILED: &str = "netboot attach: boot failed at iscsi.login:";
/// The systemd flavour under TCG takes ~35 s; this only bounds a hang.
const DRACUT_BOOT_TIMEOUT_S: &str = "240";

fn report(what: &str) {
    let _ = writeln!(std::io::stderr(), "MEASURE dracut {what}");
}

// ---------------------------------------------------------------------------------------------
// artifacts

struct Initrd {
    path: PathBuf,
    size: u64,
    build_s: f64,
}

/// Path, size and build time of each flavour's image, by flavour.
type Built = HashMap<String, (PathBuf, u64, f64)>;
static INITRDS: Mutex<Option<Built>> = Mutex::new(None);

/// The dracut image of `flavour` (cached on disk by qemu/dracut/build.sh, once per process).
fn dracut_initrd(flavour: &str) -> Initrd {
    dracut_initrd_with(flavour, None)
}

/// [`dracut_initrd`], with `token` installed by the module (`--config-token`).
fn dracut_initrd_with(flavour: &str, token: Option<&Path>) -> Initrd {
    let mut map = INITRDS.lock().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    let name = match token {
        Some(t) => format!("{flavour}+{}", t.display()),
        None => flavour.to_string(),
    };
    if let Some((path, size, build_s)) = map.get(&name) {
        return Initrd {
            path: path.clone(),
            size: *size,
            build_s: *build_s,
        };
    }
    let bin = netboot_bin().to_string_lossy().into_owned();
    let mut args = vec![
        "qemu/dracut/build.sh",
        "--kernel",
        "6.1",
        "--flavour",
        flavour,
        "--netboot",
        &bin,
    ];
    let token_s = token.map(|t| t.to_string_lossy().into_owned());
    if let Some(t) = &token_s {
        args.extend(["--config-token", t]);
    }
    let out = script(&args).unwrap_or_else(|e| panic!("building the dracut {flavour} image: {e}"));
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("qemu/dracut/build.sh printed no {k}: {out}"))
            .trim()
            .to_string()
    };
    let path = PathBuf::from(get("INITRD="));
    let size = get("SIZE=").parse().unwrap_or(0);
    let build_s = get("BUILD_S=").parse().unwrap_or(0.0);
    map.insert(name, (path.clone(), size, build_s));
    Initrd {
        path,
        size,
        build_s,
    }
}

fn dracut_root_image() -> PathBuf {
    artifact("dracut-root.img", |out| {
        script(&["qemu/dracut/root-image.sh", out])
    })
}

/// What the dracut scenarios need beyond the VM rig; `None` = skipped.
fn prepare_dracut(flavour: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = prepare("6.1", false)?;
    let missing = if !on_path("dracut") {
        Some("dracut not found (apt-get install dracut-core)".to_string())
    } else if !on_path("debugfs") {
        Some("debugfs not found (apt-get install e2fsprogs)".to_string())
    } else if !Path::new("/usr/lib/dracut/modules.d/99base").is_dir() {
        Some("/usr/lib/dracut/modules.d/99base missing (dracut 059 layout)".to_string())
    } else if flavour == "systemd"
        && !Path::new("/usr/lib/dracut/modules.d/98dracut-systemd").is_dir()
    {
        Some("dracut's systemd modules missing (dracut-core, systemd)".to_string())
    } else {
        None
    };
    if let Some(m) = missing {
        skip(&m);
        return None;
    }
    Some(guard)
}

// ---------------------------------------------------------------------------------------------
// the console

/// `[   12.345678] text` → (12.345678, "text").
fn kmsg(line: &str) -> Option<(f64, &str)> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (ts, text) = rest.split_once(']')?;
    let t = ts.trim().parse().ok()?;
    Some((t, text.strip_prefix(' ').unwrap_or(text)))
}

/// Index of the first console line containing `needle` (outside the kernel's command-line echo).
fn line_of(b: &Booted, needle: &str) -> Option<usize> {
    b.agent_lines().position(|l| l.contains(needle))
}

/// /init → root's init, seconds: "Run /init as init process" printk time to `BENCH rootinit=`.
fn init_to_root(b: &Booted) -> Option<f64> {
    let init = b
        .console
        .lines()
        .filter_map(kmsg)
        .find(|(_, t)| t.contains("Run /init as init process"))?
        .0;
    let root: f64 = b
        .console
        .lines()
        .find_map(|l| l.trim().strip_prefix("BENCH rootinit="))?
        .trim()
        .parse()
        .ok()?;
    Some(root - init)
}

fn report_boot(name: &str, b: &Booted, initrd: &Initrd) {
    let root = init_to_root(b).map_or("n/a".to_string(), |s| format!("{s:.2} s"));
    report(&format!(
        "{name}: initramfs {} bytes ({} KiB), build {:.1} s (0 = cached), /init -> root {root}, QEMU wall {}",
        initrd.size,
        initrd.size / 1024,
        initrd.build_s,
        b.wall.map_or("n/a".to_string(), |w| format!("{w:.1} s")),
    ));
}

fn dracut_vm<'a>(name: &'a str, flavour: &str, append: String) -> (Vm<'a>, Initrd) {
    let initrd = dracut_initrd(flavour);
    let vm = Vm {
        name,
        kernel: "6.1",
        initrd: initrd.path.clone(),
        image: dracut_root_image(),
        chap: Some(format!("{CHAP_USER}:{CHAP_SECRET}")),
        mutual: None,
        append,
        configd: None,
    };
    (vm, initrd)
}

fn boot_dracut(vm: Vm) -> Booted {
    boot_with(vm, &["--timeout", DRACUT_BOOT_TIMEOUT_S])
}

/// One session only (netboot logged in once), and netboot picked the renamed interface.
fn assert_one_session_after_rename(b: &Booted) {
    let sessions = b
        .section("iscsi")
        .iter()
        .filter(|l| l.starts_with("session="))
        .count();
    assert_eq!(sessions, 1, "want exactly one iSCSI session\n{}", b.tail());
    let report = boot_json(b);
    let link = step_of(&report, "net.link")
        .unwrap_or_else(|| panic!("boot.json has no net.link step\n{}", b.tail()));
    assert_eq!(
        link["facts"]["iface"].as_str(),
        Some("ens3"),
        "netboot should use the interface udev renamed (eth0 -> ens3): {link}\n{}",
        b.tail()
    );
    let renamed = line_of(b, "ens3: renamed from eth0")
        .unwrap_or_else(|| panic!("no udev rename of eth0 on the console\n{}", b.tail()));
    let attach = line_of(b, "attach starting")
        .unwrap_or_else(|| panic!("no \"netboot … attach starting\" line\n{}", b.tail()));
    assert!(
        renamed < attach,
        "netboot attach started before udev renamed the NIC\n{}",
        b.tail()
    );
}

/// netboot's one failure line, and the index of the console line that carries it.
fn the_attach_failure(b: &Booted) -> usize {
    let lines: Vec<(usize, &str)> = b
        .agent_lines()
        .enumerate()
        .filter(|(_, l)| l.contains(ATTACH_FAILED))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "want exactly one line containing {ATTACH_FAILED:?}, got {lines:#?}\n{}",
        b.tail()
    );
    let (i, line) = lines[0];
    assert!(
        line.contains(IQN) && line.contains(&format!("\"{CHAP_USER}\"")),
        "the failure line should name the target and the user: {line}\n{}",
        b.tail()
    );
    i
}

fn assert_ended_without_root(b: &Booted) {
    assert_ne!(
        b.code,
        Some(2),
        "QEMU did not exit by itself (hang)\n{}",
        b.tail()
    );
    assert_eq!(b.code, Some(0), "boot.sh failed\n{}", b.tail());
    assert!(
        !b.console.contains("NETBOOT-ROOT-OK"),
        "the root's init ran: the boot should have failed\n{}",
        b.tail()
    );
}

// ---------------------------------------------------------------------------------------------
// VM scenarios

/// a. systemd flavour, dracut's spelling: netroot= + rd.iscsi.* (CHAP) + root=LABEL=.
#[test]
fn a_systemd_netroot_chap_label() {
    let Some(_vm) = prepare_dracut("systemd") else {
        return;
    };
    let (vm, initrd) = dracut_vm(
        "dracut-a-systemd",
        "systemd",
        format!(
            "{STATIC_IP} netroot=iscsi:{ROOT_PATH} rd.iscsi.initiator={IQN_A} \
             rd.iscsi.username={CHAP_USER} rd.iscsi.password={CHAP_SECRET} root=LABEL=nbroot {TAIL}"
        ),
    );
    let b = boot_dracut(vm);
    report_boot("a systemd netroot= CHAP root=LABEL=", &b, &initrd);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    let kv = b.iscsi();
    assert_eq!(
        kv.get("initiatorname").map(String::as_str),
        Some(IQN_A),
        "the session's initiator name\n{}",
        b.tail()
    );
    assert!(
        line_of(&b, "Finished netboot-attach.service").is_some()
            || b.console.contains("netboot-attach.se"),
        "netboot-attach.service did not run\n{}",
        b.tail()
    );
    assert_one_session_after_rename(&b);
    b.assert_no_secret(&[CHAP_SECRET]);
}

/// b. shell flavour (--omit systemd), root=iscsi: — the root is the LUN itself.
#[test]
fn b_shell_root_iscsi() {
    let Some(_vm) = prepare_dracut("shell") else {
        return;
    };
    let (vm, initrd) = dracut_vm(
        "dracut-b-shell",
        "shell",
        format!("{STATIC_IP} root=iscsi:{CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH} {TAIL}"),
    );
    let b = boot_dracut(vm);
    report_boot("b shell root=iscsi:", &b, &initrd);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    assert!(
        b.console
            .contains("dracut: Mounted root filesystem /dev/sda"),
        "rootfs-block did not mount the LUN\n{}",
        b.tail()
    );
    assert!(
        !b.console.contains("systemd[1]"),
        "the shell flavour image runs systemd\n{}",
        b.tail()
    );
    assert_one_session_after_rename(&b);
    b.assert_no_secret(&[CHAP_SECRET]);
}

/// c. systemd flavour, wrong CHAP secret: netboot's line, then dracut's emergency path.
#[test]
fn c_systemd_wrong_chap_emergency() {
    let Some(_vm) = prepare_dracut("systemd") else {
        return;
    };
    let (vm, initrd) = dracut_vm(
        "dracut-c-systemd-fail",
        "systemd",
        format!(
            "{STATIC_IP} netroot=iscsi:{ROOT_PATH} rd.iscsi.initiator={IQN_A} \
             rd.iscsi.username={CHAP_USER} rd.iscsi.password={WRONG_SECRET} root=LABEL=nbroot {TAIL}"
        ),
    );
    let b = boot_dracut(vm);
    report_boot("c systemd wrong CHAP secret", &b, &initrd);
    assert_ended_without_root(&b);
    let failed = the_attach_failure(&b);
    let emergency = line_of(&b, "Boot has failed")
        .unwrap_or_else(|| panic!("no dracut-emergency \"Boot has failed\"\n{}", b.tail()));
    let off = line_of(&b, "reboot: Power down")
        .unwrap_or_else(|| panic!("no power-off (rd.emergency=poweroff)\n{}", b.tail()));
    assert!(
        failed < emergency && emergency < off,
        "want netboot's line ({failed}) < dracut's emergency ({emergency}) < power-off ({off})\n{}",
        b.tail()
    );
    b.assert_no_secret(&[WRONG_SECRET, CHAP_SECRET]);
}

/// d. shell flavour, wrong CHAP secret inline: netboot's line, then dracut's `die`.
#[test]
fn d_shell_wrong_chap_die() {
    let Some(_vm) = prepare_dracut("shell") else {
        return;
    };
    let (vm, initrd) = dracut_vm(
        "dracut-d-shell-fail",
        "shell",
        format!("{STATIC_IP} root=iscsi:{CHAP_USER}:{WRONG_SECRET}@{ROOT_PATH} {TAIL}"),
    );
    let b = boot_dracut(vm);
    report_boot("d shell wrong CHAP secret", &b, &initrd);
    assert_ended_without_root(&b);
    let failed = the_attach_failure(&b);
    let fatal = line_of(&b, "dracut: FATAL: netboot:")
        .unwrap_or_else(|| panic!("no dracut FATAL line from die\n{}", b.tail()));
    let panic = line_of(&b, "Kernel panic - not syncing: Attempted to kill init")
        .unwrap_or_else(|| panic!("init did not exit after die (rd.shell=0)\n{}", b.tail()));
    assert!(
        failed < fatal && fatal < panic,
        "want netboot's line ({failed}) < dracut FATAL ({fatal}) < panic ({panic})\n{}",
        b.tail()
    );
    b.assert_no_secret(&[WRONG_SECRET, CHAP_SECRET]);
}

/// e. shell flavour, the config from configd over rxkad: the module installs the token
/// (`NETBOOT_CONFIG_TOKEN`), the command line names only the config server, configd hands the
/// CHAP secret out on an encrypted call only.
#[test]
fn e_shell_config_token_rxkad() {
    let Some(_vm) = prepare_dracut("shell") else {
        return;
    };
    let d = work_dir().join("dracut-rxkad");
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("conf")).unwrap();
    let keys = d.join("server.keys");
    let token = d.join("config.token");
    let (keys_s, token_s) = (keys.to_string_lossy(), token.to_string_lossy());
    run_tool(&["key", "new", "--kvno", "7", "--out", &keys_s]);
    run_tool(&[
        "token",
        "--keys",
        &keys_s,
        "--machine",
        "52:54:00:12:34:56",
        "--lifetime",
        "2h",
        "--out",
        &token_s,
    ]);
    let config = serde_json::json!({
        "version": 1,
        "paths": [{ "server": "198.18.0.1", "port": 3260, "lun": 1, "target": IQN,
                    "chap": { "username": CHAP_USER, "password": CHAP_SECRET } }],
        "initiator": "iqn.2026-11.test:dracut-e",
    });
    fs::write(
        d.join("conf/mac-52-54-00-12-34-56.json"),
        config.to_string(),
    )
    .unwrap();
    let initrd = dracut_initrd_with("shell", Some(&token));
    let vm = Vm {
        name: "dracut-e-shell-rxkad",
        kernel: "6.1",
        initrd: initrd.path.clone(),
        image: dracut_root_image(),
        chap: Some(format!("{CHAP_USER}:{CHAP_SECRET}")),
        mutual: None,
        append: format!("{STATIC_IP} netboot.config=rxrpc:198.18.0.1 {TAIL}"),
        configd: Some(d.join("conf")),
    };
    let b = boot_with(
        vm,
        &[
            "--timeout",
            DRACUT_BOOT_TIMEOUT_S,
            "--configd-args",
            &format!("--rxkad-keys {keys_s}"),
        ],
    );
    report_boot("e shell config over rxkad", &b, &initrd);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    let report = boot_json(&b);
    let fetch = step_of(&report, "config.fetch")
        .unwrap_or_else(|| panic!("no config.fetch step\n{}", b.tail()));
    assert_eq!(fetch["result"], "ok", "{fetch}\n{}", b.tail());
    assert_eq!(fetch["facts"]["security"], "encrypt", "{fetch}");
    assert_eq!(
        b.iscsi().get("initiatorname").map(String::as_str),
        Some("iqn.2026-11.test:dracut-e"),
        "the fetched initiator name\n{}",
        b.tail()
    );
    let hex: Vec<String> = fs::read_to_string(&token)
        .unwrap()
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() >= 16)
        .map(str::to_string)
        .collect();
    assert!(!hex.is_empty(), "no key material found in the token file");
    let mut secrets: Vec<&str> = hex.iter().map(String::as_str).collect();
    secrets.push(CHAP_SECRET);
    b.assert_no_secret(&secrets);
}

// ---------------------------------------------------------------------------------------------
// build-time shell against a fake sysfs (no root, no VM)

fn module_dir() -> PathBuf {
    Path::new(REPO).join("dracut/90netboot")
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn link(target: &str, at: &Path) {
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    symlink(target, at).unwrap_or_else(|e| panic!("symlink {}: {e}", at.display()));
}

/// A disk on iSCSI session `sid` (host `host`, LUN `lun`), with partition 1, in the fake sysfs.
#[allow(clippy::too_many_arguments)]
fn fake_iscsi_disk(
    sys: &Path,
    host: u32,
    sid: u32,
    lun: u32,
    disk: &str,
    major_minor: (u32, u32),
    attrs: &[(&str, &str)],
    conn: (&str, &str),
) {
    let sess = format!("devices/platform/host{host}/session{sid}");
    let dev = format!("{sess}/target{host}:0:0/{host}:0:0:{lun}/block/{disk}");
    let (ma, mi) = major_minor;
    write(&sys.join(&dev).join("dev"), &format!("{ma}:{mi}\n"));
    write(
        &sys.join(&dev).join(format!("{disk}1/dev")),
        &format!("{ma}:{}\n", mi + 1),
    );
    link(
        &format!("../../{dev}"),
        &sys.join(format!("dev/block/{ma}:{mi}")),
    );
    link(
        &format!("../../{dev}/{disk}1"),
        &sys.join(format!("dev/block/{ma}:{}", mi + 1)),
    );
    let s = format!("{sess}/iscsi_session/session{sid}");
    for (k, v) in attrs {
        write(&sys.join(&s).join(k), &format!("{v}\n"));
    }
    // The secret is there, as in a real sysfs (root-readable); it must never be printed.
    write(&sys.join(&s).join("password"), "SECRET-NEVER-PRINTED\n");
    link(
        &format!("../../{s}"),
        &sys.join(format!("class/iscsi_session/session{sid}")),
    );
    let c = format!("{sess}/connection{sid}:0/iscsi_connection/connection{sid}:0");
    write(
        &sys.join(&c).join("persistent_address"),
        &format!("{}\n", conn.0),
    );
    write(
        &sys.join(&c).join("persistent_port"),
        &format!("{}\n", conn.1),
    );
    link(
        &format!("../../{c}"),
        &sys.join(format!("class/iscsi_connection/connection{sid}:0")),
    );
}

/// The fake sysfs: session 1 (IPv4, CHAP, LUN 1) = sda 8:0, session 2 (IPv6, no CHAP, TPGT
/// 2, LUN 3, port 3261) = sdb 8:16, a device-mapper volume 254:0 on sdb, a virtio disk 252:0.
/// Its root lies below a directory that looks like an iSCSI device path itself.
fn fake_sysfs(dir: &Path) -> PathBuf {
    let sys = dir.join("host7/session9/target7:0:0/7:0:0:5/block/sdz/sys");
    fake_iscsi_disk(
        &sys,
        2,
        1,
        1,
        "sda",
        (8, 0),
        &[
            ("targetname", "iqn.2026-11.test:root"),
            ("tpgt", "1"),
            ("initiatorname", "iqn.2026-11.test:host-a"),
            ("username", "chapuser"),
        ],
        ("198.18.0.1", "3260"),
    );
    fake_iscsi_disk(
        &sys,
        3,
        2,
        3,
        "sdb",
        (8, 16),
        &[
            ("targetname", "iqn.2026-11.test:v6"),
            ("tpgt", "2"),
            ("initiatorname", "iqn.2026-11.test:host-b"),
            ("username", "(null)"),
        ],
        ("fd00::1", "3261"),
    );
    let dm = "devices/virtual/block/dm-0";
    write(&sys.join(dm).join("dev"), "254:0\n");
    link(
        "../../devices/virtual/block/dm-0",
        &sys.join("dev/block/254:0"),
    );
    link(
        "../../../../platform/host3/session2/target3:0:0/3:0:0:3/block/sdb",
        &sys.join(dm).join("slaves/sdb"),
    );
    let vda = "devices/pci0000:00/0000:00:04.0/virtio2/block/vda";
    write(&sys.join(vda).join("dev"), "252:0\n");
    link(&format!("../../{vda}"), &sys.join("dev/block/252:0"));
    sys
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = work_dir().join(support::unique_name(name));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Run `script` with `shell` (sh -c), the hostonly helpers sourced; (status, stdout, stderr).
fn run_shell(shell: &[&str], script: &str, env: &[(&str, &Path)]) -> (Option<i32>, String, String) {
    let mut c = Command::new(shell[0]);
    c.args(&shell[1..]).arg("-c").arg(script).current_dir(REPO);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shells the boot-time and build-time helpers must work in.
fn shells() -> Vec<Vec<&'static str>> {
    let mut v = vec![vec!["sh"], vec!["bash", "--posix"]];
    if Path::new("/usr/bin/busybox").is_file() {
        v.push(vec!["/usr/bin/busybox", "sh"]);
    }
    v
}

#[test]
fn hostonly_cmdline_from_fake_sysfs() {
    let dir = tmp_dir("dracut-sysfs");
    let sys = fake_sysfs(&dir);
    let lib = module_dir().join("netboot-hostonly.sh");
    let cases: &[(&str, Option<&str>)] = &[
        (
            "8:0",
            Some(
                "netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root\n\
                 rd.iscsi.initiator=iqn.2026-11.test:host-a\n\
                 rd.iscsi.username=chapuser\n",
            ),
        ),
        // A partition of the same disk: the same session and LUN.
        (
            "8:1",
            Some(
                "netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root\n\
                 rd.iscsi.initiator=iqn.2026-11.test:host-a\n\
                 rd.iscsi.username=chapuser\n",
            ),
        ),
        // IPv6 in brackets, no CHAP ("(null)"), TPGT 2, another port and LUN.
        (
            "8:16",
            Some(
                "netroot=iscsi:[fd00::1]::3261:3:iqn.2026-11.test:v6\n\
                 rd.iscsi.initiator=iqn.2026-11.test:host-b\n\
                 rd.iscsi.target.group=2\n",
            ),
        ),
        // device-mapper on top of the iSCSI disk: found through slaves/.
        (
            "254:0",
            Some(
                "netroot=iscsi:[fd00::1]::3261:3:iqn.2026-11.test:v6\n\
                 rd.iscsi.initiator=iqn.2026-11.test:host-b\n\
                 rd.iscsi.target.group=2\n",
            ),
        ),
        // Not on iSCSI (although the fake root's own path looks like one): nothing.
        ("252:0", None),
        ("9:9", None),
    ];
    for shell in shells() {
        for (dev, want) in cases {
            let (code, out, err) = run_shell(
                &shell,
                &format!(". '{}'; netboot_hostonly_cmdline {dev}", lib.display()),
                &[("NETBOOT_SYSFS", &sys)],
            );
            match want {
                Some(w) => {
                    assert_eq!(code, Some(0), "{shell:?} {dev}: status, stderr {err}");
                    assert_eq!(out, *w, "{shell:?} {dev}: output");
                }
                None => {
                    assert_eq!(
                        code,
                        Some(1),
                        "{shell:?} {dev}: want status 1, stderr {err}"
                    );
                    assert_eq!(out, "", "{shell:?} {dev}: want no output");
                }
            }
            assert!(
                !out.contains("SECRET") && !err.contains("SECRET"),
                "{shell:?} {dev}: the password leaked: {out}{err}"
            );
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// dracut's helpers as stubs that record their calls (one per line on stdout), then
/// module-setup.sh sourced as dracut sources it.
fn module_setup_script(body: &str) -> String {
    format!(
        r#"
derror() {{ echo "derror $*"; }}
dfatal() {{ echo "dfatal $*"; }}
dwarn() {{ echo "dwarn $*"; }}
dinfo() {{ :; }}
find_root_block_device() {{ echo "$FAKE_ROOT_DEV"; }}
optional_hostonly() {{ if [[ $hostonly_mode == strict ]]; then printf %s "$hostonly"; fi; }}
instmods() {{ echo "instmods [${{hostonly}}] $*"; }}
inst_simple() {{ echo "inst_simple $*"; }}
inst_script() {{ echo "inst_script $*"; }}
inst_multiple() {{ echo "inst_multiple $*"; }}
inst_hook() {{ echo "inst_hook $*"; }}
mark_hostonly() {{ echo "mark_hostonly $*"; }}
dracut_module_included() {{ [[ " $MODS " == *" $1 "* ]]; }}
moddir=$MODDIR
systemdutildir=/usr/lib/systemd
systemdsystemunitdir=/usr/lib/systemd/system
. "$moddir/module-setup.sh"
{body}
"#
    )
}

#[test]
fn module_setup_with_stubbed_dracut() {
    let dir = tmp_dir("dracut-setup");
    let sys = fake_sysfs(&dir);
    let initdir = dir.join("initdir");
    fs::create_dir_all(initdir.join("etc/cmdline.d")).unwrap();
    let fakebase = dir.join("ngbase");
    fs::create_dir_all(fakebase.join("modules.d/77initqueue")).unwrap();
    let moddir = module_dir();
    let bin = Path::new("/bin/true");
    let env = [
        ("NETBOOT_SYSFS", sys.as_path()),
        ("MODDIR", moddir.as_path()),
        ("NETBOOT_BIN", bin),
        // Whatever token this machine has: none unless a call names one.
        ("NETBOOT_CONFIG_TOKEN", Path::new("no")),
    ];
    let bash = ["bash"];
    let run = |body: &str| run_shell(&bash, &module_setup_script(body), &env);

    // check(): 255 when named or without hostonly; 0 with --hostonly on an iSCSI root; 255
    // with --hostonly on another root; 1 without a binary.
    let (_, out, err) = run("hostonly=''; FAKE_ROOT_DEV=8:1 check; echo rc=$?\n\
         hostonly=-h; FAKE_ROOT_DEV=8:1 check; echo rc=$?\n\
         hostonly=-h; FAKE_ROOT_DEV=252:0 check; echo rc=$?\n\
         NETBOOT_BIN=/nonexistent check; echo rc=$?\n");
    let rcs: Vec<&str> = out.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(
        rcs,
        ["rc=255", "rc=0", "rc=255", "rc=1"],
        "check(): {out}{err}"
    );
    assert!(out.contains("derror netboot: no netboot binary"), "{out}");

    // depends(): 059 keeps the initqueue in base; dracut-ng has a module for it.
    let (_, out, err) = run_shell(
        &bash,
        &module_setup_script(
            "dracutbasedir=/nonexistent depends | tr '\\n' ' '; echo; \
             dracutbasedir=\"$NGBASE\" depends | tr '\\n' ' '; echo",
        ),
        &[
            ("NETBOOT_SYSFS", sys.as_path()),
            ("MODDIR", moddir.as_path()),
            ("NETBOOT_BIN", bin),
            ("NGBASE", fakebase.as_path()),
        ],
    );
    assert_eq!(
        out, "base rootfs-block \nbase rootfs-block initqueue \n",
        "depends(): {err}"
    );

    // cmdline(): the live session of the root, never the password.
    let (code, out, _) = run("FAKE_ROOT_DEV=8:1 cmdline");
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root\n\
         rd.iscsi.initiator=iqn.2026-11.test:host-a\n\
         rd.iscsi.username=chapuser\n"
    );

    // installkernel(): the login, disk, file system and NIC drivers.
    let (_, out, _) = run("hostonly=''; installkernel");
    for m in [
        "iscsi_tcp",
        "sd_mod",
        "crc32c",
        "scsi_transport_iscsi",
        "ext4",
        "xfs",
        "btrfs",
        "virtio_net",
        "e1000e",
        "=drivers/net/ethernet",
    ] {
        assert!(
            out.split_whitespace().any(|w| w == m),
            "installkernel() lacks {m}: {out}"
        );
    }

    // install(), systemd flavour with --hostonly-cmdline: unit + generator, no initqueue
    // hooks, the hostonly file.
    let initdir_s = initdir.to_string_lossy();
    let (code, out, err) = run(&format!(
        "MODS='systemd base rootfs-block netboot'; initdir='{initdir_s}'; hostonly=-h; \
         hostonly_cmdline=yes; FAKE_ROOT_DEV=8:1 install; echo rc=$?"
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.ends_with("rc=0\n"), "install(): {out}{err}");
    for want in [
        "inst_simple /bin/true /usr/sbin/netboot",
        "inst_hook cmdline 20 ",
        "/usr/lib/systemd/system/netboot-attach.service",
        "/usr/lib/systemd/system-generators/netboot-generator",
        "mark_hostonly /etc/cmdline.d/90netboot.conf",
        "99-default.link",
    ] {
        assert!(
            out.contains(want),
            "install() (systemd) lacks {want:?}: {out}"
        );
    }
    assert!(
        !out.contains("initqueue/"),
        "initqueue hooks in the systemd flavour: {out}"
    );
    assert_eq!(
        fs::read_to_string(initdir.join("etc/cmdline.d/90netboot.conf")).unwrap(),
        "netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root\n\
         rd.iscsi.initiator=iqn.2026-11.test:host-a\n\
         rd.iscsi.username=chapuser\n"
    );

    // install(), shell flavour without hostonly: the initqueue hooks, no unit, no file.
    let _ = fs::remove_file(initdir.join("etc/cmdline.d/90netboot.conf"));
    let (_, out, err) = run(&format!(
        "MODS='base rootfs-block netboot'; initdir='{initdir_s}'; hostonly=''; \
         hostonly_cmdline=no; FAKE_ROOT_DEV=8:1 install; echo rc=$?"
    ));
    assert!(out.ends_with("rc=0\n"), "install(): {out}{err}");
    for want in [
        "inst_hook initqueue/settled 50 ",
        "inst_hook initqueue/finished 50 ",
    ] {
        assert!(
            out.contains(want),
            "install() (shell) lacks {want:?}: {out}"
        );
    }
    assert!(
        !out.contains("netboot-attach.service"),
        "unit in the shell flavour: {out}"
    );
    assert!(!initdir.join("etc/cmdline.d/90netboot.conf").exists());

    // install() next to dracut's own iscsi module: a clear refusal that stops dracut.
    let (code, out, _) = run(&format!(
        "MODS='systemd base iscsi network netboot'; initdir='{initdir_s}'; install; echo rc=$?"
    ));
    assert_eq!(code, Some(1), "install() with iscsi must exit 1: {out}");
    assert!(
        out.contains("dfatal netboot: dracut's 'iscsi' module is included too")
            && !out.contains("rc="),
        "install() with iscsi: {out}"
    );

    // The rxkad token: NETBOOT_CONFIG_TOKEN=FILE goes in as /etc/netboot/config.token mode
    // 0600; =no leaves it out; a missing file stops dracut with the variable and its value.
    let token = dir.join("host.token");
    fs::write(&token, "netboot rxkad token v1\n").unwrap();
    let token_s = token.to_string_lossy();
    let copying = "inst_simple() { echo \"inst_simple $*\"; mkdir -p \"$initdir${2%/*}\"; \
                   cp \"$1\" \"$initdir$2\"; }";
    let (code, out, err) = run(&format!(
        "{copying}; initdir='{initdir_s}'; NETBOOT_CONFIG_TOKEN='{token_s}' netboot_install_token; \
         echo rc=$?"
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("inst_simple {token_s} /etc/netboot/config.token"))
            && out.ends_with("rc=0\n"),
        "token: {out}{err}"
    );
    let inside = initdir.join("etc/netboot/config.token");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        fs::metadata(&inside).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let _ = fs::remove_file(&inside);
    let (_, out, _) = run(&format!(
        "{copying}; initdir='{initdir_s}'; NETBOOT_CONFIG_TOKEN=no netboot_install_token; echo rc=$?"
    ));
    assert_eq!(out, "rc=0\n", "NETBOOT_CONFIG_TOKEN=no");
    let (_, out, _) = run(&format!(
        "{copying}; initdir='{initdir_s}'; NETBOOT_CONFIG_TOKEN=/nonexistent/t netboot_install_token; \
         echo rc=$?"
    ));
    assert!(
        out.contains("dfatal netboot: NETBOOT_CONFIG_TOKEN=/nonexistent/t: no such readable file")
            && out.ends_with("rc=1\n"),
        "missing token: {out}"
    );
    assert!(!inside.exists());
    let _ = fs::remove_dir_all(&dir);
}

/// The boot-time helpers (cmdline hook, generator) decide from the command line alone.
#[test]
fn runtime_lib_claims() {
    let lib = module_dir().join("netboot-lib.sh");
    // A minimal getarg/getargs/getargbool over $CMDLINE, as dracut-lib.sh's (last one wins).
    let stub = r#"
getarg() { _k=${1%=}; _v=""; _f=1; for w in $CMDLINE; do case "$w" in "$_k="*) _v=${w#*=}; _f=0;; "$_k") _v=1; _f=0;; esac; done; [ $_f = 0 ] && printf '%s' "$_v"; return $_f; }
getargs() { _k=${1%=}; for w in $CMDLINE; do case "$w" in "$_k="*) printf '%s ' "${w#*=}";; esac; done; }
getargbool() { _v=$(getarg "$2") || return 1; [ "$_v" != 0 ]; }
"#;
    let cases: &[(&str, &str, &str, &str)] = &[
        // cmdline, wanted, root is the LUN, timeout
        ("root=LABEL=x", "no", "no", "120"),
        (
            "netroot=iscsi:1.2.3.4::::iqn.x root=LABEL=x",
            "yes",
            "no",
            "120",
        ),
        ("iscsi=1.2.3.4::::iqn.x", "yes", "yes", "120"),
        (
            "root=iscsi:1.2.3.4::::iqn.x netboot.timeout=30.5",
            "yes",
            "yes",
            "30",
        ),
        ("root=dhcp", "yes", "yes", "120"),
        ("netroot=dhcp root=UUID=abc", "yes", "no", "120"),
        (
            "netboot.config=rxrpc:1.2.3.4 root=/dev/sda1",
            "yes",
            "no",
            "120",
        ),
        ("rd.iscsi.firmware=1", "yes", "yes", "120"),
        ("rd.iscsi.initiator=iqn.x root=/dev/vda1", "no", "no", "120"),
        (
            "netroot=nfs:1.2.3.4:/x netboot.timeout=junk",
            "no",
            "yes",
            "120",
        ),
    ];
    for shell in shells() {
        for (cmdline, wanted, lun, timeout) in cases {
            let script = format!(
                "{stub}\n. '{}'\n\
                 if netboot_wanted; then echo wanted=yes; else echo wanted=no; fi\n\
                 if netboot_root_is_lun; then echo lun=yes; else echo lun=no; fi\n\
                 echo timeout=$(netboot_timeout_s)\n",
                lib.display()
            );
            let mut c = Command::new(shell[0]);
            c.args(&shell[1..])
                .arg("-c")
                .arg(&script)
                .env("CMDLINE", cmdline);
            let out = c.output().unwrap();
            let got = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                got,
                format!("wanted={wanted}\nlun={lun}\ntimeout={timeout}\n"),
                "{shell:?} {cmdline:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
