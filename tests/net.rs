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
//! Needs root; skipped otherwise, failed if NETBOOT_REQUIRE_ROOT=1.

use netboot::cmdline::parse_plan;
use netboot::net::{bring_up, LinkReport, NetError};
use netboot::plan::Network;
use serde_json::Value;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if !is_root {
        assert!(
            std::env::var("NETBOOT_REQUIRE_ROOT").as_deref() != Ok("1"),
            "not root but NETBOOT_REQUIRE_ROOT=1"
        );
        eprintln!("skipped: needs root (netns, tap)");
    }
    is_root
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
            // SAFETY: ns is an open nsfs file; setns only changes this
            // thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
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
    let mut req = IfReq {
        name: [0; 16],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads a struct ifreq (40 bytes on x86_64), which
    // IfReq is, and the fd is /dev/net/tun.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    assert_eq!(
        rc,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
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
        bring_up(&net, Instant::now() + Duration::from_secs_f32(secs))
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
fn dhcp_is_refused_with_a_clear_error() {
    // Pure: refused before any socket is opened, so no root needed.
    for (cl, want) in [
        ("ip=dhcp", "ip=dhcp is not supported yet; use a static ip=CLIENT::GATEWAY:NETMASK::IFACE:off"),
        ("ip=eth0:dhcp6", "ip=eth0:dhcp6 is not supported yet; use a static ip=CLIENT::GATEWAY:NETMASK::IFACE:off"),
    ] {
        let e = bring_up(&network(cl), Instant::now()).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
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
