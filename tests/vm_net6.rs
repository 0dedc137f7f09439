//! VM scenarios for issue 16 items 3 and 4: IPv6 (static, SLAAC, DHCPv6 with the root path from
//! option 59, the config fetched over IPv6) and a boot on a tagged VLAN. Same rig as tests/vm.rs
//! (`qemu/boot.sh`, shared helpers in `tests/vm_support`), one VM at a time.
//!
//! Network layout (one per boot, created and deleted by `qemu/rig.sh`); what a scenario adds is
//! marked with its letter:
//!
//! ```text
//!   netns nbvm-<pid>-<random>
//!   ┌────────────────────────────────────────────────────────────────────────────┐
//!   │ br0 198.18.0.1/24, and with --ipv6 (all but v4/vlan) fd00:198:18::1/64        │
//!   │   [fd00:198:18::1]:3260  tgtd portal (also 198.18.0.1:3260)                   │
//!   │   [fd00:198:18::1]:7260  d6: netboot-configd (also 198.18.0.1:7260)           │
//!   │   dnsmasq on br0   b6: RAs for SLAAC in fd00:198:18::/64 (--ra)               │
//!   │                    c6: DHCPv6 fd00:198:18::100, DNS fd00:198:18::1, option 59 │
//!   │                        = the root path; RAs with the M bit (--dhcp6-root-path)│
//!   │ nbk0 ── veth ── nbk1   keeps br0's carrier (its link-local) before QEMU       │
//!   │ e/f (--vlan 42): tap0 off br0; qemu/vlan-port.py is its 802.1Q access port:   │
//!   │   only VID 42 passes (untagged towards vl0 on br0); br0 198.18.42.1/24      │
//!   │  └─ tap0 ── QEMU virtio-net-pci ── guest eth0                                │
//!   └────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! | scenario | rig | kernel command line |
//! |----------|-----|---------------------|
//! | v4  | — | `ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off iscsi=198.18.0.1::3260:1:IQN` (the baseline for the times) |
//! | a6  | `--ipv6` | `ip=[fd00:198:18::2]::[fd00:198:18::1]:64::eth0:none iscsi=iscsi:[fd00:198:18::1]::3260:1:IQN` (6.1 and 6.12) |
//! | b6  | `--ra` | `ip=auto6 iscsi=iscsi:[fd00:198:18::1]::3260:1:IQN` |
//! | c6  | `--dhcp6-root-path iscsi:[fd00:198:18::1]::3260:1:IQN` | `ip=dhcp6` only (+ `root=LABEL=nbroot`) |
//! | d6  | `--ipv6`, configd with `default.json` (paths on `fd00:198:18::1`) | static v6 + `netboot.config=rxrpc:[fd00:198:18::1]` |
//! | e   | `--vlan 42` | `vlan=eth0.42:eth0 ip=198.18.42.2::198.18.42.1:24::eth0.42:off iscsi=198.18.42.1::3260:1:IQN` |
//! | f   | `--vlan 42` | the same without `vlan=`, address on eth0: untagged frames never reach the target → login fails at `netboot.timeout=15` |
//!
//! Every scenario also has `root=LABEL=nbroot netboot.on_fail=halt netboot.timeout=60` unless
//! stated. Disk layout: as in tests/vm.rs. Times: `BENCH init=… mounted=…` (in-guest clock, the
//! agent's start and root mounted) and the `net.link` step of boot.json, printed as `vm_net6:`
//! lines. Prerequisites as in tests/vm.rs; without them a test prints `skipped: …`, with
//! `NETBOOT_REQUIRE_VM=1` that is a failure. Run one at a time:
//! `cargo test --test vm_net6 -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

mod support;
mod vm_support;

use vm_support::*;

const V6_PORTAL: &str = "[fd00:198:18::1]";
const V6_ROOT_PATH: &str = "iscsi:[fd00:198:18::1]::3260:1:iqn.2026-11.test:root";
const V6_STATIC: &str = "ip=[fd00:198:18::2]::[fd00:198:18::1]:64::eth0:none";
const TAIL: &str = "root=LABEL=nbroot netboot.on_fail=halt netboot.timeout=60";

fn report(name: &str, what: &str) {
    let _ = writeln!(std::io::stderr(), "vm_net6: {name}: {what}");
}

/// The agent's initramfs, under a name of its own (8021q in it: initramfs/build.sh adds it
/// when the kernel has it).
fn initrd(kernel: &str) -> PathBuf {
    netboot_initrd_with(kernel, "net6", &[])
}

fn vm6<'a>(name: &'a str, kernel: &'a str, append: String) -> Vm<'a> {
    Vm {
        name,
        kernel,
        initrd: initrd(kernel),
        image: plain_image(),
        chap: None,
        mutual: None,
        append,
        configd: None,
    }
}

/// `BENCH init=A mounted=B` → (A, B).
fn bench(b: &Booted) -> Option<(f64, f64)> {
    let l = b.console.lines().find_map(|l| {
        let i = l.find("BENCH init=")?;
        l.get(i + "BENCH ".len()..)
    })?;
    let mut it = l.split_whitespace();
    let init = it.next()?.strip_prefix("init=")?.parse().ok()?;
    let mounted = it.next()?.strip_prefix("mounted=")?.parse().ok()?;
    Some((init, mounted))
}

/// Root reached; the boot's times and the net.link facts printed; the net.link facts returned.
fn booted_ok(b: &Booted) -> serde_json::Value {
    b.assert_root_ok();
    let report_json = boot_json(b);
    let net = step_of(&report_json, "net.link")
        .unwrap_or_else(|| panic!("no net.link step in boot.json\n{}", b.tail()))
        .clone();
    let (init, mounted) =
        bench(b).unwrap_or_else(|| panic!("no BENCH line on the console\n{}", b.tail()));
    report(
        &b.name,
        &format!(
            "agent start {init:.3} s → root mounted {mounted:.3} s: {:.3} s; net.link {:.3} s; wall {:?} s; facts {}",
            mounted - init,
            net["duration_us"].as_f64().unwrap_or(f64::NAN) / 1e6,
            b.wall,
            net["facts"]
        ),
    );
    net
}

fn fact<'v>(net: &'v serde_json::Value, key: &str) -> &'v str {
    net["facts"][key].as_str().unwrap_or("<missing>")
}

/// The session's portal (the root prints the connection's sysfs attributes).
fn assert_portal(b: &Booted, addr: &str) {
    let kv = b.iscsi();
    let got = kv.get("persistent_address").or_else(|| kv.get("address"));
    assert_eq!(
        got.map(String::as_str),
        Some(addr),
        "session address\n{:?}\n{}",
        kv,
        b.tail()
    );
}

#[test]
fn v4_static_baseline() {
    let name = "net6-v4-static";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm6(
            name,
            "6.1",
            format!("ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off iscsi={ROOT_PATH} {TAIL}"),
        ),
        &[],
    );
    booted_ok(&b);
}

fn static_v6(kernel: &'static str, name: &'static str) {
    let Some(_vm) = prepare(kernel, false) else {
        return;
    };
    let b = boot_with(
        vm6(
            name,
            kernel,
            format!("{V6_STATIC} iscsi={V6_ROOT_PATH} {TAIL}"),
        ),
        &["--ipv6"],
    );
    let net = booted_ok(&b);
    assert_eq!(fact(&net, "address"), "fd00:198:18::2/64", "{}", b.tail());
    assert_eq!(fact(&net, "gateway"), "fd00:198:18::1", "{}", b.tail());
    assert_portal(&b, "fd00:198:18::1");
}

#[test]
fn a6_static_ipv6_and_a_bracketed_portal_61() {
    static_v6("6.1", "net6-a6-static-6.1");
}

#[test]
fn a6_static_ipv6_and_a_bracketed_portal_612() {
    static_v6("6.12", "net6-a6-static-6.12");
}

/// b6. SLAAC: the address from the RA's prefix (EUI-64 of the guest's MAC), out of DAD; the
/// default route via the router's link-local address.
#[test]
fn b6_auto6_slaac() {
    let name = "net6-b6-auto6";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm6(name, "6.1", format!("ip=auto6 iscsi={V6_ROOT_PATH} {TAIL}")),
        &["--ra"],
    );
    let net = booted_ok(&b);
    assert_eq!(
        fact(&net, "address"),
        "fd00:198:18:0:5054:ff:fe12:3456/64",
        "{}",
        b.tail()
    );
    assert!(
        fact(&net, "gateway").starts_with("fe80::"),
        "gateway {}\n{}",
        fact(&net, "gateway"),
        b.tail()
    );
    assert_portal(&b, "fd00:198:18::1");
}

/// c6. DHCPv6 only: address fd00:198:18::100/128 from IA_NA, DNS from option 23, the root path
/// from option 59 (nothing on the command line names the target).
#[test]
fn c6_dhcp6_root_path_from_option_59() {
    let name = "net6-c6-dhcp6";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot_with(
        vm6(name, "6.1", format!("ip=dhcp6 {TAIL}")),
        &["--dhcp6-root-path", V6_ROOT_PATH],
    );
    let net = booted_ok(&b);
    assert_eq!(
        fact(&net, "address"),
        "fd00:198:18::100/128",
        "{}",
        b.tail()
    );
    assert_eq!(fact(&net, "root_path"), V6_ROOT_PATH, "{}", b.tail());
    assert_eq!(fact(&net, "dns"), "fd00:198:18::1", "{}", b.tail());
    assert!(
        fact(&net, "gateway").starts_with("fe80::"),
        "no RA default route: {}\n{}",
        fact(&net, "gateway"),
        b.tail()
    );
    assert_portal(&b, "fd00:198:18::1");
}

/// d6. The config fetched from configd over IPv6; its `paths` name the v6 portal.
#[test]
fn d6_config_over_ipv6() {
    let name = "net6-d6-config";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let dir = work_dir().join("net6-d6-configd");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    fs::write(
        dir.join("default.json"),
        r#"{"version": 1, "paths": [{"server": "fd00:198:18::1", "port": 3260, "lun": 1, "target": "iqn.2026-11.test:root"}]}"#,
    )
    .unwrap_or_else(|e| panic!("default.json: {e}"));
    let mut v = vm6(
        name,
        "6.1",
        format!("{V6_STATIC} netboot.config=rxrpc:{V6_PORTAL} netboot.config.required=1 {TAIL}"),
    );
    v.configd = Some(dir);
    let b = boot_with(v, &["--ipv6"]);
    booted_ok(&b);
    let report_json = boot_json(&b);
    let fetch = step_of(&report_json, "config.fetch")
        .unwrap_or_else(|| panic!("no config.fetch step\n{}", b.tail()));
    assert_eq!(fetch["result"], "ok", "{fetch}\n{}", b.tail());
    report(name, &format!("config.fetch facts {}", fetch["facts"]));
    assert!(
        fetch["facts"].to_string().contains("fd00:198:18::1"),
        "config.fetch does not name the v6 server: {fetch}\n{}",
        b.tail()
    );
    assert_portal(&b, "fd00:198:18::1");
}

/// `--vlan` runs qemu/vlan-port.py (the host kernel has no 802.1Q): python3 is needed.
fn vlan_port_ready() -> bool {
    if on_path("python3") {
        return true;
    }
    skip("python3 not found (qemu/vlan-port.py, the rig's 802.1Q port, needs it)");
    false
}

const VLAN_IP: &str = "ip=198.18.42.2::198.18.42.1:24::eth0.42:off";
const VLAN_ROOT_PATH: &str = "198.18.42.1::3260:1:iqn.2026-11.test:root";

/// e. The VLAN link created by the agent over rtnetlink (8021q loaded), addressed, tagged.
#[test]
fn e_vlan_tagged_boot() {
    let name = "net6-e-vlan";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if !vlan_port_ready() {
        return;
    }
    let b = boot_with(
        vm6(
            name,
            "6.1",
            format!("vlan=eth0.42:eth0 {VLAN_IP} iscsi={VLAN_ROOT_PATH} {TAIL}"),
        ),
        &["--vlan", "42"],
    );
    let net = booted_ok(&b);
    assert_eq!(fact(&net, "iface"), "eth0.42", "{}", b.tail());
    assert_eq!(fact(&net, "address"), "198.18.42.2/24", "{}", b.tail());
    assert_portal(&b, "198.18.42.1");
}

/// f. The negative of e: the same addresses on the untagged eth0. The bridge drops untagged
/// frames from tap0, so no ARP reply and no login: the boot fails at the deadline, root never
/// runs (this is what shows that e's frames were tagged).
#[test]
fn f_vlan_untagged_cannot_reach_the_target() {
    let name = "net6-f-untagged";
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if !vlan_port_ready() {
        return;
    }
    let b = boot_with(
        vm6(
            name,
            "6.1",
            format!(
                "ip=198.18.42.2::198.18.42.1:24::eth0:off iscsi={VLAN_ROOT_PATH} root=LABEL=nbroot \
                 netboot.on_fail=halt netboot.timeout=15"
            ),
        ),
        &["--vlan", "42"],
    );
    assert_eq!(
        b.code,
        Some(0),
        "QEMU did not power off by itself\n{}",
        b.tail()
    );
    assert!(
        !b.console.contains("NETBOOT-ROOT-OK"),
        "the root ran over untagged frames\n{}",
        b.tail()
    );
    let line = b
        .agent_lines()
        .find(|l| l.contains("netboot: boot failed at iscsi.login:"))
        .unwrap_or_else(|| panic!("no login failure line\n{}", b.tail()));
    assert!(line.contains("198.18.42.1:3260"), "{line}");
    report(name, line.trim());
}

#[test]
fn bench_line_parses() {
    let b = Booted {
        name: "x".into(),
        code: Some(0),
        wall: None,
        console: "[    7.386606] netboot: BENCH init=4.500 mounted=7.434\n".into(),
        stderr: String::new(),
    };
    assert_eq!(bench(&b), Some((4.5, 7.434)));
}
