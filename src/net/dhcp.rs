//! DHCPv4 client codec (RFC 2131, options RFC 2132): the DISCOVER and
//! REQUEST we send as whole IPv4+UDP datagrams, and the server's
//! OFFER/ACK/NAK decoded from an IPv4 packet as an `AF_PACKET`/`SOCK_DGRAM`
//! socket delivers it (starting at the IP header). No syscalls here; the
//! socket and the DISCOVER→OFFER→REQUEST→ACK exchange live in
//! [`super::dhcp_sock`].
//!
//! We send from 0.0.0.0 with the BOOTP broadcast flag set (RFC 2131 §4.1:
//! a client that cannot receive unicast before it has an address sets it),
//! so servers answer to 255.255.255.255 and no ARP entry is needed.

use std::fmt;
use std::net::Ipv4Addr;

/// UDP ports (RFC 2131 §4.1).
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// IPv4 header without options; UDP header.
const IP_HDR: usize = 20;
const UDP_HDR: usize = 8;
/// The fixed BOOTP part up to the options (RFC 2131 §2, figure 1):
/// op..giaddr 28 bytes, chaddr 16, sname 64, file 128.
const BOOTP_FIXED: usize = 236;
/// Offsets inside the BOOTP message.
const OFF_XID: usize = 4;
const OFF_FLAGS: usize = 10;
const OFF_YIADDR: usize = 16;
const OFF_SIADDR: usize = 20;
const OFF_CHADDR: usize = 28;
const OFF_SNAME: usize = 44;
const OFF_FILE: usize = 108;
const SNAME_LEN: usize = 64;
const FILE_LEN: usize = 128;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// RFC 2131 §2: the leftmost bit of `flags` asks for broadcast replies.
const FLAG_BROADCAST: u16 = 0x8000;
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
/// `htype` Ethernet (RFC 1700 hardware types), `hlen` 6.
const HTYPE_ETHER: u8 = 1;

/// Option codes (RFC 2132).
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const ROOT_PATH: u8 = 17;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_REQUEST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_SIZE: u8 = 57;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// DHCP message types (RFC 2132 §9.6).
const DHCPDISCOVER: u8 = 1;
const DHCPOFFER: u8 = 2;
const DHCPREQUEST: u8 = 3;
const DHCPACK: u8 = 5;
const DHCPNAK: u8 = 6;

/// What we ask the server for (option 55), in the order of the brief.
const PARAMS: [u8; 11] = [
    opt::SUBNET_MASK,
    opt::ROUTER,
    opt::DNS,
    opt::HOST_NAME,
    opt::DOMAIN_NAME,
    opt::ROOT_PATH,
    opt::MTU,
    opt::BROADCAST,
    opt::NTP,
    opt::LEASE_TIME,
    opt::SERVER_ID,
];
/// Option 57: we accept replies up to an Ethernet MTU (RFC 2132 §9.10,
/// minimum 576).
const MAX_MESSAGE: u16 = 1500;
/// Option 60: lets a server tell our requests apart (`dhcp-vendorclass`).
pub const VENDOR_CLASS: &str = "netboot";

/// The client's identity for one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Transaction id, random per exchange (RFC 2131 §4.4.1).
    pub xid: u32,
    pub mac: [u8; 6],
    /// Option 12, when the command line names one.
    pub hostname: Option<String>,
    /// Seconds since the exchange began (`secs`, RFC 2131 §2).
    pub secs: u16,
}

/// Which reply it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Offer,
    Ack,
    Nak,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Offer => "DHCPOFFER",
            Kind::Ack => "DHCPACK",
            Kind::Nak => "DHCPNAK",
        })
    }
}

/// A decoded OFFER/ACK/NAK: what the lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: Kind,
    pub xid: u32,
    /// `yiaddr`: the address offered (0.0.0.0 in a NAK).
    pub yiaddr: Ipv4Addr,
    /// `siaddr` (next server), kept for the report.
    pub siaddr: Ipv4Addr,
    /// IPv4 source of the datagram (the server, or a relay).
    pub from: Ipv4Addr,
    /// Option 54 (RFC 2131 table 3: MUST in OFFER, ACK and NAK).
    pub server_id: Ipv4Addr,
    /// Option 1 as a prefix length.
    pub prefix_len: Option<u8>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    /// Option 17 (`iscsi:…` for `root=dhcp`).
    pub root_path: Option<String>,
    pub mtu: Option<u16>,
    /// Option 51; 0xffffffff means infinite.
    pub lease_s: Option<u32>,
    /// Option 56, the server's text (mostly in a NAK).
    pub message: Option<String>,
}

/// Why a received packet is not a usable reply to us. The variants up to
/// [`DecodeError::Chaddr`] mean "not for us" (other traffic on the link);
/// the rest mean "a reply to us that is broken".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than `what` needs.
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    NotIpv4 {
        version: u8,
    },
    BadIhl {
        ihl: usize,
    },
    /// IP total length larger than the packet or smaller than the header.
    TotalLength {
        total: usize,
        got: usize,
    },
    IpChecksum {
        sum: u16,
    },
    Fragment,
    NotUdp {
        protocol: u8,
    },
    NotToClientPort {
        port: u16,
    },
    UdpLength {
        len: usize,
        room: usize,
    },
    NotReply {
        op: u8,
    },
    Xid {
        want: u32,
        got: u32,
    },
    /// `htype`/`hlen`/`chaddr` are not our MAC.
    Chaddr {
        htype: u8,
        hlen: u8,
        got: [u8; 6],
    },
    Cookie {
        got: [u8; 4],
    },
    /// Option `code` at `at` runs past the end of its area.
    OptionTruncated {
        code: u8,
        at: usize,
    },
    NoMessageType,
    /// Option 53 is not OFFER/ACK/NAK (or is not one byte).
    MessageType {
        value: Vec<u8>,
    },
    /// A fixed-size option with the wrong length.
    OptionLength {
        code: u8,
        len: usize,
    },
    NoServerId {
        kind: Kind,
    },
    /// Option 1 is not a run of ones followed by zeros.
    Netmask {
        mask: Ipv4Addr,
    },
    /// An OFFER/ACK whose `yiaddr` cannot be a host address.
    Yiaddr {
        kind: Kind,
        addr: Ipv4Addr,
    },
}

impl DecodeError {
    /// True for packets that are simply not a reply to this client (other
    /// IP traffic, another client's exchange), as opposed to a broken one.
    pub fn is_foreign(&self) -> bool {
        matches!(
            self,
            DecodeError::NotIpv4 { .. }
                | DecodeError::Fragment
                | DecodeError::NotUdp { .. }
                | DecodeError::NotToClientPort { .. }
                | DecodeError::NotReply { .. }
                | DecodeError::Xid { .. }
                | DecodeError::Chaddr { .. }
        )
    }
}

fn hex_mac(m: &[u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { what, need, got } => {
                write!(f, "{what}: need {need} bytes, got {got}")
            }
            DecodeError::NotIpv4 { version } => write!(f, "IP version {version}, not 4"),
            DecodeError::BadIhl { ihl } => write!(f, "IPv4 header length {ihl} bytes"),
            DecodeError::TotalLength { total, got } => {
                write!(f, "IPv4 total length {total} but {got} bytes received")
            }
            DecodeError::IpChecksum { sum } => {
                write!(f, "IPv4 header checksum wrong (sums to {sum:#06x})")
            }
            DecodeError::Fragment => f.write_str("IPv4 fragment"),
            DecodeError::NotUdp { protocol } => write!(f, "IP protocol {protocol}, not UDP"),
            DecodeError::NotToClientPort { port } => {
                write!(f, "UDP to port {port}, not {CLIENT_PORT}")
            }
            DecodeError::UdpLength { len, room } => {
                write!(
                    f,
                    "UDP length {len} does not fit the {room} bytes after the IP header"
                )
            }
            DecodeError::NotReply { op } => write!(f, "BOOTP op {op}, not BOOTREPLY"),
            DecodeError::Xid { want, got } => {
                write!(f, "transaction id {got:#010x}, ours is {want:#010x}")
            }
            DecodeError::Chaddr { htype, hlen, got } => write!(
                f,
                "client hardware address {} (htype {htype}, hlen {hlen}) is not ours",
                hex_mac(got)
            ),
            DecodeError::Cookie { got } => write!(
                f,
                "magic cookie {}.{}.{}.{}, want 99.130.83.99",
                got[0], got[1], got[2], got[3]
            ),
            DecodeError::OptionTruncated { code, at } => {
                write!(
                    f,
                    "option {code} at byte {at} runs past the end of the message"
                )
            }
            DecodeError::NoMessageType => f.write_str("no DHCP message type (option 53)"),
            DecodeError::MessageType { value } => {
                write!(f, "DHCP message type {value:?} is not OFFER, ACK or NAK")
            }
            DecodeError::OptionLength { code, len } => {
                write!(f, "option {code} has length {len}")
            }
            DecodeError::NoServerId { kind } => {
                write!(f, "{kind} without a server identifier (option 54)")
            }
            DecodeError::Netmask { mask } => {
                write!(f, "subnet mask {mask} is not contiguous")
            }
            DecodeError::Yiaddr { kind, addr } => {
                write!(f, "{kind} offers {addr}, which is not a host address")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

// ---------------------------------------------------------------------------
// building

/// The Internet checksum (RFC 1071) over `data`, starting from `sum`.
fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = it.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn put_opt(out: &mut Vec<u8>, code: u8, val: &[u8]) {
    // Every value we send is short; a longer one would need RFC 3396
    // splitting, which nothing we send requires. Truncate rather than
    // emit a wrong length byte.
    let val = val.get(..255).unwrap_or(val);
    out.push(code);
    out.push(val.len() as u8);
    out.extend_from_slice(val);
}

/// A BOOTREQUEST of `msg_type` with our fixed options, then `extra`.
fn build(c: &Client, msg_type: u8, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; BOOTP_FIXED];
    b[0] = BOOTREQUEST;
    b[1] = HTYPE_ETHER;
    b[2] = 6;
    b[OFF_XID..OFF_XID + 4].copy_from_slice(&c.xid.to_be_bytes());
    b[8..10].copy_from_slice(&c.secs.to_be_bytes());
    b[OFF_FLAGS..OFF_FLAGS + 2].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
    b[OFF_CHADDR..OFF_CHADDR + 6].copy_from_slice(&c.mac);
    b.extend_from_slice(&MAGIC);
    put_opt(&mut b, opt::MESSAGE_TYPE, &[msg_type]);
    let mut id = [1u8; 7]; // type 1 = Ethernet (RFC 2132 §9.14)
    id[1..].copy_from_slice(&c.mac);
    put_opt(&mut b, opt::CLIENT_ID, &id);
    for (code, val) in extra {
        put_opt(&mut b, *code, val);
    }
    put_opt(&mut b, opt::PARAM_REQUEST, &PARAMS);
    put_opt(&mut b, opt::MAX_SIZE, &MAX_MESSAGE.to_be_bytes());
    put_opt(&mut b, opt::VENDOR_CLASS, VENDOR_CLASS.as_bytes());
    if let Some(h) = &c.hostname {
        put_opt(&mut b, opt::HOST_NAME, h.as_bytes());
    }
    b.push(opt::END);
    // RFC 1542 §3.1.1 (via RFC 2131 §2): some relays drop BOOTP messages
    // shorter than 300 bytes; pad like every client does.
    if b.len() < 300 {
        b.resize(300, opt::PAD);
    }
    udp_frame(&b)
}

/// `payload` in UDP 68→67 in IPv4 0.0.0.0→255.255.255.255, both
/// checksums computed (RFC 768 pseudo header).
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let src = Ipv4Addr::UNSPECIFIED.octets();
    let dst = Ipv4Addr::BROADCAST.octets();
    let udp_len = (UDP_HDR + payload.len()) as u16;
    let total = IP_HDR as u16 + udp_len;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0, 0, 0]);
    p[2..4].copy_from_slice(&total.to_be_bytes());
    // id 0, no fragment flags, TTL 64, UDP, checksum filled below.
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let ip_sum = csum_fold(csum_add(0, &p));
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    p.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    p.extend_from_slice(&SERVER_PORT.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&dst);
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    let mut sum = csum_fold(csum_add(csum_add(0, &pseudo), &p[IP_HDR..]));
    // RFC 768: a computed 0 is sent as all ones (0 means "no checksum").
    if sum == 0 {
        sum = 0xffff;
    }
    p[IP_HDR + 6..IP_HDR + 8].copy_from_slice(&sum.to_be_bytes());
    p
}

/// DHCPDISCOVER (RFC 2131 §4.4.1).
pub fn discover(c: &Client) -> Vec<u8> {
    build(c, DHCPDISCOVER, &[])
}

/// DHCPREQUEST in SELECTING state (RFC 2131 §4.3.2, table 5): `ciaddr` 0,
/// option 50 the offered address, option 54 the chosen server.
pub fn request(c: &Client, offered: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    build(
        c,
        DHCPREQUEST,
        &[
            (opt::REQUESTED_IP, &offered.octets()),
            (opt::SERVER_ID, &server.octets()),
        ],
    )
}

// ---------------------------------------------------------------------------
// parsing

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    be32(b, at).map(Ipv4Addr::from)
}

fn short(what: &'static str, need: usize, got: usize) -> DecodeError {
    DecodeError::Short { what, need, got }
}

/// The UDP payload of an IPv4 packet to port 68, and the source address.
/// Checks as the kernel's own DHCP client does (net/ipv4/ipconfig.c
/// `ic_bootp_recv`): version, IHL, total length, header checksum, no
/// fragments, UDP, port. The UDP checksum is not checked: on virtio-net
/// and other offloading NICs a packet socket sees it unfinished
/// (CHECKSUM_PARTIAL, TP_STATUS_CSUMNOTREADY), and ipconfig.c does not
/// check it either.
fn udp_payload(pkt: &[u8]) -> Result<(Ipv4Addr, &[u8]), DecodeError> {
    let v = *pkt.first().ok_or(short("IPv4 header", IP_HDR, 0))?;
    if v >> 4 != 4 {
        return Err(DecodeError::NotIpv4 { version: v >> 4 });
    }
    let ihl = usize::from(v & 15) * 4;
    if ihl < IP_HDR {
        return Err(DecodeError::BadIhl { ihl });
    }
    let hdr = pkt.get(..ihl).ok_or(short("IPv4 header", ihl, pkt.len()))?;
    let total = usize::from(be16(hdr, 2).unwrap_or(0));
    if total < ihl || total > pkt.len() {
        return Err(DecodeError::TotalLength {
            total,
            got: pkt.len(),
        });
    }
    let sum = csum_fold(csum_add(0, hdr));
    if sum != 0 {
        return Err(DecodeError::IpChecksum { sum });
    }
    let frag = be16(hdr, 6).unwrap_or(0);
    // MF set or a non-zero offset (RFC 791).
    if frag & 0x3fff != 0 {
        return Err(DecodeError::Fragment);
    }
    let protocol = hdr.get(9).copied().unwrap_or(0);
    if protocol != 17 {
        return Err(DecodeError::NotUdp { protocol });
    }
    let from = ipv4_at(hdr, 12).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let udp = pkt.get(ihl..total).unwrap_or(&[]);
    let (Some(dport), Some(len)) = (be16(udp, 2), be16(udp, 4)) else {
        return Err(short("UDP header", UDP_HDR, udp.len()));
    };
    if dport != CLIENT_PORT {
        return Err(DecodeError::NotToClientPort { port: dport });
    }
    let len = usize::from(len);
    if len < UDP_HDR || len > udp.len() {
        return Err(DecodeError::UdpLength {
            len,
            room: udp.len(),
        });
    }
    Ok((from, udp.get(UDP_HDR..len).unwrap_or(&[])))
}

/// Options by code, repeated codes concatenated (RFC 3396 §7).
#[derive(Default)]
struct Options(Vec<(u8, Vec<u8>)>);

impl Options {
    /// Read one option area (`base` = its offset in the message, for the
    /// error). Stops at END; PAD is skipped.
    fn read(&mut self, area: &[u8], base: usize) -> Result<(), DecodeError> {
        let mut i = 0;
        while let Some(&code) = area.get(i) {
            match code {
                opt::PAD => i += 1,
                opt::END => return Ok(()),
                _ => {
                    let at = base + i;
                    let len = usize::from(
                        *area
                            .get(i + 1)
                            .ok_or(DecodeError::OptionTruncated { code, at })?,
                    );
                    let val = area
                        .get(i + 2..i + 2 + len)
                        .ok_or(DecodeError::OptionTruncated { code, at })?;
                    match self.0.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, v)) => v.extend_from_slice(val),
                        None => self.0.push((code, val.to_vec())),
                    }
                    i += 2 + len;
                }
            }
        }
        // A missing END is tolerated (some servers fill to the end).
        Ok(())
    }

    fn get(&self, code: u8) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    fn fixed<const N: usize>(&self, code: u8) -> Result<Option<[u8; N]>, DecodeError> {
        match self.get(code) {
            None => Ok(None),
            Some(v) => <[u8; N]>::try_from(v)
                .map(Some)
                .map_err(|_| DecodeError::OptionLength { code, len: v.len() }),
        }
    }

    /// A list of addresses (length a non-zero multiple of 4).
    fn addrs(&self, code: u8) -> Result<Vec<Ipv4Addr>, DecodeError> {
        match self.get(code) {
            None => Ok(Vec::new()),
            Some(v) if v.is_empty() || v.len() % 4 != 0 => {
                Err(DecodeError::OptionLength { code, len: v.len() })
            }
            Some(v) => Ok(v
                .chunks_exact(4)
                .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
                .collect()),
        }
    }

    /// A text option; servers may NUL-terminate (RFC 2132 §2 says they
    /// should not), so a trailing NUL is dropped. Lossy: the value is only
    /// reported and compared, never used as a path.
    fn text(&self, code: u8) -> Option<String> {
        let v = self.get(code)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        Some(String::from_utf8_lossy(v).into_owned())
    }
}

/// The prefix length of a contiguous netmask, else `None`.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    // Contiguous iff everything after the leading ones is zero.
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Classful default prefix when a server sends no subnet mask, as the
/// kernel's ipconfig.c `ic_defaults` does (RFC 791 classes).
pub fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Decode an IPv4 packet as a reply to the client `xid`/`mac`.
pub fn parse(pkt: &[u8], xid: u32, mac: &[u8; 6]) -> Result<Reply, DecodeError> {
    let (from, m) = udp_payload(pkt)?;
    if m.len() < BOOTP_FIXED {
        return Err(short("BOOTP message", BOOTP_FIXED, m.len()));
    }
    let op = m.first().copied().unwrap_or(0);
    if op != BOOTREPLY {
        return Err(DecodeError::NotReply { op });
    }
    let got = be32(m, OFF_XID).unwrap_or(0);
    if got != xid {
        return Err(DecodeError::Xid { want: xid, got });
    }
    let (htype, hlen) = (
        m.get(1).copied().unwrap_or(0),
        m.get(2).copied().unwrap_or(0),
    );
    let mut ch = [0u8; 6];
    if let Some(s) = m.get(OFF_CHADDR..OFF_CHADDR + 6) {
        ch.copy_from_slice(s);
    }
    if htype != HTYPE_ETHER || hlen != 6 || ch != *mac {
        return Err(DecodeError::Chaddr {
            htype,
            hlen,
            got: ch,
        });
    }
    let cookie = m.get(BOOTP_FIXED..BOOTP_FIXED + 4);
    let cookie: [u8; 4] = cookie.and_then(|c| c.try_into().ok()).ok_or(short(
        "magic cookie",
        BOOTP_FIXED + 4,
        m.len(),
    ))?;
    if cookie != MAGIC {
        return Err(DecodeError::Cookie { got: cookie });
    }
    let mut o = Options::default();
    let start = BOOTP_FIXED + 4;
    o.read(m.get(start..).unwrap_or(&[]), start)?;
    // Option overload (RFC 2132 §9.3): more options in `file` (1), `sname`
    // (2) or both (3), read in that order (RFC 2131 §4.1).
    if let Some([ov]) = o.fixed::<1>(opt::OVERLOAD)? {
        if ov & 1 != 0 {
            o.read(
                m.get(OFF_FILE..OFF_FILE + FILE_LEN).unwrap_or(&[]),
                OFF_FILE,
            )?;
        }
        if ov & 2 != 0 {
            o.read(
                m.get(OFF_SNAME..OFF_SNAME + SNAME_LEN).unwrap_or(&[]),
                OFF_SNAME,
            )?;
        }
    }
    let kind = match o.get(opt::MESSAGE_TYPE) {
        None => return Err(DecodeError::NoMessageType),
        Some([DHCPOFFER]) => Kind::Offer,
        Some([DHCPACK]) => Kind::Ack,
        Some([DHCPNAK]) => Kind::Nak,
        Some(v) => return Err(DecodeError::MessageType { value: v.to_vec() }),
    };
    let server_id = o
        .fixed::<4>(opt::SERVER_ID)?
        .map(Ipv4Addr::from)
        .ok_or(DecodeError::NoServerId { kind })?;
    let yiaddr = ipv4_at(m, OFF_YIADDR).unwrap_or(Ipv4Addr::UNSPECIFIED);
    if kind != Kind::Nak
        && (yiaddr.is_unspecified() || yiaddr.is_broadcast() || yiaddr.is_multicast())
    {
        return Err(DecodeError::Yiaddr { kind, addr: yiaddr });
    }
    let prefix_len = match o.fixed::<4>(opt::SUBNET_MASK)? {
        None => None,
        Some(b) => {
            let mask = Ipv4Addr::from(b);
            Some(mask_to_prefix(mask).ok_or(DecodeError::Netmask { mask })?)
        }
    };
    Ok(Reply {
        kind,
        xid,
        yiaddr,
        siaddr: ipv4_at(m, OFF_SIADDR).unwrap_or(Ipv4Addr::UNSPECIFIED),
        from,
        server_id,
        prefix_len,
        routers: o.addrs(opt::ROUTER)?,
        dns: o.addrs(opt::DNS)?,
        ntp: o.addrs(opt::NTP)?,
        hostname: o.text(opt::HOST_NAME),
        domain: o.text(opt::DOMAIN_NAME),
        root_path: o.text(opt::ROOT_PATH),
        mtu: o.fixed::<2>(opt::MTU)?.map(u16::from_be_bytes),
        lease_s: o.fixed::<4>(opt::LEASE_TIME)?.map(u32::from_be_bytes),
        message: o.text(opt::MESSAGE),
    })
}

/// The options of one of our own requests (for tests and the fuzz
/// round trip): message type and every option as (code, value), in order.
pub fn request_options(pkt: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, DecodeError> {
    let ihl = usize::from(pkt.first().copied().unwrap_or(0) & 15) * 4;
    let m = pkt.get(ihl + UDP_HDR..).unwrap_or(&[]);
    if m.len() < BOOTP_FIXED + 4 {
        return Err(short("BOOTP message", BOOTP_FIXED + 4, m.len()));
    }
    let mut o = Options::default();
    o.read(m.get(BOOTP_FIXED + 4..).unwrap_or(&[]), BOOTP_FIXED + 4)?;
    Ok(o.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn client() -> Client {
        Client {
            xid: 0x1234_5678,
            mac: MAC,
            hostname: Some("node7".into()),
            secs: 3,
        }
    }

    /// A server reply built by hand, field by field (RFC 2131 figure 1).
    fn reply(xid: u32, mac: [u8; 6], opts: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; BOOTP_FIXED];
        b[0] = BOOTREPLY;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[10] = 0x80;
        b[16..20].copy_from_slice(&[198, 18, 0, 2]); // yiaddr
        b[20..24].copy_from_slice(&[198, 18, 0, 1]); // siaddr
        b[28..34].copy_from_slice(&mac);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(opts);
        // Reuse our framing, then turn it into server → client.
        let mut p = udp_frame(&b);
        p[12..16].copy_from_slice(&[198, 18, 0, 1]);
        p[10..12].copy_from_slice(&[0, 0]);
        let s = csum_fold(csum_add(0, &p[..20]));
        p[10..12].copy_from_slice(&s.to_be_bytes());
        p[20..22].copy_from_slice(&SERVER_PORT.to_be_bytes());
        p[22..24].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        p
    }

    const OFFER_OPTS: &[u8] = &[
        53, 1, 2, // OFFER
        54, 4, 198, 18, 0, 1, // server id
        51, 4, 0, 0, 0x0e, 0x10, // lease 3600
        1, 4, 255, 255, 255, 0, // /24
        3, 8, 198, 18, 0, 1, 198, 18, 0, 254, // routers
        6, 4, 198, 18, 0, 53, // DNS
        0, 0, // pad
        12, 5, b'n', b'o', b'd', b'e', b'7', // host name
        15, 4, b't', b'e', b's', b't', // domain
        17, 12, b'i', b's', b'c', b's', b'i', b':', b'1', b'.', b'2', b':', b':',
        0, // root path, NUL
        26, 2, 0x05, 0xdc, // MTU 1500
        255,
    ];

    #[test]
    fn discover_layout_and_checksums() {
        let p = discover(&client());
        assert_eq!(p.len(), 20 + 8 + 300);
        assert_eq!(p[0], 0x45);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
        assert_eq!(p[9], 17);
        assert_eq!(&p[12..20], &[0, 0, 0, 0, 255, 255, 255, 255]);
        assert_eq!(csum_fold(csum_add(0, &p[..20])), 0, "IP header checksum");
        // UDP checksum over pseudo header + datagram sums to zero.
        let mut pseudo = vec![0, 0, 0, 0, 255, 255, 255, 255, 0, 17];
        pseudo.extend_from_slice(&p[24..26]);
        assert_eq!(csum_fold(csum_add(csum_add(0, &pseudo), &p[20..])), 0);
        assert_eq!(&p[20..24], &[0, 68, 0, 67]);
        let m = &p[28..];
        assert_eq!(&m[..4], &[1, 1, 6, 0]);
        assert_eq!(&m[4..8], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(&m[8..10], &[0, 3]);
        assert_eq!(&m[10..12], &[0x80, 0]);
        assert_eq!(&m[28..34], &MAC);
        assert_eq!(&m[236..240], &MAGIC);
        let o = request_options(&p).unwrap();
        let codes: Vec<u8> = o.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [53, 61, 55, 57, 60, 12]);
        assert_eq!(o[0].1, [1]);
        assert_eq!(o[1].1, [1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(o[2].1, [1, 3, 6, 12, 15, 17, 26, 28, 42, 51, 54]);
        assert_eq!(o[3].1, [0x05, 0xdc]);
        assert_eq!(o[4].1, b"netboot");
        assert_eq!(o[5].1, b"node7");
    }

    #[test]
    fn request_selecting_carries_50_and_54() {
        let p = request(
            &client(),
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        let o = request_options(&p).unwrap();
        assert_eq!(o[0], (53, vec![3]));
        assert_eq!(o[2], (50, vec![198, 18, 0, 2]));
        assert_eq!(o[3], (54, vec![198, 18, 0, 1]));
        // ciaddr stays 0 in SELECTING (RFC 2131 table 5).
        assert_eq!(&p[28 + 12..28 + 16], &[0, 0, 0, 0]);
    }

    #[test]
    fn our_discover_is_not_taken_for_a_reply() {
        let p = discover(&client());
        assert_eq!(
            parse(&p, 0x1234_5678, &MAC),
            Err(DecodeError::NotToClientPort { port: 67 })
        );
    }

    #[test]
    fn hand_built_offer_decodes() {
        let c = client();
        let p = reply(c.xid, c.mac, OFFER_OPTS);
        let r = parse(&p, c.xid, &c.mac).unwrap();
        assert_eq!(r.kind, Kind::Offer);
        assert_eq!(r.yiaddr, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(r.siaddr, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.from, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.server_id, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.prefix_len, Some(24));
        assert_eq!(
            r.routers,
            [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 254)]
        );
        assert_eq!(r.dns, [Ipv4Addr::new(198, 18, 0, 53)]);
        assert_eq!(r.hostname.as_deref(), Some("node7"));
        assert_eq!(r.domain.as_deref(), Some("test"));
        assert_eq!(r.root_path.as_deref(), Some("iscsi:1.2::"));
        assert_eq!(r.mtu, Some(1500));
        assert_eq!(r.lease_s, Some(3600));
        assert_eq!(r.message, None);
    }

    #[test]
    fn nak_with_message() {
        let opts = [
            53, 1, 6, 54, 4, 10, 0, 0, 1, 56, 5, b'w', b'r', b'o', b'n', b'g', 255,
        ];
        let r = parse(&reply(7, MAC, &opts), 7, &MAC).unwrap();
        assert_eq!(r.kind, Kind::Nak);
        assert_eq!(r.message.as_deref(), Some("wrong"));
    }

    #[test]
    fn overloaded_file_field_is_read() {
        // Option 52 = 1: the root path sits in `file`.
        let mut p = reply(9, MAC, &[53, 1, 5, 54, 4, 10, 0, 0, 1, 52, 1, 1, 255]);
        let file = 28 + OFF_FILE;
        p[file..file + 6].copy_from_slice(&[17, 3, b'a', b'b', b'c', 255]);
        // UDP checksum is not checked; IP header unchanged.
        let r = parse(&p, 9, &MAC).unwrap();
        assert_eq!(r.kind, Kind::Ack);
        assert_eq!(r.root_path.as_deref(), Some("abc"));
    }

    #[test]
    fn split_option_is_concatenated() {
        // RFC 3396: two instances of option 17.
        let opts = [
            53, 1, 5, 54, 4, 10, 0, 0, 1, 17, 2, b'a', b'b', 17, 1, b'c', 255,
        ];
        let r = parse(&reply(9, MAC, &opts), 9, &MAC).unwrap();
        assert_eq!(r.root_path.as_deref(), Some("abc"));
    }

    #[test]
    fn masks() {
        for (m, p) in [
            ([255, 255, 255, 0], Some(24)),
            ([255, 255, 255, 255], Some(32)),
            ([0, 0, 0, 0], Some(0)),
            ([255, 255, 254, 0], Some(23)),
            ([255, 0, 255, 0], None),
            ([0, 255, 255, 255], None),
        ] {
            assert_eq!(mask_to_prefix(Ipv4Addr::from(m)), p, "{m:?}");
        }
        assert_eq!(classful_prefix(Ipv4Addr::new(10, 1, 2, 3)), 8);
        assert_eq!(classful_prefix(Ipv4Addr::new(172, 16, 0, 1)), 16);
        assert_eq!(classful_prefix(Ipv4Addr::new(198, 18, 0, 2)), 24);
    }

    #[test]
    fn errors_have_exact_text() {
        let c = client();
        let ok = reply(c.xid, c.mac, OFFER_OPTS);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = ok.clone();
            f(&mut p);
            parse(&p, c.xid, &c.mac).unwrap_err().to_string()
        };
        let fix_ip = |p: &mut Vec<u8>| {
            p[10..12].copy_from_slice(&[0, 0]);
            let s = csum_fold(csum_add(0, &p[..20]));
            p[10..12].copy_from_slice(&s.to_be_bytes());
        };
        for (err, f) in [
            (
                "IP version 6, not 4",
                &(|p: &mut Vec<u8>| p[0] = 0x65) as &dyn Fn(&mut Vec<u8>),
            ),
            ("IPv4 header length 16 bytes", &|p| p[0] = 0x44),
            ("IPv4 header checksum wrong (sums to 0x0100)", &|p| {
                p[8] = 63
            }),
            ("IPv4 fragment", &|p| {
                p[6] = 0x20;
                fix_ip(p)
            }),
            ("IP protocol 6, not UDP", &|p| {
                p[9] = 6;
                fix_ip(p)
            }),
            ("UDP to port 69, not 68", &|p| p[23] = 69),
            ("BOOTP op 1, not BOOTREPLY", &|p| p[28] = 1),
            ("transaction id 0x00000000, ours is 0x12345678", &|p| {
                p[32..36].fill(0)
            }),
            (
                "client hardware address 52:54:00:12:34:57 (htype 1, hlen 6) is not ours",
                &|p| p[28 + 33] = 0x57,
            ),
            ("magic cookie 1.2.3.4, want 99.130.83.99", &|p| {
                p[28 + 236..28 + 240].copy_from_slice(&[1, 2, 3, 4])
            }),
            ("subnet mask 255.0.255.0 is not contiguous", &|p| {
                let i = 28 + 240 + 15 + 2;
                p[i..i + 4].copy_from_slice(&[255, 0, 255, 0])
            }),
            ("option 26 has length 1", &|p| {
                let i = p.len() - 5;
                p[i..i + 4].copy_from_slice(&[26, 1, 5, 255])
            }),
            ("DHCP message type [3] is not OFFER, ACK or NAK", &|p| {
                p[28 + 242] = 3
            }),
            ("DHCPOFFER without a server identifier (option 54)", &|p| {
                p[28 + 243] = 99
            }),
        ] {
            assert_eq!(with(f), err);
        }
        // Lengths.
        assert_eq!(
            parse(&ok[..ok.len() - 1], c.xid, &c.mac)
                .unwrap_err()
                .to_string(),
            format!(
                "IPv4 total length {} but {} bytes received",
                ok.len(),
                ok.len() - 1
            )
        );
        assert_eq!(
            parse(&[], c.xid, &c.mac).unwrap_err().to_string(),
            "IPv4 header: need 20 bytes, got 0"
        );
        let opts = [53, 1, 2, 54, 4, 1, 2, 3, 4, 17, 9, b'x'];
        assert_eq!(
            parse(&reply(1, MAC, &opts), 1, &MAC)
                .unwrap_err()
                .to_string(),
            "option 17 at byte 249 runs past the end of the message"
        );
        assert_eq!(
            parse(&reply(1, MAC, &[255]), 1, &MAC).unwrap_err(),
            DecodeError::NoMessageType
        );
    }

    #[test]
    fn every_truncation_errors_without_panic() {
        let c = client();
        let p = reply(c.xid, c.mac, OFFER_OPTS);
        for n in 0..p.len() {
            assert!(parse(&p[..n], c.xid, &c.mac).is_err(), "prefix {n}");
        }
        // And every single-byte corruption either decodes or errors.
        for i in 0..p.len() {
            let mut q = p.clone();
            q[i] ^= 0xff;
            let _ = parse(&q, c.xid, &c.mac);
        }
    }

    #[test]
    fn foreign_vs_broken() {
        assert!(DecodeError::Xid { want: 1, got: 2 }.is_foreign());
        assert!(DecodeError::NotUdp { protocol: 1 }.is_foreign());
        assert!(!DecodeError::NoMessageType.is_foreign());
        assert!(!DecodeError::Netmask {
            mask: Ipv4Addr::new(255, 0, 255, 0)
        }
        .is_foreign());
    }
}
