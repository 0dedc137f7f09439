//! Network bring-up for the boot: links, static addresses and the default
//! route over rtnetlink (NETLINK_ROUTE), from the plan's `ip=`, `ifname=`
//! and `BOOTIF=`. PID 1 has no udev, no ifupdown, no `ip`: this is all of it.
//!
//! Messages are built and decoded by the pure codec in [`rtnl`]; this file
//! holds the socket and the decisions (which link, wait for it, wait for
//! carrier). `ip=dhcp` (and no `ip=` at all, as dracut does when the
//! network is needed) runs the DHCPv4 client in [`dhcp_sock`] over the
//! codec in [`dhcp`]; `dhcp6`/`auto6` fail with [`NetError::Unsupported`]
//! instead of pretending.

pub mod dhcp;
pub mod dhcp6;
pub mod dhcp6_sock;
pub mod dhcp_sock;
pub mod ipv6;
pub mod rtnl;

use crate::plan::{IpConfig, IpMethod, Network};
use crate::sys::errno::errno_text;
use crate::sys::poll::{deadline_after, poll_until};
use rtnl::{Link, Message};
use rustix::event::PollFlags;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{
    bind, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// How long one request may wait for the kernel's answer. rtnetlink answers
/// synchronously; the bound only keeps PID 1 from hanging on a lost reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything that can fail while bringing the network up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// socket/bind of the NETLINK_ROUTE socket.
    Socket { op: &'static str, errno: Errno },
    /// send/recv on it.
    Io { op: &'static str, errno: Errno },
    /// No reply to request `what` within [`REPLY_TIMEOUT`].
    NoReply { what: String },
    /// The kernel's reply could not be decoded.
    Decode {
        what: String,
        err: rtnl::DecodeError,
    },
    /// The kernel refused a request (`what` names link and value).
    Refused { what: String, errno: i32 },
    /// `ip=dhcp6`/`auto6`: not in this version.
    Unsupported { value: String },
    /// A static `ip=` without an address.
    NoAddress { value: String },
    /// Gateway of a different family than the address.
    GatewayFamily {
        iface: String,
        address: IpAddr,
        gateway: IpAddr,
    },
    /// The wanted interface did not appear before the deadline.
    NoInterface {
        wanted: String,
        waited: Duration,
        seen: Vec<String>,
    },
    /// The interface is up but has no carrier at the deadline.
    NoCarrier { iface: String, waited: Duration },
    /// No DHCP lease before the deadline. `last_error` is the last reply
    /// to us that could not be used, if any.
    NoLease {
        iface: String,
        waited: Duration,
        sent: u32,
        offers: u32,
        last_error: Option<String>,
    },
    /// The server refused our REQUEST, and no lease came afterwards.
    DhcpNak {
        iface: String,
        server: Ipv4Addr,
        message: String,
    },
    /// socket/bind/sendto/poll/recv on the DHCP packet socket.
    DhcpSocket { op: &'static str, errno: Errno },
    /// DHCP needs an Ethernet hardware address.
    NotEthernet { iface: String, mac: String },
    /// IPv6 duplicate address detection found `address` in use.
    DadFailed {
        iface: String,
        address: std::net::Ipv6Addr,
    },
    /// The link-local address did not finish DAD before the deadline.
    NoLinkLocal { iface: String, waited: Duration },
    /// `ip=auto6`: no usable global address and RA default route in time.
    NoSlaac {
        iface: String,
        waited: Duration,
        address: bool,
        router: bool,
        seen: Vec<String>,
    },
    /// `ip=dhcp6`: no REPLY with an address before the deadline.
    NoLease6 {
        iface: String,
        waited: Duration,
        sent: u32,
        advertises: u32,
        last_error: Option<String>,
    },
    /// socket/bind/sendto/poll/recvfrom on the DHCPv6 UDP socket.
    Dhcp6Socket { op: &'static str, errno: Errno },
}

/// What a refused rtnetlink request usually means.
const REFUSED_HINTS: &[(Errno, &str)] = &[
    (Errno::PERM, "needs CAP_NET_ADMIN"),
    (
        Errno::NETUNREACH,
        "gateway not inside the address's prefix?",
    ),
    (Errno::BUSY, "the interface must be down to be renamed"),
    (Errno::INVAL, "MTU outside the driver's range?"),
];

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Socket { op, errno } => write!(f, "{op}(AF_NETLINK, NETLINK_ROUTE): {errno}"),
            NetError::Io { op, errno } => write!(f, "{op} on the NETLINK_ROUTE socket: {errno}"),
            NetError::NoReply { what } => write!(
                f,
                "no rtnetlink reply to {what} within {} s",
                REPLY_TIMEOUT.as_secs()
            ),
            NetError::Decode { what, err } => write!(f, "{what}: {err}"),
            NetError::Refused { what, errno } => write!(
                f,
                "{what}: {}",
                errno_text(*errno, REFUSED_HINTS)
            ),
            NetError::Unsupported { value } => write!(
                f,
                "ip={value} is not supported yet; use ip=dhcp or a static ip=CLIENT::GATEWAY:NETMASK::IFACE:off"
            ),
            NetError::NoAddress { value } => {
                write!(f, "ip={value}: a static configuration needs a client address")
            }
            NetError::GatewayFamily { iface, address, gateway } => write!(
                f,
                "{iface}: gateway {gateway} is not of the same IP version as address {address}"
            ),
            NetError::NoInterface { wanted, waited, seen } => write!(
                f,
                "no network interface {wanted} appeared within {} s; NIC driver loaded? interfaces seen: {}",
                Secs(*waited),
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            ),
            NetError::NoCarrier { iface, waited } => write!(
                f,
                "no carrier on {iface} after {} s — cable / bridge / tap up?",
                Secs(*waited)
            ),
            NetError::NoLease { iface, waited, sent, offers, last_error } => {
                write!(
                    f,
                    "dhcp: no lease on {iface} within {} s ({sent} sent, {offers} offers",
                    Secs(*waited)
                )?;
                match last_error {
                    Some(e) => write!(f, "; last unusable reply: {e})"),
                    None if *offers == 0 => {
                        f.write_str(") — DHCP server on this link? (or give a static ip=)")
                    }
                    None => f.write_str("; no ACK to our request)"),
                }
            }
            NetError::DhcpNak { iface, server, message } => write!(
                f,
                "dhcp: {server} refused the lease on {iface} (DHCPNAK: {})",
                if message.is_empty() { "no message" } else { message }
            ),
            NetError::DhcpSocket { op, errno } => write!(
                f,
                "dhcp: {op} on the AF_PACKET socket: {errno}{}",
                if *errno == Errno::AFNOSUPPORT { " (hint: kernel without CONFIG_PACKET?)" } else { "" }
            ),
            NetError::NotEthernet { iface, mac } => write!(
                f,
                "dhcp: {iface} has hardware address {mac:?}, not a 6-byte Ethernet MAC"
            ),
            NetError::DadFailed { iface, address } => write!(
                f,
                "{iface}: IPv6 address {address} is already in use on the link (duplicate address detection failed)"
            ),
            NetError::NoLinkLocal { iface, waited } => write!(
                f,
                "{iface}: no IPv6 link-local address out of duplicate address detection within {} s (IPv6 disabled on the link?)",
                Secs(*waited)
            ),
            NetError::NoSlaac { iface, waited, address, router, seen } => write!(
                f,
                "auto6: {iface} has {} within {} s (addresses: {}) — a router sending advertisements with an autonomous prefix on this link?",
                match (address, router) {
                    (false, false) => "no global address and no default route from a router advertisement",
                    (true, false) => "a global address but no default route from a router advertisement",
                    _ => "no global address out of duplicate address detection",
                },
                Secs(*waited),
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            ),
            NetError::NoLease6 { iface, waited, sent, advertises, last_error } => {
                write!(
                    f,
                    "dhcp6: no lease on {iface} within {} s ({sent} sent, {advertises} advertises",
                    Secs(*waited)
                )?;
                match last_error {
                    Some(e) => write!(f, "; last unusable reply: {e})"),
                    None if *advertises == 0 => {
                        f.write_str(") — DHCPv6 server on this link? (or ip=auto6, or a static ip=[ADDR]::[GW]:64::IFACE:none)")
                    }
                    None => f.write_str("; no REPLY to our request)"),
                }
            }
            NetError::Dhcp6Socket { op, errno } => {
                write!(f, "dhcp6: {op} on the UDP socket (port 546): {errno}")
            }
        }
    }
}

impl std::error::Error for NetError {}

/// A duration as seconds with one decimal, without float formatting
/// (which costs ≈10 KB in the static binary).
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.0.as_millis() / 100;
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

/// What was configured on one interface (for the boot events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub iface: String,
    pub mac: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    pub mtu: Option<u32>,
    /// Time from "set up" to carrier.
    pub carrier_ms: u64,
    /// What DHCP learned (all empty for a static entry).
    pub dhcp_server: Option<Ipv4Addr>,
    pub lease_s: Option<u32>,
    /// Option 17, for `root=dhcp`.
    pub root_path: Option<String>,
    pub hostname: Option<String>,
    pub dns: Vec<IpAddr>,
    /// Time from the first DISCOVER to the ACK.
    pub dhcp_ms: Option<u64>,
}

/// A NETLINK_ROUTE request socket plus a second socket subscribed to
/// RTNLGRP_LINK, used only to wake up when a link appears or changes
/// (the dump stays the truth; notifications may be lost on overflow).
#[derive(Debug)]
pub struct Rtnl {
    fd: OwnedFd,
    monitor: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn open_route(groups: u32) -> Result<OwnedFd, NetError> {
    let fd = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        // NETLINK_ROUTE is protocol 0 (netlink.h), which rustix's non-zero
        // `Protocol` cannot name: `None` passes 0.
        None,
    )
    .map_err(|errno| NetError::Socket {
        op: "socket",
        errno,
    })?;
    bind(&fd, &SocketAddrNetlink::new(0, groups))
        .map_err(|errno| NetError::Socket { op: "bind", errno })?;
    Ok(fd)
}

/// Wait until `fd` is readable or `deadline` passes; true if readable.
fn wait_readable(fd: &OwnedFd, deadline: Instant) -> Result<bool, NetError> {
    poll_until(fd, PollFlags::IN, deadline).map_err(|errno| NetError::Io { op: "poll", errno })
}

impl Rtnl {
    pub fn open() -> Result<Rtnl, NetError> {
        Ok(Rtnl {
            fd: open_route(0)?,
            monitor: open_route(rtnl::RTMGRP_LINK)?,
            seq: 0,
            // A dump datagram is at most one page per skb; 32 KiB holds
            // the kernel's largest (netlink_dump uses up to 32 KiB).
            buf: vec![0; 32 * 1024],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, msg: &[u8]) -> Result<(), NetError> {
        send(&self.fd, msg, SendFlags::empty())
            .map_err(|errno| NetError::Io { op: "send", errno })?;
        Ok(())
    }

    /// Receive and decode one datagram, waiting at most REPLY_TIMEOUT.
    fn recv(&mut self, what: &dyn Fn() -> String) -> Result<Vec<Message>, NetError> {
        if !wait_readable(&self.fd, deadline_after(REPLY_TIMEOUT))? {
            return Err(NetError::NoReply { what: what() });
        }
        let n = match recv(&self.fd, &mut self.buf[..], RecvFlags::empty()) {
            Ok((n, _)) => n,
            Err(errno) => return Err(NetError::Io { op: "recv", errno }),
        };
        rtnl::parse(self.buf.get(..n).unwrap_or(&[]))
            .map_err(|err| NetError::Decode { what: what(), err })
    }

    /// Send a request built with `seq` and wait for its ACK; the kernel's
    /// errno comes back as `Err(errno)` so the caller can accept EEXIST.
    fn request(
        &mut self,
        build: &dyn Fn(u32) -> Vec<u8>,
        what: &dyn Fn() -> String,
    ) -> Result<Result<(), i32>, NetError> {
        let seq = self.next_seq();
        self.send(&build(seq))?;
        loop {
            for m in self.recv(what)? {
                match m {
                    Message::Ack { seq: s } if s == seq => return Ok(Ok(())),
                    Message::Error { seq: s, errno } if s == seq => return Ok(Err(errno)),
                    _ => {}
                }
            }
        }
    }

    fn must(
        &mut self,
        build: &dyn Fn(u32) -> Vec<u8>,
        what: &dyn Fn() -> String,
        ok_exists: bool,
    ) -> Result<(), NetError> {
        match self.request(build, what)? {
            Ok(()) => Ok(()),
            Err(errno) if ok_exists && errno == Errno::EXIST.raw_os_error() => Ok(()),
            Err(errno) => Err(NetError::Refused {
                what: what(),
                errno,
            }),
        }
    }

    /// Every link (RTM_GETLINK dump, all parts until NLMSG_DONE).
    pub fn links(&mut self) -> Result<Vec<Link>, NetError> {
        self.dump(&rtnl::get_links, "RTM_GETLINK dump", |m| match m {
            Message::Link {
                deleted: false,
                link,
                ..
            } => Some(link),
            _ => None,
        })
    }

    /// One dump request (built with the next sequence number): every part
    /// `pick` accepts, until NLMSG_DONE. EINTR-style cut dumps
    /// (NLM_F_DUMP_INTR) are rare; the callers re-dump in their wait loops.
    pub(crate) fn dump<T>(
        &mut self,
        build: &dyn Fn(u32) -> Vec<u8>,
        name: &str,
        pick: impl Fn(Message) -> Option<T>,
    ) -> Result<Vec<T>, NetError> {
        let seq = self.next_seq();
        self.send(&build(seq))?;
        let what = || name.to_string();
        let mut out = Vec::new();
        loop {
            for m in self.recv(&what)? {
                match m {
                    Message::Done { seq: s, errno } | Message::Error { seq: s, errno }
                        if s == seq =>
                    {
                        if errno != 0 {
                            return Err(NetError::Refused {
                                what: what(),
                                errno,
                            });
                        }
                        return Ok(out);
                    }
                    m if message_seq(&m) == seq => out.extend(pick(m)),
                    _ => {}
                }
            }
        }
    }

    /// Bring a link up or down and/or set its MTU.
    pub fn set_link(
        &mut self,
        link: &Link,
        up: Option<bool>,
        mtu: Option<u32>,
    ) -> Result<(), NetError> {
        let what = || match (up, mtu) {
            (_, Some(m)) => format!("setting {} mtu {m}", link.name),
            (Some(false), None) => format!("setting {} down", link.name),
            _ => format!("setting {} up", link.name),
        };
        self.must(
            &|s| rtnl::set_link(s, link.index, up, mtu, None),
            &what,
            false,
        )
    }

    /// Rename a link (taken down first: the kernel refuses to rename an
    /// up link).
    pub fn rename(&mut self, link: &Link, name: &str) -> Result<(), NetError> {
        if link.is_up() {
            self.set_link(link, Some(false), None)?;
        }
        let what = || format!("renaming {} to {name}", link.name);
        self.must(
            &|s| rtnl::set_link(s, link.index, None, None, Some(name)),
            &what,
            false,
        )
    }

    /// Every address of `family` (RTM_GETADDR dump until NLMSG_DONE).
    pub fn addresses(&mut self, family: u8) -> Result<Vec<rtnl::Addr>, NetError> {
        self.dump(
            &|seq| rtnl::get_addrs(seq, family),
            "RTM_GETADDR dump",
            |m| match m {
                Message::Addr { addr, .. } => Some(addr),
                _ => None,
            },
        )
    }

    /// Add (or replace) `addr/prefix` on `link`.
    pub fn add_address(&mut self, link: &Link, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let what = || format!("adding address {addr}/{prefix} to {}", link.name);
        self.must(
            &|s| rtnl::add_address(s, link.index, addr, prefix),
            &what,
            true,
        )
    }

    /// Add (or replace) the default route via `gateway` out of `link`.
    pub fn add_default_route(&mut self, link: &Link, gateway: IpAddr) -> Result<(), NetError> {
        let what = || format!("adding default route via {gateway} dev {}", link.name);
        self.must(
            &|s| rtnl::add_default_route(s, link.index, gateway, rtnl::RTPROT_BOOT),
            &what,
            true,
        )
    }

    /// One link by ifindex (RTM_GETLINK doit, [`rtnl::get_link`]); `None`
    /// if it is gone.
    pub fn link(&mut self, index: i32) -> Result<Option<Link>, NetError> {
        let seq = self.next_seq();
        self.send(&rtnl::get_link(seq, index))?;
        let what = || format!("RTM_GETLINK ifindex {index}");
        loop {
            for m in self.recv(&what)? {
                match m {
                    Message::Link { seq: s, link, .. } if s == seq => return Ok(Some(link)),
                    Message::Ack { seq: s } if s == seq => return Ok(None),
                    Message::Error { seq: s, errno } if s == seq => {
                        if errno == Errno::NODEV.raw_os_error() {
                            return Ok(None);
                        }
                        return Err(NetError::Refused {
                            what: what(),
                            errno,
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sleep until a link notification arrives or `until` passes, then
    /// drain the notification queue (ENOBUFS on overflow is harmless: the
    /// caller re-dumps).
    pub fn wait_link_event(&mut self, until: Instant) -> Result<(), NetError> {
        // Wake at least every 250 ms: notifications can be lost.
        self.wait_link_event_within(until, Duration::from_millis(250))
    }

    /// [`Rtnl::wait_link_event`], waking after `max` at the latest.
    pub fn wait_link_event_within(
        &mut self,
        until: Instant,
        max: Duration,
    ) -> Result<(), NetError> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let wake = deadline_after(max);
        if wait_readable(&self.monitor, until.min(wake))? {
            while recv(&self.monitor, &mut self.buf[..], RecvFlags::DONTWAIT).is_ok() {}
        }
        Ok(())
    }
}

/// The sequence number of a decoded message.
fn message_seq(m: &Message) -> u32 {
    match m {
        Message::Ack { seq }
        | Message::Error { seq, .. }
        | Message::Done { seq, .. }
        | Message::Link { seq, .. }
        | Message::Addr { seq, .. }
        | Message::Route { seq, .. }
        | Message::Other { seq, .. } => *seq,
    }
}

/// Which link an `ip=` entry means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Name(String),
    Mac(String),
    /// The first non-loopback Ethernet link.
    AnyEthernet,
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Name(n) => write!(f, "{n:?}"),
            Want::Mac(m) => write!(f, "with MAC {m}"),
            Want::AnyEthernet => f.write_str("(any Ethernet)"),
        }
    }
}

/// Pick the link for `want` from a dump (pure). Links are in ifindex order,
/// so "first" is the one the kernel registered first (eth0 before eth1).
pub fn pick<'a>(links: &'a [Link], want: &Want) -> Option<&'a Link> {
    match want {
        Want::Name(n) => links.iter().find(|l| l.name == *n),
        Want::Mac(m) => links.iter().find(|l| l.mac_string() == *m),
        Want::AnyEthernet => links
            .iter()
            .filter(|l| !l.is_loopback() && l.kind == rtnl::ARPHRD_ETHER)
            .min_by_key(|l| l.index),
    }
}

/// Which link an `ip=` entry targets (pure): its interface name, else its
/// MAC field, else `BOOTIF=`, else any Ethernet link.
pub fn want_for(ip: &IpConfig, bootif: Option<&str>) -> Want {
    if let Some(n) = &ip.iface {
        Want::Name(n.clone())
    } else if let Some(m) = &ip.mac {
        Want::Mac(m.to_ascii_lowercase())
    } else if let Some(m) = bootif {
        Want::Mac(m.to_ascii_lowercase())
    } else {
        Want::AnyEthernet
    }
}

/// The `ip=` value as far as the error text needs it.
fn ip_value(ip: &IpConfig) -> String {
    let m = match ip.method {
        IpMethod::Static => "off",
        IpMethod::Dhcp => "dhcp",
        IpMethod::Dhcp6 => "dhcp6",
        IpMethod::Auto6 => "auto6",
        IpMethod::Off => "none",
    };
    match (&ip.address, &ip.iface) {
        (Some(a), i) => format!("{a}::…:{}:{m}", i.as_deref().unwrap_or("")),
        (None, Some(i)) => format!("{i}:{m}"),
        (None, None) => m.to_string(),
    }
}

/// Wait (until `deadline`) for the link `want`, applying `ifname=` renames
/// to every link whose MAC they name as links appear.
pub fn find_link(
    rt: &mut Rtnl,
    want: &Want,
    ifnames: &[crate::plan::IfName],
    started: Instant,
    deadline: Instant,
) -> Result<Link, NetError> {
    loop {
        let mut links = rt.links()?;
        let mut renamed = false;
        for r in ifnames {
            let mac = r.mac.to_ascii_lowercase();
            if let Some(l) = links
                .iter()
                .find(|l| l.mac_string() == mac && l.name != r.name)
            {
                rt.rename(l, &r.name)?;
                renamed = true;
            }
        }
        if renamed {
            links = rt.links()?;
        }
        if let Some(l) = pick(&links, want) {
            return Ok(l.clone());
        }
        if Instant::now() >= deadline {
            return Err(NetError::NoInterface {
                wanted: want.to_string(),
                waited: started.elapsed(),
                seen: links.into_iter().map(|l| l.name).collect(),
            });
        }
        rt.wait_link_event(deadline)?;
    }
}

/// The link as it was read just before netboot set IFF_UP on it: what
/// [`tx_ready`] needs to tell "the qdisc was activated at open" from
/// "wait for linkwatch".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeforeUp {
    pub index: i32,
    pub carrier: bool,
    pub up_count: Option<u32>,
}

/// Links this process raised, as they were just before (one entry per
/// ifindex, the latest wins). A process-wide list because the link is
/// raised early, in the modules step, and waited for in the network step.
static RAISED: std::sync::Mutex<Vec<BeforeUp>> = std::sync::Mutex::new(Vec::new());

/// Record `l` (read from the kernel, still down) before setting IFF_UP.
pub fn remember_before_up(l: &Link) {
    let b = BeforeUp {
        index: l.index,
        carrier: l.carrier == Some(true),
        up_count: l.carrier_up_count,
    };
    if let Ok(mut v) = RAISED.lock() {
        v.retain(|o| o.index != l.index);
        v.push(b);
    }
}

fn before_up(index: i32) -> Option<BeforeUp> {
    RAISED
        .lock()
        .ok()
        .and_then(|v| v.iter().find(|b| b.index == index).copied())
}

/// Why a link can send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxReady {
    /// IFF_RUNNING: linkwatch has run (operstate up, qdisc active).
    Running,
    /// The carrier was on before IFF_UP and has not dropped since (same
    /// IFLA_CARRIER_UP_COUNT): `__dev_open` activated the qdisc itself
    /// (net/sched/sch_generic.c `dev_activate` sees the carrier), so frames
    /// go out although operstate waits for linkwatch's next run — up to
    /// 1 s after the driver's probe (net/core/link_watch.c, one full pass
    /// per second).
    ActivatedAtOpen,
}

impl TxReady {
    pub fn name(self) -> &'static str {
        match self {
            TxReady::Running => "operstate up",
            TxReady::ActivatedAtOpen => "carrier on before IFF_UP, qdisc active since open",
        }
    }
}

/// Can `now` send (pure)? `before` is the link as read just before we set
/// IFF_UP, if we did. Without it only IFF_RUNNING counts: a link raised by
/// someone else may have got its carrier after open, and sending before
/// linkwatch activated the qdisc drops the first ARP (1 s retransmission).
pub fn tx_ready(now: &Link, before: Option<&BeforeUp>) -> Option<TxReady> {
    if !now.is_up() {
        return None;
    }
    if now.has_carrier() {
        return Some(TxReady::Running);
    }
    let carrier = now.flags & rtnl::IFF_LOWER_UP != 0 || now.carrier == Some(true);
    match before {
        Some(b)
            if carrier
                && b.carrier
                && b.index == now.index
                && b.up_count.is_some()
                && b.up_count == now.carrier_up_count =>
        {
            Some(TxReady::ActivatedAtOpen)
        }
        _ => None,
    }
}

/// How often the carrier wait reads the link: the carrier bit and, on
/// 6.12, a pending linkwatch event (run by the by-index read) change
/// without a notification.
const CARRIER_POLL: Duration = Duration::from_millis(10);

/// Wait (until `deadline`) until link `link` can send ([`tx_ready`]),
/// reading it by ifindex.
pub fn wait_carrier(rt: &mut Rtnl, link: &Link, deadline: Instant) -> Result<Link, NetError> {
    let started = Instant::now();
    let before = before_up(link.index);
    loop {
        if let Some(l) = rt.link(link.index)? {
            if let Some(why) = tx_ready(&l, before.as_ref()) {
                log::info!(
                    "{}: link ready {} ms after the wait began ({})",
                    l.name,
                    started.elapsed().as_millis(),
                    why.name()
                );
                return Ok(l);
            }
        }
        if Instant::now() >= deadline {
            return Err(NetError::NoCarrier {
                iface: link.name.clone(),
                waited: started.elapsed(),
            });
        }
        rt.wait_link_event_within(deadline, CARRIER_POLL)?;
    }
}

/// Bring `lo` up; the kernel adds 127.0.0.1/8 and ::1 itself when the
/// loopback goes up (net/ipv4/devinet.c `inetdev_event` NETDEV_UP), the
/// explicit add covers kernels and namespaces where it was removed.
pub fn loopback_up(rt: &mut Rtnl) -> Result<(), NetError> {
    let links = rt.links()?;
    if let Some(lo) = links.iter().find(|l| l.is_loopback()) {
        if !lo.is_up() {
            rt.set_link(lo, Some(true), None)?;
        }
        rt.add_address(lo, IpAddr::V4(Ipv4Addr::LOCALHOST), 8)?;
    }
    Ok(())
}

/// Configure one static `ip=` entry.
pub fn configure(
    rt: &mut Rtnl,
    ip: &IpConfig,
    net: &Network,
    deadline: Instant,
) -> Result<LinkReport, NetError> {
    let (Some(address), Some(prefix_len)) = (ip.address, ip.prefix_len) else {
        return Err(NetError::NoAddress {
            value: ip_value(ip),
        });
    };
    let started = Instant::now();
    let want = want_for(ip, net.bootif.as_deref());
    let link = find_link(rt, &want, &net.ifnames, started, deadline)?;
    if let Some(gw) = ip.gateway {
        if gw.is_ipv4() != address.is_ipv4() {
            return Err(NetError::GatewayFamily {
                iface: link.name,
                address,
                gateway: gw,
            });
        }
    }
    if let Some(m) = ip.mtu {
        if link.mtu != Some(m) {
            rt.set_link(&link, None, Some(m))?;
        }
    }
    let up_at = Instant::now();
    if !link.is_up() {
        remember_before_up(&link);
        rt.set_link(&link, Some(true), None)?;
    }
    let link = wait_carrier(rt, &link, deadline)?;
    let carrier_ms = up_at.elapsed().as_millis() as u64;
    rt.add_address(&link, address, prefix_len)?;
    if let Some(gw) = ip.gateway {
        rt.add_default_route(&link, gw)?;
    }
    Ok(LinkReport {
        iface: link.name.clone(),
        mac: link.mac_string(),
        address,
        prefix_len,
        gateway: ip.gateway,
        mtu: link.mtu,
        carrier_ms,
        dhcp_server: None,
        lease_s: None,
        root_path: None,
        hostname: None,
        dns: Vec::new(),
        dhcp_ms: None,
    })
}

/// Set the boot interfaces administratively up as early as possible, best
/// effort, without configuring them. The kernel acts on the carrier only
/// through linkwatch, which may hold the event for up to a second
/// (net/core/link_watch.c); raising the link right after its driver is
/// loaded lets that second pass while the other modules load. A DHCP entry
/// without an interface raises every Ethernet link: any may be the one.
pub fn raise_early(net: &Network) {
    let Ok(mut rt) = Rtnl::open() else {
        return;
    };
    let Ok(links) = rt.links() else {
        return;
    };
    for ip in net.effective_ip().iter().filter(|ip| {
        matches!(
            ip.method,
            IpMethod::Static | IpMethod::Dhcp | IpMethod::Dhcp6 | IpMethod::Auto6
        )
    }) {
        let want = want_for(ip, net.bootif.as_deref());
        let chosen: Vec<&Link> = match (&want, ip.method) {
            (Want::AnyEthernet, IpMethod::Dhcp | IpMethod::Dhcp6 | IpMethod::Auto6) => {
                ethernet(&links).collect()
            }
            _ => pick(&links, &want).into_iter().collect(),
        };
        for l in chosen {
            if !l.is_up() {
                remember_before_up(l);
                if let Err(e) = rt.set_link(l, Some(true), None) {
                    log::debug!("raising {} early: {e}", l.name);
                }
            }
        }
    }
}

/// Non-loopback Ethernet links, in ifindex order.
fn ethernet(links: &[Link]) -> impl Iterator<Item = &Link> {
    links
        .iter()
        .filter(|l| !l.is_loopback() && l.kind == rtnl::ARPHRD_ETHER)
}

/// For `ip=dhcp` without an interface and without `BOOTIF=`: raise every
/// Ethernet link and take the first (lowest ifindex) that gets a carrier.
fn first_with_carrier(rt: &mut Rtnl, net: &Network, deadline: Instant) -> Result<Link, NetError> {
    let started = Instant::now();
    // At least one Ethernet link (applies ifname= renames on the way).
    find_link(rt, &Want::AnyEthernet, &net.ifnames, started, deadline)?;
    loop {
        let links = rt.links()?;
        for l in ethernet(&links).filter(|l| !l.is_up()) {
            remember_before_up(l);
            rt.set_link(l, Some(true), None)?;
        }
        // Each by ifindex: on 6.12 that read runs a pending linkwatch event.
        for l in ethernet(&links) {
            if let Some(now) = rt.link(l.index)? {
                if let Some(why) = tx_ready(&now, before_up(l.index).as_ref()) {
                    log::info!(
                        "{}: link ready {} ms after the wait began ({})",
                        now.name,
                        started.elapsed().as_millis(),
                        why.name()
                    );
                    return Ok(now);
                }
            }
        }
        if Instant::now() >= deadline {
            let names: Vec<&str> = ethernet(&links).map(|l| l.name.as_str()).collect();
            return Err(NetError::NoCarrier {
                iface: names.join(", "),
                waited: started.elapsed(),
            });
        }
        rt.wait_link_event_within(deadline, CARRIER_POLL)?;
    }
}

/// Configure one `ip=dhcp` entry: find and raise the link, wait for
/// carrier, run the DHCP exchange, then install the lease's address,
/// default route and MTU.
pub fn configure_dhcp(
    rt: &mut Rtnl,
    ip: &IpConfig,
    net: &Network,
    deadline: Instant,
) -> Result<LinkReport, NetError> {
    let started = Instant::now();
    let want = want_for(ip, net.bootif.as_deref());
    let up_at;
    let link = if want == Want::AnyEthernet {
        up_at = Instant::now();
        first_with_carrier(rt, net, deadline)?
    } else {
        let link = find_link(rt, &want, &net.ifnames, started, deadline)?;
        up_at = Instant::now();
        if !link.is_up() {
            remember_before_up(&link);
            rt.set_link(&link, Some(true), None)?;
        }
        wait_carrier(rt, &link, deadline)?
    };
    let carrier_ms = up_at.elapsed().as_millis() as u64;
    let Some(mac) = dhcp_sock::mac6(&link.mac) else {
        return Err(NetError::NotEthernet {
            iface: link.name.clone(),
            mac: link.mac_string(),
        });
    };
    let lease = dhcp_sock::obtain(
        &link.name,
        link.index,
        mac,
        ip.hostname.as_deref(),
        deadline,
    )?;
    let ack = &lease.ack;
    let address = IpAddr::V4(ack.yiaddr);
    // The command line's MTU wins over the server's (option 26; RFC 2132
    // §5.1: the minimum legal value is 68). Changing it on an up virtio or
    // e1000 link keeps the carrier.
    let want_mtu = ip.mtu.or(ack.mtu.map(u32::from).filter(|m| *m >= 68));
    let mut mtu = link.mtu;
    if let Some(m) = want_mtu {
        if link.mtu != Some(m) {
            rt.set_link(&link, None, Some(m))?;
        }
        mtu = Some(m);
    }
    rt.add_address(&link, address, lease.prefix_len)?;
    let gateway = ack.routers.first().map(|r| IpAddr::V4(*r));
    if let Some(gw) = gateway {
        rt.add_default_route(&link, gw)?;
    }
    let router = gateway.map_or("none".to_string(), |g| g.to_string());
    let lease_text = match ack.lease_s {
        Some(u32::MAX) => "infinite".to_string(),
        Some(s) => format!("{s}s"),
        None => "unspecified".to_string(),
    };
    log::info!(
        "dhcp: {} got {address}/{} from {} (router {router}, lease {lease_text})",
        link.name,
        lease.prefix_len,
        ack.server_id
    );
    Ok(LinkReport {
        iface: link.name.clone(),
        mac: link.mac_string(),
        address,
        prefix_len: lease.prefix_len,
        gateway,
        mtu,
        carrier_ms,
        dhcp_server: Some(ack.server_id),
        lease_s: ack.lease_s,
        root_path: ack.root_path.clone(),
        hostname: ack.hostname.clone(),
        dns: ack.dns.iter().map(|a| IpAddr::V4(*a)).collect(),
        dhcp_ms: Some(lease.took.as_millis() as u64),
    })
}

/// The `ip=` entries this version cannot configure, found without
/// touching the network: a gateway of another IP version than the
/// address. The one check, made
/// when the plan is built (`cmdline::supported`, so `netboot plan` refuses
/// what the boot would) and again by [`bring_up`].
pub fn refuse_unsupported(net: &Network) -> Result<(), NetError> {
    for ip in &net.effective_ip() {
        if let (Some(address), Some(gateway)) = (ip.address, ip.gateway) {
            if address.is_ipv4() != gateway.is_ipv4() {
                return Err(NetError::GatewayFamily {
                    iface: format!("ip={}", ip_value(ip)),
                    address,
                    gateway,
                });
            }
        }
    }
    Ok(())
}

/// Bring the boot network up: `lo`, then every `ip=` entry in order (no
/// `ip=` at all means `ip=dhcp`). `ip=off`/`none` entries configure
/// nothing. `vlan=` links are created first, so `ip=` entries can name
/// them.
pub fn bring_up(
    net: &Network,
    deadline: Instant,
    existing: Existing,
) -> Result<Vec<LinkReport>, NetError> {
    let ips = net.effective_ip();
    // Refuse what we cannot do before touching anything.
    refuse_unsupported(net)?;
    let mut rt = Rtnl::open()?;
    loopback_up(&mut rt)?;
    ipv6::create_vlans(&mut rt, net, deadline)?;
    let mut out = Vec::new();
    for ip in &ips {
        if existing == Existing::Respect {
            if let Some(r) = already_configured(&mut rt, ip, net, deadline)? {
                out.push(r);
                continue;
            }
        }
        match ip.method {
            IpMethod::Static => out.push(configure(&mut rt, ip, net, deadline)?),
            IpMethod::Dhcp => out.push(configure_dhcp(&mut rt, ip, net, deadline)?),
            IpMethod::Dhcp6 => out.push(ipv6::configure_dhcp6(&mut rt, ip, net, deadline)?),
            IpMethod::Auto6 => out.push(ipv6::configure_auto6(&mut rt, ip, net, deadline)?),
            IpMethod::Off => {}
        }
    }
    Ok(out)
}

/// What to do with a link that already has an address when the entry
/// comes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// PID 1: nobody else configured anything; configure every entry.
    Configure,
    /// `netboot attach` inside another init (dracut, initramfs-tools,
    /// mkinitcpio): a link that already has a global IPv4 address and
    /// carrier was configured by the caller (its network module, klibc
    /// ipconfig, a DHCP client); it is used as it is — no second DHCP
    /// exchange, no address or route replaced.
    Respect,
}

/// The link an `ip=` entry means, if it is up with carrier and already has
/// a global IPv4 address; `None` means "configure it". For an entry
/// without an interface, the first Ethernet link (ifindex order) that
/// qualifies.
fn already_configured(
    rt: &mut Rtnl,
    ip: &IpConfig,
    net: &Network,
    deadline: Instant,
) -> Result<Option<LinkReport>, NetError> {
    if !matches!(ip.method, IpMethod::Static | IpMethod::Dhcp) {
        return Ok(None);
    }
    let links = rt.links()?;
    let addrs = rt.addresses(rtnl::AF_INET)?;
    let want = want_for(ip, net.bootif.as_deref());
    let Some((link, addr)) = pick_configured(&links, &addrs, &want) else {
        return Ok(None);
    };
    let (link, addr) = (link.clone(), addr.clone());
    // The caller may have just raised it: the carrier (linkwatch) can lag
    // by up to a second; a link left down is raised.
    if !link.is_up() {
        remember_before_up(&link);
        rt.set_link(&link, Some(true), None)?;
    }
    let link = wait_carrier(rt, &link, deadline)?;
    log::info!(
        "{} already has {}/{} (configured before netboot): using it",
        link.name,
        addr.address,
        addr.prefix_len
    );
    Ok(Some(LinkReport {
        iface: link.name.clone(),
        mac: link.mac_string(),
        address: addr.address,
        prefix_len: addr.prefix_len,
        gateway: None,
        mtu: link.mtu,
        carrier_ms: 0,
        dhcp_server: None,
        lease_s: None,
        root_path: None,
        hostname: None,
        dns: Vec::new(),
        dhcp_ms: None,
    }))
}

/// Pure choice for [`already_configured`]: a link `want` names (or, for
/// any Ethernet, the first in ifindex order) that has a global (universe
/// scope) IPv4 address. Its carrier is waited for afterwards.
pub fn pick_configured<'a>(
    links: &'a [Link],
    addrs: &'a [rtnl::Addr],
    want: &Want,
) -> Option<(&'a Link, &'a rtnl::Addr)> {
    let global = |l: &Link| {
        addrs.iter().find(|a| {
            a.index == l.index && a.scope == rtnl::RT_SCOPE_UNIVERSE && a.address.is_ipv4()
        })
    };
    match want {
        Want::AnyEthernet => {
            let mut eth: Vec<&Link> = ethernet(links).collect();
            eth.sort_by_key(|l| l.index);
            eth.into_iter().find_map(|l| global(l).map(|a| (l, a)))
        }
        w => pick(links, w).and_then(|l| global(l).map(|a| (l, a))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn link(index: i32, name: &str, flags: u32) -> Link {
        Link {
            index,
            kind: rtnl::ARPHRD_ETHER,
            flags,
            name: name.into(),
            mac: vec![0x52, 0x54, 0, 0, 0, index as u8],
            ..Link::default()
        }
    }

    fn addr(index: i32, a: &str, scope: u8) -> rtnl::Addr {
        rtnl::Addr {
            index,
            prefix_len: 24,
            scope,
            address: a.parse().unwrap(),
            flags: 0,
        }
    }

    #[test]
    fn ready_to_send_on_operstate_or_on_a_carrier_that_held_across_open() {
        let up = rtnl::IFF_UP | rtnl::IFF_LOWER_UP;
        let mut now = link(2, "eth0", up);
        now.carrier = Some(true);
        now.carrier_up_count = Some(1);
        let held = BeforeUp {
            index: 2,
            carrier: true,
            up_count: Some(1),
        };
        // 6.1: carrier on before IFF_UP, operstate still down (linkwatch).
        assert_eq!(tx_ready(&now, Some(&held)), Some(TxReady::ActivatedAtOpen));
        // Nobody recorded the link before it went up: wait for operstate.
        assert_eq!(tx_ready(&now, None), None);
        // The carrier was off before IFF_UP (6.12), or dropped and came
        // back meanwhile (up count moved): linkwatch activates the qdisc.
        let off = BeforeUp {
            carrier: false,
            ..held
        };
        assert_eq!(tx_ready(&now, Some(&off)), None);
        now.carrier_up_count = Some(2);
        assert_eq!(tx_ready(&now, Some(&held)), None);
        // A kernel without IFLA_CARRIER_UP_COUNT proves nothing.
        now.carrier_up_count = None;
        let unknown = BeforeUp {
            up_count: None,
            ..held
        };
        assert_eq!(tx_ready(&now, Some(&unknown)), None);
        // Another link's record does not count.
        now.carrier_up_count = Some(1);
        let other = BeforeUp { index: 3, ..held };
        assert_eq!(tx_ready(&now, Some(&other)), None);
        // Operstate up is enough; a down link never is.
        now.flags |= rtnl::IFF_RUNNING;
        assert_eq!(tx_ready(&now, None), Some(TxReady::Running));
        now.flags &= !rtnl::IFF_UP;
        assert_eq!(tx_ready(&now, Some(&held)), None);
    }

    #[test]
    fn configured_link_is_the_named_one_or_the_first_ethernet_with_a_global_v4() {
        let links = [
            link(2, "ens3", rtnl::IFF_UP),
            link(3, "ens4", rtnl::IFF_UP),
            link(4, "ens5", 0),
        ];
        let addrs = [
            addr(2, "fe80::1", rtnl::RT_SCOPE_UNIVERSE),
            addr(3, "127.0.0.9", rtnl::RT_SCOPE_HOST),
            addr(4, "198.18.0.2", rtnl::RT_SCOPE_UNIVERSE),
        ];
        // Only ens5 has a global IPv4 address (down: raised afterwards).
        let (l, a) = pick_configured(&links, &addrs, &Want::AnyEthernet).unwrap();
        assert_eq!(
            (l.name.as_str(), a.address.to_string()),
            ("ens5", "198.18.0.2".into())
        );
        assert!(pick_configured(&links, &addrs, &Want::Name("ens3".into())).is_none());
        let m = Want::Mac("52:54:00:00:00:04".into());
        assert_eq!(pick_configured(&links, &addrs, &m).unwrap().0.name, "ens5");
        assert!(pick_configured(&links, &[], &Want::AnyEthernet).is_none());
    }
}
