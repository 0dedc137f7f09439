//! Sans-IO RxRPC server endpoint: connections, channels, calls, BUSY,
//! VERSION. Datagrams and the clock go in; datagrams and log lines come out.
//! The I/O loop lives in `udp.rs`.
//!
//! Rules (rxrpc.md §1.7, §1.8, §1.10, following Linux 6.1 `input.c`):
//! - a connection is {peer, epoch, cid & ~3}; a call is one channel of it;
//! - DATA seq 1 with a higher call number ends the channel's previous call;
//!   a lower call number is discarded; a packet for the channel's completed
//!   call gets the cached final ABORT again (our ACK needs no cache: the
//!   reply DATA is retransmitted until acknowledged);
//! - a call is complete on an ACK above the last reply seq, an ACKALL, a new
//!   call on the channel, a client ABORT, or a timeout;
//! - a new call while `max_calls` calls are in progress gets BUSY;
//! - VERSION requests (CLIENT_INITIATED) get the 65-byte version string;
//! - DATA for another service gets ABORT RX_INVALID_OPERATION, a security
//!   index other than 0 gets ABORT RX_PROTOCOL_ERROR.

use super::call::{emit, CallId, RxOutcome, RxQueue, TxQueue};
use super::wire::{self, abort, ack_reason, flags, ptype, Body, Header, Packet, CHANNEL_MASK};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// (index of the local socket, peer address): replies leave by the socket
/// the request came in on.
pub type Peer = (usize, SocketAddr);

/// A call in `Receiving` for this long without a packet is dropped.
pub const RECEIVE_IDLE: Duration = Duration::from_secs(10);
/// Budget for getting the reply acknowledged, from the first reply packet.
pub const REPLY_BUDGET: Duration = Duration::from_secs(10);
/// How long a finished channel remembers its call (duplicate detection and
/// the cached ABORT).
pub const LINGER: Duration = Duration::from_secs(10);
/// Bound on remembered connections: a flood of fresh cids cannot grow the
/// table past this; idle entries are evicted first, else new calls get BUSY.
pub const MAX_CONNS: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub service_id: u16,
    pub max_calls: usize,
    pub max_request: usize,
    /// The service's abort code for a request over `max_request`.
    pub too_large_abort: i32,
    /// The service's names of its abort codes, for the call log.
    pub abort_name: fn(i32) -> &'static str,
    pub version: String,
}

/// What the application answers for one complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppReply {
    /// Reply bytes, and a note for the call's log line.
    Data { data: Vec<u8>, note: String },
    /// Abort code, and a note for the log line.
    Abort { code: i32, note: String },
}

#[derive(Debug)]
enum CallState {
    Receiving(RxQueue),
    Replying {
        tx: TxQueue,
        since: Instant,
    },
    /// Finished; `cached` is the final ABORT to repeat, if the call aborted.
    Done {
        cached: Option<Vec<u8>>,
    },
}

#[derive(Debug)]
struct ServerCall {
    id: CallId,
    state: CallState,
    started: Instant,
    last_rx: Instant,
    note: String,
}

impl ServerCall {
    fn in_progress(&self) -> bool {
        !matches!(self.state, CallState::Done { .. })
    }
}

#[derive(Debug)]
struct Conn {
    serial: u32,
    channels: [Option<ServerCall>; 4],
    last_used: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    peer: Peer,
    epoch: u32,
    cid: u32,
}

#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    conns: HashMap<ConnKey, Conn>,
    active: usize,
    out: Vec<(Peer, Vec<u8>)>,
    logs: Vec<String>,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub calls: u64,
    pub busy: u64,
    pub aborts: u64,
    pub retransmits: u64,
}

impl Server {
    pub fn new(cfg: ServerConfig) -> Server {
        Server {
            cfg,
            conns: HashMap::new(),
            active: 0,
            out: Vec::new(),
            logs: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn active_calls(&self) -> usize {
        self.active
    }

    pub fn poll_transmit(&mut self) -> Option<(Peer, Vec<u8>)> {
        self.out.pop()
    }

    pub fn drain_transmit(&mut self) -> std::vec::Drain<'_, (Peer, Vec<u8>)> {
        self.out.drain(..)
    }

    pub fn drain_logs(&mut self) -> std::vec::Drain<'_, String> {
        self.logs.drain(..)
    }

    fn send_raw(&mut self, peer: Peer, h: Header, body: Body) {
        self.out.push((peer, emit(h, body)));
    }

    /// Feed one datagram. `app` is called once per complete request.
    pub fn handle_datagram(
        &mut self,
        peer: Peer,
        bytes: &[u8],
        now: Instant,
        app: &mut dyn FnMut(&[u8], SocketAddr) -> AppReply,
    ) {
        let Ok(p) = Packet::decode(bytes) else {
            return;
        };
        let h = p.header;
        if h.ptype == ptype::VERSION {
            self.version(peer, &p);
            return;
        }
        // Only client-initiated call packets are ours to serve.
        if !h.is_client_initiated() || h.call == 0 {
            return;
        }
        let data_seq1 = h.ptype == ptype::DATA && h.seq == 1;
        if h.service_id != self.cfg.service_id || h.security_index != 0 {
            if data_seq1 {
                let code = if h.service_id != self.cfg.service_id {
                    abort::RX_INVALID_OPERATION
                } else {
                    abort::RX_PROTOCOL_ERROR
                };
                let mut ah = h;
                ah.ptype = ptype::ABORT;
                ah.flags = 0;
                ah.seq = 0;
                ah.serial = 1;
                self.send_raw(
                    peer,
                    ah,
                    Body::Abort {
                        code,
                        extra: vec![],
                    },
                );
            }
            return;
        }
        let key = ConnKey {
            peer,
            epoch: h.epoch,
            cid: h.cid & !CHANNEL_MASK,
        };
        let ch = (h.cid & CHANNEL_MASK) as usize;
        // Is this a new call on the channel?
        let current = self
            .conns
            .get(&key)
            .and_then(|c| c.channels[ch].as_ref())
            .map(|c| c.id.call);
        let is_new = match current {
            Some(n) if h.call < n => return, // stale
            Some(n) if h.call == n => false,
            _ => true,
        };
        if is_new {
            if h.ptype != ptype::DATA {
                return; // ACK/ABORT for a call we do not know
            }
            if self.active >= self.cfg.max_calls || !self.make_room(now) {
                self.stats.busy += 1;
                let mut bh = h;
                bh.ptype = ptype::BUSY;
                bh.flags = 0;
                bh.seq = 0;
                bh.serial = 0;
                self.send_raw(peer, bh, Body::Busy(vec![]));
                return;
            }
            let conn = self.conns.entry(key).or_insert_with(|| Conn {
                serial: 0,
                channels: [None, None, None, None],
                last_used: now,
            });
            // A new call implicitly completes the previous one (rxrpc.md §1.7).
            if let Some(prev) = conn.channels[ch].take() {
                if prev.in_progress() {
                    self.active -= 1;
                    Self::log_end(&mut self.logs, peer, &prev, now, "ended by next call");
                }
            }
            conn.channels[ch] = Some(ServerCall {
                id: CallId {
                    epoch: h.epoch,
                    cid: h.cid,
                    call: h.call,
                    service_id: h.service_id,
                    security_index: 0,
                },
                state: CallState::Receiving(RxQueue::new(self.cfg.max_request)),
                started: now,
                last_rx: now,
                note: String::new(),
            });
            self.active += 1;
            self.stats.calls += 1;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.last_used = now;
        let Some(call) = conn.channels[ch].as_mut() else {
            return;
        };
        call.last_rx = now;
        let mut out = Vec::new();
        let mut finished: Option<&'static str> = None;
        match (&mut call.state, &p.body) {
            (CallState::Receiving(rx), Body::Data(body)) => {
                let Ok(subs) = wire::split_jumbo(&h, body) else {
                    return;
                };
                let mut ack: Option<(u8, u32)> = None;
                let mut too_large = false;
                for sub in &subs {
                    if sub.header.seq == 0 {
                        continue;
                    }
                    match rx.accept(sub) {
                        RxOutcome::New => {
                            if !rx.in_order(sub.header.seq) {
                                ack = Some((ack_reason::OUT_OF_SEQUENCE, sub.header.serial));
                            } else if sub.header.flags & flags::REQUEST_ACK != 0 {
                                ack = Some((ack_reason::REQUESTED, sub.header.serial));
                            }
                        }
                        RxOutcome::Duplicate => {
                            ack = Some((ack_reason::DUPLICATE, sub.header.serial))
                        }
                        RxOutcome::Dropped => {
                            ack = Some((ack_reason::EXCEEDS_WINDOW, sub.header.serial))
                        }
                        RxOutcome::TooLarge => too_large = true,
                    }
                }
                if too_large {
                    let code = self.cfg.too_large_abort;
                    call.note = format!("request exceeds {} bytes", self.cfg.max_request);
                    call.state = aborted(&call.id, &mut conn.serial, code, &mut out);
                    finished = Some("aborted");
                    self.stats.aborts += 1;
                } else if rx.complete() {
                    let request = rx.take();
                    match app(&request, peer.1) {
                        AppReply::Data { data, note } => {
                            call.note = note;
                            let mut tx = TxQueue::new(&data, 0);
                            tx.send_new(&call.id, &mut conn.serial, now, &mut out);
                            call.state = CallState::Replying { tx, since: now };
                        }
                        AppReply::Abort { code, note } => {
                            call.note =
                                format!("{note} -> abort {code} ({})", (self.cfg.abort_name)(code));
                            call.state = aborted(&call.id, &mut conn.serial, code, &mut out);
                            finished = Some("aborted");
                            self.stats.aborts += 1;
                        }
                    }
                } else if let Some((reason, serial)) = ack {
                    out.push(ack_packet(&call.id, &mut conn.serial, rx, serial, reason));
                }
            }
            (CallState::Replying { tx, .. }, Body::Data(_)) => {
                // The client retransmits its request: it has not seen our
                // reply. Resend the unacknowledged part now.
                let id = call.id;
                tx.on_timeout(&id, &mut conn.serial, now, &mut out);
                self.stats.retransmits += out.len() as u64;
            }
            (CallState::Replying { tx, .. }, Body::Ack(a)) => {
                if a.reason == ack_reason::PING && h.flags & flags::REQUEST_ACK != 0 {
                    conn.serial = conn.serial.wrapping_add(1);
                    let ah = call.id.header(ptype::ACK, 0, conn.serial, 0);
                    let pr = wire::Ack::new(1, 0, h.serial, ack_reason::PING_RESPONSE);
                    out.push(emit(ah, Body::Ack(pr)));
                }
                if a.first_packet > tx.len() {
                    call.state = CallState::Done { cached: None };
                    finished = Some("ok");
                } else {
                    let id = call.id;
                    tx.on_ack(&id, a, &mut conn.serial, now, &mut out);
                }
            }
            (CallState::Replying { .. }, Body::AckAll(_)) => {
                call.state = CallState::Done { cached: None };
                finished = Some("ok (ackall)");
            }
            (CallState::Receiving(_) | CallState::Replying { .. }, Body::Abort { code, .. }) => {
                call.note = format!("{} client abort {code}", call.note);
                call.state = CallState::Done { cached: None };
                finished = Some("aborted by client");
            }
            (CallState::Done { cached: Some(c) }, Body::Data(_)) => out.push(c.clone()),
            _ => {}
        }
        for b in out {
            self.out.push((peer, b));
        }
        if let Some(how) = finished {
            self.active -= 1;
            if let Some(call) = self.conns.get(&key).and_then(|c| c.channels[ch].as_ref()) {
                Self::log_end(&mut self.logs, peer, call, now, how);
            }
        }
    }

    fn log_end(logs: &mut Vec<String>, peer: Peer, call: &ServerCall, now: Instant, how: &str) {
        let ms = now.duration_since(call.started).as_secs_f64() * 1000.0;
        logs.push(format!(
            "call {} from {} {}: {} ({ms:.1} ms)",
            call.id, peer.1, call.note, how
        ));
    }

    /// Evict idle connections if the table is full; false if still full.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.conns.len() < MAX_CONNS {
            return true;
        }
        // Under pressure, forget every connection without a call in
        // progress (only duplicate detection for finished calls is lost).
        let _ = now;
        self.conns
            .retain(|_, c| c.channels.iter().flatten().any(ServerCall::in_progress));
        self.conns.len() < MAX_CONNS
    }

    /// rxrpc.md §1.10: answer only client-initiated requests whose first
    /// byte is 0; echo epoch/cid/call/service, seq 0, serial 0, flags with
    /// CLIENT_INITIATED cleared.
    fn version(&mut self, peer: Peer, p: &Packet) {
        let Body::Version(b) = &p.body else { return };
        if !p.header.is_client_initiated() || b.first().copied().unwrap_or(0) != 0 {
            return;
        }
        let mut h = p.header;
        h.flags &= !flags::CLIENT_INITIATED;
        h.seq = 0;
        h.serial = 0;
        let body = match wire::version_reply_body(&self.cfg.version) {
            Ok(b) => b,
            Err(_) => vec![0; wire::VERSION_STRING_LEN],
        };
        self.send_raw(peer, h, Body::Version(body));
    }

    /// Earliest timer of any call.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        for c in self.conns.values() {
            for call in c.channels.iter().flatten() {
                let ct = match &call.state {
                    CallState::Receiving(_) => Some(call.last_rx + RECEIVE_IDLE),
                    CallState::Replying { tx, since } => {
                        let budget = *since + REPLY_BUDGET;
                        Some(tx.timer.map_or(budget, |x| x.min(budget)))
                    }
                    CallState::Done { .. } => None,
                };
                t = match (t, ct) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ended = 0;
        for (key, conn) in self.conns.iter_mut() {
            for slot in conn.channels.iter_mut() {
                let Some(call) = slot.as_mut() else { continue };
                let mut out = Vec::new();
                let how = match &mut call.state {
                    CallState::Receiving(_) if now >= call.last_rx + RECEIVE_IDLE => {
                        Some("request incomplete, timed out")
                    }
                    CallState::Replying { since, .. } if now >= *since + REPLY_BUDGET => {
                        Some("reply not acknowledged, timed out")
                    }
                    CallState::Replying { tx, .. } => {
                        if tx.timer.is_some_and(|t| now >= t) {
                            let id = call.id;
                            tx.on_timeout(&id, &mut conn.serial, now, &mut out);
                            self.stats.retransmits += out.len() as u64;
                        }
                        None
                    }
                    _ => None,
                };
                for b in out {
                    self.out.push((key.peer, b));
                }
                if let Some(how) = how {
                    call.state = CallState::Done { cached: None };
                    ended += 1;
                    Self::log_end(&mut self.logs, key.peer, call, now, how);
                }
            }
        }
        self.active -= ended;
        // Forget finished connections after LINGER.
        self.conns.retain(|_, c| {
            c.channels.iter().flatten().any(ServerCall::in_progress)
                || now.duration_since(c.last_used) < LINGER
        });
    }
}

/// Abort a call: queue the ABORT and keep it as the call's final state, so a
/// retransmitted request is answered with the same packet.
fn aborted(id: &CallId, serial: &mut u32, code: i32, out: &mut Vec<Vec<u8>>) -> CallState {
    let cached = abort_packet(id, serial, code);
    out.push(cached.clone());
    CallState::Done {
        cached: Some(cached),
    }
}

fn abort_packet(id: &CallId, serial: &mut u32, code: i32) -> Vec<u8> {
    *serial = serial.wrapping_add(1);
    emit(
        id.header(ptype::ABORT, 0, *serial, 0),
        Body::Abort {
            code,
            extra: vec![],
        },
    )
}

fn ack_packet(id: &CallId, serial: &mut u32, rx: &RxQueue, provoking: u32, reason: u8) -> Vec<u8> {
    *serial = serial.wrapping_add(1);
    emit(
        id.header(ptype::ACK, 0, *serial, 0),
        Body::Ack(rx.ack(provoking, reason)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rxrpc::call::ClientCall;

    fn cfg(max_calls: usize) -> ServerConfig {
        ServerConfig {
            service_id: 7,
            max_calls,
            max_request: 100,
            too_large_abort: 3,
            abort_name: |c| abort::name(c).unwrap_or("test code"),
            version: "test 1".into(),
        }
    }

    fn peer(port: u16) -> Peer {
        (0, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn call_id(cid: u32) -> CallId {
        CallId {
            epoch: 0x8000_0009,
            cid,
            call: 1,
            service_id: 7,
            security_index: 0,
        }
    }

    fn echo(req: &[u8], _: SocketAddr) -> AppReply {
        if req == b"bad" {
            AppReply::Abort {
                code: 42,
                note: "bad".into(),
            }
        } else {
            AppReply::Data {
                data: req.to_vec(),
                note: "echo".into(),
            }
        }
    }

    /// Run a client call against the server with a lossless in-memory link.
    fn exchange(s: &mut Server, c: &mut ClientCall, p: Peer, now: Instant) {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(b) = c.poll_transmit() {
                s.handle_datagram(p, &b, now, &mut echo);
                moved = true;
            }
            for (_, b) in s.drain_transmit().collect::<Vec<_>>() {
                if let Ok(pk) = Packet::decode(&b) {
                    c.handle(&pk, now);
                }
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    #[test]
    fn echo_call_completes_and_logs() {
        let t = Instant::now();
        let mut s = Server::new(cfg(4));
        let mut c = ClientCall::new(call_id(4), b"hello", 1000, t, Duration::from_secs(1));
        exchange(&mut s, &mut c, peer(1), t);
        assert_eq!(c.result(), Some(&Ok(b"hello".to_vec())));
        assert_eq!(s.active_calls(), 0);
        let logs: Vec<_> = s.drain_logs().collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].contains("echo: ok"), "{}", logs[0]);
    }

    #[test]
    fn abort_is_cached_for_retransmitted_request() {
        let t = Instant::now();
        let mut s = Server::new(cfg(4));
        let mut c = ClientCall::new(call_id(8), b"bad", 1000, t, Duration::from_secs(1));
        let req = c.poll_transmit().expect("req");
        s.handle_datagram(peer(1), &req, t, &mut echo);
        let first = s.poll_transmit().expect("abort").1;
        s.handle_datagram(peer(1), &req, t, &mut echo);
        assert_eq!(s.poll_transmit().expect("again").1, first);
        assert!(matches!(
            Packet::decode(&first).map(|p| p.body),
            Ok(Body::Abort { code: 42, .. })
        ));
    }

    #[test]
    fn busy_when_full_and_version() {
        let t = Instant::now();
        let mut s = Server::new(cfg(1));
        let mut c1 = ClientCall::new(call_id(4), b"x", 1000, t, Duration::from_secs(1));
        // Request in, reply out, but no final ACK: call stays in progress.
        s.handle_datagram(peer(1), &c1.poll_transmit().expect("r"), t, &mut echo);
        let _ = s.drain_transmit().count();
        assert_eq!(s.active_calls(), 1);
        let mut c2 = ClientCall::new(call_id(8), b"y", 1000, t, Duration::from_secs(1));
        s.handle_datagram(peer(2), &c2.poll_transmit().expect("r"), t, &mut echo);
        let busy = Packet::decode(&s.poll_transmit().expect("busy").1).expect("decode");
        assert_eq!(busy.header.ptype, ptype::BUSY);
        // Reply timeout frees the slot.
        s.handle_timeout(t + REPLY_BUDGET);
        assert_eq!(s.active_calls(), 0);

        let mut v = Vec::new();
        Header {
            epoch: 999,
            ptype: ptype::VERSION,
            flags: 5,
            call: 3,
            ..Header::default()
        }
        .encode_into(&mut v);
        v.push(0);
        let _ = s.drain_transmit().count();
        s.handle_datagram(peer(3), &v, t, &mut echo);
        let r = Packet::decode(&s.poll_transmit().expect("version").1).expect("decode");
        assert_eq!((r.header.flags, r.header.call, r.header.epoch), (4, 3, 999));
        let Body::Version(b) = r.body else { panic!() };
        assert_eq!(wire::version_string(&b), "test 1");
    }

    #[test]
    fn wrong_service_gets_invalid_operation() {
        let t = Instant::now();
        let mut s = Server::new(cfg(1));
        let mut id = call_id(4);
        id.service_id = 77;
        let mut c = ClientCall::new(id, b"x", 10, t, Duration::from_secs(1));
        s.handle_datagram(peer(1), &c.poll_transmit().expect("r"), t, &mut echo);
        let r = Packet::decode(&s.poll_transmit().expect("abort").1).expect("decode");
        assert!(matches!(r.body, Body::Abort { code: -2, .. }));
    }
}
