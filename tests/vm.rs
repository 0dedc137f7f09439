//! VM scenarios: the real boot in QEMU (TCG) against tgtd, driven through the shell rig in
//! `qemu/` (DESIGN.md §4). Each scenario builds what it needs (cached for the process), boots
//! one VM with `qemu/boot.sh` and reads the serial console.
//!
//! Network layout (one per boot, created and deleted by `qemu/rig.sh`):
//!
//! ```text
//!   netns nbvm-<pid>-<random>
//!   ┌──────────────────────────────────────────────────────────┐
//!   │ br0 198.18.0.1/24 ── tgtd portal 198.18.0.1:3260         │
//!   │  └─ tap0 ── QEMU virtio-net-pci ── guest eth0 198.18.0.2 │
//!   └──────────────────────────────────────────────────────────┘
//! ```
//!
//! Disk layout: tgt target `iqn.2026-11.test:root`, LUN 0 = tgt's controller, LUN 1 = a fresh
//! sparse copy of the root image (guest `/dev/sda`). Root images (`qemu/mkroot.sh`):
//! - `plain.img`: ext4 over the whole LUN, label `nbroot` (64 MiB);
//! - `gpt.img`: GPT, partition 1 a 1 MiB dummy, partition 2 ext4 labelled `gptroot`.
//!
//! Their `/sbin/init` (`qemu/root-init.sh`) prints `NETBOOT-ROOT-OK`, `/proc/self/mountinfo`,
//! the iSCSI session/connection sysfs attributes and `/run/netboot/boot.json`, then powers
//! off, so a passing boot ends with QEMU exiting by itself.
//!
//! Guest kernel command line: `console=ttyS0 panic=-1` (added by boot.sh) + [`BASE_CMDLINE`] +
//! the scenario's keys. CHAP secrets: `chapsecret1234` (initiator), `tgtsecret5678` (target).
//!
//! The scenarios run one at a time ([`VM_LOCK`]): TCG is slow and the machine has 2 cores.
//! Prerequisites: root, qemu-system-x86, tgt, busybox-static, open-iscsi (reference test),
//! e2fsprogs, fdisk, cpio, kmod, the kernels (`qemu/kernel.sh 6.1`, `qemu/kernel.sh 6.12`) and
//! the shipped binary `target/dist/netboot` (scripts/build.sh). Without them a test
//! prints `skipped: …`; with `NETBOOT_REQUIRE_VM=1` (CI) that is a failure instead.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::path::PathBuf;

mod support;
mod vm_support;

use vm_support::*;

const TGT_USER: &str = "tgtuser";
const TGT_SECRET: &str = "tgtsecret5678";
/// A failing login with `netboot.on_fail=halt` must power off well before this.
const FAIL_FAST_S: f64 = 60.0;

// ---------------------------------------------------------------------------------------------
// artifacts only this file uses (the shared gate, artifacts and boot: tests/vm_support)

fn reference_initrd(kernel: &str) -> PathBuf {
    artifact(&format!("iscsistart-{kernel}.cpio.gz"), |out| {
        script(&[
            "initramfs/build-iscsistart.sh",
            "--kernel",
            kernel,
            "--out",
            out,
        ])
    })
}

fn gpt_image() -> PathBuf {
    artifact("gpt.img", |out| {
        script(&[
            "qemu/mkroot.sh",
            out,
            "--label",
            "gptroot",
            "--partitioned",
            "gpt",
        ])
    })
}

// ---------------------------------------------------------------------------------------------
// checks on the root's report

/// `/` in mountinfo (proc(5)): fields 5 = mount point, 6 = mount options; after " - ":
/// fstype, source, super options.
fn root_mount(b: &Booted) -> (String, String, String) {
    for l in b.section("mountinfo") {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split_whitespace().collect();
        if f.get(4) != Some(&"/") {
            continue;
        }
        let r: Vec<&str> = right.split_whitespace().collect();
        return (
            r.first().unwrap_or(&"").to_string(),
            r.get(1).unwrap_or(&"").to_string(),
            f.get(5).unwrap_or(&"").to_string(),
        );
    }
    panic!("no / in the mountinfo section\n{}", b.tail());
}

fn assert_root_mount(b: &Booted, source_prefix: &str) {
    let (fstype, source, opts) = root_mount(b);
    assert_eq!(fstype, "ext4", "root fstype\n{}", b.tail());
    assert!(
        source.starts_with(source_prefix),
        "root source {source:?}, want {source_prefix}…\n{}",
        b.tail()
    );
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "root mounted with {opts:?}, want ro (the default)\n{}",
        b.tail()
    );
}

// ---------------------------------------------------------------------------------------------
// the rig itself, with the reference initramfs (busybox + iscsistart)

#[test]
fn reference_iscsistart_boots() {
    let Some(_vm) = prepare("6.1", true) else {
        return;
    };
    let b = boot(Vm {
        name: "reference",
        kernel: "6.1",
        initrd: reference_initrd("6.1"),
        image: plain_image(),
        chap: None,
        mutual: None,
        append: format!("{BASE_CMDLINE} iscsi={ROOT_PATH}"),
        configd: None,
    });
    b.assert_root_ok();
    assert_root_mount(&b, "/dev/sd");
    assert_iscsi_report(&b, None);
    // qemu/bench reads these.
    for key in ["BENCH init=", "BENCH mounted=", "BENCH rootinit="] {
        assert!(
            b.console.contains(key),
            "no {key} on the console\n{}",
            b.tail()
        );
    }
}

#[test]
fn reference_iscsistart_chap() {
    let Some(_vm) = prepare("6.1", true) else {
        return;
    };
    let b = boot(Vm {
        name: "reference-chap",
        kernel: "6.1",
        initrd: reference_initrd("6.1"),
        image: plain_image(),
        chap: Some(format!("{CHAP_USER}:{CHAP_SECRET}")),
        mutual: None,
        append: format!("{BASE_CMDLINE} iscsi={CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH}"),
        configd: None,
    });
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
}

// ---------------------------------------------------------------------------------------------
// netboot as /init

/// a. No authentication, Debian 12's 6.1 kernel.
#[test]
fn a_boots_no_auth_6_1() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(netboot_vm(
        "a-noauth-6.1",
        "6.1",
        &format!("iscsi={ROOT_PATH}"),
    ));
    b.assert_root_ok();
}

/// b. One-way CHAP, credentials inline in the root path.
#[test]
fn b_one_way_chap() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut vm = netboot_vm(
        "b-chap",
        "6.1",
        &format!("iscsi={CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH}"),
    );
    vm.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    let b = boot(vm);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    b.assert_no_secret(&[CHAP_SECRET]);
}

/// c. Mutual CHAP through the dracut rd.iscsi.* keys; the target proves itself as tgtuser.
#[test]
fn c_mutual_chap() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut vm = netboot_vm(
        "c-mutual",
        "6.1",
        &format!(
            "iscsi={ROOT_PATH} rd.iscsi.username={CHAP_USER} rd.iscsi.password={CHAP_SECRET} \
             rd.iscsi.in.username={TGT_USER} rd.iscsi.in.password={TGT_SECRET}"
        ),
    );
    vm.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    vm.mutual = Some(format!("{TGT_USER}:{TGT_SECRET}"));
    let b = boot(vm);
    b.assert_root_ok();
    assert_iscsi_report(&b, Some(CHAP_USER));
    b.assert_no_secret(&[CHAP_SECRET, TGT_SECRET]);
}

/// d. Wrong CHAP secret: one clear line naming the target and the user, then `halt` powers
/// the VM off long before the timeout; the secret is never printed.
#[test]
fn d_wrong_chap_secret_halts() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut vm = netboot_vm(
        "d-wrong-secret",
        "6.1",
        &format!("iscsi={CHAP_USER}:{WRONG_SECRET}@{ROOT_PATH}"),
    );
    vm.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    let b = boot(vm);
    assert_ne!(b.code, Some(2), "QEMU did not exit by itself\n{}", b.tail());
    assert_eq!(b.code, Some(0), "QEMU failed\n{}", b.tail());
    let wall = b.wall.unwrap_or(f64::MAX);
    assert!(
        wall < FAIL_FAST_S,
        "the VM took {wall} s to halt after a refused login\n{}",
        b.tail()
    );
    assert!(
        !b.console.contains("NETBOOT-ROOT-OK"),
        "booted despite the wrong secret\n{}",
        b.tail()
    );
    // `halt` is a decision in main (STYLE.md 10), not PID 1 dying into a panic (with
    // panic=-1 a dead init also ends QEMU, so the exit alone does not prove the policy).
    assert!(
        !b.console.contains("Attempted to kill init"),
        "PID 1 exited instead of halting\n{}",
        b.tail()
    );
    let clear: Vec<&str> = b
        .agent_lines()
        .filter(|l| {
            l.contains(IQN)
                && l.contains(&format!("\"{CHAP_USER}\""))
                && l.to_ascii_lowercase().contains("auth")
        })
        .collect();
    assert_eq!(
        clear.len(),
        1,
        "want exactly one line naming the target, the user \"{CHAP_USER}\" and the \
         authentication failure, got {clear:#?}\n{}",
        b.tail()
    );
    b.assert_no_secret(&[WRONG_SECRET, CHAP_SECRET]);
}

/// e. Root on partition 2 of a GPT disk, found by `root=LABEL=`.
#[test]
fn e_root_label_on_gpt_partition() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut vm = netboot_vm(
        "e-gpt-label",
        "6.1",
        &format!("iscsi={ROOT_PATH} root=LABEL=gptroot"),
    );
    vm.image = gpt_image();
    let b = boot(vm);
    b.assert_root_ok();
    let (_, source, _) = root_mount(&b);
    assert!(
        source.starts_with("/dev/sd") && source.ends_with('2'),
        "root source {source:?}, want partition 2 of the iSCSI disk\n{}",
        b.tail()
    );
}

/// f. As (a) on the 6.12 backports kernel (modules shipped .ko.xz, stored plain).
#[test]
fn f_boots_no_auth_6_12() {
    let Some(_vm) = prepare("6.12", false) else {
        return;
    };
    let b = boot(netboot_vm(
        "f-noauth-6.12",
        "6.12",
        &format!("iscsi={ROOT_PATH}"),
    ));
    b.assert_root_ok();
    assert_root_mount(&b, "/dev/sd");
}

/// g. What the root sees: `/` is ext4 from /dev/sd… read-only, and the kernel's session and
/// connection carry the target, the portal and the negotiated MaxRecvDataSegmentLength.
#[test]
fn g_root_sees_mount_and_session() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(netboot_vm("g-report", "6.1", &format!("iscsi={ROOT_PATH}")));
    b.assert_root_ok();
    assert_root_mount(&b, "/dev/sd");
    assert_iscsi_report(&b, None);
}

// ---------------------------------------------------------------------------------------------
// pure helpers

#[test]
fn a_kernel_message_inside_a_userspace_line_is_moved_out() {
    // Outside a section nothing moves (SeaBIOS's "Booting from ROM.." runs into the kernel's
    // first line); inside, the message goes onto its own line and the halves join again.
    let raw = "Booting from ROM..[    0.000000] Linux version 6.1.0\n\
               [    2.4] ens3: renamed from eth0\nATTACH-PRECONFIGURED 52:54\n\
               --- boot.json ---\n{\n  \"step\": \"ro[    3.904924] EXT4-fs (sda): re-mounted.\n\
               ot.mount\"\n}\n\
               [    4.000001] sd 0:0:0:1: [sda] Synchronizing SCSI cache\n\
               a=1[   12.5] x\n[   13.000000] y\nb\n[ignored] not a stamp\n--- end ---\n\
               after[    5.0] k\nrest\n";
    assert_eq!(
        untangle_console(raw),
        "Booting from ROM..[    0.000000] Linux version 6.1.0\n\
         [    2.4] ens3: renamed from eth0\nATTACH-PRECONFIGURED 52:54\n\
         --- boot.json ---\n{\n[    3.904924] EXT4-fs (sda): re-mounted.\n  \"step\": \"root.mount\"\n}\n\
         [    4.000001] sd 0:0:0:1: [sda] Synchronizing SCSI cache\n\
         [   12.5] x\n[   13.000000] y\na=1b\n[ignored] not a stamp\n--- end ---\n\
         after[    5.0] k\nrest\n"
    );
    let b = Booted {
        name: "tangled".into(),
        code: Some(0),
        wall: None,
        console: untangle_console(
            "--- boot.json ---\n{\"v\": 1, \"st[    3.9] EXT4-fs (sda): re-mounted.\nep\": \"x\"}\n--- end ---\n",
        ),
        stderr: String::new(),
    };
    assert_eq!(boot_json(&b)["step"], "x");
}

#[test]
fn section_and_mountinfo_parsing() {
    let b = Booted {
        name: "parse".into(),
        code: Some(0),
        wall: Some(1.0),
        console: "noise\n--- mountinfo ---\n\
                  21 25 0:19 / /proc rw,relatime - proc proc rw\n\
                  25 1 8:2 / / ro,relatime - ext4 /dev/sda2 ro\n\
                  --- end ---\n--- iscsi ---\nsession=session1\ntargetname=iqn.x:y\n\
                  --- end ---\n"
            .into(),
        stderr: String::new(),
    };
    assert_eq!(
        root_mount(&b),
        ("ext4".into(), "/dev/sda2".into(), "ro,relatime".into())
    );
    assert_eq!(
        b.iscsi().get("targetname").map(String::as_str),
        Some("iqn.x:y")
    );
    let v: serde_json::Value =
        serde_json::from_str(r#"{"login":{"negotiated":{"MaxRecvDataSegmentLength":"8192"}}}"#)
            .unwrap();
    assert_eq!(
        find_key(&v, "MaxRecvDataSegmentLength").and_then(|x| x.as_str()),
        Some("8192")
    );
}

// ---------------------------------------------------------------------------------------------
// Boot events (issue 4): the initramfs's /init is initramfs/events-wrapper.sh, which starts
// `netboot events --json` (writing /run/netboot/events.jsonl) before it execs the agent as PID 1.

/// Every boot step appears in order, each start followed by its end, with no sequence gap and
/// no secret; `boot.json` (moved into the new root with /run) lists the same steps.
#[test]
fn h_boot_events_recorded_in_order() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(Vm {
        name: "h-events",
        kernel: "6.1",
        initrd: events_initrd("6.1"),
        image: plain_image(),
        chap: Some(format!("{CHAP_USER}:{CHAP_SECRET}")),
        mutual: None,
        append: format!("{BASE_CMDLINE} iscsi={CHAP_USER}:{CHAP_SECRET}@{ROOT_PATH}"),
        configd: None,
    });
    b.assert_root_ok();
    b.assert_no_secret(&[CHAP_SECRET]);
    let events: Vec<serde_json::Value> = b
        .section("events")
        .iter()
        .map(|l| l.trim())
        // Kernel messages may interleave on the serial console.
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("events line is not JSON ({e}): {l}\n{}", b.tail()))
        })
        .collect();
    assert!(events.len() >= 4, "too few events\n{}", b.tail());
    // Sequence numbers: consecutive, and no `lost` record from the listener.
    for w in events.windows(2) {
        let (a, c) = (w[0]["seq"].as_u64(), w[1]["seq"].as_u64());
        assert_eq!(
            a.map(|x| x + 1),
            c,
            "sequence gap between {} and {}",
            w[0],
            w[1]
        );
    }
    assert!(events.iter().all(|e| e["event"] != "lost"), "{}", b.tail());
    assert_eq!(events[0]["event"], "boot_start");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "boot_end", "{}", b.tail());
    assert_eq!(last["outcome"], "ok");
    // Steps: each start immediately answered by its end (steps do not nest), ok, in boot order.
    let steps: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "step_start" || e["event"] == "step_end")
        .map(|e| {
            (
                e["event"].as_str().unwrap_or(""),
                e["step"].as_str().unwrap_or(""),
                e["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let mut order = Vec::new();
    for pair in steps.chunks(2) {
        assert_eq!(pair.len(), 2, "unfinished step {pair:?}");
        assert_eq!(pair[0].0, "step_start");
        assert_eq!(pair[1].0, "step_end");
        assert_eq!(pair[0].1, pair[1].1);
        assert_eq!(pair[1].2, "ok", "step {} failed\n{}", pair[1].1, b.tail());
        if order.last() != Some(&pair[0].1) {
            order.push(pair[0].1);
        }
    }
    assert_eq!(
        order,
        [
            "pseudofs",
            "modules",
            "net.link",
            // The helper thread's steps, recorded when it is joined (their
            // events carry the real start_us; the spans overlap).
            "modules.storage",
            "iscsi.connect",
            "iscsi.login",
            "scsi.scan",
            "disk.wait",
            "root.find",
            "queue.tune",
            "modules.fs",
            "root.mount"
        ],
        "{}",
        b.tail()
    );
    // The login step names the target and the user, never the secret.
    let login = events
        .iter()
        .find(|e| e["event"] == "step_end" && e["step"] == "iscsi.login")
        .unwrap();
    assert_eq!(login["facts"]["target"], IQN);
    assert_eq!(login["facts"]["user"], CHAP_USER);
    // boot.json: same steps, same outcome.
    let report: serde_json::Value =
        serde_json::from_str(&kernel_lines_removed(&b.section("boot.json")))
            .unwrap_or_else(|e| panic!("boot.json is not JSON ({e})\n{}", b.tail()));
    assert_eq!(report["outcome"], "ok");
    let report_steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap_or(""))
        .collect();
    let event_steps: Vec<&str> = steps
        .iter()
        .filter(|s| s.0 == "step_end")
        .map(|s| s.1)
        .collect();
    assert_eq!(report_steps, event_steps);
}

// ---------------------------------------------------------------------------------------------
// issue 5: the whole config fetched over RxRPC from netboot-configd on the rig's bridge

/// The command line of the config scenarios: where the config is, nothing else.
const CONFIG_CMDLINE: &str = "netboot.config=rxrpc:198.18.0.1";
/// The guest NIC's MAC (QEMU's default): configd serves `mac-52-54-00-12-34-56.json`.
const GUEST_MAC_FILE: &str = "mac-52-54-00-12-34-56.json";
const FETCHED_INITIATOR: &str = "iqn.2026-11.test:fetched";

/// A configd directory with this guest's config (by MAC) and a `default.json` that would
/// fail the boot (unknown target): a boot that reaches the root proves the MAC lookup.
fn config_dir(name: &str) -> PathBuf {
    let d = work_dir().join(format!("configd-{name}"));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("configd dir");
    let guest = serde_json::json!({
        "version": 1,
        "paths": [{ "server": "198.18.0.1", "port": 3260, "lun": 1, "target": IQN,
                    "chap": { "username": CHAP_USER, "password": CHAP_SECRET } }],
        "initiator": FETCHED_INITIATOR,
        "ip": ["198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"],
        "root": { "device": "LABEL=nbroot", "fstype": "ext4", "read_only": true },
        "tuning": { "scheduler": "mq-deadline" },
        "timeout_ms": 60000,
        "on_fail": "halt",
        "log": "debug",
        // These boots fetch over plain RxRPC (security index 0): configd
        // serves CHAP secrets there only when the file says so (issue 13).
        "serve_secrets_insecure": true
    });
    fs::write(d.join(GUEST_MAC_FILE), guest.to_string()).expect("write config");
    let wrong = serde_json::json!({
        "version": 1,
        "paths": [{ "server": "198.18.0.1", "lun": 1, "target": "iqn.2026-11.test:not-this-one" }],
        "on_fail": "halt"
    });
    fs::write(d.join("default.json"), wrong.to_string()).expect("write default");
    d
}

/// Boot with the whole config from configd; `transport` is the one the agent must have
/// used (`af_rxrpc`, or `udp` when the initramfs has no rxrpc.ko).
fn fetched_boot(kernel: &str, name: &str, initrd: PathBuf, transport: &str) {
    fetched_boot_from(kernel, name, initrd, transport, CONFIG_CMDLINE);
}

fn fetched_boot_from(kernel: &str, name: &str, initrd: PathBuf, transport: &str, cmdline: &str) {
    // No `ip=`: the agent gets its bootstrap address from the rig's dnsmasq.
    let b = boot_with(
        Vm {
            name,
            kernel,
            initrd,
            image: plain_image(),
            chap: Some(format!("{CHAP_USER}:{CHAP_SECRET}")),
            mutual: None,
            append: cmdline.to_string(),
            configd: Some(config_dir(name)),
        },
        &["--dhcp"],
    );
    b.assert_root_ok();
    b.assert_no_secret(&[CHAP_SECRET]);
    let report = boot_json(&b);
    let fetch = step_of(&report, "config.fetch")
        .unwrap_or_else(|| panic!("no config.fetch step in boot.json\n{}", b.tail()));
    assert_eq!(fetch["result"], "ok", "config.fetch: {fetch}\n{}", b.tail());
    // Who did the call: the kernel's AF_RXRPC (the agent loaded rxrpc.ko itself) or the
    // userspace client.
    assert_eq!(
        fetch["facts"]["transport"],
        transport,
        "{fetch}\n{}",
        b.tail()
    );
    let server = cmdline.trim_start_matches("netboot.config=rxrpc:");
    let server = if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:7260")
    };
    assert_eq!(fetch["facts"]["server"], server.as_str(), "{fetch}");
    assert_eq!(fetch["facts"]["mac"], "52:54:00:12:34:56", "{fetch}");
    // Everything below came from the config, nothing from the command line.
    let kv = b.iscsi();
    assert_eq!(
        kv.get("initiatorname").map(String::as_str),
        Some(FETCHED_INITIATOR),
        "initiator from the config\n{}",
        b.tail()
    );
    assert_iscsi_report(&b, Some(CHAP_USER));
    let tune = step_of(&report, "queue.tune").expect("queue.tune step");
    assert_eq!(tune["facts"]["scheduler"], "mq-deadline", "{tune}");
    let found = step_of(&report, "root.find").expect("root.find step");
    assert_eq!(found["facts"]["label"], "nbroot", "{found}");
    assert_eq!(
        report["plan"]["on_fail"], "halt",
        "merged plan in boot.json: {}",
        report["plan"]
    );
    assert_eq!(report["plan"]["log"], "debug", "{}", report["plan"]);
}

/// j. The kernel command line carries only `netboot.config=`: network, root path, CHAP,
/// initiator, root, scheduler and failure policy all come from configd, over the guest
/// kernel's AF_RXRPC, on Debian's 6.1.
#[test]
fn j_whole_config_fetched_over_af_rxrpc_6_1() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    fetched_boot("6.1", "j-config-6.1", netboot_initrd("6.1"), "af_rxrpc");
}

/// k. The same on Debian's 6.12 kernel, with the server given by name: the agent writes the
/// DHCP lease's DNS server to /etc/resolv.conf and resolves `configd.rig` (the rig's dnsmasq).
#[test]
fn k_whole_config_fetched_over_af_rxrpc_6_12() {
    let Some(_vm) = prepare("6.12", false) else {
        return;
    };
    fetched_boot_from(
        "6.12",
        "k-config-6.12",
        netboot_initrd("6.12"),
        "af_rxrpc",
        "netboot.config=rxrpc:configd.rig:7260",
    );
}

/// n. No rxrpc.ko in the initramfs (as on kernels without AF_RXRPC, or with the module
/// blacklisted): the agent fetches the same config with its userspace RxRPC client.
#[test]
fn n_without_af_rxrpc_the_userspace_client_fetches() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let initrd = netboot_initrd_with("6.1", "netboot-norxrpc", &["--no-rxrpc"]);
    fetched_boot("6.1", "n-config-udp", initrd, "udp");
}

/// l. configd is down and `netboot.config.required=0`: the failed fetch is recorded and the
/// boot goes on with the command line's root path.
#[test]
fn l_configd_down_falls_back_to_the_command_line() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(netboot_vm(
        "l-configd-down",
        "6.1",
        &format!("iscsi={ROOT_PATH} {CONFIG_CMDLINE} netboot.config.required=0"),
    ));
    b.assert_root_ok();
    let report = boot_json(&b);
    let fetch = step_of(&report, "config.fetch")
        .unwrap_or_else(|| panic!("no config.fetch step\n{}", b.tail()));
    assert_eq!(fetch["result"], "error", "{fetch}\n{}", b.tail());
    let err = fetch["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("198.18.0.1:7260"),
        "error names the server: {err}"
    );
    assert!(
        b.console.contains("netboot.config.required=0"),
        "the fallback is logged\n{}",
        b.tail()
    );
    assert_eq!(report["outcome"], "ok", "{}", b.tail());
}

/// m. configd is down and `netboot.config.required=1`: the boot fails at config.fetch with
/// one line naming the server, and the failure policy (halt) applies.
#[test]
fn m_configd_down_required_applies_the_policy() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(netboot_vm(
        "m-configd-required",
        "6.1",
        &format!("iscsi={ROOT_PATH} {CONFIG_CMDLINE} netboot.config.required=1"),
    ));
    assert_eq!(
        b.code,
        Some(0),
        "QEMU did not power off by itself\n{}",
        b.tail()
    );
    assert!(!b.console.contains("NETBOOT-ROOT-OK"), "{}", b.tail());
    let line: Vec<&str> = b
        .agent_lines()
        .filter(|l| l.contains("boot failed at config.fetch") && l.contains("198.18.0.1:7260"))
        .collect();
    assert_eq!(
        line.len(),
        1,
        "one failure line naming the step and server\n{}",
        b.tail()
    );
    assert!(line[0].contains("netboot.on_fail=halt"), "{}", line[0]);
}

// i. DHCP (issue 5): the guest gets its address from dnsmasq on br0 (`boot.sh --dhcp`, rig
// `rig_dnsmasq_start`: one lease, 198.18.0.2/24, router 198.18.0.1, lease 1 h), same target.

/// The `net.link` step's facts in boot.json show the lease from the rig's dnsmasq.
fn assert_dhcp_lease(b: &Booted) {
    let report = boot_json(b);
    let net = step_of(&report, "net.link")
        .unwrap_or_else(|| panic!("no net.link step in boot.json\n{}", b.tail()));
    let f = &net["facts"];
    assert_eq!(f["iface"], "eth0", "{net}\n{}", b.tail());
    assert_eq!(f["mac"], "52:54:00:12:34:56", "{net}");
    assert_eq!(f["address"], "198.18.0.2/24", "{net}");
    assert_eq!(f["gateway"], "198.18.0.1", "{net}");
    assert_eq!(f["dhcp_server"], "198.18.0.1", "{net}");
    assert_eq!(f["lease_s"], 3600, "{net}");
    assert!(f["dhcp_ms"].as_u64().is_some(), "{net}");
    assert_eq!(net["result"], "ok", "{net}");
}

/// No `ip=` on the command line: the agent runs DHCP on the first NIC with carrier (as
/// dracut does), then logs in with the root path from the command line.
#[test]
fn i_dhcp_boot_without_ip_6_1() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        Vm {
            name: "i-dhcp-no-ip-6.1",
            kernel: "6.1",
            initrd: netboot_initrd("6.1"),
            image: plain_image(),
            chap: None,
            mutual: None,
            append: format!("netboot.on_fail=halt netboot.timeout=60 iscsi={ROOT_PATH}"),
            configd: None,
        },
        &["--dhcp"],
    );
    b.assert_root_ok();
    assert_root_mount(&b, "/dev/sd");
    assert_dhcp_lease(&b);
}

/// `ip=dhcp root=dhcp`: the root path is DHCP option 17 from dnsmasq, nothing else on the
/// command line names the target.
#[test]
fn i_dhcp_boot_ip_dhcp_6_1() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let served = format!("iscsi:{ROOT_PATH}");
    let b = boot_with(
        Vm {
            name: "i-dhcp-ip-dhcp-6.1",
            kernel: "6.1",
            initrd: netboot_initrd("6.1"),
            image: plain_image(),
            chap: None,
            mutual: None,
            append: "ip=dhcp root=dhcp netboot.on_fail=halt netboot.timeout=60".into(),
            configd: None,
        },
        &["--dhcp-root-path", &served],
    );
    b.assert_root_ok();
    assert_dhcp_lease(&b);
    let report = boot_json(&b);
    let net = step_of(&report, "net.link").expect("net.link step");
    assert_eq!(net["facts"]["root_path"], served.as_str(), "{net}");
}
