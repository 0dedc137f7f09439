//! The mkinitcpio integration (`mkinitcpio/`): install hook, runtime hook, systemd-flavour
//! unit and generator. mkinitcpio is not packaged for Debian, so nothing here runs a real
//! mkinitcpio; what is checked instead:
//!
//! - **shellcheck** on the hook files (install hook as bash, runtime hook and generator as sh);
//! - **recorded `build()`** (no root): `qemu/mkinitcpio/record.sh` sources
//!   `mkinitcpio/install/netboot` in `qemu/mkinitcpio/fake-env.sh`, a stand-in for the
//!   documented API (mkinitcpio(8) "About install hooks", install/systemd's
//!   `add_systemd_unit`) whose every `add_*` records its call; `build()` runs in both flavours
//!   and `help()` is printed;
//! - **the generator** (no root): `mkinitcpio/netboot-generator` run under `sh` and
//!   `busybox sh` on command lines of each form; the unit and a generated `sysroot.mount`
//!   through `systemd-analyze verify`;
//! - **the runtime hook in a VM** (root): `qemu/mkinitcpio/build.sh` lays out an initramfs as
//!   mkinitcpio does (usr-merged tree, busybox applets and kmod as the base hook gives them,
//!   only the binary module indexes) with our real `build()` doing the adding, and
//!   `qemu/mkinitcpio/init` as /init: our init following mkinitcpio's documented boot order,
//!   which sources the real `mkinitcpio/hooks/netboot` in busybox ash. Every step of that init
//!   prints a `MKINITCPIO-TEST:` line, asserted below in order;
//! - **the systemd flavour in a VM** (root, dracut-core): `qemu/mkinitcpio/build-systemd.sh`
//!   has Debian's dracut assemble a plain systemd initramfs (systemd, systemd-initrd,
//!   systemd-udevd, udev-rules: none of dracut's own boot logic) with our unit, generator and
//!   binary at install/netboot's paths (test module `qemu/mkinitcpio/sd-dracut`), binary module
//!   indexes only; root from systemd-fstab-generator (`root=LABEL=`) or from our generator's
//!   `sysroot.mount` (`root=iscsi:`). The root image gets an `/etc/os-release` (debugfs), which
//!   systemd's switch-root requires.
//!
//! VM rig as in tests/vm.rs (`qemu/boot.sh`: netns with br0 198.18.0.1/24, tgtd portal
//! 198.18.0.1:3260, target `iqn.2026-11.test:root`, LUN 1 = a fresh copy of `plain.img`, ext4
//! over the whole LUN labelled `nbroot`, whose /sbin/init prints `NETBOOT-ROOT-OK`, mountinfo
//! and the session's sysfs attributes; guest eth0 198.18.0.2/24, kernel 6.1):
//!
//! | scenario | command line (after [`GUEST_NET`]) | rig | expected |
//! |---|---|---|---|
//! | `vm_label_root` | `iscsi=ROOT_PATH root=LABEL=nbroot` | | root /dev/sda via the hook |
//! | `vm_iscsi_root_chap` | `root=iscsi:chapuser:SECRET@ROOT_PATH` | `--chap` | the whole LUN, CHAP user in sysfs, no secret on the console |
//! | `vm_wrong_chap_emergency` | `root=iscsi:chapuser:WRONG@ROOT_PATH` | `--chap` | netboot's one line, init's failed mount, the emergency shell (`mkinitcpio_test_noshell`: a line and power-off) |
//! | `vm_systemd_label_root` | `iscsi=ROOT_PATH root=LABEL=nbroot`, `ip=` without interface | | systemd initramfs: the fstab generator's sysroot.mount, root /dev/sda |
//! | `vm_systemd_iscsi_root_chap` | `root=iscsi:chapuser:SECRET@ROOT_PATH` | `--chap` | systemd initramfs: our generator's sysroot.mount, no secret on the console |
//! | `vm_systemd_wrong_chap_emergency` | `root=iscsi:chapuser:WRONG@ROOT_PATH nbtest.emergency_poweroff` | `--chap` | netboot's line, the unit failed, emergency.target (then the test image powers off) |
//!
//! Without root or the VM prerequisites the VM tests print `skipped: …`; with
//! `NETBOOT_REQUIRE_VM=1` that is a failure. Run: `cargo test --test mkinitcpio --
//! --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;
mod vm_support;

use vm_support::*;

/// The guest's network and the test seam of our init (a failure ends in a power-off, not in
/// a shell waiting for a keyboard). `eth0`: no udev in the test image renames it.
const GUEST_NET: &str = "ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off \
     netboot.timeout=60 mkinitcpio_test_noshell";

fn report(name: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "mkinitcpio: {name}: {what}");
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(REPO).join(rel)
}

/// Run a command; (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// recorded build()

struct Recorded {
    calls: Vec<Vec<String>>,
    status: i32,
    text: String,
}

impl Recorded {
    fn has(&self, call: &[&str]) -> bool {
        self.calls.iter().any(|c| c == call)
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Vec<String>> + 'a {
        self.calls.iter().filter(move |c| c[0] == name)
    }

    /// build() returned 1 and its first `error` call's message contains `needle`.
    fn assert_failed_naming(&self, needle: &str) {
        assert_eq!(self.status, 1, "build() succeeded:\n{}", self.text);
        let e = self
            .named("error")
            .next()
            .unwrap_or_else(|| panic!("no error() call:\n{}", self.text));
        assert!(
            e.get(1).is_some_and(|m| m.contains(needle)),
            "the error does not contain {needle:?}: {e:?}"
        );
    }

    fn assert_has(&self, call: &[&str]) {
        assert!(self.has(call), "no call {call:?} recorded:\n{}", self.text);
    }
}

/// `build()` of the install hook in the recording stand-in; `env` adds variables.
fn record(flavour: &str, opts: &[&str], env: &[(&str, &str)]) -> Recorded {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_path("qemu/mkinitcpio/record.sh"))
        .arg(flavour)
        .args(opts)
        .current_dir(REPO)
        // Not a host booted by netboot, whatever this machine is.
        .env("NETBOOT_ROOT_ENV", "/nonexistent/root.env")
        .env_remove("NETBOOT_FILESYSTEMS")
        .env_remove("NETBOOT_MODULES")
        .env_remove("NETBOOT_BINARY")
        // Whatever token this machine has: none unless a test names one.
        .env("NETBOOT_CONFIG_TOKEN", "no");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(
        code,
        Some(0),
        "record.sh {flavour} failed:\n{stdout}\n{stderr}"
    );
    let calls: Vec<Vec<String>> = stdout
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    let status = calls
        .iter()
        .find(|c| c[0] == "build_status")
        .and_then(|c| c.get(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no build_status line:\n{stdout}"));
    Recorded {
        calls,
        status,
        text: format!("{stdout}\n--- stderr ---\n{stderr}"),
    }
}

const ISCSI_MODULES: &[&str] = &[
    "iscsi_tcp",
    "libiscsi",
    "libiscsi_tcp",
    "scsi_transport_iscsi",
    "sd_mod",
    "crc32c",
];

/// What both flavours add: the binary, the iSCSI/SCSI modules, the file systems (optional),
/// the wired NIC drivers through the autodetect filter.
fn assert_common(r: &Recorded, binary: &str) {
    assert_eq!(r.status, 0, "build() failed:\n{}", r.text);
    r.assert_has(&["add_binary", binary, "/usr/sbin/netboot", "755"]);
    for m in ISCSI_MODULES {
        r.assert_has(&["add_module", m]);
    }
    let nic = r
        .named("add_checked_modules")
        .find(|c| c.last().map(String::as_str) == Some("/drivers/net/"))
        .unwrap_or_else(|| panic!("no add_checked_modules … /drivers/net/:\n{}", r.text));
    let filter = nic
        .iter()
        .position(|a| a == "-f")
        .and_then(|i| nic.get(i + 1))
        .unwrap_or_else(|| panic!("the NIC modules have no -f filter: {nic:?}"));
    for left_out in ["wireless", "wwan", "usb"] {
        assert!(
            filter.contains(left_out),
            "filter {filter:?} keeps {left_out}"
        );
    }
    r.assert_has(&["add_module", "virtio_net?"]);
    // depmod's text inputs, kept outside the module directory mkinitcpio prunes, for the
    // runtime hook's index rebuild.
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        let dest = format!("/usr/lib/netboot/modules/{f}");
        assert!(
            r.named("add_file")
                .any(|c| c.get(1).is_some_and(|s| s.ends_with(&format!("/{f}")))
                    && c.get(2) == Some(&dest)),
            "{f} not added as {dest}:\n{}",
            r.text
        );
    }
    // Nothing is added by path: names only, resolved by mkinitcpio.
    for c in r.named("add_module") {
        assert!(!c[1].contains('/'), "module by path: {c:?}");
    }
    assert_eq!(
        r.named("error").count(),
        0,
        "build() reported errors:\n{}",
        r.text
    );
}

#[test]
fn busybox_flavour_build_adds_binary_modules_and_runscript() {
    let bin = "/opt/test/netboot";
    let r = record("busybox", &[], &[("NETBOOT_BINARY", bin)]);
    assert_common(&r, bin);
    for fs in ["ext4?", "xfs?", "btrfs?"] {
        r.assert_has(&["add_module", fs]);
    }
    r.assert_has(&["add_runscript"]);
    // add_runscript found hooks/netboot (the install hook's own name) and registers only
    // run_hook: nothing runs at cleanup, so the session outlives switch_root.
    r.assert_has(&["runscript", "netboot", "run_hook"]);
    assert_eq!(
        r.named("add_systemd_unit").count(),
        0,
        "systemd unit in the busybox flavour:\n{}",
        r.text
    );
}

#[test]
fn systemd_flavour_build_adds_unit_and_generator() {
    let r = record("systemd", &[], &[]);
    assert_common(&r, "/usr/sbin/netboot");
    r.assert_has(&["add_systemd_unit", "netboot-attach.service"]);
    // add_systemd_unit followed the unit's ExecStart= and OnFailure=.
    r.assert_has(&["add_binary", "/usr/sbin/netboot"]);
    r.assert_has(&[
        "unit_dependency",
        "netboot-attach.service",
        "OnFailure",
        "emergency.target",
    ]);
    r.assert_has(&[
        "add_binary",
        "/usr/lib/initcpio/netboot-generator",
        "/usr/lib/systemd/system-generators/netboot-generator",
        "755",
    ]);
    assert!(
        !r.has(&["add_runscript"]),
        "runtime hook added in the systemd flavour (it would never run):\n{}",
        r.text
    );
}

#[test]
fn systemd_flavour_without_base_hook_is_an_error() {
    let r = record("systemd", &["--no-base"], &[]);
    r.assert_failed_naming("'base'");
}

#[test]
fn the_config_token_goes_in_mode_600_or_its_absence_is_an_error() {
    let dir = work_tmp("token");
    let token = dir.join("config.token");
    fs::write(&token, "netboot rxkad token v1\n").unwrap();
    let t = token.to_string_lossy().into_owned();
    for flavour in ["busybox", "systemd"] {
        let r = record(flavour, &[], &[("NETBOOT_CONFIG_TOKEN", &t)]);
        assert_common(&r, "/usr/sbin/netboot");
        r.assert_has(&["add_file", &t, "/etc/netboot/config.token", "600"]);
    }
    let r = record("busybox", &[], &[]);
    assert!(
        !r.named("add_file")
            .any(|c| c.get(2).map(String::as_str) == Some("/etc/netboot/config.token")),
        "NETBOOT_CONFIG_TOKEN=no still added a token:\n{}",
        r.text
    );
    let r = record(
        "busybox",
        &[],
        &[("NETBOOT_CONFIG_TOKEN", "/nonexistent/config.token")],
    );
    r.assert_failed_naming("NETBOOT_CONFIG_TOKEN=/nonexistent/config.token");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn file_systems_from_the_booted_root_or_the_variable() {
    let dir = work_tmp("fs");
    let env_file = dir.join("root.env");
    fs::write(
        &env_file,
        "NETBOOT_ROOT='/dev/sda1'\nNETBOOT_FSTYPE='xfs'\nNETBOOT_RO='1'\n",
    )
    .unwrap();
    let booted = env_file.to_string_lossy().into_owned();
    let r = record("busybox", &[], &[("NETBOOT_ROOT_ENV", &booted)]);
    assert_eq!(r.status, 0, "{}", r.text);
    r.assert_has(&["add_module", "xfs"]);
    assert!(!r.has(&["add_module", "ext4?"]), "{}", r.text);

    let r = record(
        "busybox",
        &[],
        &[
            ("NETBOOT_FILESYSTEMS", "btrfs ext4"),
            ("NETBOOT_MODULES", "ixgbe bnxt_en"),
        ],
    );
    assert_eq!(r.status, 0, "{}", r.text);
    for m in ["btrfs", "ext4", "ixgbe", "bnxt_en"] {
        r.assert_has(&["add_module", m]);
    }
    assert!(!r.has(&["add_module", "xfs?"]), "{}", r.text);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn help_explains_the_hook_and_the_command_line() {
    let (code, out, err) = run(Command::new("bash")
        .arg(repo_path("qemu/mkinitcpio/record.sh"))
        .arg("help")
        .current_dir(REPO));
    assert_eq!(code, Some(0), "{out}{err}");
    for needle in [
        "iscsi=",
        "root=iscsi:",
        "netroot=",
        "rd.iscsi.initiator=",
        "rd.iscsi.username=",
        "netboot.timeout=",
        "netboot.on_fail=",
        "root=LABEL=",
        "HOOKS=(base udev",
        "HOOKS=(base systemd",
        "`net` hook",
        "emergency",
    ] {
        assert!(out.contains(needle), "help lacks {needle:?}:\n{out}");
    }
}

#[test]
fn hook_files_pass_shellcheck() {
    if !on_path("shellcheck") {
        support::skip_unless_required(
            "NETBOOT_REQUIRE_TARGETS",
            "shellcheck",
            "shellcheck not installed (apt-get install shellcheck)",
        );
        return;
    }
    // Each file names its shell in a `# shellcheck shell=` directive; check that too.
    for (file, shell) in [
        ("mkinitcpio/install/netboot", "bash"),
        ("mkinitcpio/hooks/netboot", "sh"),
        ("mkinitcpio/netboot-generator", "sh"),
        ("qemu/mkinitcpio/init", "sh"),
    ] {
        let text = fs::read_to_string(repo_path(file)).unwrap();
        assert!(
            text.contains(&format!("# shellcheck shell={shell}")),
            "{file} lacks `# shellcheck shell={shell}`"
        );
        let (code, out, err) = run(Command::new("shellcheck")
            .args(["-x", "-s", shell, file])
            .current_dir(REPO));
        assert_eq!(code, Some(0), "shellcheck -s {shell} {file}:\n{out}{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// the generator and the unit

fn work_tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(support::unique_name(&format!("nb-mkinitcpio-{name}")));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Run the generator under `shell` for `cmdline`; (normal dir, early dir).
fn generate(shell: &[&str], dir: &Path, cmdline: &str) -> (PathBuf, PathBuf) {
    let file = dir.join("cmdline");
    fs::write(&file, format!("{cmdline}\n")).unwrap();
    let (normal, early, late) = (dir.join("normal"), dir.join("early"), dir.join("late"));
    let (code, out, err) = run(Command::new(shell[0])
        .args(&shell[1..])
        .arg(repo_path("mkinitcpio/netboot-generator"))
        .arg(&normal)
        .arg(&early)
        .arg(&late)
        .env("NETBOOT_GENERATOR_CMDLINE", &file));
    assert_eq!(code, Some(0), "generator on {cmdline:?}: {out}{err}");
    (normal, early)
}

fn wants_attach(normal: &Path) -> bool {
    normal
        .join("initrd-root-device.target.wants/netboot-attach.service")
        .symlink_metadata()
        .is_ok()
}

/// (command line, unit wanted, our sysroot.mount: its Type= line ("" = none) and Options=).
type GeneratorCase = (&'static str, bool, Option<(&'static str, &'static str)>);

#[test]
fn generator_enables_the_unit_only_for_an_iscsi_root() {
    let mut shells: Vec<Vec<&str>> = vec![vec!["sh"]];
    if Path::new("/usr/bin/busybox").is_file() {
        shells.push(vec!["/usr/bin/busybox", "sh"]);
    }
    let table: &[GeneratorCase] = &[
        ("BOOT_IMAGE=/vmlinuz root=UUID=1234 rw quiet", false, None),
        ("root=/dev/sda2 ip=dhcp", false, None),
        (
            "iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root root=LABEL=nbroot",
            true,
            None,
        ),
        (
            "netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root root=PARTUUID=ab-01",
            true,
            None,
        ),
        (
            "root=iscsi:u:p@198.18.0.1::3260:1:iqn.2026-11.test:root rootfstype=ext4 rw rootflags=noatime",
            true,
            Some(("Type=ext4", "Options=rw,noatime")),
        ),
        (
            "netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root",
            true,
            Some(("", "Options=ro")),
        ),
        ("ip=dhcp root=dhcp", true, Some(("", "Options=ro"))),
        // After "--" the words belong to init, not to us.
        ("root=/dev/sda1 -- iscsi=x", false, None),
    ];
    for shell in &shells {
        for (cmdline, wanted, mount) in table {
            let dir = work_tmp("gen");
            let (normal, early) = generate(shell, &dir, cmdline);
            assert_eq!(
                wants_attach(&normal),
                *wanted,
                "{shell:?} {cmdline:?}: wants link"
            );
            let unit = early.join("sysroot.mount");
            match mount {
                None => assert!(
                    !unit.exists(),
                    "{shell:?} {cmdline:?}: sysroot.mount written (systemd-fstab-generator owns it)"
                ),
                Some((ty, opts)) => {
                    let text = fs::read_to_string(&unit)
                        .unwrap_or_else(|e| panic!("{shell:?} {cmdline:?}: {e}"));
                    for line in [
                        "What=/run/netboot/root",
                        "Where=/sysroot",
                        "Requires=netboot-attach.service",
                        "After=netboot-attach.service",
                        *opts,
                    ] {
                        assert!(
                            text.lines().any(|l| l == line),
                            "{cmdline:?}: no {line:?} in\n{text}"
                        );
                    }
                    if ty.is_empty() {
                        assert!(!text.contains("Type="), "{cmdline:?}: {text}");
                    } else {
                        assert!(text.lines().any(|l| l == *ty), "{cmdline:?}: {text}");
                    }
                    assert!(
                        normal
                            .join("initrd-root-fs.target.requires/sysroot.mount")
                            .symlink_metadata()
                            .is_ok(),
                        "{cmdline:?}: sysroot.mount not required by initrd-root-fs.target"
                    );
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn unit_and_generated_mount_pass_systemd_analyze_verify() {
    if !on_path("systemd-analyze") {
        support::note_skip("systemd-analyze not installed");
        return;
    }
    let dir = work_tmp("verify");
    let root = dir.join("root");
    let sbin = root.join("usr/sbin");
    let units = root.join("usr/lib/systemd/system");
    let etc_units = root.join("etc/systemd/system");
    for d in [&sbin, &units, &etc_units] {
        fs::create_dir_all(d).unwrap();
    }
    // A stand-in for the binary: verify checks that ExecStart= is executable.
    let fake = sbin.join("netboot");
    fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&fake)
        .status()
        .unwrap();
    fs::copy(
        repo_path("mkinitcpio/netboot-attach.service"),
        units.join("netboot-attach.service"),
    )
    .unwrap();
    let (_, early) = generate(
        &["sh"],
        &dir,
        "root=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root rootfstype=ext4",
    );
    fs::copy(early.join("sysroot.mount"), etc_units.join("sysroot.mount")).unwrap();
    for unit in [
        units.join("netboot-attach.service"),
        etc_units.join("sysroot.mount"),
    ] {
        let (code, out, err) = run(Command::new("systemd-analyze")
            .arg(format!("--root={}", root.display()))
            .arg("verify")
            .arg(&unit));
        assert_eq!(
            code,
            Some(0),
            "systemd-analyze verify {}:\n{out}{err}",
            unit.display()
        );
        assert!(
            err.trim().is_empty(),
            "systemd-analyze verify {} warns:\n{err}",
            unit.display()
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// the runtime hook in a VM

fn mkinitcpio_initrd(kernel: &str) -> PathBuf {
    let bin = netboot_bin().to_string_lossy().into_owned();
    let t = Instant::now();
    let p = artifact(&format!("mkinitcpio-{kernel}.cpio.gz"), |out| {
        script(&[
            "qemu/mkinitcpio/build.sh",
            "--kernel",
            kernel,
            "--netboot",
            &bin,
            "--out",
            out,
        ])
    });
    let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    report(
        "initramfs",
        &format!(
            "{} ({size} bytes), built or found in {:.1} s",
            p.display(),
            t.elapsed().as_secs_f64()
        ),
    );
    p
}

fn vm(name: &str, extra: &str, chap: Option<&str>) -> Option<Booted> {
    let guard = prepare("6.1", false)?;
    if !on_path("kmod") {
        skip("kmod not installed (the test image carries it as mkinitcpio's base hook does)");
        return None;
    }
    let initrd = mkinitcpio_initrd("6.1");
    let b = boot(Vm {
        name,
        kernel: "6.1",
        initrd,
        image: plain_image(),
        chap: chap.map(str::to_string),
        mutual: None,
        append: format!("{GUEST_NET} {extra}"),
        configd: None,
    });
    drop(guard);
    report(
        name,
        &format!("boot.sh exit {:?}, wall {:?} s", b.code, b.wall),
    );
    Some(b)
}

/// The `MKINITCPIO-TEST:` lines of our init, in console order, each `needle` found after the
/// previous one.
fn assert_in_order(b: &Booted, needles: &[&str]) {
    let lines: Vec<&str> = b.console.lines().collect();
    let mut from = 0;
    for n in needles {
        match lines
            .get(from..)
            .unwrap_or_default()
            .iter()
            .position(|l| l.contains(n))
        {
            Some(i) => from += i + 1,
            None => panic!(
                "console lacks {n:?} (in this order: {needles:?})\n{}",
                b.tail()
            ),
        }
    }
}

/// The image came with binary module indexes only (as mkinitcpio's do); after the hook the
/// text ones exist, the built-in list is not emptied, and netboot loaded its modules from
/// them (boot.json's `modules` step).
fn assert_module_indexes(b: &Booted) {
    let line = |prefix: &str| {
        b.console
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line\n{}", b.tail()))
            .to_string()
    };
    let before = line("MKINITCPIO-TEST: module indexes before the hooks:");
    let after = line("MKINITCPIO-TEST: module indexes after the hooks:");
    assert!(before.contains("modules.dep.bin("), "{before}");
    assert!(
        !before.contains(" modules.dep("),
        "text index in the image: {before}"
    );
    for f in ["modules.dep(", "modules.alias(", "modules.builtin("] {
        assert!(after.contains(f), "no {f}…) after the hook: {after}");
    }
    assert!(
        !after.contains("modules.builtin.bin(0)"),
        "the rebuild emptied modules.builtin.bin: {after}"
    );
    let report = boot_json(b);
    let step = step_of(&report, "modules")
        .unwrap_or_else(|| panic!("no modules step in boot.json\n{}", b.tail()));
    assert!(
        step["facts"].get("skipped").is_none(),
        "netboot loaded no modules: {step}"
    );
    let loaded = step["facts"]["loaded"].as_str().unwrap_or_default();
    assert!(loaded.contains("iscsi_tcp"), "modules step: {step}");
}

/// The source and fstype of `/` in the root's mountinfo section.
fn root_source(b: &Booted) -> (String, String) {
    for l in b.section("mountinfo") {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(4) == Some(&"/") {
            if let Some(dash) = f.iter().position(|x| *x == "-") {
                return (
                    f.get(dash + 2).unwrap_or(&"").to_string(),
                    f.get(dash + 1).unwrap_or(&"").to_string(),
                );
            }
        }
    }
    panic!("no / in mountinfo\n{}", b.tail());
}

#[test]
fn vm_label_root() {
    let Some(b) = vm(
        "mkinitcpio-label",
        &format!("iscsi={ROOT_PATH} root=LABEL=nbroot"),
        None,
    ) else {
        return;
    };
    b.assert_root_ok();
    assert_in_order(
        &b,
        &[
            "MKINITCPIO-TEST: init started, pid 1",
            "MKINITCPIO-TEST: hooks: early='' main=' netboot'",
            "MKINITCPIO-TEST: run_hook [netboot]",
            ":: netboot: attaching the iSCSI root",
            "netboot: netboot 0.1.0 attach starting",
            ":: netboot: root /dev/sda (ext4) on iqn.2026-11.test:root",
            "MKINITCPIO-TEST: after run_hook: root='/dev/sda' rootfstype='ext4'",
            "MKINITCPIO-TEST: root resolved: /dev/sda",
            "MKINITCPIO-TEST: fsck would check: /dev/sda",
            "MKINITCPIO-TEST: mounting /dev/sda on /new_root (type ext4, options ro)",
            "MKINITCPIO-TEST: switch_root to /sbin/init",
            "NETBOOT-ROOT-OK",
        ],
    );
    assert_eq!(
        root_source(&b),
        ("/dev/sda".into(), "ext4".into()),
        "{}",
        b.tail()
    );
    assert_iscsi_report(&b, None);
    assert_module_indexes(&b);
}

#[test]
fn vm_iscsi_root_chap() {
    let Some(b) = vm(
        "mkinitcpio-iscsi-root",
        &format!("root=iscsi:{CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH}"),
        Some(&format!("{CHAP_USER}:{CHAP_SECRET}")),
    ) else {
        return;
    };
    b.assert_root_ok();
    assert_in_order(
        &b,
        &[
            "MKINITCPIO-TEST: run_hook [netboot]",
            "netboot: netboot 0.1.0 attach starting",
            ":: netboot: root /dev/sda (ext4)",
            "MKINITCPIO-TEST: root resolved: /dev/sda",
            // fsck_root reads `getarg root` again: the hook made it the device, not the
            // iscsi: path with its secret.
            "MKINITCPIO-TEST: fsck would check: /dev/sda",
            "MKINITCPIO-TEST: mounting /dev/sda on /new_root",
            "NETBOOT-ROOT-OK",
        ],
    );
    assert_eq!(
        root_source(&b),
        ("/dev/sda".into(), "ext4".into()),
        "{}",
        b.tail()
    );
    assert_iscsi_report(&b, Some(CHAP_USER));
    b.assert_no_secret(&[CHAP_SECRET]);
}

#[test]
fn vm_wrong_chap_emergency() {
    let Some(b) = vm(
        "mkinitcpio-wrong-chap",
        &format!("root=iscsi:{CHAP_USER}:{WRONG_SECRET}@{ROOT_PATH} netboot.timeout=30"),
        Some(&format!("{CHAP_USER}:{CHAP_SECRET}")),
    ) else {
        return;
    };
    assert_eq!(
        b.code,
        Some(0),
        "QEMU did not power off by itself\n{}",
        b.tail()
    );
    assert!(
        !b.console.contains("NETBOOT-ROOT-OK"),
        "root reached with a wrong secret\n{}",
        b.tail()
    );
    assert_in_order(
        &b,
        &[
            "MKINITCPIO-TEST: run_hook [netboot]",
            "netboot attach: boot failed at iscsi.login:",
            "ERROR: netboot: the iSCSI root was not attached",
            "MKINITCPIO-TEST: after run_hook: root='netboot-attach-failed'",
            "MKINITCPIO-TEST: fsck would check: netboot-attach-failed",
            "ERROR: Failed to mount 'netboot-attach-failed' on real root",
            "MKINITCPIO-TEST: emergency shell",
        ],
    );
    // netboot's line itself, on stderr (no printk prefix) — once, and once more through
    // /dev/kmsg; never a second, different failure line.
    let failures: Vec<&str> = b
        .agent_lines()
        .filter(|l| l.contains("netboot attach: boot failed"))
        .collect();
    assert!(
        (1..=2).contains(&failures.len()),
        "failure lines: {failures:?}\n{}",
        b.tail()
    );
    b.assert_no_secret(&[WRONG_SECRET, CHAP_SECRET]);
}

// ---------------------------------------------------------------------------------------------
// the systemd flavour in a VM

/// `plain.img` with an `/etc/os-release`: systemd's switch-root refuses a root without one
/// ("does not seem to be an OS tree"); written with debugfs, no mount.
fn os_release_image() -> PathBuf {
    artifact("plain-os-release.img", |out| {
        script(&["qemu/mkroot.sh", out, "--label", "nbroot"])?;
        let release = work_dir().join("os-release");
        fs::write(&release, "NAME=\"netboot test root\"\nID=netboot-test\n")
            .map_err(|e| e.to_string())?;
        let (code, o, e) = run(Command::new("debugfs").args([
            "-w",
            "-R",
            &format!("write {} /etc/os-release", release.display()),
            out,
        ]));
        if code == Some(0) {
            Ok(o)
        } else {
            Err(format!("debugfs: {o}{e}"))
        }
    })
}

fn systemd_vm(name: &str, extra: &str, chap: Option<&str>) -> Option<Booted> {
    let guard = prepare("6.1", false)?;
    for tool in ["dracut", "debugfs", "kmod"] {
        if !on_path(tool) {
            skip(&format!(
                "{tool} not installed (dracut-core assembles the systemd initramfs; e2fsprogs, kmod)"
            ));
            return None;
        }
    }
    let bin = netboot_bin().to_string_lossy().into_owned();
    let t = Instant::now();
    let initrd = artifact("mkinitcpio-systemd-6.1.img", |out| {
        script(&[
            "qemu/mkinitcpio/build-systemd.sh",
            "--kernel",
            "6.1",
            "--netboot",
            &bin,
            "--out",
            out,
        ])
    });
    report(
        "systemd initramfs",
        &format!(
            "{} ({} bytes), built or found in {:.1} s",
            initrd.display(),
            fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0),
            t.elapsed().as_secs_f64()
        ),
    );
    // No interface name in ip=: udev names the NIC (ens3).
    let b = boot(Vm {
        name,
        kernel: "6.1",
        initrd,
        image: os_release_image(),
        chap: chap.map(str::to_string),
        mutual: None,
        append: format!("ip=198.18.0.2::198.18.0.1:255.255.255.0:::off netboot.timeout=60 {extra}"),
        configd: None,
    });
    drop(guard);
    report(
        name,
        &format!("boot.sh exit {:?}, wall {:?} s", b.code, b.wall),
    );
    Some(b)
}

#[test]
fn vm_systemd_label_root() {
    let Some(b) = systemd_vm(
        "mkinitcpio-systemd-label",
        &format!("iscsi={ROOT_PATH} root=LABEL=nbroot"),
        None,
    ) else {
        return;
    };
    b.assert_root_ok();
    // systemd-fstab-generator's sysroot.mount waits for the label; the generator pulled in
    // netboot-attach.service, whose login makes the device appear.
    assert_in_order(
        &b,
        &[
            "systemd[1]: Running in initrd.",
            "/dev/disk/by-label/nbroot",
            "netboot: netboot 0.1.0 attach starting",
            "netboot: root device /dev/sda (ext4) present on session 1",
            "VIRTUAL-DISK nbroot",
            "NETBOOT-ROOT-OK",
        ],
    );
    assert!(
        !b.console.contains("iSCSI root attached by netboot"),
        "our sysroot.mount replaced the fstab generator's for root=LABEL=\n{}",
        b.tail()
    );
    assert_eq!(
        root_source(&b),
        ("/dev/sda".into(), "ext4".into()),
        "{}",
        b.tail()
    );
    assert_iscsi_report(&b, None);
}

#[test]
fn vm_systemd_iscsi_root_chap() {
    let Some(b) = systemd_vm(
        "mkinitcpio-systemd-iscsi-root",
        &format!("root=iscsi:{CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH}"),
        Some(&format!("{CHAP_USER}:{CHAP_SECRET}")),
    ) else {
        return;
    };
    b.assert_root_ok();
    // systemd-fstab-generator skips root=iscsi:; the sysroot.mount is the generator's
    // (its Description= is on the console).
    assert_in_order(
        &b,
        &[
            "systemd[1]: Running in initrd.",
            "netboot: netboot 0.1.0 attach starting",
            "netboot: root device /dev/sda (ext4) present on session 1",
            "iSCSI root attached by netboot",
            "NETBOOT-ROOT-OK",
        ],
    );
    assert_eq!(
        root_source(&b),
        ("/dev/sda".into(), "ext4".into()),
        "{}",
        b.tail()
    );
    assert_iscsi_report(&b, Some(CHAP_USER));
    b.assert_no_secret(&[CHAP_SECRET]);
}

#[test]
fn vm_systemd_wrong_chap_emergency() {
    let Some(b) = systemd_vm(
        "mkinitcpio-systemd-wrong-chap",
        &format!(
            "root=iscsi:{CHAP_USER}:{WRONG_SECRET}@{ROOT_PATH} netboot.timeout=30 \
             nbtest.emergency_poweroff"
        ),
        Some(&format!("{CHAP_USER}:{CHAP_SECRET}")),
    ) else {
        return;
    };
    assert_eq!(
        b.code,
        Some(0),
        "QEMU did not power off by itself\n{}",
        b.tail()
    );
    assert!(
        !b.console.contains("NETBOOT-ROOT-OK"),
        "root reached with a wrong secret\n{}",
        b.tail()
    );
    // The unit fails with netboot's line on the console (through /dev/kmsg), and its
    // OnFailure= reaches emergency.target (the test image then powers off).
    assert_in_order(
        &b,
        &[
            "netboot: netboot 0.1.0 attach starting",
            "netboot attach: boot failed at iscsi.login:",
            "Failed to start",
            "Reached target",
            "emergency.target",
            "NBTEST: emergency.target reached",
        ],
    );
    b.assert_no_secret(&[WRONG_SECRET, CHAP_SECRET]);
}
