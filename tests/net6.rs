//! Host tests of `ip=dhcp6` and `ip=auto6` (issue 16) against a real dnsmasq, without a VM: two
//! private network namespaces joined by a veth pair, `bring_up` running on a thread that entered
//! the client namespace (setns). The host kernel has IPv6, so DAD, router solicitation, SLAAC and
//! the DHCPv6 UDP exchange are the kernel's and dnsmasq's own.
//!
//! ```text
//!   netns nbn6s-<pid>-<n>                      netns nbn6c-<pid>-<n>
//!   s0 fd00:198:18::1/64 (nodad) ── veth ── c0 52:54:00:12:34:56 ── bring_up
//!   dnsmasq: RAs (ra-only, or M bit) and DHCPv6 fd00:198:18::100, DNS fd00:198:18::1,
//!            option 59 = iscsi:[fd00:198:18::1]::3260:1:iqn.2026-11.test:root
//! ```
//!
//! Needs root and dnsmasq (`NETBOOT_REQUIRE_ROOT=1` makes a missing prerequisite a failure).
#![allow(clippy::panic)]

mod support;

use netboot::cmdline::parse_plan;
use netboot::net::{bring_up, Existing, LinkReport, NetError};
use std::fs::File;
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);
const ROOT: &str = "iscsi:[fd00:198:18::1]::3260:1:iqn.2026-11.test:root";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces and the veth pair; both deleted on drop (dnsmasq stopped first, by PID).
struct Pair {
    srv: String,
    cli: String,
    dnsmasq: Option<Child>,
    dir: std::path::PathBuf,
}

impl Pair {
    fn new() -> Pair {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let srv = format!("nbn6s-{}-{n}", std::process::id());
        let cli = format!("nbn6c-{}-{n}", std::process::id());
        ip(&["netns", "add", &srv]);
        ip(&["netns", "add", &cli]);
        ip(&[
            "-n", &srv, "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns", &cli,
        ]);
        ip(&[
            "-n",
            &cli,
            "link",
            "set",
            "c0",
            "address",
            "52:54:00:12:34:56",
        ]);
        ip(&[
            "-n",
            &srv,
            "addr",
            "add",
            "fd00:198:18::1/64",
            "dev",
            "s0",
            "nodad",
        ]);
        ip(&["-n", &srv, "link", "set", "s0", "up"]);
        let dir = std::env::temp_dir().join(format!("{srv}-dnsmasq"));
        std::fs::create_dir_all(&dir).unwrap();
        Pair {
            srv,
            cli,
            dnsmasq: None,
            dir,
        }
    }

    /// dnsmasq on s0 with `range` (the rig's options, qemu/rig.sh rig_dnsmasq6_start). Started
    /// with the client's link down: s0 then has no carrier and no link-local address yet, and
    /// dnsmasq (`--bind-interfaces`) picks it up when it appears.
    fn dnsmasq(&mut self, range: &[&str]) {
        let log = self.dir.join("log");
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.srv,
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
        ])
        .args([
            "--log-facility=-",
            "--log-dhcp",
            "--user=root",
            "--bind-interfaces",
        ])
        .args([
            "--interface=s0",
            "--except-interface=lo",
            "--port=0",
            "--enable-ra",
        ])
        .arg(format!(
            "--dhcp-leasefile={}",
            self.dir.join("leases").display()
        ))
        .arg(format!("--pid-file={}", self.dir.join("pid").display()))
        .args(range)
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap());
        self.dnsmasq = Some(c.spawn().unwrap());
        for _ in 0..50 {
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("router advertisement on")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dnsmasq did not start: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn bring(&self, cmdline: &str, secs: u64) -> Result<Vec<LinkReport>, NetError> {
        let net = parse_plan(cmdline).unwrap().network;
        let path = format!("/run/netns/{}", self.cli);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            bring_up(
                &net,
                Instant::now() + Duration::from_secs(secs),
                Existing::Configure,
            )
        })
        .join()
        .unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.srv])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.cli])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ready() -> bool {
    if !support::root_or_skip("NETBOOT_REQUIRE_ROOT", "network namespaces") {
        return false;
    }
    if support::which("dnsmasq").is_none() {
        support::skip_unless_required("NETBOOT_REQUIRE_ROOT", "dnsmasq", "dnsmasq not found");
        return false;
    }
    true
}

#[test]
fn dhcp6_lease_root_path_dns_and_ra_routes() {
    if !ready() {
        return;
    }
    let mut p = Pair::new();
    p.dnsmasq(&[
        "--dhcp-range=fd00:198:18::100,fd00:198:18::100,64,1h",
        "--dhcp-option=option6:dns-server,[fd00:198:18::1]",
        &format!("--dhcp-option=option6:bootfile-url,{ROOT}"),
    ]);
    let t = Instant::now();
    let links = p
        .bring("ip=c0:dhcp6", 20)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
    let l = &links[0];
    assert_eq!(l.address.to_string(), "fd00:198:18::100");
    assert_eq!(l.prefix_len, 128);
    assert_eq!(l.root_path.as_deref(), Some(ROOT));
    assert_eq!(
        l.dns,
        ["fd00:198:18::1".parse::<std::net::IpAddr>().unwrap()]
    );
    let gw = l.gateway.map(|g| g.to_string()).unwrap_or_default();
    assert!(gw.starts_with("fe80::"), "no RA default route: {l:?}");
    assert_eq!(l.lease_s, Some(3600));
    eprintln!(
        "net6: dhcp6 on the host: {:?} in {:?} (exchange {:?} ms)",
        l.address,
        t.elapsed(),
        l.dhcp_ms
    );
    let log = p.log();
    for m in ["DHCPSOLICIT", "DHCPADVERTISE", "DHCPREQUEST", "DHCPREPLY"] {
        assert!(log.contains(m), "no {m} in dnsmasq's log:\n{log}");
    }
}

#[test]
fn dhcp6_without_server_is_a_bounded_error() {
    if !ready() {
        return;
    }
    let mut p = Pair::new();
    // RAs only: the link works, nobody answers DHCPv6.
    p.dnsmasq(&["--dhcp-range=::,constructor:s0,ra-only"]);
    let t = Instant::now();
    let e = p.bring("ip=c0:dhcp6", 6).unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
    assert!(
        e.starts_with("dhcp6: no lease on c0 within ")
            && e.contains("0 advertises) — DHCPv6 server on this link?"),
        "{e}"
    );
}

#[test]
fn auto6_slaac_address_and_router() {
    if !ready() {
        return;
    }
    let mut p = Pair::new();
    p.dnsmasq(&["--dhcp-range=::,constructor:s0,ra-only"]);
    let t = Instant::now();
    let links = p
        .bring("ip=c0:auto6", 20)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
    let l = &links[0];
    assert_eq!(l.address.to_string(), "fd00:198:18:0:5054:ff:fe12:3456");
    assert_eq!(l.prefix_len, 64);
    assert!(
        l.gateway
            .is_some_and(|g| g.to_string().starts_with("fe80::")),
        "{l:?}"
    );
    eprintln!(
        "net6: auto6 on the host: {:?} in {:?}",
        l.address,
        t.elapsed()
    );
}

#[test]
fn auto6_without_router_names_what_it_saw() {
    if !ready() {
        return;
    }
    let p = Pair::new();
    let e = p.bring("ip=c0:auto6", 4).unwrap_err().to_string();
    assert!(
        e.starts_with("auto6: c0 has no global address and no default route from a router advertisement within ")
            && e.contains("(addresses: fe80::5054:ff:fe12:3456/64"),
        "{e}"
    );
}
