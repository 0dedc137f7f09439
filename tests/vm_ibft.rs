//! VM scenarios for booting from the iSCSI Boot Firmware Table: the table is built by
//! `netboot::ibft::build` (our own iBFT writer), handed to QEMU with `qemu/boot.sh
//! --acpitable FILE` (`-acpitable file=FILE`: SeaBIOS lists it in the RSDT), and the kernel
//! command line carries only `rd.iscsi.firmware=1 root=LABEL=nbroot`: the initiator, the NIC
//! and the targets all come from the table. Same rig as tests/vm.rs (`qemu/boot.sh`,
//! helpers in `tests/vm_support`), 6.1 kernel (one scenario on 6.12), one VM at a time.
//!
//! The table's NIC is the rig's guest NIC: virtio-net-pci at PCI 00:03.0, MAC
//! 52:54:00:12:34:56 (QEMU's default; the agent binds the `ip=` entry by MAC).
//!
//! | scenario       | table NIC                          | table targets (failover order)          | rig |
//! |----------------|------------------------------------|-----------------------------------------|-----|
//! | ibft_dhcp      | origin 3 (DHCP)                    | 198.18.0.1:3260                         | `--dhcp` |
//! | ibft_static    | 198.18.0.2/24 via 198.18.0.1       | 198.18.0.1:3260                         | |
//! | ibft_chap      | static                             | 198.18.0.1:3260, CHAP chapuser          | `--chap` |
//! | ibft_failover  | static                             | 198.18.0.1:3999 (refused), 198.18.0.1:3260 | |
//! | baseline       | (none: `ip=` static IPv4 and `iscsi=` on the command line) | | |
//!
//! Every scenario prints its times as `vm_ibft: NAME: BENCH init=… mounted=… rootinit=… wall=…`
//! (printk seconds from the agent's `BENCH` line and the root's, as tests/vm.rs reads them).
//! Prerequisites as in tests/vm.rs; without them a test prints `skipped: …`, with
//! `NETBOOT_REQUIRE_VM=1` that is a failure. Run: `cargo test --test vm_ibft -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use netboot::ibft::build::{self, InitiatorSpec, NicSpec, Spec, TargetSpec};
use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

mod support;
mod vm_support;

use vm_support::*;

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Only these on the kernel command line (besides boot.sh's console and panic).
const FIRMWARE_CMDLINE: &str = "rd.iscsi.firmware=1 root=LABEL=nbroot";
/// A port on the rig's address where nothing listens.
const CLOSED_PORT: u16 = 3999;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn report(name: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "vm_ibft: {name}: {what}");
}

fn static_nic() -> NicSpec {
    NicSpec {
        flags: 7, // valid, boot selected, global
        address: Some(ip("198.18.0.2")),
        prefix_len: 24,
        origin: 1,
        gateway: Some(ip("198.18.0.1")),
        primary_dns: None,
        secondary_dns: None,
        dhcp_server: None,
        vlan: 0,
        mac: GUEST_MAC,
        pci_bdf: build::pci_bdf(0, 3, 0),
        hostname: None,
    }
}

fn dhcp_nic() -> NicSpec {
    NicSpec {
        address: None,
        prefix_len: 0,
        origin: 3,
        gateway: None,
        dhcp_server: Some(ip("198.18.0.1")),
        ..static_nic()
    }
}

fn rig_target(flags: u8, port: u16) -> TargetSpec {
    TargetSpec {
        flags,
        address: ip("198.18.0.1"),
        port,
        lun: build::sam_lun(1).unwrap(),
        chap_type: 0,
        nic_assoc: 0,
        name: IQN.to_string(),
        chap: None,
        reverse_chap: None,
    }
}

fn spec(initiator: &str, nic: NicSpec, targets: Vec<TargetSpec>) -> Spec {
    Spec {
        oem_id: "NETBT".into(),
        oem_table_id: "NBTABLE".into(),
        control_flags: 0,
        initiator: InitiatorSpec {
            flags: 3,
            name: initiator.into(),
        },
        nics: vec![nic],
        targets,
    }
}

/// The table as a file for `boot.sh --acpitable`.
fn table_file(name: &str, s: &Spec) -> PathBuf {
    let bytes = build::build(s).unwrap_or_else(|e| panic!("building the iBFT: {e}"));
    let path = work_dir().join(format!("ibft-{name}.bin"));
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

fn firmware_vm<'a>(name: &'a str, kernel: &'a str) -> Vm<'a> {
    Vm {
        name,
        kernel,
        initrd: netboot_initrd(kernel),
        image: plain_image(),
        chap: None,
        mutual: None,
        append: FIRMWARE_CMDLINE.to_string(),
        configd: None,
    }
}

/// The `BENCH` marks on the console and the wall time, for the report.
fn bench(b: &Booted) -> String {
    let mark = |key: &str| {
        b.console
            .lines()
            .find_map(|l| l.split_once(key).map(|(_, r)| r))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "BENCH init={} mounted={} rootinit={} wall={:?}",
        mark("BENCH init="),
        mark("mounted="),
        mark("BENCH rootinit="),
        b.wall
    )
}

/// Root reached through the table: the session's initiator is the table's, its target the
/// rig's, the agent's firmware step ran and named the module.
fn assert_ibft_boot(b: &Booted, initiator: &str) {
    b.assert_root_ok();
    let kv = b.iscsi();
    assert_eq!(
        kv.get("initiatorname").map(String::as_str),
        Some(initiator),
        "the session's initiator name is not the table's\n{}",
        b.tail()
    );
    assert_eq!(
        kv.get("targetname").map(String::as_str),
        Some(IQN),
        "{}",
        b.tail()
    );
    let report = boot_json(b);
    let s = step_of(&report, "firmware.ibft")
        .unwrap_or_else(|| panic!("no firmware.ibft step in boot.json\n{}", b.tail()));
    assert_eq!(s["facts"]["initiator"], initiator, "{s}");
    assert!(
        b.console.contains("iBFT detected"),
        "the kernel did not say \"iBFT detected.\"\n{}",
        b.tail()
    );
}

#[test]
fn ibft_dhcp_nic() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let init = "iqn.2026-12.test:ibft-dhcp";
    let t = table_file("dhcp", &spec(init, dhcp_nic(), vec![rig_target(3, 3260)]));
    let t = t.to_string_lossy();
    let b = boot_with(
        firmware_vm("ibft-dhcp", "6.1"),
        &["--dhcp", "--acpitable", &t],
    );
    assert_ibft_boot(&b, init);
    assert!(
        b.console
            .contains("DHCP on the link with MAC 52:54:00:12:34:56"),
        "no DHCP note from the table\n{}",
        b.tail()
    );
    report("ibft-dhcp", &bench(&b));
}

#[test]
fn ibft_static_nic() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let init = "iqn.2026-12.test:ibft-static";
    let t = table_file(
        "static",
        &spec(init, static_nic(), vec![rig_target(3, 3260)]),
    );
    let t = t.to_string_lossy();
    let b = boot_with(firmware_vm("ibft-static", "6.1"), &["--acpitable", &t]);
    assert_ibft_boot(&b, init);
    assert!(
        b.console
            .contains("198.18.0.2/24 via 198.18.0.1 on the link with MAC 52:54:00:12:34:56"),
        "no static NIC note from the table\n{}",
        b.tail()
    );
    report("ibft-static", &bench(&b));
}

#[test]
fn ibft_static_nic_612() {
    let Some(_vm) = prepare("6.12", false) else {
        return;
    };
    let init = "iqn.2026-12.test:ibft-static-612";
    let t = table_file(
        "static-612",
        &spec(init, static_nic(), vec![rig_target(3, 3260)]),
    );
    let t = t.to_string_lossy();
    let b = boot_with(
        firmware_vm("ibft-static-6.12", "6.12"),
        &["--acpitable", &t],
    );
    assert_ibft_boot(&b, init);
    report("ibft-static-6.12", &bench(&b));
}

#[test]
fn ibft_chap() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let init = "iqn.2026-12.test:ibft-chap";
    let mut tgt = rig_target(3, 3260);
    tgt.chap_type = 1;
    tgt.chap = Some((CHAP_USER.into(), CHAP_SECRET.into()));
    let t = table_file("chap", &spec(init, static_nic(), vec![tgt]));
    let t = t.to_string_lossy();
    let mut vm = firmware_vm("ibft-chap", "6.1");
    vm.chap = Some(format!("{CHAP_USER}:{CHAP_SECRET}"));
    let b = boot_with(vm, &["--acpitable", &t]);
    assert_ibft_boot(&b, init);
    assert_eq!(
        b.iscsi().get("username").map(String::as_str),
        Some(CHAP_USER),
        "{}",
        b.tail()
    );
    b.assert_no_secret(&[CHAP_SECRET]);
    report("ibft-chap", &bench(&b));
}

#[test]
fn ibft_failover_first_target_dead() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let init = "iqn.2026-12.test:ibft-failover";
    // The dead one is boot-selected, so it is tried first.
    let targets = vec![rig_target(3, CLOSED_PORT), rig_target(1, 3260)];
    let t = table_file("failover", &spec(init, static_nic(), targets));
    let t = t.to_string_lossy();
    let b = boot_with(firmware_vm("ibft-failover", "6.1"), &["--acpitable", &t]);
    assert_ibft_boot(&b, init);
    let report_json = boot_json(&b);
    let logins: Vec<&serde_json::Value> = report_json["steps"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["step"] == "iscsi.login").collect())
        .unwrap_or_default();
    let dead = format!("198.18.0.1:{CLOSED_PORT}");
    let first = logins
        .first()
        .unwrap_or_else(|| panic!("no iscsi.login step\n{}", b.tail()));
    assert_eq!(first["facts"]["path"], 0, "{first}");
    assert_eq!(first["facts"]["portal"], dead.as_str(), "{first}");
    assert!(
        first["result"] == "error",
        "the first path's attempt did not fail: {first}"
    );
    let last = logins.last().unwrap();
    assert_eq!(last["facts"]["portal"], "198.18.0.1:3260", "{last}");
    let summary: Vec<String> = logins
        .iter()
        .map(|s| {
            format!(
                "path={} portal={} {}",
                s["facts"]["path"],
                s["facts"]["portal"].as_str().unwrap_or("?"),
                s["error"].as_str().unwrap_or("ok")
            )
        })
        .collect();
    report(
        "ibft-failover",
        &format!("{}; logins: {}", bench(&b), summary.join(" | ")),
    );
}

/// The plain static IPv4 boot (no table), for the times next to the table's.
#[test]
fn baseline_static_ipv4() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(netboot_vm(
        "ibft-baseline",
        "6.1",
        &format!("iscsi={ROOT_PATH}"),
    ));
    b.assert_root_ok();
    report("baseline-static-ipv4", &bench(&b));
}

/// Without a table: one fatal line naming rd.iscsi.firmware and what was looked at.
#[test]
fn ibft_absent_is_a_clear_error() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let mut vm = firmware_vm("ibft-absent", "6.1");
    vm.append = format!("{FIRMWARE_CMDLINE} netboot.on_fail=halt");
    let b = boot(vm);
    assert!(!b.console.contains("NETBOOT-ROOT-OK"), "{}", b.tail());
    let line = b
        .agent_lines()
        .find(|l| l.contains("boot failed at firmware.ibft"))
        .unwrap_or_else(|| panic!("no failure at firmware.ibft\n{}", b.tail()));
    assert!(
        line.contains("rd.iscsi.firmware: no iBFT: /sys/firmware/ibft is absent")
            && line.contains("No iBFT detected"),
        "{line}"
    );
    report("ibft-absent", line);
}

/// `netboot plan --ibft DIR` (no VM): the saved table's targets, NIC and initiator in the plan,
/// explicit keys winning, secrets masked; a bad table is one line naming the attribute.
#[test]
fn plan_from_a_saved_table() {
    let dir = std::path::Path::new(REPO).join("tests/fixtures/ibft");
    let run = |line: &str, table: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_netboot"))
            .args(["plan", "--cmdline", line, "--ibft"])
            .arg(dir.join(table))
            .output()
            .unwrap()
    };
    let out = run("rd.iscsi.firmware=1 root=LABEL=nbroot", "static");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("chapsecret1234") && !text.contains("tgtsecret12345"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["initiator"], "iqn.2026-12.test:ibft-static");
    assert_eq!(v["paths"][0]["server"], "198.18.0.1");
    assert_eq!(v["paths"][0]["chap"]["password"], "***");
    assert_eq!(v["paths"][1]["server"], "198.18.0.9");
    assert_eq!(v["network"]["ip"][0]["mac"], "52:54:00:12:34:56");
    assert_eq!(v["network"]["ip"][0]["address"], "198.18.0.2");
    let out = run(
        "rd.iscsi.firmware=1 netboot.initiator=iqn.2026-12.test:mine ip=dhcp",
        "static",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["initiator"], "iqn.2026-12.test:mine");
    assert_eq!(v["network"]["ip"][0]["method"], "dhcp");
    assert_eq!(v["network"]["ip"][0]["mac"], serde_json::Value::Null);
    let bad = tempdir_copy(&dir.join("dhcp"), "ibft-bad");
    fs::write(bad.join("target0/port"), "0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netboot"))
        .args(["plan", "--cmdline", "rd.iscsi.ibft", "--ibft"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "netboot plan: iBFT target0/port: \"0\" is not a port in 1..65535"
    );
}

/// A copy of a fixture tree (two levels) under the work directory.
fn tempdir_copy(src: &std::path::Path, name: &str) -> PathBuf {
    let dst = work_dir().join(name);
    let _ = fs::remove_dir_all(&dst);
    for d in fs::read_dir(src).unwrap() {
        let d = d.unwrap();
        let sub = dst.join(d.file_name());
        fs::create_dir_all(&sub).unwrap();
        for f in fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), sub.join(f.file_name())).unwrap();
        }
    }
    dst
}
