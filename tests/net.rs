//! Network bring-up against the real kernel, inside network namespaces the
//! tests create (`nbnet-<pid>-<n>`) and always delete.
//!
//! Layout per test: a fresh netns with `lo` and one or two tap devices
//! (`ip tuntap add … mode tap`; this host has no veth/dummy). A tap has
//! carrier only while a process holds it open, so the test opens
//! `/dev/net/tun` with TUNSETIFF for the taps that should have carrier.
//! `bring_up` runs on a thread that entered the namespace with setns(2)
//! (the network namespace is per thread); the result is read back with
//! `ip -n NS -j`, an independent implementation.
//!
//! Needs root; skipped otherwise (`SKIPPED: …` on stderr), failed if
//! NETBOOT_REQUIRE_ROOT=1.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::cmdline::parse_plan;
use netboot::net::{bring_up, Existing, LinkReport, NetError};
use netboot::plan::Network;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);
/// How long the tap relay waits for a packet before looking at its stop flag.
const TICK: rustix::time::Timespec = rustix::time::Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

fn root() -> bool {
    support::root_or_skip("NETBOOT_REQUIRE_ROOT", "network namespaces and taps")
}

/// A network namespace deleted on drop, even when the test panics.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "nbnet-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]);
        Netns(name)
    }
    fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.0];
        a.extend_from_slice(args);
        ip(&a)
    }
    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ip(&a)).unwrap()
    }
    fn tap(&self, name: &str, mac: &str) {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        self.ip(&["link", "set", name, "address", mac]);
    }
    /// Run `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Attach to tap `name` (in the calling thread's namespace) so it has
/// carrier while the returned file is open (drivers/net/tun.c
/// `tun_attach` → netif_carrier_on).
fn open_tap(name: &str) -> File {
    let f = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap();
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    const _: () = assert!(std::mem::size_of::<IfReq>() == 40);
    let mut req = IfReq {
        name: [0; 16],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // EBUSY: the tap's previous fd may still be held for a moment by a
    // child another test thread forked (between its fork and exec): retry
    // for up to a second.
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        // SAFETY: the fd is /dev/net/tun, open for the call. TUNSETIFF reads
        // and writes back one struct ifreq (drivers/net/tun.c `__tun_chr_ioctl`:
        // copy_from_user/copy_to_user of sizeof(struct ifreq), 40 bytes on
        // x86_64): IfReq is repr(C), 40 bytes (asserted above) with the name
        // and ifr_flags at their offsets 0 and 16, and `req` is exclusively
        // borrowed for the call. rustix has no TUNSETIFF wrapper.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        let err = std::io::Error::last_os_error();
        if rc == 0 {
            break;
        }
        if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        panic!("TUNSETIFF {name}: {err}");
    }
    f
}

fn network(cmdline: &str) -> Network {
    parse_plan(cmdline).unwrap().network
}

/// bring_up in the namespace with the given taps held open.
fn bring(
    ns: &Netns,
    cmdline: &str,
    carrier: &[&'static str],
    secs: f32,
) -> Result<Vec<LinkReport>, NetError> {
    let net = network(cmdline);
    let carrier = carrier.to_vec();
    ns.run(move || {
        let _fds: Vec<File> = carrier.iter().map(|t| open_tap(t)).collect();
        bring_up(
            &net,
            Instant::now() + Duration::from_secs_f32(secs),
            Existing::Configure,
        )
    })
}

fn addrs(ns: &Netns, dev: &str) -> Vec<(String, u64, Option<String>)> {
    let v = ns.json(&["addr", "show", "dev", dev]);
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| {
            (
                a["local"].as_str().unwrap().to_string(),
                a["prefixlen"].as_u64().unwrap(),
                a["broadcast"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn link(ns: &Netns, dev: &str) -> Value {
    ns.json(&["link", "show", "dev", dev])[0].clone()
}

fn is_up(l: &Value) -> bool {
    l["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

#[test]
fn static_ipv4_exact_and_idempotent() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:01");
    let cl = "ip=198.18.0.2::198.18.0.1:255.255.255.0::tap0:off:1400";
    for run in 0..2 {
        let r = bring(&ns, cl, &["tap0"], 10.0).unwrap_or_else(|e| panic!("run {run}: {e}"));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].iface, "tap0");
        assert_eq!(r[0].mac, "52:54:00:aa:00:01");
        assert_eq!(r[0].prefix_len, 24);
        assert_eq!(r[0].mtu, Some(1400));
        assert_eq!(
            addrs(&ns, "tap0"),
            [(
                "198.18.0.2".to_string(),
                24,
                Some("198.18.0.255".to_string())
            )],
            "run {run}"
        );
        let routes = ns.json(&["-d", "route", "show", "default"]);
        let routes = routes.as_array().unwrap();
        assert_eq!(routes.len(), 1, "run {run}: {routes:?}");
        assert_eq!(routes[0]["gateway"], "198.18.0.1");
        assert_eq!(routes[0]["dev"], "tap0");
        assert_eq!(routes[0]["protocol"], "boot");
        let l = link(&ns, "tap0");
        assert_eq!(l["mtu"], 1400);
        assert!(is_up(&l), "{l}");
        let lo = link(&ns, "lo");
        assert!(is_up(&lo), "{lo}");
        assert!(addrs(&ns, "lo")
            .iter()
            .any(|a| a.0 == "127.0.0.1" && a.1 == 8));
    }
}

#[test]
fn attach_uses_an_address_the_caller_configured_without_dhcp() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:07");
    ns.ip(&["addr", "add", "10.9.0.5/24", "dev", "tap0"]);
    ns.ip(&["link", "set", "tap0", "up"]);
    ns.tap("tap1", "52:54:00:aa:00:08");
    // No DHCP server in the namespace: configuring would time out; the
    // caller's address is taken at once, for `ip=dhcp` and for no `ip=`.
    // The last line names tap1, which has no address: still configured.
    let lines = [
        ("ip=dhcp", 3.0),
        ("", 3.0),
        ("ip=tap0:dhcp", 3.0),
        ("ip=198.18.0.2::198.18.0.1:255.255.255.0::tap1:off", 10.0),
    ];
    let nets: Vec<(Network, f32)> = lines.iter().map(|(l, s)| (network(l), *s)).collect();
    let results = ns.run(move || {
        // Each tap opened once for the whole test: opening one again while
        // a child forked by a concurrent test still holds the old fd
        // (between its fork and exec) fails with EBUSY.
        let _fds = [open_tap("tap0"), open_tap("tap1")];
        nets.iter()
            .map(|(net, secs)| {
                let t = Instant::now();
                let r = bring_up(
                    net,
                    Instant::now() + Duration::from_secs_f32(*secs),
                    Existing::Respect,
                );
                (r, t.elapsed())
            })
            .collect::<Vec<_>>()
    });
    for ((cl, _), (r, took)) in lines.iter().take(3).zip(&results) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{cl:?}: {e}"));
        assert!(*took < Duration::from_secs(3), "{cl:?} waited {took:?}");
        assert_eq!(r.len(), 1, "{cl:?}");
        assert_eq!(r[0].iface, "tap0");
        assert_eq!(r[0].address.to_string(), "10.9.0.5");
        assert_eq!(r[0].prefix_len, 24);
        assert_eq!(r[0].dhcp_server, None);
    }
    // Nothing was added or replaced on tap0.
    assert_eq!(addrs(&ns, "tap0"), [("10.9.0.5".to_string(), 24, None)]);
    let (last, _) = &results[3];
    let last = last.as_ref().unwrap_or_else(|e| panic!("tap1: {e}"));
    assert_eq!(last[0].iface, "tap1");
    assert_eq!(addrs(&ns, "tap1")[0].0, "198.18.0.2");
}

#[test]
fn no_carrier_is_a_bounded_error() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:02");
    let t = Instant::now();
    let e = bring(&ns, "ip=198.18.0.2::198.18.0.1:24::tap0:off", &[], 1.0).unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(&e, NetError::NoCarrier { iface, .. } if iface == "tap0"),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("no carrier on tap0 after "),
        "{e}"
    );
    assert!(
        e.to_string().ends_with(" s — cable / bridge / tap up?"),
        "{e}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Nothing was configured.
    assert!(addrs(&ns, "tap0").is_empty());
}

#[test]
fn missing_interface_names_what_was_seen() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:03");
    let e = bring(
        &ns,
        "ip=198.18.0.2::198.18.0.1:24::eth7:off",
        &["tap0"],
        0.5,
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("no network interface \"eth7\" appeared within "),
        "{s}"
    );
    assert!(
        s.ends_with("s; NIC driver loaded? interfaces seen: lo, tap0"),
        "{s}"
    );
}

#[test]
fn ifname_renames_by_mac_then_configures() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:04");
    let cl = "ifname=lan0:52:54:00:AA:00:04 ip=198.18.0.4::198.18.0.1:24::lan0:off";
    let r = bring(&ns, cl, &["tap0"], 10.0).unwrap();
    assert_eq!(r[0].iface, "lan0");
    assert_eq!(
        addrs(&ns, "lan0"),
        [(
            "198.18.0.4".to_string(),
            24,
            Some("198.18.0.255".to_string())
        )]
    );
    assert!(is_up(&link(&ns, "lan0")));
    // A second run finds it already renamed and configured.
    let r = bring(&ns, cl, &["lan0"], 10.0).unwrap();
    assert_eq!(r[0].iface, "lan0");
}

#[test]
fn bootif_picks_the_nic_with_that_mac() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:05");
    ns.tap("tap1", "52:54:00:aa:00:06");
    let cl = "BOOTIF=01-52-54-00-aa-00-06 ip=198.18.0.6::198.18.0.1:255.255.255.0:::off";
    let r = bring(&ns, cl, &["tap0", "tap1"], 10.0).unwrap();
    assert_eq!(r[0].iface, "tap1");
    assert_eq!(addrs(&ns, "tap1").len(), 1);
    assert!(addrs(&ns, "tap0").is_empty());
    // Without BOOTIF the first Ethernet link is taken.
    let r = bring(
        &ns,
        "ip=198.18.0.7::198.18.0.1:24:::off",
        &["tap0", "tap1"],
        10.0,
    )
    .unwrap();
    assert_eq!(r[0].iface, "tap0");
}

#[test]
fn static_ipv6_address_and_default_route() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:07");
    let cl = "ip=[2001:db8::2]::[2001:db8::1]:64::tap0:off";
    for _ in 0..2 {
        let r = bring(&ns, cl, &["tap0"], 10.0).unwrap();
        assert_eq!(r[0].prefix_len, 64);
        assert_eq!(addrs(&ns, "tap0"), [("2001:db8::2".to_string(), 64, None)]);
        let routes = ns.json(&["-6", "route", "show", "default"]);
        let routes = routes.as_array().unwrap();
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0]["gateway"], "2001:db8::1");
        assert_eq!(routes[0]["dev"], "tap0");
    }
    // NODAD: usable at once, not tentative.
    let v = ns.json(&["addr", "show", "dev", "tap0"]);
    let a = v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["local"] == "2001:db8::2")
        .cloned()
        .unwrap();
    assert!(a.get("tentative").is_none(), "{a}");
}

#[test]
fn dhcp6_auto6_and_vlans_are_planned() {
    // Pure: what issue 16 made executable is in the plan, not refused.
    for cl in [
        "ip=eth0:dhcp6",
        "ip=auto6",
        "ip=dhcp ip=eth1:auto6 vlan=eth1.7:eth1",
    ] {
        let p = parse_plan(cl).unwrap_or_else(|e| panic!("{cl}: {e}"));
        assert!(!p.network.ip.is_empty(), "{cl}");
    }
    let p = parse_plan("vlan=eth0.42:eth0 ip=198.18.42.2::198.18.42.1:24::eth0.42:off").unwrap();
    let v = &p.network.vlans[0];
    assert_eq!(
        (v.name.as_str(), v.parent.as_str(), v.id),
        ("eth0.42", "eth0", 42)
    );
    // root=dhcp6 / netroot=dhcp6 (dracut): the root path from DHCPv6.
    assert!(
        parse_plan("ip=dhcp6 root=dhcp6")
            .unwrap()
            .root_path_from_dhcp
    );
    assert!(
        parse_plan("ip=dhcp6 netroot=dhcp6")
            .unwrap()
            .root_path_from_dhcp
    );
}

/// Our RTM_GETLINK decoding against the kernel's real dump, compared with
/// `ip -j link` field by field.
#[test]
fn link_dump_matches_ip_link() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    ns.tap("tap0", "52:54:00:aa:00:08");
    ns.tap("tap1", "52:54:00:aa:00:09");
    ns.ip(&["link", "set", "tap1", "mtu", "1280", "up"]);
    let links = ns.run(|| {
        let _fd = open_tap("tap0");
        netboot::net::Rtnl::open().unwrap().links().unwrap()
    });
    let theirs = ns.json(&["link", "show"]);
    let theirs = theirs.as_array().unwrap();
    assert_eq!(links.len(), theirs.len(), "{links:?}");
    for (l, t) in links.iter().zip(theirs) {
        assert_eq!(i64::from(l.index), t["ifindex"].as_i64().unwrap());
        assert_eq!(l.name, t["ifname"].as_str().unwrap());
        assert_eq!(l.mac_string(), t["address"].as_str().unwrap());
        assert_eq!(l.mtu.map(u64::from), t["mtu"].as_u64());
        let flags: Vec<&str> = t["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(l.is_up(), flags.contains(&"UP"), "{}", l.name);
        assert_eq!(l.is_loopback(), flags.contains(&"LOOPBACK"), "{}", l.name);
        assert_eq!(l.operstate.is_some(), t.get("operstate").is_some());
    }
    // tap1 is up but nobody holds it open: no carrier.
    let tap1 = links.iter().find(|l| l.name == "tap1").unwrap();
    assert!(tap1.is_up() && !tap1.has_carrier(), "{tap1:?}");
}

// ---------------------------------------------------------------------------------------------
// DHCP against a real dnsmasq
//
// Layout (no veth on this host, so the test itself is the wire):
//
//   netns nbnet-<pid>-<n> ("server")           netns nbnet-<pid>-<m> ("client")
//   br0 198.18.0.1/24 ── dnsmasq               c0 (tap) ── netboot's DHCP client
//    └─ s0 (tap)                                 │
//        ╰──── test thread: frames s0 fd ⇄ c0 fd ┘
//
// Both taps are opened by the test (so both have carrier); a relay thread copies every
// Ethernet frame read from one tap's fd into the other's. dnsmasq sees our DISCOVER arrive on
// br0 through s0 exactly as from a NIC, and its broadcast OFFER/ACK reach c0 the same way.

const CLIENT_MAC: &str = "52:54:00:aa:00:10";
const DHCP_ROOT_PATH: &str = "iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root";

/// dnsmasq in the server namespace, killed by PID (its child handle) on drop.
struct Dnsmasq {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Dnsmasq {
    fn start(ns: &Netns) -> Dnsmasq {
        let dir = std::env::temp_dir().join(format!("{}-dnsmasq", ns.0));
        std::fs::create_dir_all(&dir).unwrap();
        let log = File::create(dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
            ])
            .args([
                "--bind-interfaces",
                "--interface=br0",
                "--except-interface=lo",
                "--port=0",
            ])
            .args(["--user=root", "--no-ping", "--log-dhcp"])
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .args(["--dhcp-range=198.18.0.2,198.18.0.2,255.255.255.0,1h"])
            .args([
                "--dhcp-option=3,198.18.0.254",
                "--dhcp-option=6,198.18.0.53",
            ])
            .args(["--dhcp-option=26,1400"])
            .arg(format!("--dhcp-option=17,{DHCP_ROOT_PATH}"))
            .arg(format!("--dhcp-host={CLIENT_MAC},node10"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Dnsmasq { child, dir }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
    fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.join("leases")).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The relay between the two tap fds; stops (and is joined) on drop.
struct Wire {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Wire {
    fn new(a: File, b: File) -> Wire {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut a, mut b) = (a, b);
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::SeqCst) {
                let (a_in, b_in) = {
                    let mut fds = [
                        PollFd::new(&a, PollFlags::IN),
                        PollFd::new(&b, PollFlags::IN),
                    ];
                    if !matches!(poll(&mut fds, Some(&TICK)), Ok(n) if n > 0) {
                        continue;
                    }
                    let ready = |fd: &PollFd<'_>| fd.revents().contains(PollFlags::IN);
                    (ready(&fds[0]), ready(&fds[1]))
                };
                if a_in {
                    if let Ok(n) = a.read(&mut buf) {
                        let _ = b.write(&buf[..n]);
                    }
                }
                if b_in {
                    if let Ok(n) = b.read(&mut buf) {
                        let _ = a.write(&buf[..n]);
                    }
                }
            }
        });
        Wire {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server namespace: br0 198.18.0.1/24 with tap s0 enslaved.
fn server_ns() -> Netns {
    let ns = Netns::new();
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "br0"]);
    ns.tap("s0", "52:54:00:bb:00:01");
    ns.ip(&["link", "set", "s0", "master", "br0"]);
    ns.ip(&["link", "set", "br0", "up"]);
    ns.ip(&["link", "set", "s0", "up"]);
    ns
}

/// tcpdump on br0 while `NETBOOT_DHCP_PCAP` names an output file (capture.sh).
fn capture(ns: &Netns) -> Option<std::process::Child> {
    let out = std::env::var("NETBOOT_DHCP_PCAP").ok()?;
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "tcpdump", "-i", "br0", "-U", "-n", "-w", &out,
        ])
        .args(["udp", "port", "67", "or", "udp", "port", "68"])
        .spawn()
        .unwrap();
    // tcpdump needs a moment to attach before the first DISCOVER.
    std::thread::sleep(Duration::from_millis(500));
    Some(child)
}

/// bring_up in a fresh client namespace (tap c0) wired to `srv`.
fn dhcp_bring(srv: &Netns, cmdline: &str, secs: f32) -> (Netns, Result<Vec<LinkReport>, NetError>) {
    let cli = Netns::new();
    cli.tap("c0", CLIENT_MAC);
    let s0 = srv.run(|| open_tap("s0"));
    let c0 = cli.run(|| open_tap("c0"));
    // The client's fd for the carrier, a duplicate for the wire.
    let c0_wire = c0.try_clone().unwrap();
    let _wire = Wire::new(s0, c0_wire);
    let net = network(cmdline);
    let r = cli.run(move || {
        let _c0 = c0;
        bring_up(
            &net,
            Instant::now() + Duration::from_secs_f32(secs),
            Existing::Configure,
        )
    });
    (cli, r)
}

#[test]
fn dhcp_lease_from_dnsmasq_is_configured() {
    if !root() {
        return;
    }
    let srv = server_ns();
    let dnsmasq = Dnsmasq::start(&srv);
    let tcpdump = capture(&srv);
    // Once with the interface named, once with no ip= at all (= ip=dhcp on the first
    // Ethernet link with carrier).
    for cl in ["ip=c0:dhcp", ""] {
        let t = Instant::now();
        let (cli, r) = dhcp_bring(&srv, cl, 20.0);
        let took = t.elapsed();
        let r = r.unwrap_or_else(|e| panic!("{cl:?}: {e}\ndnsmasq log:\n{}", dnsmasq.log()));
        assert_eq!(r.len(), 1, "{r:?}");
        let l = &r[0];
        assert_eq!(l.iface, "c0");
        assert_eq!(l.mac, CLIENT_MAC);
        assert_eq!(l.address.to_string(), "198.18.0.2");
        assert_eq!(l.prefix_len, 24);
        assert_eq!(
            l.gateway.map(|g| g.to_string()).as_deref(),
            Some("198.18.0.254")
        );
        assert_eq!(l.mtu, Some(1400));
        assert_eq!(
            l.dhcp_server.map(|s| s.to_string()).as_deref(),
            Some("198.18.0.1")
        );
        assert_eq!(l.lease_s, Some(3600));
        assert_eq!(l.root_path.as_deref(), Some(DHCP_ROOT_PATH));
        assert_eq!(l.hostname.as_deref(), Some("node10"));
        assert_eq!(
            l.dns.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            ["198.18.0.53"]
        );
        // The kernel's view, read back with iproute2.
        assert_eq!(
            addrs(&cli, "c0"),
            [(
                "198.18.0.2".to_string(),
                24,
                Some("198.18.0.255".to_string())
            )],
            "{cl:?}"
        );
        let routes = cli.json(&["route", "show", "default"]);
        let routes = routes.as_array().unwrap();
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0]["gateway"], "198.18.0.254");
        assert_eq!(routes[0]["dev"], "c0");
        assert_eq!(link(&cli, "c0")["mtu"], 1400);
        // dnsmasq answers the first DISCOVER at once: no retransmission needed.
        assert!(took < Duration::from_secs(5), "{cl:?}: took {took:?}");
        // The server recorded the lease for our MAC (it sent the ACK).
        let leases = dnsmasq.leases();
        assert!(
            leases
                .lines()
                .any(|l| l.contains(CLIENT_MAC) && l.contains("198.18.0.2")),
            "lease file: {leases}\nlog: {}",
            dnsmasq.log()
        );
    }
    if let Some(mut t) = tcpdump {
        // SIGTERM, not Child::kill's SIGKILL: tcpdump flushes the pcap and exits.
        let _ = kill_process(Pid::from_child(&t), Signal::TERM);
        let _ = t.wait();
    }
}

#[test]
fn dhcp_without_server_is_a_bounded_error() {
    if !root() {
        return;
    }
    // The wire exists but nothing answers on br0.
    let srv = server_ns();
    let t = Instant::now();
    let (cli, r) = dhcp_bring(&srv, "ip=c0:dhcp", 2.5);
    let took = t.elapsed();
    let e = r.unwrap_err();
    let s = e.to_string();
    // Carrier (linkwatch) takes up to ~1 s of the 2.5; DISCOVERs go out at +0 s, +1 s, +3 s.
    let NetError::NoLease {
        iface,
        sent,
        offers: 0,
        last_error: None,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(iface, "c0");
    assert!((2..=3).contains(sent), "{e:?}");
    assert!(s.starts_with("dhcp: no lease on c0 within "), "{s}");
    assert!(
        s.ends_with(&format!(
            " s ({sent} sent, 0 offers) — DHCP server on this link? (or give a static ip=)"
        )),
        "{s}"
    );
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(addrs(&cli, "c0").is_empty());
}

/// A real dnsmasq 2.90 exchange captured on br0 by `tests/fixtures/dhcp/capture.sh` (the
/// test above with NETBOOT_DHCP_PCAP): our DISCOVER and REQUEST, dnsmasq's OFFER and ACK,
/// each stored as the IPv4 packet an AF_PACKET/SOCK_DGRAM socket delivers.
#[test]
fn dnsmasq_capture_decodes() {
    use netboot::net::dhcp::{self, Client, Kind};
    use std::net::Ipv4Addr;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dhcp");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let (discover, offer, request, ack) = (
        read("1-discover.bin"),
        read("2-offer.bin"),
        read("3-request.bin"),
        read("4-ack.bin"),
    );
    let mac = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x10];
    // BOOTP xid and secs of our own captured messages (IP 20 + UDP 8 + offsets 4 and 8).
    let xid = u32::from_be_bytes(discover[32..36].try_into().unwrap());
    for (pkt, opts) in [(&discover, None), (&request, Some(()))] {
        let secs = u16::from_be_bytes(pkt[36..38].try_into().unwrap());
        let c = Client {
            xid,
            mac,
            hostname: None,
            secs,
        };
        let ours = match opts {
            None => dhcp::discover(&c),
            Some(()) => dhcp::request(
                &c,
                Ipv4Addr::new(198, 18, 0, 2),
                Ipv4Addr::new(198, 18, 0, 1),
            ),
        };
        assert_eq!(&ours, pkt, "our builder reproduces the captured bytes");
    }
    let o = dhcp::parse(&offer, xid, &mac).unwrap();
    let a = dhcp::parse(&ack, xid, &mac).unwrap();
    assert_eq!((o.kind, a.kind), (Kind::Offer, Kind::Ack));
    for r in [&o, &a] {
        assert_eq!(r.yiaddr, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(r.server_id, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.from, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.prefix_len, Some(24));
        assert_eq!(r.routers, [Ipv4Addr::new(198, 18, 0, 254)]);
        assert_eq!(r.dns, [Ipv4Addr::new(198, 18, 0, 53)]);
        assert_eq!(r.mtu, Some(1400));
        assert_eq!(r.lease_s, Some(3600));
        assert_eq!(r.root_path.as_deref(), Some(DHCP_ROOT_PATH));
        assert_eq!(r.hostname.as_deref(), Some("node10"));
    }
    // Another client's transaction and a cut packet are errors, never a panic.
    assert!(dhcp::parse(&offer, xid ^ 1, &mac).unwrap_err().is_foreign());
    for n in 0..ack.len() {
        assert!(dhcp::parse(&ack[..n], xid, &mac).is_err());
    }
}
