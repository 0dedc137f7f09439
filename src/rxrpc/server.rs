//! Sans-IO RxRPC server endpoint: connections, channels, calls, admission,
//! BUSY, VERSION. Datagrams and the clock go in; datagrams and log lines
//! come out. The I/O loop lives in `udp.rs`.
//!
//! Rules (rxrpc.md §1.7, §1.8, §1.10, following Linux 6.1 `input.c`):
//! - a connection is {peer, epoch, cid & ~3}; a call is one channel of it;
//! - DATA seq 1 with a higher call number ends the channel's previous call;
//!   a lower call number is discarded; a packet for the channel's finished
//!   call gets the cached final ABORT again (our ACK needs no cache: the
//!   reply DATA is retransmitted until acknowledged);
//! - a call is complete on an ACK above the last reply seq, an ACKALL, a new
//!   call on the channel, a client ABORT, or a timeout;
//! - VERSION requests (CLIENT_INITIATED) get the 65-byte version string;
//! - DATA for another service gets ABORT RX_INVALID_OPERATION, a security
//!   index other than 0 gets ABORT RX_PROTOCOL_ERROR.
//!
//! Admission, so that one host cannot lock the service out for the others
//! ([`Server::admit`]). A call is charged to its [`Source`]: the IPv4
//! address, or the IPv6 /64; never the port, which any host has plenty of.
//! - A source with `max_calls_per_source` calls in progress gets BUSY.
//! - With `max_calls` calls in progress, a new call displaces a call of the
//!   source holding the most, if that source holds at least two more than
//!   the newcomer's (so each displacement evens the shares out), preferring
//!   its oldest incomplete request; failing that, among the sources holding
//!   more calls than the newcomer's, the oldest incomplete request, else the
//!   oldest call whose reply is all sent and only awaits the final ACK (its
//!   client most likely has the reply already: a burst of a whole fleet
//!   booting at once is served rather than refused). The displaced call gets
//!   ABORT RX_CALL_DEAD. Otherwise the new call gets BUSY: a source over its
//!   share is refused while the others are admitted.
//! - A request not complete `request_deadline` after its first packet is
//!   aborted with RX_CALL_TIMEOUT, freeing its slot: an incomplete call
//!   holds a slot for that long at most, not for the 10 s of an idle timer.
//!
//! The calls in progress are exactly the entries of one table (`live`):
//! their number is its length, a source's share is its range of the table,
//! and a call leaves it only through [`Server::finish`].

use super::call::{emit, CallId, RxOutcome, RxQueue, TxQueue};
use super::wire::{
    self, abort, ack_reason, flags, ptype, Ack, Body, Header, Packet, SubPacket, CHANNEL_MASK,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// (index of the local socket, peer address): replies leave by the socket
/// the request came in on.
pub type Peer = (usize, SocketAddr);

/// Budget for getting the reply acknowledged, from the first reply packet.
pub const REPLY_BUDGET: Duration = Duration::from_secs(10);
/// How long a finished channel remembers its call (duplicate detection and
/// the cached ABORT).
pub const LINGER: Duration = Duration::from_secs(10);
/// Bound on remembered connections: a flood of fresh cids cannot grow the
/// table past this; idle entries are evicted first, else new calls get BUSY.
pub const MAX_CONNS: usize = 16 * 1024;
/// The sweep of finished connections walks them all; at most this often.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// At most one log line per this interval about refused calls (a flood is
/// thousands a second).
const BUSY_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub service_id: u16,
    /// Calls in progress at once, all sources together.
    pub max_calls: usize,
    /// Calls in progress at once from one [`Source`].
    pub max_calls_per_source: usize,
    /// A request still incomplete this long after its first packet is
    /// aborted (RX_CALL_TIMEOUT).
    pub request_deadline: Duration,
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

/// Whom a call is charged to: an IPv4 address, or the /64 of an IPv6
/// address (a host may use any address of its /64, RFC 8981, so a finer key
/// would not bind it). IPv4-mapped IPv6 addresses count as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    /// The upper 64 bits of the address.
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(a) => a.fmt(f),
            Source::V6(p) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*p) << 64)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ConnKey {
    peer: Peer,
    epoch: u32,
    cid: u32,
}

/// One channel of one connection: where a call lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Slot {
    conn: ConnKey,
    channel: usize,
}

/// Key of a call in progress. The table is ordered by source first, so one
/// source's calls are one range of it, which starts at `(source, None)`.
type CallKey = (Source, Option<Slot>);

fn call_key(peer: Peer, h: &Header) -> CallKey {
    let slot = Slot {
        conn: ConnKey {
            peer,
            epoch: h.epoch,
            cid: h.cid & !CHANNEL_MASK,
        },
        channel: (h.cid & CHANNEL_MASK) as usize,
    };
    (Source::of(peer.1.ip()), Some(slot))
}

#[derive(Debug)]
enum Phase {
    Receiving(RxQueue),
    Replying { tx: TxQueue, since: Instant },
}

/// A call in progress.
#[derive(Debug)]
struct LiveCall {
    id: CallId,
    phase: Phase,
    started: Instant,
    note: String,
}

/// What a channel remembers of its last finished call: the number, to
/// discard older packets and recognise retransmissions, and the final ABORT
/// to repeat, if the call was aborted.
#[derive(Debug)]
struct Finished {
    call: u32,
    cached: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Conn {
    serial: u32,
    finished: [Option<Finished>; 4],
    last_used: Instant,
}

/// Where a packet's call number stands on its channel.
enum Chan {
    /// The call in progress.
    Live,
    /// The channel's last finished call.
    Finished,
    /// Older than the channel's current or last call: discarded.
    Stale,
    /// A call the channel has not seen.
    New,
}

/// Why a new call gets BUSY (formatted only for the rate-limited log line).
enum Refused {
    SourceLimit { source: Source, mine: usize },
    Full { source: Source, mine: usize },
    Conns,
}

/// What the DATA of a receiving call amounted to.
enum Received {
    Nothing,
    Ack { reason: u8, serial: u32 },
    TooLarge,
    Complete,
}

#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    conns: HashMap<ConnKey, Conn>,
    /// Every call in progress, and nothing else (see the module comment).
    live: BTreeMap<CallKey, LiveCall>,
    out: Vec<(Peer, Vec<u8>)>,
    logs: Vec<String>,
    next_sweep: Option<Instant>,
    /// Refusals since the last BUSY log line, and when that was.
    busy_unlogged: u64,
    busy_logged: Option<Instant>,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub calls: u64,
    pub busy: u64,
    /// Every ABORT we sent for a call, the next two included.
    pub aborts: u64,
    /// Requests aborted at `request_deadline`.
    pub expired: u64,
    /// Calls displaced by fair admission.
    pub displaced: u64,
    pub retransmits: u64,
}

impl Server {
    pub fn new(cfg: ServerConfig) -> Server {
        Server {
            cfg,
            conns: HashMap::new(),
            live: BTreeMap::new(),
            out: Vec::new(),
            logs: Vec::new(),
            next_sweep: None,
            busy_unlogged: 0,
            busy_logged: None,
            stats: Stats::default(),
        }
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.live.len()
    }

    /// Calls in progress charged to `source`.
    pub fn calls_from(&self, source: Source) -> usize {
        self.live
            .range((source, None)..)
            .take_while(|((s, _), _)| *s == source)
            .count()
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
        if h.service_id != self.cfg.service_id || h.security_index != 0 {
            self.refuse_service(peer, &h);
            return;
        }
        let key = call_key(peer, &h);
        match self.channel(&key, h.call) {
            Chan::Stale => return,
            Chan::Finished => {
                if h.ptype == ptype::DATA {
                    self.repeat_final(&key);
                }
                return;
            }
            Chan::New => {
                // ACK/ABORT for a call we do not know: nothing to do.
                if h.ptype != ptype::DATA || !self.admit(key, &h, now) {
                    return;
                }
            }
            Chan::Live => {}
        }
        if let Some(conn) = key.1.and_then(|s| self.conns.get_mut(&s.conn)) {
            conn.last_used = now;
        }
        match &p.body {
            Body::Data(body) => self.on_data(key, &h, body, now, app),
            Body::Ack(a) => self.on_ack(key, &h, a, now),
            Body::AckAll(_) => self.on_ackall(key, now),
            Body::Abort { code, .. } => self.on_client_abort(key, *code, now),
            _ => {}
        }
    }

    fn channel(&self, key: &CallKey, call: u32) -> Chan {
        if let Some(c) = self.live.get(key) {
            return match call.cmp(&c.id.call) {
                std::cmp::Ordering::Less => Chan::Stale,
                std::cmp::Ordering::Equal => Chan::Live,
                std::cmp::Ordering::Greater => Chan::New,
            };
        }
        let last = key
            .1
            .and_then(|s| self.conns.get(&s.conn)?.finished[s.channel].as_ref());
        match last {
            Some(f) if call < f.call => Chan::Stale,
            Some(f) if call == f.call => Chan::Finished,
            _ => Chan::New,
        }
    }

    /// A retransmitted request for a finished call: the cached ABORT again.
    fn repeat_final(&mut self, key: &CallKey) {
        let Some(slot) = key.1 else { return };
        let cached = self
            .conns
            .get(&slot.conn)
            .and_then(|c| c.finished[slot.channel].as_ref()?.cached.clone());
        if let Some(c) = cached {
            self.out.push((slot.conn.peer, c));
        }
    }

    /// Admit a new call (its first DATA packet), or answer BUSY. See the
    /// module comment for the rules.
    fn admit(&mut self, key: CallKey, h: &Header, now: Instant) -> bool {
        let Some(slot) = key.1 else { return false };
        // A new call on a channel ends the one before it (rxrpc.md §1.7),
        // which frees that slot first.
        if self.live.contains_key(&key) {
            self.finish(key, now, "ended by next call", None);
        }
        let source = key.0;
        let mine = self.calls_from(source);
        let refused = if mine >= self.cfg.max_calls_per_source {
            Some(Refused::SourceLimit { source, mine })
        } else if !self.make_room() {
            Some(Refused::Conns)
        } else if self.live.len() < self.cfg.max_calls {
            None
        } else if let Some((victim, why)) = self.victim(source, mine) {
            self.displace(victim, why, source, now);
            None
        } else {
            Some(Refused::Full { source, mine })
        };
        if let Some(why) = refused {
            self.busy(slot.conn.peer, h, now, why);
            return false;
        }
        self.conns.entry(slot.conn).or_insert_with(|| Conn {
            serial: 0,
            finished: [None, None, None, None],
            last_used: now,
        });
        self.live.insert(
            key,
            LiveCall {
                id: CallId {
                    epoch: h.epoch,
                    cid: h.cid,
                    call: h.call,
                    service_id: h.service_id,
                    security_index: 0,
                },
                phase: Phase::Receiving(RxQueue::new(self.cfg.max_request)),
                started: now,
                note: String::new(),
            },
        );
        self.stats.calls += 1;
        true
    }

    /// The call a newcomer from `source`, holding `mine` calls, may
    /// displace when every slot is taken, and why (for its log line). One
    /// pass over the table, which is grouped by source.
    fn victim(&self, source: Source, mine: usize) -> Option<(CallKey, String)> {
        #[derive(Default)]
        struct Group {
            n: usize,
            oldest: Option<(Instant, CallKey)>,
            oldest_incomplete: Option<(Instant, CallKey)>,
            oldest_answered: Option<(Instant, CallKey)>,
        }
        fn older(a: &mut Option<(Instant, CallKey)>, b: (Instant, CallKey)) {
            if a.is_none_or(|x| b.0 < x.0) {
                *a = Some(b);
            }
        }
        let mut groups: Vec<(Source, Group)> = Vec::new();
        for (k, c) in &self.live {
            if groups.last().is_none_or(|(s, _)| *s != k.0) {
                groups.push((k.0, Group::default()));
            }
            let Some((_, g)) = groups.last_mut() else {
                continue;
            };
            g.n += 1;
            older(&mut g.oldest, (c.started, *k));
            match &c.phase {
                Phase::Receiving(_) => older(&mut g.oldest_incomplete, (c.started, *k)),
                Phase::Replying { tx, since } if tx.all_sent() => {
                    older(&mut g.oldest_answered, (*since, *k));
                }
                Phase::Replying { .. } => {}
            }
        }
        let max = self.cfg.max_calls;
        let others = || groups.iter().filter(|(s, _)| *s != source);
        // 1. The source holding the most, if at least two more than ours.
        if let Some((s, g)) = others().max_by_key(|(_, g)| g.n) {
            if g.n >= mine + 2 {
                let why = format!("{s} held {} of the {max} slots, the most", g.n);
                return g.oldest_incomplete.or(g.oldest).map(|(_, k)| (k, why));
            }
        }
        // 2. The oldest incomplete request, 3. else the oldest answered call
        // (its whole reply sent, only the final ACK awaited: its client most
        // likely has the reply and ignores the ABORT), of a source holding
        // more than ours.
        let heavier = || others().filter(|(_, g)| g.n > mine);
        let oldest = |pick: fn(&Group) -> Option<(Instant, CallKey)>| {
            heavier()
                .filter_map(|(_, g)| pick(g))
                .min_by_key(|(t, _)| *t)
        };
        if let Some((_, k)) = oldest(|g| g.oldest_incomplete) {
            return Some((
                k,
                format!("all {max} slots taken; the oldest incomplete request"),
            ));
        }
        oldest(|g| g.oldest_answered).map(|(_, k)| {
            let why = format!("all {max} slots taken; the oldest call awaiting its final ACK");
            (k, why)
        })
    }

    /// Abort `victim` to make room for a call from `by`.
    fn displace(&mut self, victim: CallKey, why: String, by: Source, now: Instant) {
        self.stats.displaced += 1;
        let note = format!("displaced by a call from {by}: {why}");
        self.abort_call(victim, abort::RX_CALL_DEAD, note, "displaced", now);
    }

    fn busy(&mut self, peer: Peer, h: &Header, now: Instant, why: Refused) {
        self.stats.busy += 1;
        let mut bh = *h;
        bh.ptype = ptype::BUSY;
        bh.flags = 0;
        bh.seq = 0;
        bh.serial = 0;
        self.out.push((peer, emit(bh, Body::Busy(vec![]))));
        self.busy_unlogged += 1;
        if self.busy_logged.is_none_or(|t| now >= t + BUSY_LOG_EVERY) {
            let why = match why {
                Refused::SourceLimit { source, mine } => format!(
                    "{source} has {mine} calls in progress, its limit (--max-calls-per-source)"
                ),
                Refused::Full { source, mine } => format!(
                    "all {} slots in use, none that {source} (holding {mine}) may displace",
                    self.cfg.max_calls
                ),
                Refused::Conns => format!("{MAX_CONNS} connections in use"),
            };
            self.logs.push(format!(
                "BUSY: {} new calls refused since the last such line; the latest from {}: {why}",
                self.busy_unlogged, peer.1
            ));
            self.busy_unlogged = 0;
            self.busy_logged = Some(now);
        }
    }

    /// The one way out of `live`: remember the call on its channel (with the
    /// final ABORT to repeat, if any) and log its end.
    fn finish(&mut self, key: CallKey, now: Instant, how: &str, cached: Option<Vec<u8>>) {
        let (Some(call), Some(slot)) = (self.live.remove(&key), key.1) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&slot.conn) {
            conn.finished[slot.channel] = Some(Finished {
                call: call.id.call,
                cached,
            });
            conn.last_used = now;
        }
        let ms = now.duration_since(call.started).as_secs_f64() * 1000.0;
        self.logs.push(format!(
            "call {} from {} {}: {how} ({ms:.1} ms)",
            call.id, slot.conn.peer.1, call.note
        ));
    }

    /// Send ABORT `code` for a call in progress and finish it, keeping the
    /// packet to repeat for a retransmitted request.
    fn abort_call(&mut self, key: CallKey, code: i32, note: String, how: &str, now: Instant) {
        let (Some(call), Some(slot)) = (self.live.get_mut(&key), key.1) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&slot.conn) else {
            return;
        };
        let note = format!("{note} -> abort {code} ({})", (self.cfg.abort_name)(code));
        // An answered call keeps what the application said about it.
        call.note = if call.note.is_empty() {
            note
        } else {
            format!("{}; {note}", call.note)
        };
        let packet = abort_packet(&call.id, &mut conn.serial, code);
        self.out.push((slot.conn.peer, packet.clone()));
        self.stats.aborts += 1;
        self.finish(key, now, how, Some(packet));
    }

    fn on_data(
        &mut self,
        key: CallKey,
        h: &Header,
        body: &[u8],
        now: Instant,
        app: &mut dyn FnMut(&[u8], SocketAddr) -> AppReply,
    ) {
        let Some(slot) = key.1 else { return };
        let peer = slot.conn.peer;
        let (Some(call), Some(conn)) = (self.live.get_mut(&key), self.conns.get_mut(&slot.conn))
        else {
            return;
        };
        let mut out = Vec::new();
        // (code, note) if the call ends in an ABORT, decided while borrowed.
        let mut abort = None;
        match &mut call.phase {
            Phase::Receiving(rx) => {
                let Ok(subs) = wire::split_jumbo(h, body) else {
                    return;
                };
                match receive(rx, &subs) {
                    Received::Nothing => {}
                    Received::Ack { reason, serial } => {
                        out.push(ack_packet(&call.id, &mut conn.serial, rx, serial, reason));
                    }
                    Received::TooLarge => {
                        let note = format!("request exceeds {} bytes", self.cfg.max_request);
                        abort = Some((self.cfg.too_large_abort, note));
                    }
                    Received::Complete => {
                        let request = rx.take();
                        match app(&request, peer.1) {
                            AppReply::Data { data, note } => {
                                call.note = note;
                                let mut tx = TxQueue::new(&data, 0);
                                tx.send_new(&call.id, &mut conn.serial, now, &mut out);
                                call.phase = Phase::Replying { tx, since: now };
                            }
                            AppReply::Abort { code, note } => abort = Some((code, note)),
                        }
                    }
                }
            }
            Phase::Replying { tx, .. } => {
                // The client retransmits its request: it has not seen our
                // reply. Resend the unacknowledged part now.
                tx.on_timeout(&call.id, &mut conn.serial, now, &mut out);
                self.stats.retransmits += out.len() as u64;
            }
        }
        self.out.extend(out.into_iter().map(|b| (peer, b)));
        if let Some((code, note)) = abort {
            self.abort_call(key, code, note, "aborted", now);
        }
    }

    fn on_ack(&mut self, key: CallKey, h: &Header, a: &Ack, now: Instant) {
        let Some(slot) = key.1 else { return };
        let (Some(call), Some(conn)) = (self.live.get_mut(&key), self.conns.get_mut(&slot.conn))
        else {
            return;
        };
        let Phase::Replying { tx, .. } = &mut call.phase else {
            return;
        };
        let mut out = Vec::new();
        if a.reason == ack_reason::PING && h.flags & flags::REQUEST_ACK != 0 {
            conn.serial = conn.serial.wrapping_add(1);
            let ah = call.id.header(ptype::ACK, 0, conn.serial, 0);
            let pr = Ack::new(1, 0, h.serial, ack_reason::PING_RESPONSE);
            out.push(emit(ah, Body::Ack(pr)));
        }
        let done = a.first_packet > tx.len();
        if !done {
            tx.on_ack(&call.id, a, &mut conn.serial, now, &mut out);
        }
        self.out
            .extend(out.into_iter().map(|b| (slot.conn.peer, b)));
        if done {
            self.finish(key, now, "ok", None);
        }
    }

    fn on_ackall(&mut self, key: CallKey, now: Instant) {
        if matches!(
            self.live.get(&key).map(|c| &c.phase),
            Some(Phase::Replying { .. })
        ) {
            self.finish(key, now, "ok (ackall)", None);
        }
    }

    fn on_client_abort(&mut self, key: CallKey, code: i32, now: Instant) {
        if let Some(call) = self.live.get_mut(&key) {
            call.note = format!("{} client abort {code}", call.note);
            self.finish(key, now, "aborted by client", None);
        }
    }

    /// DATA for another service, or with security: ABORT on seq 1 only.
    fn refuse_service(&mut self, peer: Peer, h: &Header) {
        if h.ptype != ptype::DATA || h.seq != 1 {
            return;
        }
        let code = if h.service_id != self.cfg.service_id {
            abort::RX_INVALID_OPERATION
        } else {
            abort::RX_PROTOCOL_ERROR
        };
        let mut ah = *h;
        ah.ptype = ptype::ABORT;
        ah.flags = 0;
        ah.seq = 0;
        ah.serial = 1;
        let body = Body::Abort {
            code,
            extra: vec![],
        };
        self.out.push((peer, emit(ah, body)));
    }

    /// Evict idle connections if the table is full; false if still full.
    fn make_room(&mut self) -> bool {
        if self.conns.len() < MAX_CONNS {
            return true;
        }
        // Under pressure, forget every connection without a call in
        // progress (only duplicate detection for finished calls is lost).
        let live = &self.live;
        self.conns.retain(|k, _| has_live(live, k));
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
        self.out.push((peer, emit(h, Body::Version(body))));
    }

    /// Earliest timer of any call.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.live
            .values()
            .map(|c| match &c.phase {
                Phase::Receiving(_) => c.started + self.cfg.request_deadline,
                Phase::Replying { tx, since } => {
                    let budget = *since + REPLY_BUDGET;
                    tx.timer.map_or(budget, |t| t.min(budget))
                }
            })
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let deadline = self.cfg.request_deadline;
        let mut expired = Vec::new();
        let mut unacked = Vec::new();
        for (key, call) in self.live.iter_mut() {
            match &mut call.phase {
                Phase::Receiving(_) if now >= call.started + deadline => expired.push(*key),
                Phase::Replying { since, .. } if now >= *since + REPLY_BUDGET => unacked.push(*key),
                Phase::Replying { tx, .. } if tx.timer.is_some_and(|t| now >= t) => {
                    let Some(slot) = key.1 else { continue };
                    let Some(conn) = self.conns.get_mut(&slot.conn) else {
                        continue;
                    };
                    let mut out = Vec::new();
                    tx.on_timeout(&call.id, &mut conn.serial, now, &mut out);
                    self.stats.retransmits += out.len() as u64;
                    self.out
                        .extend(out.into_iter().map(|b| (slot.conn.peer, b)));
                }
                _ => {}
            }
        }
        for key in expired {
            self.stats.expired += 1;
            let note = format!("request not complete within {} ms", deadline.as_millis());
            self.abort_call(key, abort::RX_CALL_TIMEOUT, note, "timed out", now);
        }
        for key in unacked {
            self.finish(key, now, "reply not acknowledged, timed out", None);
        }
        // Forget finished connections after LINGER.
        if self.next_sweep.is_none_or(|t| now >= t) {
            self.next_sweep = Some(now + SWEEP_EVERY);
            let live = &self.live;
            self.conns
                .retain(|k, c| has_live(live, k) || now.duration_since(c.last_used) < LINGER);
        }
    }
}

/// Whether connection `k` has a call in progress on any channel.
fn has_live(live: &BTreeMap<CallKey, LiveCall>, k: &ConnKey) -> bool {
    let source = Source::of(k.peer.1.ip());
    (0..4).any(|channel| live.contains_key(&(source, Some(Slot { conn: *k, channel }))))
}

/// Take the DATA sub-packets of a request; say what to answer.
fn receive(rx: &mut RxQueue, subs: &[SubPacket<'_>]) -> Received {
    let mut ack = None;
    let mut too_large = false;
    for sub in subs {
        if sub.header.seq == 0 {
            continue;
        }
        let serial = sub.header.serial;
        match rx.accept(sub) {
            RxOutcome::New if !rx.in_order(sub.header.seq) => {
                ack = Some((ack_reason::OUT_OF_SEQUENCE, serial));
            }
            RxOutcome::New if sub.header.flags & flags::REQUEST_ACK != 0 => {
                ack = Some((ack_reason::REQUESTED, serial));
            }
            RxOutcome::New => {}
            RxOutcome::Duplicate => ack = Some((ack_reason::DUPLICATE, serial)),
            RxOutcome::Dropped => ack = Some((ack_reason::EXCEEDS_WINDOW, serial)),
            RxOutcome::TooLarge => too_large = true,
        }
    }
    if too_large {
        Received::TooLarge
    } else if rx.complete() {
        Received::Complete
    } else if let Some((reason, serial)) = ack {
        Received::Ack { reason, serial }
    } else {
        Received::Nothing
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
            max_calls_per_source: max_calls,
            request_deadline: Duration::from_secs(1),
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

    fn limits(max_calls: usize, per_source: usize) -> ServerConfig {
        ServerConfig {
            max_calls_per_source: per_source,
            ..cfg(max_calls)
        }
    }

    fn from(ip: [u8; 4], port: u16) -> Peer {
        (0, SocketAddr::from((ip, port)))
    }

    fn source(p: Peer) -> Source {
        Source::of(p.1.ip())
    }

    /// The first DATA packet of a request that never completes: no
    /// LAST_PACKET (the flood of issue 12).
    fn incomplete(cid: u32) -> Vec<u8> {
        let header = Header {
            epoch: 0x8000_0009,
            cid,
            call: 1,
            seq: 1,
            serial: 1,
            ptype: ptype::DATA,
            flags: flags::CLIENT_INITIATED,
            service_id: 7,
            ..Header::default()
        };
        Packet {
            header,
            body: Body::Data(b"part".to_vec()),
        }
        .encode()
        .expect("encode")
    }

    /// A complete one-packet request (the reply will stay unacknowledged).
    fn complete(cid: u32) -> Vec<u8> {
        let t = Instant::now();
        let mut c = ClientCall::new(call_id(cid), b"x", 1000, t, Duration::from_secs(1));
        c.poll_transmit().expect("request")
    }

    /// What the server sent since the last look: (to, type, cid, abort code).
    fn sent(s: &mut Server) -> Vec<(SocketAddr, u8, u32, Option<i32>)> {
        s.drain_transmit()
            .map(|(p, b)| {
                let pk = Packet::decode(&b).expect("decode");
                let code = match pk.body {
                    Body::Abort { code, .. } => Some(code),
                    _ => None,
                };
                (p.1, pk.header.ptype, pk.header.cid, code)
            })
            .collect()
    }

    #[test]
    fn per_source_limit_refuses_only_that_source() {
        let t = Instant::now();
        let mut s = Server::new(limits(8, 2));
        let (a, b) = (from([10, 0, 0, 1], 1000), from([10, 0, 0, 2], 1000));
        s.handle_datagram(a, &incomplete(4), t, &mut echo);
        s.handle_datagram(a, &incomplete(8), t, &mut echo);
        assert_eq!(sent(&mut s), []);
        // The third from A, even from another port: BUSY.
        let a2 = from([10, 0, 0, 1], 2000);
        s.handle_datagram(a2, &incomplete(12), t, &mut echo);
        assert_eq!(sent(&mut s), [(a2.1, ptype::BUSY, 12, None)]);
        // B is admitted meanwhile.
        s.handle_datagram(b, &incomplete(16), t, &mut echo);
        assert_eq!(sent(&mut s), []);
        assert_eq!((s.calls_from(source(a)), s.calls_from(source(b))), (2, 1));
        assert_eq!(s.active_calls(), 3);
        let logs: Vec<_> = s.drain_logs().collect();
        assert_eq!(
            logs,
            [
                "BUSY: 1 new calls refused since the last such line; the latest from \
              10.0.0.1:2000: 10.0.0.1 has 2 calls in progress, its limit \
              (--max-calls-per-source)"
            ]
        );
    }

    #[test]
    fn incomplete_request_is_aborted_at_its_deadline() {
        let t = Instant::now();
        let mut s = Server::new(cfg(4));
        let a = from([10, 0, 0, 1], 1000);
        s.handle_datagram(a, &incomplete(4), t, &mut echo);
        assert_eq!(s.next_timeout(), Some(t + Duration::from_secs(1)));
        s.handle_timeout(t + Duration::from_millis(999));
        assert_eq!((s.active_calls(), sent(&mut s)), (1, vec![]));
        s.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(s.active_calls(), 0, "the slot is free");
        assert_eq!(sent(&mut s), [(a.1, ptype::ABORT, 4, Some(-3))]);
        // A retransmission of that request gets the same ABORT.
        s.handle_datagram(a, &incomplete(4), t + Duration::from_secs(2), &mut echo);
        assert_eq!(sent(&mut s), [(a.1, ptype::ABORT, 4, Some(-3))]);
        let logs: Vec<_> = s.drain_logs().collect();
        assert_eq!(
            logs,
            [
                "call 80000009:00000004:1 from 10.0.0.1:1000 request not complete within \
              1000 ms -> abort -3 (RX_CALL_TIMEOUT): timed out (1000.0 ms)"
            ]
        );
    }

    #[test]
    fn full_table_displaces_calls_of_the_source_over_its_share() {
        let ms = |n| Duration::from_millis(n);
        let t = Instant::now();
        let mut s = Server::new(limits(4, 3));
        let p = |last: u8| from([10, 0, 0, last], 1000);
        let (a, b, c, d, e) = (p(1), p(2), p(3), p(4), p(5));
        for (i, cid) in [4, 8, 12].into_iter().enumerate() {
            s.handle_datagram(a, &incomplete(cid), t + ms(i as u64), &mut echo);
        }
        // B: a complete request, replied to, never acknowledged.
        s.handle_datagram(b, &complete(100), t + ms(3), &mut echo);
        assert_eq!(sent(&mut s), [(b.1, ptype::DATA, 100, None)]);
        assert_eq!(s.active_calls(), 4);
        // C: full, but A holds 3 ≥ 0 + 2: A's oldest request makes room.
        s.handle_datagram(c, &incomplete(200), t + ms(4), &mut echo);
        assert_eq!(sent(&mut s), [(a.1, ptype::ABORT, 4, Some(-1))]);
        // A, over its share, is refused while others are admitted.
        s.handle_datagram(a, &incomplete(16), t + ms(5), &mut echo);
        assert_eq!(sent(&mut s), [(a.1, ptype::BUSY, 16, None)]);
        s.handle_datagram(d, &complete(300), t + ms(6), &mut echo);
        assert_eq!(
            sent(&mut s),
            [
                (a.1, ptype::ABORT, 8, Some(-1)),
                (d.1, ptype::DATA, 300, None)
            ]
        );
        // Everyone holds one: E displaces the oldest incomplete request
        // (A's last), never a call already answered.
        s.handle_datagram(e, &complete(400), t + ms(7), &mut echo);
        assert_eq!(
            sent(&mut s),
            [
                (a.1, ptype::ABORT, 12, Some(-1)),
                (e.1, ptype::DATA, 400, None)
            ]
        );
        // Now only C's request is incomplete; a sixth source takes its slot,
        // and then nothing is left to displace: BUSY.
        s.handle_datagram(p(6), &complete(500), t + ms(8), &mut echo);
        assert_eq!(
            sent(&mut s),
            [
                (c.1, ptype::ABORT, 200, Some(-1)),
                (p(6).1, ptype::DATA, 500, None)
            ]
        );
        // Every call is answered now, awaiting its final ACK: a seventh
        // source takes the oldest one's slot (B's; B has its reply).
        s.handle_datagram(p(7), &complete(600), t + ms(9), &mut echo);
        assert_eq!(
            sent(&mut s),
            [
                (b.1, ptype::ABORT, 100, Some(-1)),
                (p(7).1, ptype::DATA, 600, None)
            ]
        );
        // A second call from p(7) would take from a source no heavier: BUSY.
        s.handle_datagram(p(7), &complete(604), t + ms(10), &mut echo);
        assert_eq!(sent(&mut s), [(p(7).1, ptype::BUSY, 604, None)]);
        assert_eq!((s.active_calls(), s.stats.displaced), (4, 5));
        let logs: Vec<_> = s.drain_logs().collect();
        assert_eq!(
            logs[0],
            "call 80000009:00000004:1 from 10.0.0.1:1000 displaced by a call from 10.0.0.3: \
             10.0.0.1 held 3 of the 4 slots, the most -> abort -1 (RX_CALL_DEAD): displaced \
             (4.0 ms)"
        );
        assert!(
            logs.iter().any(|l| l
                == "call 80000009:00000064:1 from 10.0.0.2:1000 echo; displaced by a call from \
                    10.0.0.7: all 4 slots taken; the oldest call awaiting its final ACK -> abort \
                    -1 (RX_CALL_DEAD): displaced (6.0 ms)"),
            "{logs:#?}"
        );
    }

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        let of = |s: &str| Source::of(s.parse().expect("ip"));
        assert_eq!(of("2001:db8:1:2::1"), of("2001:db8:1:2:ffff::9"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("::ffff:192.0.2.7"), of("192.0.2.7"));
        assert_eq!(of("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(of("192.0.2.7").to_string(), "192.0.2.7");
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
