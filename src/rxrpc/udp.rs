//! Userspace RxRPC over plain UDP sockets: the I/O drivers around the
//! sans-IO [`ClientCall`] and [`Server`]. Used on hosts without AF_RXRPC
//! (rxrpc.md §2.7: Debian cloud kernels, blacklisted rxrpc.ko) and by
//! `netboot-configd`.

use super::call::{CallError, CallId, ClientCall, ClientSecurity};
use super::server::{AppReply, CallInfo, Server};
use super::wire::{Packet, RANDOM_EPOCH};
use super::RxTransport;
use crate::rxkad::files::Token;
use crate::rxkad::Level;
use crate::sys::poll::{deadline_after, poll_fds_until};
use rustix::event::{PollFd, PollFlags};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Largest datagram we read: a full jumbogram is below 64 KiB.
const RECV_BUF: usize = 65_536;

/// Userspace client transport: one UDP socket per address family, one
/// connection (cid) per peer and service whose channel 0 carries the calls
/// in turn (call number +1 each, which also ends the previous call on the
/// server, rxrpc.md §1.7); epoch random with bit 31 set and bit 30 clear as
/// OpenAFS `rx_InitHost`.
pub struct UdpTransport {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    epoch: u32,
    next_cid: u32,
    /// (peer, service) → (cid, last call number).
    conns: std::collections::HashMap<(SocketAddr, u16), (u32, u32)>,
    /// Local address to send from, per family (default: the unspecified
    /// address, so the kernel picks by route).
    source: Option<IpAddr>,
    /// Reply bound per call.
    pub max_reply: usize,
    /// rxkad: the token and level every call is secured with.
    security: Option<(Token, Level)>,
    /// (peer, service) → the secured connection's state and its serial.
    secured_conns: std::collections::HashMap<(SocketAddr, u16), (u32, ClientSecurity, u32)>,
}

impl UdpTransport {
    pub fn new(max_reply: usize) -> UdpTransport {
        UdpTransport {
            v4: None,
            v6: None,
            epoch: (crate::entropy::unique_u32() | RANDOM_EPOCH) & !0x4000_0000,
            next_cid: crate::entropy::unique_u32() & 0x3fff_fffc,
            conns: std::collections::HashMap::new(),
            max_reply,
            source: None,
            security: None,
            secured_conns: std::collections::HashMap::new(),
        }
    }

    /// Secure every call with rxkad at `level` (auth or encrypt) using
    /// `token` (rxkad.md §1–§3; the CHALLENGE is answered in
    /// `ClientCall`). A connection whose call failed is not reused: the
    /// next call starts a new one (a new handshake).
    pub fn secured(mut self, token: Token, level: Level) -> UdpTransport {
        self.security = Some((token, level));
        self
    }

    /// Send from `ip` (for its address family): e.g. one of 127.0.0.0/8, so
    /// that tests and benchmarks on loopback are several sources to the
    /// server's per-source limits.
    pub fn from_source(mut self, ip: IpAddr) -> UdpTransport {
        self.source = Some(ip);
        self
    }

    fn socket(&mut self, peer: SocketAddr) -> std::io::Result<&UdpSocket> {
        let slot = if peer.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if slot.is_none() {
            let local: SocketAddr = match self.source {
                Some(ip) if ip.is_ipv4() == peer.is_ipv4() => (ip, 0).into(),
                _ if peer.is_ipv4() => (Ipv4Addr::UNSPECIFIED, 0).into(),
                _ => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            *slot = Some(UdpSocket::bind(local)?);
        }
        slot.as_ref()
            .ok_or_else(|| std::io::Error::other("no socket"))
    }
}

impl RxTransport for UdpTransport {
    fn call(
        &mut self,
        peer: SocketAddr,
        service_id: u16,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let next_cid = &mut self.next_cid;
        let conn = self.conns.entry((peer, service_id)).or_insert_with(|| {
            let cid = *next_cid;
            *next_cid = next_cid.wrapping_add(4) & 0x3fff_fffc;
            (cid, 0)
        });
        if conn.1 == u32::MAX {
            // Call numbers exhausted on this channel: a fresh connection.
            conn.0 = *next_cid;
            *next_cid = next_cid.wrapping_add(4) & 0x3fff_fffc;
            conn.1 = 0;
        }
        conn.1 += 1;
        let (cid, call_number) = *conn;
        let id = CallId {
            epoch: self.epoch,
            cid,
            call: call_number,
            service_id,
            security_index: 0,
        };
        let max_reply = self.max_reply;
        let now = Instant::now();
        let key = (peer, service_id);
        let mut call = match &self.security {
            None => ClientCall::new(id, request, max_reply, now, timeout),
            Some((token, level)) => {
                let epoch = self.epoch;
                let st = self
                    .secured_conns
                    .entry(key)
                    .or_insert_with(|| (cid, ClientSecurity::new(token, *level, epoch, cid), 0));
                if st.0 != cid {
                    *st = (cid, ClientSecurity::new(token, *level, epoch, cid), 0);
                }
                st.1.call_ids[(cid & super::wire::CHANNEL_MASK) as usize] = call_number;
                let mut c = ClientCall::secured(id, request, max_reply, now, timeout, st.1.clone());
                c.continue_serial(st.2);
                c
            }
        };
        let r = self.run(peer, &mut call);
        if self.security.is_some() {
            match (&r, self.secured_conns.get_mut(&key)) {
                (Ok(_), Some(st)) => st.2 = call.serial(),
                _ => {
                    // A failed secured call may have left the connection
                    // aborted or unauthenticated: start afresh next time.
                    self.secured_conns.remove(&key);
                    self.conns.remove(&key);
                }
            }
        }
        r
    }
}

impl UdpTransport {
    /// Drive `call` over the socket for `peer` until it has a result.
    fn run(&mut self, peer: SocketAddr, call: &mut ClientCall) -> Result<Vec<u8>, CallError> {
        let io = |e: std::io::Error| CallError::Io(format!("udp {peer}: {e}"));
        let sock = self.socket(peer).map_err(io)?;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            while let Some(b) = call.poll_transmit() {
                // A send error (e.g. ICMP unreachable reported on a later
                // send) is not fatal: retransmission or the deadline decides.
                let _ = sock.send_to(&b, peer);
            }
            if let Some(r) = call.take_result() {
                return r;
            }
            let now = Instant::now();
            let wait = call.next_timeout().saturating_duration_since(now);
            if wait.is_zero() {
                call.handle_timeout(now);
                continue;
            }
            sock.set_read_timeout(Some(wait.max(Duration::from_micros(100))))
                .map_err(io)?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == peer => {
                    if let Ok(p) = Packet::decode(&buf[..n]) {
                        call.handle(&p, Instant::now());
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock
                            | ErrorKind::TimedOut
                            | ErrorKind::Interrupted
                            | ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => return Err(io(e)),
            }
            let now = Instant::now();
            if now >= call.next_timeout() {
                call.handle_timeout(now);
            }
        }
    }
}

/// Serve until `stop` is set: poll every socket, feed datagrams to the
/// server, send what it produces, run its timers, hand log lines to `log`.
pub fn serve(
    sockets: &[UdpSocket],
    server: &mut Server,
    app: &mut dyn FnMut(&[u8], &CallInfo) -> AppReply,
    log: &mut dyn FnMut(&str),
    stop: &AtomicBool,
) -> std::io::Result<()> {
    for s in sockets {
        s.set_nonblocking(true)?;
    }
    let mut buf = vec![0u8; RECV_BUF];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = server
            .next_timeout()
            .map_or(Duration::from_millis(500), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(500));
        let mut fds: Vec<PollFd<'_>> = sockets
            .iter()
            .map(|s| PollFd::new(s, PollFlags::IN))
            .collect();
        poll_fds_until(&mut fds, Some(deadline_after(wait)))?;
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for (i, s) in sockets.iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                continue;
            }
            // Bounded batch per socket so one busy socket cannot starve others.
            for _ in 0..256 {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        server.handle_datagram((i, from), &buf[..n], Instant::now(), app);
                        flush(sockets, server);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Interrupted | ErrorKind::ConnectionRefused
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Every round, not only when a call timer is due: this also forgets
        // finished connections after LINGER.
        server.handle_timeout(Instant::now());
        // Slots freed by timers go to the calls waiting in the backlog.
        server.admit_waiting(Instant::now(), app);
        flush(sockets, server);
        for line in server.drain_logs() {
            log(&line);
        }
    }
    Ok(())
}

fn flush(sockets: &[UdpSocket], server: &mut Server) {
    for ((i, to), b) in server.drain_transmit() {
        if let Some(s) = sockets.get(i) {
            // UDP: a full socket buffer drops the packet; retransmission recovers.
            let _ = s.send_to(&b, to);
        }
    }
}

/// Unix time in seconds, for the rxkad ticket checks (0 before 1970,
/// saturating in 2106): [`super::server::ServerSecurity::now`].
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// A CHALLENGE nonce from the kernel's CRNG (a daemon may wait for it at
/// start; `entropy::unique_u32` if getrandom fails):
/// [`super::server::ServerSecurity::nonce`].
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    match rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()) {
        Ok(4) => u32::from_ne_bytes(b),
        _ => crate::entropy::unique_u32(),
    }
}
