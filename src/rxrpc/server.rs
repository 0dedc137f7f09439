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
//! - DATA for another service gets ABORT RX_INVALID_OPERATION; security
//!   index 0 is always served, index 2 (rxkad) with server keys
//!   ([`ServerConfig::security`], else ABORT RXKADUNKNOWNKEY), any other
//!   index gets ABORT RX_PROTOCOL_ERROR. rxkad's handshake, held DATA and
//!   per-packet checks are in `secure.rs` (its module comment); the
//!   application learns the level and the ticket's principal
//!   ([`CallInfo`]) and decides what a plain call may get.
//!
//! Admission, so that one host cannot lock the service out for the others
//! ([`Server::admit`]). A call is charged to its [`Source`]: the IPv4
//! address, or the IPv6 /64; never the port, which any host has plenty of.
//! - A source with `max_calls_per_source` calls in progress or waiting (in
//!   the backlog, below) gets BUSY.
//! - With `max_calls` calls in progress, a new call displaces a call of the
//!   source holding the most, if that source holds at least two more than
//!   the newcomer's (so each displacement evens the shares out), preferring
//!   its oldest incomplete request; failing that, among the sources holding
//!   more calls than the newcomer's, the oldest incomplete request, else the
//!   oldest call whose reply is all sent and only awaits the final ACK (its
//!   client most likely has the reply already: a burst of a whole fleet
//!   booting at once is served at once rather than waiting for final ACKs;
//!   measured faster than waiting, README "Measured"). The displaced call
//!   gets ABORT RX_CALL_DEAD; one whose reply is all sent gets it only if it
//!   sends its request again (it lost the end of the reply), not at once.
//! - Otherwise the new call waits in the backlog: its first DATA datagram
//!   (a whole one-packet request, or the first packet of a longer one) is
//!   kept as received, and the waiting calls are admitted first come, first
//!   served as slots free ([`Server::admit_waiting`]); nothing is sent
//!   meanwhile (the client's retransmissions of that packet are dropped, its
//!   later packets come again once the call is admitted). The backlog holds
//!   at most `backlog` calls and `backlog_bytes` bytes of datagrams, one
//!   source at most an eighth of it; a datagram over `max_request` plus
//!   headers is never kept. A call waiting `request_deadline` is aborted with
//!   RX_CALL_TIMEOUT; a client ABORT or a newer call on its channel drops it.
//! - Only with the backlog full, or the source's share of it taken, does
//!   the new call get BUSY: a source over its share is refused while the
//!   others are admitted.
//! - A request not complete `request_deadline` after its first packet is
//!   aborted with RX_CALL_TIMEOUT, freeing its slot: an incomplete call
//!   holds a slot for that long at most, not for the 10 s of an idle timer.
//!
//! Memory: the calls in progress hold at most `max_calls` times
//! `max_request` plus the application's largest reply, in bytes of data;
//! the backlog at most `backlog_bytes` bytes of datagrams plus a few hundred
//! bytes of bookkeeping per entry (`backlog` entries); the connection table
//! at most [`MAX_CONNS`] entries.
//!
//! The calls in progress are exactly the entries of one table (`live`):
//! their number is its length, a source's share is its range of the table,
//! and a call leaves it only through [`Server::finish`]. The waiting calls
//! are exactly the entries of the `Backlog`.

mod secure;

pub use secure::{CHALLENGES, CHALLENGE_EVERY, HOLD_BYTES, HOLD_PACKETS};

use super::call::{emit, CallId, RxOutcome, RxQueue, TxQueue};
use super::wire::{
    self, abort, ack_reason, flags, ptype, Ack, Body, Header, Packet, SubPacket, CHANNEL_MASK,
};
use crate::rxkad::packet::ConnSecurity;
use crate::rxkad::ticket::ServerKey;
use crate::rxkad::{Level, RxkadError, SECURITY_INDEX};
use secure::Auth;
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
    /// New calls that may wait for a slot when all `max_calls` are taken
    /// (0: none wait, BUSY at once).
    pub backlog: usize,
    /// Bytes of datagrams the waiting calls may hold together.
    pub backlog_bytes: usize,
    /// A request still incomplete this long after its first packet is
    /// aborted (RX_CALL_TIMEOUT).
    pub request_deadline: Duration,
    pub max_request: usize,
    /// The service's abort code for a request over `max_request`.
    pub too_large_abort: i32,
    /// The service's names of its abort codes, for the call log.
    pub abort_name: fn(i32) -> &'static str,
    pub version: String,
    /// rxkad (security index 2): None = plain calls only.
    pub security: Option<ServerSecurity>,
}

/// What the server needs for rxkad. `Debug` shows kvnos, never keys.
#[derive(Debug, Clone)]
pub struct ServerSecurity {
    /// Server keys by kvno (several for rolling keys).
    pub keys: Vec<ServerKey>,
    /// Lowest rxkad level taken (RESPONSE level below: RXKADLEVELFAIL);
    /// sent as the CHALLENGE's min_level. Plain (index 0) calls are
    /// served regardless: the application decides what they get.
    pub min_level: Level,
    /// The only ticket service name taken (e.g. "netboot-config").
    pub service: String,
    /// Unix time now, for the ticket checks.
    pub now: fn() -> u32,
    /// A fresh unpredictable CHALLENGE nonce.
    pub nonce: fn() -> u32,
}

/// A ticket's client principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub instance: String,
    pub realm: String,
}

impl fmt::Display for Principal {
    /// `name[.instance][@realm]` (Kerberos 4 style).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.instance.is_empty() {
            write!(f, ".{}", self.instance)?;
        }
        if !self.realm.is_empty() {
            write!(f, "@{}", self.realm)?;
        }
        Ok(())
    }
}

/// Who is calling, as far as the server verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub peer: SocketAddr,
    /// Clear for plain (index 0) calls and rxkad level 0 alike: the data
    /// is hidden only at Encrypt; Auth seals just the first 8 bytes of
    /// each packet (rxkad.md §3), so it protects neither secrecy nor the
    /// integrity of the rest.
    pub level: Level,
    /// The ticket's principal: Some only for an rxkad call.
    pub principal: Option<Principal>,
    /// The ticket's end, Unix time (0xFFFFFFFF: never).
    pub expires: Option<u32>,
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
    SourceLimit {
        source: Source,
        mine: usize,
        waiting: usize,
    },
    Full {
        source: Source,
        mine: usize,
    },
    /// The backlog is full (count or bytes), or this source's share of it.
    BacklogFull {
        waiting: usize,
        bytes: usize,
    },
    BacklogShare {
        source: Source,
        waiting: usize,
    },
    Conns,
}

/// A call waiting for a slot: its first DATA datagram, as received.
#[derive(Debug)]
struct Waiting {
    key: CallKey,
    id: CallId,
    peer: Peer,
    datagram: Vec<u8>,
    since: Instant,
}

/// The calls waiting for a slot, first come first served (module comment).
#[derive(Debug, Default)]
struct Backlog {
    /// By arrival number: the queue.
    queue: BTreeMap<u64, Waiting>,
    /// Where each waiting call's channel is in `queue`.
    index: HashMap<CallKey, u64>,
    per_source: HashMap<Source, usize>,
    bytes: usize,
    next: u64,
}

impl Backlog {
    fn len(&self) -> usize {
        self.queue.len()
    }

    fn from(&self, source: Source) -> usize {
        self.per_source.get(&source).copied().unwrap_or(0)
    }

    fn get(&self, key: &CallKey) -> Option<&Waiting> {
        self.index.get(key).and_then(|n| self.queue.get(n))
    }

    fn front(&self) -> Option<&Waiting> {
        self.queue.first_key_value().map(|(_, w)| w)
    }

    fn push(&mut self, w: Waiting) {
        self.bytes += w.datagram.len();
        *self.per_source.entry(w.key.0).or_default() += 1;
        self.index.insert(w.key, self.next);
        self.queue.insert(self.next, w);
        self.next += 1;
    }

    fn remove(&mut self, key: &CallKey) -> Option<Waiting> {
        let n = self.index.remove(key)?;
        let w = self.queue.remove(&n)?;
        self.forget(&w);
        Some(w)
    }

    fn pop_front(&mut self) -> Option<Waiting> {
        let (_, w) = self.queue.pop_first()?;
        self.index.remove(&w.key);
        self.forget(&w);
        Some(w)
    }

    fn forget(&mut self, w: &Waiting) {
        self.bytes = self.bytes.saturating_sub(w.datagram.len());
        if let Some(n) = self.per_source.get_mut(&w.key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&w.key.0);
            }
        }
    }
}

/// What the DATA of a receiving call amounted to.
enum Received {
    Nothing,
    Ack {
        reason: u8,
        serial: u32,
    },
    TooLarge,
    Complete,
    /// rxkad: a header cksum or seal is wrong.
    Rejected(RxkadError),
}

#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    conns: HashMap<ConnKey, Conn>,
    /// Every call in progress, and nothing else (see the module comment).
    live: BTreeMap<CallKey, LiveCall>,
    /// Every call waiting for a slot.
    backlog: Backlog,
    /// rxkad state of index-2 connections (secure.rs).
    auth: HashMap<ConnKey, Auth>,
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
    /// Calls that waited in the backlog, and those aborted there at
    /// `request_deadline`.
    pub waited: u64,
    pub wait_expired: u64,
    /// rxkad connections secured, and refused (connection ABORT).
    pub rxkad_secured: u64,
    pub rxkad_refused: u64,
}

impl Server {
    pub fn new(cfg: ServerConfig) -> Server {
        Server {
            cfg,
            conns: HashMap::new(),
            live: BTreeMap::new(),
            backlog: Backlog::default(),
            auth: HashMap::new(),
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

    /// Feed one datagram. `app` is called once per complete request. A
    /// slot the datagram frees goes to the backlog's first call.
    pub fn handle_datagram(
        &mut self,
        peer: Peer,
        bytes: &[u8],
        now: Instant,
        app: &mut dyn FnMut(&[u8], &CallInfo) -> AppReply,
    ) {
        self.dispatch(peer, bytes, now, app);
        self.admit_waiting(now, app);
    }

    /// Admit waiting calls, first come first served, while slots are free:
    /// each one's datagram is handled as if it had just arrived. Call after
    /// [`Server::handle_timeout`] (which frees slots but has no `app`).
    pub fn admit_waiting(
        &mut self,
        now: Instant,
        app: &mut dyn FnMut(&[u8], &CallInfo) -> AppReply,
    ) {
        while self.live.len() < self.cfg.max_calls {
            let Some(w) = self.backlog.pop_front() else {
                break;
            };
            self.dispatch(w.peer, &w.datagram, now, app);
        }
    }

    /// Calls waiting in the backlog.
    pub fn waiting_calls(&self) -> usize {
        self.backlog.len()
    }

    fn dispatch(
        &mut self,
        peer: Peer,
        bytes: &[u8],
        now: Instant,
        app: &mut dyn FnMut(&[u8], &CallInfo) -> AppReply,
    ) {
        let Ok(p) = Packet::decode(bytes) else {
            return;
        };
        let h = p.header;
        if h.ptype == ptype::VERSION {
            self.version(peer, &p);
            return;
        }
        // rxkad's RESPONSE is connection-level (call 0).
        if h.ptype == ptype::RESPONSE {
            self.on_response(peer, &p, now, app);
            return;
        }
        // Only client-initiated call packets are ours to serve.
        if !h.is_client_initiated() || h.call == 0 {
            return;
        }
        if h.service_id != self.cfg.service_id || !self.takes_index(h.security_index) {
            self.refuse_service(peer, &h);
            return;
        }
        let key = call_key(peer, &h);
        if !self.security_gate(&key, &h) {
            return;
        }
        match self.channel(&key, h.call) {
            Chan::Stale => return,
            Chan::Finished => {
                if h.ptype == ptype::DATA {
                    self.repeat_final(&key);
                }
                return;
            }
            Chan::New => {
                // The client gives up on a call still waiting: forget it.
                if h.ptype == ptype::ABORT
                    && self.backlog.get(&key).is_some_and(|w| w.id.call == h.call)
                {
                    self.backlog.remove(&key);
                }
                // ACK/ABORT for a call we do not know: nothing to do.
                if h.ptype != ptype::DATA || !self.admit(key, &h, bytes, now) {
                    return;
                }
            }
            Chan::Live => {}
        }
        if let Some(conn) = key.1.and_then(|s| self.conns.get_mut(&s.conn)) {
            conn.last_used = now;
        }
        if h.security_index == SECURITY_INDEX && !self.secured_or_hold(key, &h, bytes, now) {
            return;
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
    fn admit(&mut self, key: CallKey, h: &Header, datagram: &[u8], now: Instant) -> bool {
        let Some(slot) = key.1 else { return false };
        // A new call on a channel ends the one before it (rxrpc.md §1.7),
        // which frees that slot first.
        if self.live.contains_key(&key) {
            self.finish(key, now, "ended by next call", None);
        }
        // The call waiting on this channel again (a retransmission, or a
        // later packet of its request) stays where it is; a newer call
        // replaces it.
        if let Some(w) = self.backlog.get(&key) {
            if h.call <= w.id.call {
                return false;
            }
            self.backlog.remove(&key);
        }
        let source = key.0;
        let mine = self.calls_from(source);
        let waiting = self.backlog.from(source);
        let refused = if mine + waiting >= self.cfg.max_calls_per_source {
            Some(Refused::SourceLimit {
                source,
                mine,
                waiting,
            })
        } else if !self.make_room() {
            Some(Refused::Conns)
        } else if self.live.len() < self.cfg.max_calls {
            None
        } else if let Some((victim, why)) = self.victim(source, mine) {
            self.displace(victim, why, source, now);
            None
        } else {
            match self.wait(key, h, datagram, now) {
                Ok(()) => return false,
                Err(full) => Some(full),
            }
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

    /// Put a new call in the backlog, or say why it cannot wait.
    fn wait(
        &mut self,
        key: CallKey,
        h: &Header,
        datagram: &[u8],
        now: Instant,
    ) -> Result<(), Refused> {
        let source = key.0;
        let b = &self.backlog;
        let share = (self.cfg.backlog / 8).max(1);
        let largest =
            wire::HEADER_LEN + wire::MAX_JUMBO * wire::JUMBO_HEADER_LEN + self.cfg.max_request;
        if self.cfg.backlog == 0 || datagram.len() > largest {
            return Err(Refused::Full {
                source,
                mine: self.calls_from(source),
            });
        }
        if b.len() >= self.cfg.backlog || b.bytes + datagram.len() > self.cfg.backlog_bytes {
            return Err(Refused::BacklogFull {
                waiting: b.len(),
                bytes: b.bytes,
            });
        }
        if b.from(source) >= share {
            return Err(Refused::BacklogShare {
                source,
                waiting: b.from(source),
            });
        }
        let Some(slot) = key.1 else {
            return Err(Refused::Conns);
        };
        self.backlog.push(Waiting {
            key,
            id: CallId {
                epoch: h.epoch,
                cid: h.cid,
                call: h.call,
                service_id: h.service_id,
                security_index: h.security_index,
            },
            peer: slot.conn.peer,
            datagram: datagram.to_vec(),
            since: now,
        });
        self.stats.waited += 1;
        Ok(())
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
        let answered = self
            .live
            .get(&victim)
            .is_some_and(|c| matches!(&c.phase, Phase::Replying { tx, .. } if tx.all_sent()));
        if answered {
            // Its reply is all sent: the client almost always has it, and an
            // ABORT now would cost a packet each way for nothing (with more
            // clients than slots, most calls end this way: half of configd's
            // time, bench/configd-fleet.sh). The ABORT is kept for a
            // retransmitted request instead, so a client that lost the end
            // of its reply still learns at once.
            self.end_with_abort(
                victim,
                abort::RX_CALL_DEAD,
                note,
                "displaced, reply all sent",
                now,
                false,
            );
        } else {
            self.abort_call(victim, abort::RX_CALL_DEAD, note, "displaced", now);
        }
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
                Refused::SourceLimit {
                    source,
                    mine,
                    waiting: 0,
                } => format!(
                    "{source} has {mine} calls in progress, its limit (--max-calls-per-source)"
                ),
                Refused::SourceLimit {
                    source,
                    mine,
                    waiting,
                } => format!(
                    "{source} has {mine} calls in progress and {waiting} waiting, its limit \
                     (--max-calls-per-source)"
                ),
                Refused::BacklogFull { waiting, bytes } => format!(
                    "all {} slots in use and the backlog full ({waiting} calls, {bytes} bytes \
                     waiting; --backlog)",
                    self.cfg.max_calls
                ),
                Refused::BacklogShare { source, waiting } => format!(
                    "all {} slots in use and {source} holds {waiting} waiting calls, its share \
                     of the backlog",
                    self.cfg.max_calls
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
        self.end_with_abort(key, code, note, how, now, true);
    }

    /// [`Self::abort_call`]; `send_now` false only keeps the ABORT to
    /// repeat for a retransmitted request.
    fn end_with_abort(
        &mut self,
        key: CallKey,
        code: i32,
        note: String,
        how: &str,
        now: Instant,
        send_now: bool,
    ) {
        let (Some(call), Some(slot)) = (self.live.get_mut(&key), key.1) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&slot.conn) else {
            return;
        };
        let name = crate::rxkad::code_name(code).unwrap_or_else(|| (self.cfg.abort_name)(code));
        let note = format!("{note} -> abort {code} ({name})");
        // An answered call keeps what the application said about it.
        call.note = if call.note.is_empty() {
            note
        } else {
            format!("{}; {note}", call.note)
        };
        let packet = abort_packet(&call.id, &mut conn.serial, code);
        if send_now {
            self.out.push((slot.conn.peer, packet.clone()));
            self.stats.aborts += 1;
        }
        self.finish(key, now, how, Some(packet));
    }

    fn on_data(
        &mut self,
        key: CallKey,
        h: &Header,
        body: &[u8],
        now: Instant,
        app: &mut dyn FnMut(&[u8], &CallInfo) -> AppReply,
    ) {
        let Some(slot) = key.1 else { return };
        let peer = slot.conn.peer;
        let (Some(call), Some(conn)) = (self.live.get_mut(&key), self.conns.get_mut(&slot.conn))
        else {
            return;
        };
        // rxkad: the connection's keys, if secured (secure.rs).
        let sec = self.auth.get(&slot.conn).and_then(secure::secured);
        let mut out = Vec::new();
        // (code, note) if the call ends in an ABORT, decided while borrowed.
        let mut abort = None;
        match &mut call.phase {
            Phase::Receiving(rx) => {
                let Ok(subs) = wire::split_jumbo(h, body) else {
                    return;
                };
                match receive(rx, &subs, sec.map(|s| &s.sec)) {
                    Received::Rejected(e) => abort = Some((e.code, format!("rxkad: {}", e.what))),
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
                        let now_unix = self.cfg.security.as_ref().map_or(0, |s| (s.now)());
                        let reply = match sec.and_then(|s| secure::expired(s, now_unix)) {
                            Some(e) => AppReply::Abort {
                                code: e.code,
                                note: format!("rxkad: {}", e.what),
                            },
                            None => app(&request, &secure::call_info(peer.1, sec)),
                        };
                        match reply {
                            AppReply::Data { data, note } => {
                                call.note = note;
                                let seal = sec.map(|s| s.sec.clone());
                                let mut tx = TxQueue::with_security(&data, 0, seal);
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
                // reply. Resend the unacknowledged part now (a secured
                // call's retransmission must carry good checksums too).
                match sec.map(|s| secure::check_cksums(&s.sec, h, body)) {
                    Some(Err(e)) => abort = Some((e.code, format!("rxkad: {}", e.what))),
                    _ => {
                        tx.on_timeout(&call.id, &mut conn.serial, now, &mut out);
                        self.stats.retransmits += out.len() as u64;
                    }
                }
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
        } else if h.security_index == SECURITY_INDEX {
            // rxkad without server keys (Linux: rxkad.no_key_abort).
            crate::rxkad::code::RXKADUNKNOWNKEY
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

    /// Earliest timer of any call, waiting ones included.
    pub fn next_timeout(&self) -> Option<Instant> {
        let waiting = self.backlog.front().map(|w| {
            if self.live.len() < self.cfg.max_calls {
                // A slot is free: admit at once.
                w.since
            } else {
                w.since + self.cfg.request_deadline
            }
        });
        self.live
            .values()
            .map(|c| match &c.phase {
                Phase::Receiving(_) => c.started + self.cfg.request_deadline,
                Phase::Replying { tx, since } => {
                    let budget = *since + REPLY_BUDGET;
                    tx.timer.map_or(budget, |t| t.min(budget))
                }
            })
            .chain(waiting)
            .chain(self.next_challenge())
            .min()
    }

    /// Abort the calls that have waited `request_deadline` for a slot
    /// (oldest first, so they are at the front), keeping the ABORT to
    /// repeat on the channel like any finished call's.
    fn expire_waiting(&mut self, now: Instant) {
        let deadline = self.cfg.request_deadline;
        while self
            .backlog
            .front()
            .is_some_and(|w| now >= w.since + deadline)
        {
            let Some(w) = self.backlog.pop_front() else {
                break;
            };
            let Some(slot) = w.key.1 else { continue };
            self.stats.wait_expired += 1;
            self.stats.aborts += 1;
            let code = abort::RX_CALL_TIMEOUT;
            let room = self.make_room();
            let mut serial = 0;
            let conn = room.then(|| {
                self.conns.entry(slot.conn).or_insert_with(|| Conn {
                    serial: 0,
                    finished: [None, None, None, None],
                    last_used: now,
                })
            });
            let packet = abort_packet(&w.id, conn.map_or(&mut serial, |c| &mut c.serial), code);
            self.out.push((w.peer, packet.clone()));
            if let Some(c) = self.conns.get_mut(&slot.conn) {
                c.finished[slot.channel] = Some(Finished {
                    call: w.id.call,
                    cached: Some(packet),
                });
                c.last_used = now;
            }
            let ms = now.duration_since(w.since).as_secs_f64() * 1000.0;
            self.logs.push(format!(
                "call {} from {} waited {} ms for a slot -> abort {code} ({}): timed out \
                 ({ms:.1} ms)",
                w.id,
                w.peer.1,
                deadline.as_millis(),
                (self.cfg.abort_name)(code)
            ));
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.rechallenge(now);
        self.expire_waiting(now);
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
            self.sweep_auth();
        }
    }
}

/// Whether connection `k` has a call in progress on any channel.
fn has_live(live: &BTreeMap<CallKey, LiveCall>, k: &ConnKey) -> bool {
    let source = Source::of(k.peer.1.ip());
    (0..4).any(|channel| live.contains_key(&(source, Some(Slot { conn: *k, channel }))))
}

/// Take the DATA sub-packets of a request; say what to answer.
fn receive(rx: &mut RxQueue, subs: &[SubPacket<'_>], sec: Option<&ConnSecurity>) -> Received {
    let mut ack = None;
    let mut too_large = false;
    for sub in subs {
        if sub.header.seq == 0 {
            continue;
        }
        // rxkad: header cksum and seal checked before anything is kept.
        let opened = match sec.map(|s| secure::open_sub(s, sub)) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => return Received::Rejected(e),
        };
        let plain;
        let sub = match &opened {
            None => sub,
            Some(d) => {
                plain = SubPacket {
                    header: sub.header,
                    data: d,
                };
                &plain
            }
        };
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
            // The tests of the displacement rules run without a backlog;
            // `queued()` gives one.
            backlog: 0,
            backlog_bytes: 0,
            request_deadline: Duration::from_secs(1),
            max_request: 100,
            too_large_abort: 3,
            abort_name: |c| abort::name(c).unwrap_or("test code"),
            version: "test 1".into(),
            security: None,
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

    fn echo(req: &[u8], _: &CallInfo) -> AppReply {
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
        // source takes the oldest one's slot (B's; B has its reply, so no
        // ABORT goes out; B gets it if it asks again).
        s.handle_datagram(p(7), &complete(600), t + ms(9), &mut echo);
        assert_eq!(sent(&mut s), [(p(7).1, ptype::DATA, 600, None)]);
        s.handle_datagram(b, &complete(100), t + ms(9), &mut echo);
        assert_eq!(sent(&mut s), [(b.1, ptype::ABORT, 100, Some(-1))]);
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
                    -1 (RX_CALL_DEAD): displaced, reply all sent (6.0 ms)"),
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

    /// `max_calls` slots, a backlog of `backlog` calls, no per-source limit
    /// in the way.
    fn queued(max_calls: usize, backlog: usize) -> ServerConfig {
        ServerConfig {
            max_calls_per_source: 1000,
            backlog,
            backlog_bytes: backlog * 1024,
            ..cfg(max_calls)
        }
    }

    /// A reply longer than the client's first window (15 packets): it is
    /// not all sent until the client ACKs, so its call cannot be displaced
    /// and newcomers must wait.
    fn big(req: &[u8], _: &CallInfo) -> AppReply {
        let mut data = vec![0; 16 * 1412];
        data[..req.len().min(1)].copy_from_slice(&req[..req.len().min(1)]);
        AppReply::Data {
            data,
            note: "big".into(),
        }
    }

    /// Deliver every datagram both ways until every client has its
    /// result, the clock moving 20 ms whenever nothing moves; each client
    /// is a [`ClientCall`] at its own address.
    fn run_clients(s: &mut Server, clients: &mut [(Peer, ClientCall)], mut now: Instant) {
        for _ in 0..10_000 {
            let mut moved = false;
            for (p, c) in clients.iter_mut() {
                while let Some(b) = c.poll_transmit() {
                    s.handle_datagram(*p, &b, now, &mut big);
                    moved = true;
                }
            }
            for (to, b) in s.drain_transmit().collect::<Vec<_>>() {
                moved = true;
                let Ok(pk) = Packet::decode(&b) else { continue };
                if let Some((_, c)) = clients
                    .iter_mut()
                    .find(|(p, c)| *p == to && c.id.matches(&pk.header))
                {
                    c.handle(&pk, now);
                }
            }
            if !moved {
                if clients.iter().all(|(_, c)| c.result().is_some()) {
                    break;
                }
                now += Duration::from_millis(20);
                clients.iter_mut().for_each(|(_, c)| c.handle_timeout(now));
                s.handle_timeout(now);
                s.admit_waiting(now, &mut big);
            }
        }
    }

    fn big_reply(i: u8) -> Vec<u8> {
        let mut v = vec![0; 16 * 1412];
        v[0] = i;
        v
    }

    /// The datagrams the server sent since the last look, by type.
    fn types(s: &mut Server) -> Vec<(SocketAddr, u8)> {
        s.drain_transmit()
            .filter_map(|(p, b)| Packet::decode(&b).ok().map(|pk| (p.1, pk.header.ptype)))
            .collect()
    }

    #[test]
    fn burst_larger_than_max_calls_waits_and_is_served_without_busy() {
        let t = Instant::now();
        let mut s = Server::new(queued(4, 16));
        let mut clients: Vec<_> = (1..=10u8)
            .map(|i| {
                let c = ClientCall::new(call_id(4), &[i], 65536, t, Duration::from_secs(3));
                (from([10, 0, 1, i], 1000), c)
            })
            .collect();
        // Every request arrives before any client has read its reply.
        for (p, c) in clients.iter_mut() {
            s.handle_datagram(*p, &c.poll_transmit().expect("request"), t, &mut big);
        }
        let first: Vec<_> = s.drain_transmit().collect();
        let mut to: Vec<_> = first.iter().map(|(p, b)| (p.1, b[20])).collect();
        to.dedup();
        let expect: Vec<_> = clients[..4]
            .iter()
            .map(|(p, _)| (p.1, ptype::DATA))
            .collect();
        assert_eq!(to, expect, "four slots: four replies, no BUSY");
        assert_eq!((s.active_calls(), s.waiting_calls()), (4, 6));
        // The clients read their replies; their ACKs and final ACKs free
        // the slots one by one for the waiting calls.
        let now = t + Duration::from_millis(1);
        for (p, b) in &first {
            if let Some((_, c)) = clients.iter_mut().find(|(q, _)| q == p) {
                c.handle(&Packet::decode(b).expect("decode"), now);
            }
        }
        run_clients(&mut s, &mut clients, now);
        for (i, (_, c)) in clients.iter().enumerate() {
            let ok = c.result() == Some(&Ok(big_reply(i as u8 + 1)));
            assert!(
                ok,
                "client {i}: {:?}",
                c.result().map(|r| r.as_ref().map(Vec::len))
            );
        }
        assert_eq!((s.stats.busy, s.stats.waited, s.waiting_calls()), (0, 6, 0));
        assert_eq!(s.active_calls(), 0);
        // Served in arrival order.
        let order: Vec<String> = s
            .drain_logs()
            .filter(|l| l.contains("big: ok"))
            .filter_map(|l| {
                let from = l.split(" from ").nth(1)?;
                from.split(':').next().map(String::from)
            })
            .collect();
        let waiting: Vec<String> = (5..=10).map(|i| format!("10.0.1.{i}")).collect();
        assert_eq!(order.get(4..), Some(&waiting[..]), "{order:?}");
    }

    #[test]
    fn one_source_cannot_take_the_backlog() {
        let t = Instant::now();
        // 2 slots, a backlog of 16: one source may hold 2 of it.
        let mut s = Server::new(queued(2, 16));
        let (b, c) = (from([10, 0, 0, 2], 1000), from([10, 0, 0, 3], 1000));
        s.handle_datagram(b, &complete(4), t, &mut big);
        s.handle_datagram(c, &complete(4), t, &mut big);
        assert_eq!(s.active_calls(), 2);
        let _ = types(&mut s);
        // A floods: 2 calls wait, the other 8 get BUSY.
        let a = from([10, 0, 0, 1], 1000);
        for cid in 1..=10u32 {
            s.handle_datagram(a, &complete(4 * cid), t, &mut big);
        }
        let busy = types(&mut s).iter().filter(|x| x.1 == ptype::BUSY).count();
        assert_eq!((busy, s.waiting_calls()), (8, 2));
        // Everyone else still waits rather than being refused.
        for i in 10..24u8 {
            s.handle_datagram(from([10, 0, 0, i], 1000), &complete(4), t, &mut big);
        }
        assert_eq!((types(&mut s), s.waiting_calls()), (vec![], 16));
        let logs: Vec<_> = s.drain_logs().collect();
        assert!(
            logs.iter().any(|l| l.ends_with(
                "all 2 slots in use and 10.0.0.1 holds 2 waiting calls, its share of the backlog"
            )),
            "{logs:?}"
        );
        // The per-source limit counts waiting calls too.
        let mut s = Server::new(ServerConfig {
            max_calls_per_source: 2,
            ..queued(1, 16)
        });
        s.handle_datagram(a, &complete(4), t, &mut echo);
        s.handle_datagram(a, &complete(8), t, &mut echo);
        s.handle_datagram(a, &complete(12), t, &mut echo);
        let got: Vec<_> = sent(&mut s).into_iter().map(|x| (x.1, x.2)).collect();
        assert_eq!(got, [(ptype::DATA, 4), (ptype::BUSY, 12)]);
        assert_eq!(s.waiting_calls(), 1);
    }

    #[test]
    fn full_backlog_gives_busy() {
        let t = Instant::now();
        let mut s = Server::new(queued(2, 2));
        let p = |last: u8| from([10, 0, 0, last], 1000);
        for i in 1..=4 {
            s.handle_datagram(p(i), &complete(4), t, &mut big);
        }
        assert_eq!((s.active_calls(), s.waiting_calls()), (2, 2));
        assert!(!types(&mut s).iter().any(|x| x.1 == ptype::BUSY));
        // The fifth: no slot, nothing to displace, no room to wait.
        s.handle_datagram(p(5), &complete(4), t, &mut big);
        assert_eq!(types(&mut s), [(p(5).1, ptype::BUSY)]);
        assert_eq!(s.stats.busy, 1);
        let logs: Vec<_> = s.drain_logs().collect();
        assert!(
            logs.iter().any(|l| l.ends_with(
                "all 2 slots in use and the backlog full (2 calls, 58 bytes waiting; --backlog)"
            )),
            "{logs:?}"
        );
        // The byte bound alone also refuses.
        let mut s = Server::new(ServerConfig {
            backlog_bytes: 40,
            ..queued(1, 8)
        });
        for cid in [4, 8, 12] {
            s.handle_datagram(p(1), &complete(cid), t, &mut echo);
        }
        assert_eq!(s.waiting_calls(), 1, "29 + 29 bytes > 40");
        assert_eq!(sent(&mut s).last().map(|x| x.1), Some(ptype::BUSY));
        // Without a backlog: BUSY at once, as before.
        let mut s = Server::new(queued(1, 0));
        s.handle_datagram(p(1), &complete(4), t, &mut big);
        s.handle_datagram(p(2), &complete(4), t, &mut big);
        assert_eq!(types(&mut s).last(), Some(&(p(2).1, ptype::BUSY)));
    }

    #[test]
    fn waiting_call_expires_at_the_request_deadline() {
        let ms = |n| Duration::from_millis(n);
        let t = Instant::now();
        let mut s = Server::new(queued(1, 4));
        let (a, b) = (from([10, 0, 0, 1], 1000), from([10, 0, 0, 2], 1000));
        // Another port of A's: no heavier than A, so it cannot displace.
        let c = from([10, 0, 0, 1], 2000);
        // A's reply is never acknowledged: it holds the slot 10 s.
        s.handle_datagram(a, &complete(4), t, &mut big);
        s.handle_datagram(b, &complete(8), t + ms(10), &mut big);
        let _ = sent(&mut s);
        assert_eq!(s.waiting_calls(), 1);
        s.handle_timeout(t + ms(1009));
        assert_eq!(s.waiting_calls(), 1);
        let _ = sent(&mut s);
        s.handle_timeout(t + ms(1010));
        assert_eq!(s.waiting_calls(), 0);
        assert_eq!(sent(&mut s), [(b.1, ptype::ABORT, 8, Some(-3))]);
        // Its retransmission gets the same ABORT.
        s.handle_datagram(b, &complete(8), t + ms(1100), &mut big);
        assert_eq!(sent(&mut s), [(b.1, ptype::ABORT, 8, Some(-3))]);
        assert_eq!(s.stats.wait_expired, 1);
        let logs: Vec<_> = s.drain_logs().collect();
        assert!(
            logs.iter().any(|l| l
                == "call 80000009:00000008:1 from 10.0.0.2:1000 waited 1000 ms for a slot \
                    -> abort -3 (RX_CALL_TIMEOUT): timed out (1000.0 ms)"),
            "{logs:?}"
        );
        // A slot freed by a timer goes to the next waiting call: C waits
        // behind an incomplete request, which times out first.
        let mut s = Server::new(queued(1, 4));
        s.handle_datagram(a, &incomplete(4), t, &mut echo);
        s.handle_datagram(c, &complete(12), t + ms(500), &mut echo);
        assert_eq!((sent(&mut s), s.waiting_calls()), (vec![], 1));
        assert_eq!(s.next_timeout(), Some(t + ms(1000)));
        s.handle_timeout(t + ms(1000));
        s.admit_waiting(t + ms(1000), &mut echo);
        assert_eq!(
            sent(&mut s),
            [
                (a.1, ptype::ABORT, 4, Some(-3)),
                (c.1, ptype::DATA, 12, None)
            ]
        );
        // A client ABORT takes a waiting call out of the backlog.
        let d = from([10, 0, 0, 1], 3000);
        s.handle_datagram(d, &complete(16), t + ms(1001), &mut echo);
        assert_eq!(s.waiting_calls(), 1);
        let mut h = Packet::decode(&complete(16)).expect("decode").header;
        h.ptype = ptype::ABORT;
        h.flags = flags::CLIENT_INITIATED;
        h.seq = 0;
        let code = Body::Abort {
            code: -3,
            extra: vec![],
        };
        s.handle_datagram(d, &emit(h, code), t + ms(1002), &mut echo);
        assert_eq!(s.waiting_calls(), 0);
    }

    #[test]
    fn final_ack_of_a_holder_admits_the_waiting_call() {
        let t = Instant::now();
        let mut s = Server::new(ServerConfig {
            max_calls_per_source: 8,
            ..queued(2, 4096)
        });
        let p = |port: u16| from([127, 0, 0, 1], port);
        s.handle_datagram(p(1), &complete(4), t, &mut echo);
        s.handle_datagram(p(2), &complete(8), t, &mut echo);
        s.handle_datagram(p(3), &complete(12), t, &mut echo);
        assert_eq!(sent(&mut s).len(), 2);
        assert_eq!((s.active_calls(), s.waiting_calls()), (2, 1));
        let mut h = Packet::decode(&complete(4)).expect("decode").header;
        h.ptype = ptype::ACKALL;
        h.flags = flags::CLIENT_INITIATED;
        h.seq = 0;
        h.serial = 2;
        s.handle_datagram(p(1), &emit(h, Body::AckAll(vec![])), t, &mut echo);
        assert_eq!(sent(&mut s), [(p(3).1, ptype::DATA, 12, None)]);
    }
}
