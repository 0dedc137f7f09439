//! rtnetlink messages, hand-written: the few requests the boot needs and the
//! replies they produce. Pure code, host byte order, no I/O (the socket is
//! in `net/mod.rs`).
//!
//! Layouts from include/uapi/linux/rtnetlink.h, if_link.h, if_addr.h; the
//! `nlmsghdr` and `struct rtattr` framing is [`crate::netlink::hdr`]'s, this
//! file holds only the rtnetlink payloads. Decoding is checked and never panics: short
//! buffers, lying lengths and odd attributes give a [`DecodeError`] or are
//! skipped (unknown attributes and message types are kept as `Other`, so a
//! newer kernel does not break the boot).

use std::fmt;
use std::mem::size_of;
use std::net::IpAddr;

use crate::netlink::hdr::{
    self, HdrError, NlMsgBuilder, Payload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};

// rtnetlink.h message types.
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26;
/// `RTMGRP_LINK`: the nl_groups bit of RTNLGRP_LINK (group 1).
pub const RTMGRP_LINK: u32 = 1;

// if_link.h IFLA_*.
pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINK: u16 = 5;
pub const IFLA_LINKINFO: u16 = 18;
/// IFLA_INFO_KIND / IFLA_INFO_DATA inside IFLA_LINKINFO (if_link.h).
pub const IFLA_INFO_KIND: u16 = 1;
pub const IFLA_INFO_DATA: u16 = 2;
/// IFLA_VLAN_ID inside IFLA_INFO_DATA of kind "vlan" (if_link.h), a u16 in
/// host order (net/8021q/vlan_netlink.c `vlan_policy`).
pub const IFLA_VLAN_ID: u16 = 1;
/// Highest VLAN id the kernel takes (VLAN_VID_MASK − 1: 4095 is reserved,
/// vlan_netlink.c `vlan_validate` → ERANGE).
pub const VLAN_VID_MAX: u16 = 4094;
pub const IFLA_OPERSTATE: u16 = 16;
pub const IFLA_CARRIER: u16 = 33;
/// How often the carrier went up (if_link.h, Linux 4.16): tells a carrier
/// that stayed on across IFF_UP from one that dropped and came back.
pub const IFLA_CARRIER_UP_COUNT: u16 = 47;
// if_addr.h IFA_*.
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_BROADCAST: u16 = 4;
/// IFA_FLAGS: the u32 flags (the `ifa_flags` byte holds only the low 8).
pub const IFA_FLAGS: u16 = 8;
/// DAD of the address still running (RFC 4862 §5.4): not usable as a source.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// DAD found the address in use.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// IFA_F_NODAD (if_addr.h): a static boot address is ours by configuration;
/// without it an IPv6 address stays "tentative" for DAD (≈1 s, RFC 4862
/// §5.4) and the iSCSI connect fails with EADDRNOTAVAIL meanwhile.
pub const IFA_F_NODAD: u8 = 0x02;
// rtnetlink.h RTA_*, tables, protocols, scopes, types.
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_DST: u16 = 1;
pub const RTA_TABLE: u16 = 15;
/// Routes learnt from router advertisements (rtnetlink.h; the kernel's
/// default router route, net/ipv6/route.c `rt6_add_dflt_router`).
pub const RTPROT_RA: u8 = 9;
pub const RT_TABLE_MAIN: u8 = 254;
pub const RTPROT_BOOT: u8 = 3;
pub const RTPROT_STATIC: u8 = 4;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RTN_UNICAST: u8 = 1;
// if.h net_device_flags.
pub const IFF_UP: u32 = 0x1;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_RUNNING: u32 = 0x40;
pub const IFF_LOWER_UP: u32 = 0x10000;
// if_arp.h.
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_LOOPBACK: u16 = 772;
/// IF_OPER_UP (if.h, RFC 2863 operstate).
pub const IF_OPER_UP: u8 = 6;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
/// IFNAMSIZ − 1 (if.h): longest interface name.
pub const IFNAME_MAX: usize = 15;

#[repr(C)]
struct RawIfInfoMsg {
    family: u8,
    pad: u8,
    ty: u16,
    index: i32,
    flags: u32,
    change: u32,
}
#[repr(C)]
struct RawIfAddrMsg {
    family: u8,
    prefixlen: u8,
    flags: u8,
    scope: u8,
    index: u32,
}
#[repr(C)]
struct RawRtMsg {
    family: u8,
    dst_len: u8,
    src_len: u8,
    tos: u8,
    table: u8,
    protocol: u8,
    scope: u8,
    ty: u8,
    flags: u32,
}
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;
const _: () = assert!(size_of::<RawIfInfoMsg>() == IFINFOMSG_LEN);
const _: () = assert!(size_of::<RawIfAddrMsg>() == IFADDRMSG_LEN);
const _: () = assert!(size_of::<RawRtMsg>() == RTMSG_LEN);

/// A reply that cannot be decoded; offsets are into the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than a netlink header at `offset`.
    ShortHeader { offset: usize, remaining: usize },
    /// `nlmsg_len` smaller than the header or beyond the datagram.
    BadLength {
        offset: usize,
        len: u32,
        remaining: usize,
    },
    /// The body is shorter than its fixed part (`ifinfomsg`, `nlmsgerr`).
    ShortBody { offset: usize, ty: u16, len: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::ShortHeader { offset, remaining } => write!(
                f,
                "rtnetlink reply: {remaining} bytes at offset {offset}, less than a 16-byte nlmsghdr"
            ),
            DecodeError::BadLength { offset, len, remaining } => write!(
                f,
                "rtnetlink reply: nlmsg_len {len} at offset {offset} with {remaining} bytes left"
            ),
            DecodeError::ShortBody { offset, ty, len } => write!(
                f,
                "rtnetlink reply: message type {ty} at offset {offset} has a {len}-byte body, too short"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<HdrError> for DecodeError {
    fn from(e: HdrError) -> DecodeError {
        match e {
            HdrError::Short { offset, have } => DecodeError::ShortHeader {
                offset,
                remaining: have,
            },
            HdrError::BadLength { offset, len, have } => DecodeError::BadLength {
                offset,
                len,
                remaining: have,
            },
            HdrError::ShortControl { offset, ty, len } => {
                DecodeError::ShortBody { offset, ty, len }
            }
        }
    }
}

/// One link from an RTM_NEWLINK (dump reply or notification).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    /// ARPHRD_* (`ifi_type`).
    pub kind: u16,
    /// IFF_* (`ifi_flags`).
    pub flags: u32,
    pub name: String,
    /// IFLA_ADDRESS (hardware address), if any.
    pub mac: Vec<u8>,
    pub mtu: Option<u32>,
    pub operstate: Option<u8>,
    pub carrier: Option<bool>,
    /// IFLA_CARRIER_UP_COUNT, if the kernel sends it.
    pub carrier_up_count: Option<u32>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0 || self.kind == ARPHRD_LOOPBACK
    }
    /// Carrier (IFF_LOWER_UP is the kernel's `netif_carrier_ok` on an up
    /// link, net/core/dev.c `dev_get_flags`; IFLA_CARRIER says the same),
    /// and the kernel has acted on it: IFF_RUNNING is the RFC 2863
    /// operstate, which linkwatch sets in the same pass that activates the
    /// qdisc (net/core/link_watch.c `linkwatch_do_dev`). Sending on carrier
    /// alone races that pass: the first ARP request and SYN go to the noop
    /// qdisc and are dropped, costing a 1 s retransmission at boot.
    pub fn has_carrier(&self) -> bool {
        let carrier =
            self.flags & IFF_LOWER_UP != 0 || (self.is_up() && self.carrier == Some(true));
        carrier && self.flags & IFF_RUNNING != 0
    }
    /// MAC as lowercase `aa:bb:…` (the form the plan uses).
    pub fn mac_string(&self) -> String {
        let mut s = String::with_capacity(self.mac.len() * 3);
        for (i, b) in self.mac.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push(hex(b >> 4));
            s.push(hex(b & 0xf));
        }
        s
    }
}

fn hex(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

/// One decoded netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// NLMSG_ERROR with error 0: the request `seq` succeeded.
    Ack { seq: u32 },
    /// NLMSG_ERROR: the request `seq` failed with this (positive) errno.
    Error { seq: u32, errno: i32 },
    /// NLMSG_DONE: end of a dump; `errno` ≠ 0 if the dump was cut short.
    Done { seq: u32, errno: i32 },
    /// RTM_NEWLINK (dump part or notification) / RTM_DELLINK.
    Link { seq: u32, deleted: bool, link: Link },
    /// RTM_NEWADDR (dump part): one address on one link.
    Addr { seq: u32, addr: Addr },
    /// RTM_NEWROUTE (dump part): one route.
    Route { seq: u32, route: Route },
    /// Anything else, kept by type.
    Other { seq: u32, ty: u16 },
}

fn rd_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decode every message of one datagram.
pub fn parse(buf: &[u8]) -> Result<Vec<Message>, DecodeError> {
    let mut out = Vec::new();
    for m in hdr::messages(buf) {
        let m = m?;
        let (seq, ty) = (m.hdr.seq, m.hdr.ty);
        let msg = match m.payload()? {
            Payload::Error { errno: 0, .. } => Message::Ack { seq },
            Payload::Error { errno, .. } => Message::Error { seq, errno },
            Payload::Done { errno } => Message::Done { seq, errno },
            Payload::Family(body) if matches!(ty, RTM_NEWLINK | RTM_DELLINK) => Message::Link {
                seq,
                deleted: ty == RTM_DELLINK,
                link: parse_link(body).ok_or(DecodeError::ShortBody {
                    offset: m.offset,
                    ty,
                    len: body.len(),
                })?,
            },
            Payload::Family(body) if ty == RTM_NEWADDR => match parse_addr(body) {
                Some(addr) => Message::Addr { seq, addr },
                // An address family we do not read (or no address
                // attribute): kept by type, like any other message.
                None => Message::Other { seq, ty },
            },
            Payload::Family(body) if ty == RTM_NEWROUTE => match parse_route(body) {
                Some(route) => Message::Route { seq, route },
                None => Message::Other { seq, ty },
            },
            Payload::Noop | Payload::Overrun | Payload::Family(_) => Message::Other { seq, ty },
        };
        out.push(msg);
    }
    Ok(out)
}

fn parse_link(body: &[u8]) -> Option<Link> {
    let mut l = Link {
        kind: rd_u16(body, 2)?,
        index: rd_u32(body, 4)? as i32,
        flags: rd_u32(body, 8)?,
        ..Link::default()
    };
    for a in hdr::attrs(body.get(IFINFOMSG_LEN..)?) {
        let data = a.data;
        match a.kind() {
            IFLA_IFNAME => {
                let s = data.split(|&b| b == 0).next().unwrap_or(&[]);
                l.name = String::from_utf8_lossy(s).into_owned();
            }
            IFLA_ADDRESS => l.mac = data.to_vec(),
            IFLA_MTU => l.mtu = rd_u32(data, 0),
            IFLA_OPERSTATE => l.operstate = data.first().copied(),
            IFLA_CARRIER => l.carrier = data.first().map(|&c| c != 0),
            IFLA_CARRIER_UP_COUNT => l.carrier_up_count = rd_u32(data, 0),
            _ => {}
        }
    }
    Some(l)
}

/// One interface address from an RTM_NEWADDR (`struct ifaddrmsg` +
/// IFA_LOCAL, else IFA_ADDRESS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: i32,
    pub prefix_len: u8,
    /// RT_SCOPE_* (`ifa_scope`): 0 universe, 253 link, 254 host.
    pub scope: u8,
    pub address: IpAddr,
    /// IFA_F_* (`ifa_flags`, widened by IFA_FLAGS when present).
    pub flags: u32,
}

impl Addr {
    /// Duplicate address detection still running.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }
    /// Duplicate address detection found the address in use.
    pub fn dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

fn parse_addr(body: &[u8]) -> Option<Addr> {
    let family = *body.first()?;
    let prefix_len = *body.get(1)?;
    let mut flags = u32::from(*body.get(2)?);
    let scope = *body.get(3)?;
    let index = rd_u32(body, 4)? as i32;
    let ip = |d: &[u8]| -> Option<IpAddr> {
        match family {
            AF_INET => Some(IpAddr::from(<[u8; 4]>::try_from(d.get(..4)?).ok()?)),
            AF_INET6 => Some(IpAddr::from(<[u8; 16]>::try_from(d.get(..16)?).ok()?)),
            _ => None,
        }
    };
    let (mut local, mut address) = (None, None);
    for a in hdr::attrs(body.get(IFADDRMSG_LEN..)?) {
        match a.kind() {
            IFA_LOCAL => local = ip(a.data),
            IFA_ADDRESS => address = ip(a.data),
            IFA_FLAGS => flags = rd_u32(a.data, 0).unwrap_or(flags),
            _ => {}
        }
    }
    Some(Addr {
        index,
        prefix_len,
        scope,
        address: local.or(address)?,
        flags,
    })
}

/// One route from an RTM_NEWROUTE (`struct rtmsg` + RTA_DST, RTA_OIF,
/// RTA_GATEWAY, RTA_TABLE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub family: u8,
    /// Prefix length of the destination; 0 = a default route.
    pub dst_len: u8,
    pub dst: Option<IpAddr>,
    pub oif: Option<i32>,
    pub gateway: Option<IpAddr>,
    /// RTPROT_* (`rtm_protocol`): RTPROT_RA for routes from RAs.
    pub protocol: u8,
    /// RTA_TABLE when present, else `rtm_table`.
    pub table: u32,
    /// RTN_* (`rtm_type`).
    pub kind: u8,
}

fn parse_route(body: &[u8]) -> Option<Route> {
    let family = *body.first()?;
    let ip = |d: &[u8]| -> Option<IpAddr> {
        match family {
            AF_INET => Some(IpAddr::from(<[u8; 4]>::try_from(d.get(..4)?).ok()?)),
            AF_INET6 => Some(IpAddr::from(<[u8; 16]>::try_from(d.get(..16)?).ok()?)),
            _ => None,
        }
    };
    let mut r = Route {
        family,
        dst_len: *body.get(1)?,
        dst: None,
        oif: None,
        gateway: None,
        protocol: *body.get(5)?,
        table: u32::from(*body.get(4)?),
        kind: *body.get(7)?,
    };
    for a in hdr::attrs(body.get(RTMSG_LEN..)?) {
        match a.kind() {
            RTA_DST => r.dst = ip(a.data),
            RTA_OIF => r.oif = rd_u32(a.data, 0).map(|i| i as i32),
            RTA_GATEWAY => r.gateway = ip(a.data),
            RTA_TABLE => r.table = rd_u32(a.data, 0).unwrap_or(r.table),
            _ => {}
        }
    }
    Some(r)
}

/// RTM_GETROUTE dump of every route of `family`.
pub fn get_routes(seq: u32, family: u8) -> Vec<u8> {
    let mut hdr = [0u8; RTMSG_LEN];
    hdr[0] = family;
    req(RTM_GETROUTE, NLM_F_DUMP, seq).bytes(&hdr).finish()
}

/// One attribute as bytes (header, data, padding to 4), for nesting.
fn nla(ty: u16, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(hdr::RTA_HDRLEN + data.len()).unwrap_or(u16::MAX);
    let mut v = Vec::with_capacity(hdr::align(usize::from(len)));
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(data);
    v.resize(hdr::align(v.len()), 0);
    v
}

/// RTM_NEWLINK creating VLAN `vid` named `name` on link `parent` (what
/// `ip link add link PARENT name NAME type vlan id VID` sends):
/// NLM_F_CREATE|NLM_F_EXCL, IFLA_IFNAME, IFLA_LINK, and IFLA_LINKINFO {
/// IFLA_INFO_KIND "vlan", IFLA_INFO_DATA { IFLA_VLAN_ID } }. The kernel
/// needs the 8021q module for the kind (else EOPNOTSUPP, "Unknown device
/// type"); the VLAN takes the parent's MAC and MTU.
pub fn new_vlan(seq: u32, name: &str, parent: i32, vid: u16) -> Vec<u8> {
    let mut z = name.as_bytes().to_vec();
    z.truncate(IFNAME_MAX);
    z.push(0);
    let mut info = nla(IFLA_INFO_KIND, b"vlan");
    info.extend(nla(IFLA_INFO_DATA, &nla(IFLA_VLAN_ID, &vid.to_ne_bytes())));
    req(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq)
        .bytes(&ifinfomsg(0, 0, 0))
        .attr(IFLA_IFNAME, &z)
        .attr(IFLA_LINK, &(parent as u32).to_ne_bytes())
        .attr(IFLA_LINKINFO, &info)
        .finish()
}

/// RTM_GETADDR dump of every address of `family` (AF_INET, AF_INET6).
pub fn get_addrs(seq: u32, family: u8) -> Vec<u8> {
    let mut hdr = [0u8; IFADDRMSG_LEN];
    hdr[0] = family;
    req(RTM_GETADDR, NLM_F_DUMP, seq).bytes(&hdr).finish()
}

/// A request: NLM_F_REQUEST, and nlmsg_pid 0 (the kernel fills in our
/// port id).
fn req(ty: u16, flags: u16, seq: u32) -> NlMsgBuilder {
    NlMsgBuilder::new(ty, flags | NLM_F_REQUEST, seq, 0)
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut b = [0u8; IFINFOMSG_LEN];
    // family AF_UNSPEC, pad, type 0.
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// RTM_GETLINK dump of every link.
pub fn get_links(seq: u32) -> Vec<u8> {
    req(RTM_GETLINK, NLM_F_DUMP, seq)
        .bytes(&ifinfomsg(0, 0, 0))
        .finish()
}

/// RTM_GETLINK for one link by ifindex (a "doit", not a dump): on 6.12
/// this runs the link's pending linkwatch event first (net/core/rtnetlink.c
/// `rtnl_getlink` → `linkwatch_sync_dev`), so the reply's operstate is
/// current; the dump path does not.
pub fn get_link(seq: u32, index: i32) -> Vec<u8> {
    req(RTM_GETLINK, 0, seq)
        .bytes(&ifinfomsg(index, 0, 0))
        .finish()
}

/// RTM_NEWLINK on an existing link (what `ip link set` sends): bring it up
/// or down (`up`), set the MTU, rename it. Renaming needs the link down
/// (net/core/dev.c `dev_change_name`: EBUSY while IFF_UP), and the kernel
/// renames before it changes flags (rtnetlink.c `do_setlink`), so send a
/// rename together with `up: Some(false)` or on a down link.
pub fn set_link(
    seq: u32,
    index: i32,
    up: Option<bool>,
    mtu: Option<u32>,
    name: Option<&str>,
) -> Vec<u8> {
    let (flags, change) = match up {
        Some(true) => (IFF_UP, IFF_UP),
        Some(false) => (0, IFF_UP),
        None => (0, 0),
    };
    let mut r = req(RTM_NEWLINK, NLM_F_ACK, seq);
    r.bytes(&ifinfomsg(index, flags, change));
    if let Some(m) = mtu {
        r.attr(IFLA_MTU, &m.to_ne_bytes());
    }
    if let Some(n) = name {
        let mut z = n.as_bytes().to_vec();
        z.truncate(IFNAME_MAX);
        z.push(0);
        r.attr(IFLA_IFNAME, &z);
    }
    r.finish()
}

fn ip_bytes(a: &IpAddr) -> (u8, Vec<u8>) {
    match a {
        IpAddr::V4(v) => (AF_INET, v.octets().to_vec()),
        IpAddr::V6(v) => (AF_INET6, v.octets().to_vec()),
    }
}

/// RTM_NEWADDR: `addr/prefix` on link `index`, created or replaced (so a
/// second run is a no-op). IPv4 also gets the broadcast address (as
/// `ip addr add … brd +`) unless the prefix is /31 or /32 (RFC 3021).
pub fn add_address(seq: u32, index: i32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, bytes) = ip_bytes(&addr);
    let flags = if family == AF_INET6 { IFA_F_NODAD } else { 0 };
    let scope = if addr.is_loopback() {
        RT_SCOPE_HOST
    } else {
        RT_SCOPE_UNIVERSE
    };
    let mut hdr = [0u8; IFADDRMSG_LEN];
    hdr[0] = family;
    hdr[1] = prefix;
    hdr[2] = flags;
    hdr[3] = scope;
    hdr[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    let mut r = req(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq);
    r.bytes(&hdr)
        .attr(IFA_LOCAL, &bytes)
        .attr(IFA_ADDRESS, &bytes);
    if let IpAddr::V4(v) = addr {
        if prefix < 31 {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let brd = u32::from(v) | host;
            r.attr(IFA_BROADCAST, &brd.to_be_bytes());
        }
    }
    r.finish()
}

/// RTM_NEWROUTE: default route (dst /0) via `gateway` out of link `index`,
/// main table, created or replaced. `protocol` is RTPROT_BOOT or
/// RTPROT_STATIC.
pub fn add_default_route(seq: u32, index: i32, gateway: IpAddr, protocol: u8) -> Vec<u8> {
    let (family, gw) = ip_bytes(&gateway);
    let mut hdr = [0u8; RTMSG_LEN];
    hdr[0] = family;
    hdr[4] = RT_TABLE_MAIN;
    hdr[5] = protocol;
    hdr[6] = RT_SCOPE_UNIVERSE;
    hdr[7] = RTN_UNICAST;
    req(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq)
        .bytes(&hdr)
        .attr(RTA_GATEWAY, &gw)
        .attr(RTA_OIF, &(index as u32).to_ne_bytes())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::hdr::{NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTI};
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn getlink_dump_bytes() {
        let m = get_links(7);
        let mut want = Vec::new();
        want.extend_from_slice(&32u32.to_ne_bytes());
        want.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
        want.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&[0; 4 + 16]);
        assert_eq!(m, want);
    }

    #[test]
    fn newaddr_v4_bytes() {
        let m = add_address(3, 2, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 24);
        assert_eq!(m.len(), 16 + 8 + 3 * 8);
        assert_eq!(&m[16..24], &[2, 24, 0, 0, 2, 0, 0, 0]);
        // IFA_LOCAL, IFA_ADDRESS, IFA_BROADCAST 198.18.0.255.
        assert_eq!(&m[24..32], &[8, 0, 2, 0, 198, 18, 0, 2]);
        assert_eq!(&m[32..40], &[8, 0, 1, 0, 198, 18, 0, 2]);
        assert_eq!(&m[40..48], &[8, 0, 4, 0, 198, 18, 0, 255]);
        let f = u16::from_ne_bytes([m[6], m[7]]);
        assert_eq!(f, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        // /32: no broadcast.
        assert_eq!(
            add_address(3, 2, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 32).len(),
            40
        );
    }

    #[test]
    fn newaddr_v6_and_route_bytes() {
        let a: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let m = add_address(1, 5, IpAddr::V6(a), 64);
        assert_eq!(&m[16..24], &[10, 64, IFA_F_NODAD, 0, 5, 0, 0, 0]);
        assert_eq!(m.len(), 16 + 8 + 2 * 20);
        assert_eq!(&m[28..44], &a.octets());
        let r = add_default_route(9, 5, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), RTPROT_BOOT);
        assert_eq!(&r[16..28], &[2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&r[28..36], &[8, 0, 5, 0, 198, 18, 0, 1]);
        assert_eq!(&r[36..44], &[8, 0, 4, 0, 5, 0, 0, 0]);
        assert_eq!(r.len(), 44);
    }

    #[test]
    fn newlink_vlan_bytes() {
        // As `ip link add link eth0 name eth0.42 type vlan id 42` (strace of
        // iproute2 6.1: the same attributes, IFLA_LINK after the name).
        let m = new_vlan(4, "eth0.42", 2, 42);
        let f = u16::from_ne_bytes([m[6], m[7]]);
        assert_eq!(f, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        assert_eq!(rd_u16(&m, 4), Some(RTM_NEWLINK));
        assert_eq!(&m[16..32], &[0; 16]);
        assert_eq!(
            &m[32..44],
            &[12, 0, 3, 0, b'e', b't', b'h', b'0', b'.', b'4', b'2', 0]
        );
        assert_eq!(&m[44..52], &[8, 0, 5, 0, 2, 0, 0, 0]);
        // IFLA_LINKINFO { KIND "vlan", DATA { VLAN_ID 42 } }.
        let mut info = vec![
            24, 0, 18, 0, 8, 0, 1, 0, b'v', b'l', b'a', b'n', 12, 0, 2, 0, 6, 0, 1, 0,
        ];
        info.extend_from_slice(&42u16.to_ne_bytes());
        info.extend_from_slice(&[0, 0]);
        assert_eq!(&m[52..], &info[..]);
        assert_eq!(rd_u32(&m, 0), Some(m.len() as u32));
    }

    #[test]
    fn route_dump_part_and_address_flags_decode() {
        let mut hdr = [0u8; RTMSG_LEN];
        hdr[0] = AF_INET6;
        hdr[4] = RT_TABLE_MAIN;
        hdr[5] = RTPROT_RA;
        hdr[7] = RTN_UNICAST;
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let m = NlMsgBuilder::new(RTM_NEWROUTE, NLM_F_MULTI, 3, 0)
            .bytes(&hdr)
            .attr(RTA_TABLE, &254u32.to_ne_bytes())
            .attr(RTA_GATEWAY, &gw.octets())
            .attr(RTA_OIF, &2u32.to_ne_bytes())
            .attr(99, &[1])
            .finish();
        assert_eq!(
            parse(&m).unwrap(),
            [Message::Route {
                seq: 3,
                route: Route {
                    family: AF_INET6,
                    dst_len: 0,
                    dst: None,
                    oif: Some(2),
                    gateway: Some(IpAddr::V6(gw)),
                    protocol: RTPROT_RA,
                    table: 254,
                    kind: RTN_UNICAST,
                },
            }]
        );
        for n in 0..m.len() {
            let _ = parse(&m[..n]);
        }
        assert_eq!(rd_u16(&get_routes(1, AF_INET6), 4), Some(RTM_GETROUTE));
        // ifa_flags byte TENTATIVE, widened by IFA_FLAGS (MANAGETEMPADDR).
        let mut ah = [0u8; IFADDRMSG_LEN];
        ah[0] = AF_INET6;
        ah[1] = 64;
        ah[2] = IFA_F_TENTATIVE as u8;
        ah[4] = 2;
        let a: Ipv6Addr = "fd00:198:18::2".parse().unwrap();
        let m = NlMsgBuilder::new(RTM_NEWADDR, NLM_F_MULTI, 4, 0)
            .bytes(&ah)
            .attr(IFA_ADDRESS, &a.octets())
            .finish();
        let Message::Addr { addr, .. } = &parse(&m).unwrap()[0] else {
            panic!()
        };
        assert!(addr.is_tentative() && !addr.dad_failed());
        let m = NlMsgBuilder::new(RTM_NEWADDR, NLM_F_MULTI, 4, 0)
            .bytes(&ah)
            .attr(IFA_ADDRESS, &a.octets())
            .attr(IFA_FLAGS, &(0x100u32 | IFA_F_DADFAILED).to_ne_bytes())
            .finish();
        let Message::Addr { addr, .. } = &parse(&m).unwrap()[0] else {
            panic!()
        };
        assert_eq!(addr.flags, 0x108);
        assert!(addr.dad_failed() && !addr.is_tentative());
    }

    #[test]
    fn setlink_rename_pads_name() {
        let m = set_link(2, 4, Some(false), Some(1400), Some("lan0"));
        assert_eq!(&m[20..32], &[4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&m[32..40], &[8, 0, 4, 0, 0x78, 0x05, 0, 0]);
        assert_eq!(
            &m[40..52],
            &[9, 0, 3, 0, b'l', b'a', b'n', b'0', 0, 0, 0, 0]
        );
        assert_eq!(
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
    }

    /// An RTM_NEWLINK as the kernel sends it in a dump (trimmed to the
    /// attributes we read plus one unknown one), then ACK, error and DONE.
    fn link_reply() -> Vec<u8> {
        let mut r = req(RTM_NEWLINK, NLM_F_MULTI, 5);
        let mut info = ifinfomsg(2, IFF_UP | IFF_LOWER_UP | IFF_RUNNING, 0);
        info[2..4].copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
        r.bytes(&info);
        r.attr(IFLA_IFNAME, b"eth0\0")
            .attr(IFLA_MTU, &1500u32.to_ne_bytes())
            .attr(99, &[1, 2, 3])
            .attr(IFLA_ADDRESS, &[0x52, 0x54, 0, 0x12, 0x34, 0x56])
            .attr(IFLA_OPERSTATE, &[IF_OPER_UP])
            .attr(IFLA_CARRIER, &[1])
            .attr(IFLA_CARRIER_UP_COUNT, &3u32.to_ne_bytes());
        let mut v = r.finish();
        let mut ack = req(NLMSG_ERROR, 0, 6);
        ack.bytes(&0i32.to_ne_bytes()).bytes(&[0; 16]);
        v.extend(ack.finish());
        let mut err = req(NLMSG_ERROR, 0, 7);
        err.bytes(&(-17i32).to_ne_bytes()).bytes(&[0; 16]);
        v.extend(err.finish());
        let mut done = req(NLMSG_DONE, NLM_F_MULTI, 5);
        done.bytes(&0i32.to_ne_bytes());
        v.extend(done.finish());
        v
    }

    #[test]
    fn parse_dump_ack_error_done() {
        let msgs = parse(&link_reply()).unwrap();
        assert_eq!(msgs.len(), 4);
        let Message::Link {
            seq: 5,
            deleted: false,
            link,
        } = &msgs[0]
        else {
            panic!("{msgs:?}")
        };
        assert_eq!(link.name, "eth0");
        assert_eq!(link.index, 2);
        assert_eq!(link.kind, ARPHRD_ETHER);
        assert_eq!(link.mtu, Some(1500));
        assert_eq!(link.mac_string(), "52:54:00:12:34:56");
        assert_eq!(link.operstate, Some(IF_OPER_UP));
        assert_eq!(link.carrier_up_count, Some(3));
        assert!(link.is_up() && link.has_carrier() && !link.is_loopback());
        assert_eq!(msgs[1], Message::Ack { seq: 6 });
        assert_eq!(msgs[2], Message::Error { seq: 7, errno: 17 });
        assert_eq!(msgs[3], Message::Done { seq: 5, errno: 0 });
    }

    #[test]
    fn parse_rejects_bad_lengths_without_panicking() {
        let full = link_reply();
        for n in 0..full.len() {
            let _ = parse(&full[..n]);
        }
        assert_eq!(
            parse(&[1, 2, 3]),
            Err(DecodeError::ShortHeader {
                offset: 0,
                remaining: 3
            })
        );
        let mut bad = full.clone();
        bad[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(matches!(
            parse(&bad),
            Err(DecodeError::BadLength { len: 8, .. })
        ));
        let mut short = req(NLMSG_ERROR, 0, 1);
        short.bytes(&[0, 0]);
        assert!(matches!(
            parse(&short.finish()),
            Err(DecodeError::ShortBody { ty: 2, .. })
        ));
        assert_eq!(
            parse(&bad).unwrap_err().to_string(),
            format!(
                "rtnetlink reply: nlmsg_len 8 at offset 0 with {} bytes left",
                full.len()
            )
        );
    }

    #[test]
    fn address_dump_part_decodes_local_over_peer_and_skips_odd_families() {
        let mut hdr = [0u8; IFADDRMSG_LEN];
        hdr[0] = AF_INET;
        hdr[1] = 24;
        hdr[4..8].copy_from_slice(&3u32.to_ne_bytes());
        let m = NlMsgBuilder::new(RTM_NEWADDR, NLM_F_MULTI, 9, 0)
            .bytes(&hdr)
            .attr(IFA_ADDRESS, &[198, 18, 0, 9])
            .attr(IFA_LOCAL, &[198, 18, 0, 2])
            .finish();
        let got = parse(&m).unwrap();
        assert_eq!(
            got,
            [Message::Addr {
                seq: 9,
                addr: Addr {
                    index: 3,
                    prefix_len: 24,
                    scope: 0,
                    address: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
                    flags: 0,
                },
            }]
        );
        // A family we do not read, a short address, a truncated header.
        hdr[0] = 99;
        let odd = NlMsgBuilder::new(RTM_NEWADDR, NLM_F_MULTI, 9, 0)
            .bytes(&hdr)
            .attr(IFA_LOCAL, &[1, 2])
            .finish();
        assert_eq!(
            parse(&odd).unwrap(),
            [Message::Other {
                seq: 9,
                ty: RTM_NEWADDR
            }]
        );
        let short = NlMsgBuilder::new(RTM_NEWADDR, NLM_F_MULTI, 9, 0)
            .bytes(&[AF_INET, 24])
            .finish();
        assert_eq!(
            parse(&short).unwrap(),
            [Message::Other {
                seq: 9,
                ty: RTM_NEWADDR
            }]
        );
        let req = get_addrs(4, AF_INET);
        assert_eq!(rd_u16(&req, 4), Some(RTM_GETADDR));
        assert_eq!(req.get(16), Some(&AF_INET));
    }
}
