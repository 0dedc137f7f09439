//! The DHCPv6 exchange on one interface (RFC 8415 §18): SOLICIT →
//! ADVERTISE → REQUEST → REPLY over a UDP socket bound to the link's
//! link-local address, port 546, sending to `[ff02::1:2]:547` on that link.
//! Messages come from the pure codec in [`super::dhcp6`].
//!
//! Timers (RFC 8415 §15, §18.2.1, §18.2.2, §7.6): SOL_TIMEOUT 1 s, each
//! retransmission 2·RT ± 10 %, the first Solicit's RT strictly above 1 s;
//! SOL_MAX_RT 3600 s (or the server's option 82) caps it; REQ_TIMEOUT 1 s,
//! REQ_MAX_RT 30 s, REQ_MAX_RC 10 Requests, then back to Solicit. Advertises
//! are collected until the first RT passes unless one carries preference
//! 255; the highest preference wins, the first of equals. The whole
//! exchange ends at the boot's deadline. The first Solicit is not delayed
//! by the optional 0–1 s SOL_MAX_DELAY (a SHOULD): the link-local DAD and
//! the router solicitation before it already spread a fleet's boots.

use super::dhcp6::{self, IaAddr, Message, Unusable};
use super::NetError;
use crate::sys::poll::poll_until;
use rustix::event::PollFlags;
use rustix::fd::OwnedFd;
use rustix::net::{
    bind, ipproto, recvfrom, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

const SOL_TIMEOUT: Duration = Duration::from_secs(1);
const SOL_MAX_RT: Duration = Duration::from_secs(3600);
const REQ_TIMEOUT: Duration = Duration::from_secs(1);
const REQ_MAX_RT: Duration = Duration::from_secs(30);
const REQ_MAX_RC: u32 = 10;

/// What one successful exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    pub reply: Message,
    pub addr: IaAddr,
    /// The server's link-local address the REPLY came from.
    pub server: Option<Ipv6Addr>,
    pub sent: u32,
    pub advertises: u32,
    pub took: Duration,
}

/// Next retransmission time (RFC 8415 §15): `2·prev ± 10 %`, or for the
/// first `irt + RAND·irt` with RAND in (0, 0.1] for a Solicit (strictly
/// greater than IRT, §18.2.1) and ± 0.1 otherwise; capped at `mrt ± 10 %`.
/// `rand` is uniform in 0..1000 (pure, so tests pin it).
pub fn next_rt(
    prev: Option<Duration>,
    irt: Duration,
    mrt: Duration,
    solicit: bool,
    rand: u32,
) -> Duration {
    let r = i64::from(rand % 1000);
    // ±10 % as thousandths: -100..=+99; a first Solicit +1..=+100.
    let jitter = |base: Duration, plus_only: bool| -> Duration {
        let ms = base.as_millis().min(u128::from(u32::MAX)) as i64;
        let f = if plus_only { r / 10 + 1 } else { r / 5 - 100 };
        Duration::from_millis((ms + ms * f / 1000).max(1) as u64)
    };
    let rt = match prev {
        None => jitter(irt, solicit),
        Some(p) => jitter(p.saturating_mul(2), false),
    };
    if rt > mrt {
        jitter(mrt, false)
    } else {
        rt
    }
}

fn rand1000() -> u32 {
    crate::entropy::unique_u32() % 1000
}

/// Hundredths of a second since `start`, as ELAPSED_TIME (0xffff caps it).
fn elapsed(start: Instant) -> u16 {
    u16::try_from(start.elapsed().as_millis() / 10).unwrap_or(u16::MAX)
}

fn sock_err(op: &'static str) -> impl Fn(rustix::io::Errno) -> NetError {
    move |errno| NetError::Dhcp6Socket { op, errno }
}

struct Sock {
    fd: OwnedFd,
    to: SocketAddrV6,
}

impl Sock {
    fn open(link_local: Ipv6Addr, ifindex: i32) -> Result<Sock, NetError> {
        let fd = socket_with(
            AddressFamily::INET6,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(ipproto::UDP),
        )
        .map_err(sock_err("socket"))?;
        let scope = ifindex as u32;
        bind(
            &fd,
            &SocketAddrV6::new(link_local, dhcp6::CLIENT_PORT, 0, scope),
        )
        .map_err(sock_err("bind"))?;
        Ok(Sock {
            fd,
            to: SocketAddrV6::new(dhcp6::ALL_SERVERS, dhcp6::SERVER_PORT, 0, scope),
        })
    }

    fn send(&self, m: &[u8]) -> Result<(), NetError> {
        sendto(&self.fd, m, SendFlags::empty(), &self.to).map_err(sock_err("sendto"))?;
        Ok(())
    }

    /// One datagram, or `None` when `until` passes.
    fn recv(
        &self,
        buf: &mut [u8],
        until: Instant,
    ) -> Result<Option<(usize, Option<Ipv6Addr>)>, NetError> {
        if !poll_until(&self.fd, PollFlags::IN, until).map_err(sock_err("poll"))? {
            return Ok(None);
        }
        let (n, _, from) =
            recvfrom(&self.fd, buf, RecvFlags::DONTWAIT).map_err(sock_err("recvfrom"))?;
        let from = from
            .and_then(|a| std::net::SocketAddr::try_from(a).ok())
            .and_then(|a| match a {
                std::net::SocketAddr::V6(v) => Some(*v.ip()),
                std::net::SocketAddr::V4(_) => None,
            });
        Ok(Some((n, from)))
    }
}

/// Run the exchange on link `ifindex` (whose link-local address has
/// finished DAD) until a REPLY gives an address or `deadline` passes.
pub fn obtain(
    iface: &str,
    ifindex: i32,
    mac: [u8; 6],
    link_local: Ipv6Addr,
    deadline: Instant,
) -> Result<Lease6, NetError> {
    let started = Instant::now();
    let sock = Sock::open(link_local, ifindex)?;
    let duid = dhcp6::duid_ll(mac);
    // IAID: the MAC's last four bytes, stable across boots (RFC 8415 §12).
    let iaid = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let mut buf = vec![0u8; 2048];
    let (mut sent, mut advertises) = (0u32, 0u32);
    let mut last_error: Option<String> = None;
    let mut sol_max_rt = SOL_MAX_RT;
    let timeout = |sent, advertises, last_error: Option<String>| NetError::NoLease6 {
        iface: iface.to_string(),
        waited: started.elapsed(),
        sent,
        advertises,
        last_error,
    };
    loop {
        // Solicit phase: one transaction id for every retransmission.
        let xid = new_xid();
        let sol_start = Instant::now();
        let mut rt = None;
        let mut best: Option<(u8, Vec<u8>, IaAddr)> = None;
        let mut collect_until: Option<Instant> = None;
        let chosen = 'solicit: loop {
            let this_rt = next_rt(rt, SOL_TIMEOUT, sol_max_rt, true, rand1000());
            rt = Some(this_rt);
            sock.send(&dhcp6::solicit(xid, &duid, iaid, elapsed(sol_start)))?;
            sent += 1;
            let until = (Instant::now() + this_rt).min(deadline);
            // The first RT is also the Advertise collection window.
            if collect_until.is_none() {
                collect_until = Some(until);
            }
            while let Some((n, _from)) = sock.recv(&mut buf, until)? {
                let Ok(m) = dhcp6::decode(buf.get(..n).unwrap_or(&[])) else {
                    last_error = Some("a datagram that does not decode as DHCPv6".into());
                    continue;
                };
                if m.msg_type != dhcp6::ADVERTISE {
                    continue;
                }
                if let Some(s) = m.sol_max_rt {
                    // RFC 8415 §21.24: 60..86400 s, else ignored.
                    if (60..=86400).contains(&s) {
                        sol_max_rt = Duration::from_secs(u64::from(s));
                    }
                }
                match dhcp6::offered(&m, xid, &duid, iaid) {
                    Ok((server, addr)) => {
                        advertises += 1;
                        let pref = m.preference.unwrap_or(0);
                        if pref == 255 {
                            break 'solicit (server, addr);
                        }
                        if best.as_ref().is_none_or(|(p, _, _)| pref > *p) {
                            best = Some((pref, server, addr));
                        }
                    }
                    Err(Unusable::NotOurs) => {}
                    Err(e) => last_error = Some(format!("advertise: {e}")),
                }
                if best.is_some() && collect_until.is_some_and(|c| Instant::now() >= c) {
                    break;
                }
            }
            if let Some((_, server, addr)) = best.take() {
                break (server, addr);
            }
            if Instant::now() >= deadline {
                return Err(timeout(sent, advertises, last_error));
            }
        };
        // Request phase: a new transaction id (RFC 8415 §18.2.2).
        let (server_id, addr) = chosen;
        let xid = new_xid();
        let req_start = Instant::now();
        let mut rt = None;
        let mut refused = false;
        for _ in 0..REQ_MAX_RC {
            let this_rt = next_rt(rt, REQ_TIMEOUT, REQ_MAX_RT, false, rand1000());
            rt = Some(this_rt);
            sock.send(&dhcp6::request(
                xid,
                &duid,
                &server_id,
                iaid,
                &addr,
                elapsed(req_start),
            ))?;
            sent += 1;
            let until = (Instant::now() + this_rt).min(deadline);
            while let Some((n, from)) = sock.recv(&mut buf, until)? {
                let Ok(m) = dhcp6::decode(buf.get(..n).unwrap_or(&[])) else {
                    continue;
                };
                if m.msg_type != dhcp6::REPLY || m.server_id.as_deref() != Some(&server_id[..]) {
                    continue;
                }
                match dhcp6::offered(&m, xid, &duid, iaid) {
                    Ok((_, got)) => {
                        return Ok(Lease6 {
                            reply: m,
                            addr: got,
                            server: from,
                            sent,
                            advertises,
                            took: started.elapsed(),
                        })
                    }
                    Err(Unusable::NotOurs) => {}
                    Err(e) => {
                        // A refusal ends this Request: back to Solicit.
                        last_error = Some(format!("reply: {e}"));
                        refused = true;
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(timeout(sent, advertises, last_error));
            }
            if refused {
                break;
            }
        }
    }
}

fn new_xid() -> [u8; 3] {
    let r = crate::entropy::unique_u32().to_be_bytes();
    [r[1], r[2], r[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmission_times_follow_rfc_8415_section_15() {
        let s = Duration::from_secs(1);
        let mrt = Duration::from_secs(3600);
        // First Solicit: strictly above IRT, at most +10 %.
        assert_eq!(next_rt(None, s, mrt, true, 0), Duration::from_millis(1001));
        assert_eq!(
            next_rt(None, s, mrt, true, 999),
            Duration::from_millis(1100)
        );
        // Request: IRT ± 10 %.
        assert_eq!(next_rt(None, s, mrt, false, 0), Duration::from_millis(900));
        assert_eq!(
            next_rt(None, s, mrt, false, 999),
            Duration::from_millis(1099)
        );
        // Doubling ± 10 %, capped at MRT ± 10 %.
        let p = Duration::from_millis(1050);
        assert_eq!(
            next_rt(Some(p), s, mrt, true, 500),
            Duration::from_millis(2100)
        );
        let r = next_rt(
            Some(Duration::from_secs(20)),
            s,
            Duration::from_secs(30),
            false,
            500,
        );
        assert_eq!(r, Duration::from_secs(30));
    }

    #[test]
    fn elapsed_time_caps() {
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(1000))
            .unwrap_or_else(Instant::now);
        assert!(elapsed(long_ago) == u16::MAX || long_ago.elapsed() < Duration::from_secs(656));
        assert!(elapsed(Instant::now()) < 10);
    }
}
