//! The DHCPv4 exchange on one interface: DISCOVER → OFFER → REQUEST → ACK
//! (RFC 2131 §3.1) over an `AF_PACKET`/`SOCK_DGRAM` socket, because the
//! interface has no address yet and an ordinary UDP socket could neither
//! send from 0.0.0.0 on a chosen link nor receive a broadcast reply reliably
//! (packet(7)). The messages come from the pure codec in [`super::dhcp`].

use super::dhcp::{self, Client, DecodeError, Kind, Reply};
use super::NetError;
use crate::backoff::Backoff;
use crate::sys::poll::poll_until;
use rustix::event::PollFlags;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::net::addr::{SocketAddrArg, SocketAddrLen, SocketAddrOpaque};
use rustix::net::{
    bind, eth, sendto, socket_with, AddressFamily, SendFlags, SocketFlags, SocketType,
};
use std::time::{Duration, Instant};

/// First retransmission after 1 s, doubling up to 8 s (RFC 2131 §4.1
/// asks for 4 s doubling to 64 s; a booting machine wants faster retries
/// and the deadline bounds the whole exchange).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(8);
/// REQUESTs sent without an ACK before starting over with DISCOVER
/// (RFC 2131 §3.1 step 5: the client reinitializes).
const REQUEST_TRIES: u32 = 4;
/// `ETH_P_IP` (linux/if_ether.h).
const ETH_P_IP: u16 = 0x0800;

/// What one successful exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The server's ACK.
    pub ack: Reply,
    /// Prefix from option 1, else the classful default.
    pub prefix_len: u8,
    /// Datagrams sent, offers seen, NAKs received.
    pub sent: u32,
    pub offers: u32,
    pub naks: u32,
    pub took: Duration,
}

/// An `AF_PACKET`, `SOCK_DGRAM`, `ETH_P_IP` socket bound to one interface:
/// we send and receive whole IPv4 packets; the kernel adds and strips the
/// Ethernet header (packet(7)).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

/// A `struct sockaddr_ll` (packet(7)) as a rustix socket address, so that
/// `bind` and `sendto` go through rustix's safe calls. rustix has no
/// link-layer address type of its own.
struct LinkAddr(libc::sockaddr_ll);

impl LinkAddr {
    /// `ifindex`, protocol ETH_P_IP, and for sending the Ethernet broadcast
    /// address (`sll_halen` 6, ff:ff:ff:ff:ff:ff).
    fn new(ifindex: i32, broadcast: bool) -> LinkAddr {
        let mut sa = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: ETH_P_IP.to_be(),
            sll_ifindex: ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        if broadcast {
            sa.sll_halen = 6;
            sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        }
        LinkAddr(sa)
    }
}

// SAFETY: `with_sockaddr` passes a pointer to the `sockaddr_ll` we own and
// its exact size; the pointer is valid and readable for that many bytes for
// the whole call of `f`, since `self` is borrowed across it. A sockaddr_ll
// begins with `sll_family` = AF_PACKET, so it is a valid socket address for
// the AF_PACKET socket we pass it with (net/packet/af_packet.c checks the
// length against `sizeof(struct sockaddr_ll)`).
unsafe impl SocketAddrArg for LinkAddr {
    unsafe fn with_sockaddr<R>(
        &self,
        f: impl FnOnce(*const SocketAddrOpaque, SocketAddrLen) -> R,
    ) -> R {
        let len = std::mem::size_of::<libc::sockaddr_ll>() as SocketAddrLen;
        f((&self.0 as *const libc::sockaddr_ll).cast(), len)
    }
}

impl PacketSocket {
    pub fn open(ifindex: i32) -> Result<PacketSocket, NetError> {
        let fd = socket_with(
            AddressFamily::PACKET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(eth::IP),
        )
        .map_err(|errno| NetError::DhcpSocket {
            op: "socket",
            errno,
        })?;
        bind(&fd, &LinkAddr::new(ifindex, false))
            .map_err(|errno| NetError::DhcpSocket { op: "bind", errno })?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Send one IPv4 packet to the Ethernet broadcast address.
    pub fn send(&self, pkt: &[u8]) -> Result<(), NetError> {
        sendto(
            &self.fd,
            pkt,
            SendFlags::empty(),
            &LinkAddr::new(self.ifindex, true),
        )
        .map_err(|errno| NetError::DhcpSocket {
            op: "sendto",
            errno,
        })?;
        Ok(())
    }

    /// One packet into `buf`, waiting until `until`; `None` on timeout.
    pub fn recv(&self, buf: &mut [u8], until: Instant) -> Result<Option<usize>, NetError> {
        loop {
            let ready = poll_until(&self.fd, PollFlags::IN, until)
                .map_err(|errno| NetError::DhcpSocket { op: "poll", errno })?;
            if !ready {
                return Ok(None);
            }
            match rustix::net::recv(&self.fd, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Ok(Some(n)),
                // Woken without a packet (readiness raced): wait on, unless
                // the time is up.
                Err(Errno::AGAIN | Errno::INTR) if Instant::now() < until => {}
                Err(Errno::AGAIN | Errno::INTR) => return Ok(None),
                Err(errno) => return Err(NetError::DhcpSocket { op: "recv", errno }),
            }
        }
    }
}

/// A transaction id: it only has to differ between clients on the link
/// (RFC 2131 §4.4.1), so the non-blocking GRND_INSECURE is enough — early
/// in boot the blocking pool may not be ready. The MAC and the clock are
/// mixed in in case getrandom is unavailable.
fn new_xid(mac: &[u8; 6]) -> u32 {
    let mut b = [0u8; 4];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::INSECURE);
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u32::from_ne_bytes(b)
        ^ u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])
        ^ (t.tv_nsec as u32)
}

enum State {
    Selecting,
    Requesting { offer: Box<Reply>, tries: u32 },
}

/// Run the exchange on `iface` (index `ifindex`, hardware address `mac`)
/// until an ACK or `deadline`. Packets that are not a reply to us are
/// ignored; broken replies to us are ignored too but the last one is named
/// in the error.
pub fn obtain(
    iface: &str,
    ifindex: i32,
    mac: [u8; 6],
    hostname: Option<&str>,
    deadline: Instant,
) -> Result<Lease, NetError> {
    let sock = PacketSocket::open(ifindex)?;
    let started = Instant::now();
    let mut client = Client {
        xid: new_xid(&mac),
        mac,
        hostname: hostname.map(str::to_string),
        secs: 0,
    };
    let (mut sent, mut offers, mut naks) = (0u32, 0u32, 0u32);
    let mut last_nak: Option<Reply> = None;
    let mut last_bad: Option<DecodeError> = None;
    let mut state = State::Selecting;
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut buf = vec![0u8; 4096];
    loop {
        // (Re)transmit the message of the current state.
        client.secs = started.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
        let pkt = match &mut state {
            State::Selecting => dhcp::discover(&client),
            State::Requesting { offer, tries } => {
                *tries += 1;
                dhcp::request(&client, offer.yiaddr, offer.server_id)
            }
        };
        sock.send(&pkt)?;
        sent += 1;
        let next = (Instant::now() + backoff.next()).min(deadline);
        // Wait for a reply to this transmission.
        while let Some(n) = sock.recv(&mut buf, next)? {
            let reply = match dhcp::parse(buf.get(..n).unwrap_or(&[]), client.xid, &mac) {
                Ok(r) => r,
                Err(e) => {
                    if !e.is_foreign() {
                        log::debug!("dhcp: {iface}: ignoring a broken reply: {e}");
                        last_bad = Some(e);
                    }
                    continue;
                }
            };
            match (&state, reply.kind) {
                (State::Selecting, Kind::Offer) => {
                    offers += 1;
                    log::debug!(
                        "dhcp: {iface}: offer of {} from {}",
                        reply.yiaddr,
                        reply.server_id
                    );
                    state = State::Requesting {
                        offer: Box::new(reply),
                        tries: 0,
                    };
                    backoff.reset();
                    break;
                }
                (State::Requesting { offer, .. }, Kind::Ack)
                    if reply.server_id == offer.server_id =>
                {
                    let prefix_len = reply
                        .prefix_len
                        .unwrap_or_else(|| dhcp::classful_prefix(reply.yiaddr));
                    return Ok(Lease {
                        ack: reply,
                        prefix_len,
                        sent,
                        offers,
                        naks,
                        took: started.elapsed(),
                    });
                }
                (State::Requesting { offer, .. }, Kind::Nak)
                    if reply.server_id == offer.server_id =>
                {
                    // RFC 2131 §3.1 step 5 / §4.4.1: start over, new xid.
                    naks += 1;
                    log::warn!(
                        "dhcp: {iface}: DHCPNAK from {}: {}",
                        reply.server_id,
                        reply.message.as_deref().unwrap_or("(no message)")
                    );
                    last_nak = Some(reply);
                    state = State::Selecting;
                    client.xid = new_xid(&mac);
                    backoff.reset();
                    break;
                }
                // Further offers while requesting, an ACK/NAK of another
                // server: not ours to act on.
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            if let (Some(nak), State::Selecting) = (last_nak, &state) {
                return Err(NetError::DhcpNak {
                    iface: iface.to_string(),
                    server: nak.server_id,
                    message: nak.message.unwrap_or_default(),
                });
            }
            return Err(NetError::NoLease {
                iface: iface.to_string(),
                waited: started.elapsed(),
                sent,
                offers,
                last_error: last_bad.map(|e| e.to_string()),
            });
        }
        if let State::Requesting { tries, .. } = &state {
            if *tries >= REQUEST_TRIES {
                log::debug!("dhcp: {iface}: no ACK after {tries} requests; discovering again");
                state = State::Selecting;
                client.xid = new_xid(&mac);
            }
        }
    }
}

/// The MAC of a link as the 6 bytes DHCP needs (Ethernet only).
pub fn mac6(mac: &[u8]) -> Option<[u8; 6]> {
    mac.try_into().ok()
}
