//! rxkad on the server (security index 2, rxkad.md §1–§3): per-connection
//! security state, CHALLENGE, RESPONSE verification, the DATA held until
//! the handshake is done, and the checks `on_data` applies.
//!
//! - The first DATA of a call on an index-2 connection not yet secured is
//!   admitted like any call (so admission and `request_deadline` bound it),
//!   then held (at most [`HOLD_PACKETS`] datagrams, [`HOLD_BYTES`] bytes per
//!   connection; more are dropped, the client retransmits) and the
//!   connection gets a 16-byte v2 CHALLENGE with a nonce from
//!   [`ServerSecurity::nonce`]; it is repeated every [`CHALLENGE_EVERY`],
//!   [`CHALLENGES`] times at most, while a call waits on it.
//! - A RESPONSE on a connection never challenged, or already secured, is
//!   ignored. One on a challenged connection is checked in the order of
//!   rxkad.md §1 (OpenAFS `rxkad_CheckResponse`): lengths and version; the
//!   server key of its kvno; the ticket (OpenAFS rules, [`Ticket::open`]);
//!   the ticket's service (ours only, [`ServerSecurity::service`]); its
//!   times (skew 900 s); the checksum; epoch, cid and index; the call
//!   numbers; nonce + 1 (a replayed RESPONSE answers an old nonce:
//!   RXKADOUTOFSEQUENCE); the level (≥ `min_level`, ≤ 2). A failure is a
//!   connection ABORT with the rxkad code (repeated to any later DATA of
//!   the connection), the calls held on it are aborted with it, and one
//!   log line names the peer and the reason (never key material).
//! - Once secured, the held datagrams are handled as if they had just
//!   arrived; every DATA's header cksum is checked (RXKADSEALEDINCON aborts
//!   the call) and its payload unsealed at the connection's level; call
//!   numbers at or below those the RESPONSE declared used are stale
//!   (a replayed call is dropped); replies are sealed; a call completed
//!   after the ticket's end (+ skew) is aborted RXKADEXPIRED.
//! - Index-0 packets on an index-2 connection are dropped (rxkad.md §7).

use super::*;
use crate::escape::escape_controls;
use crate::rxkad::handshake::{Challenge, SealedResponse};
use crate::rxkad::packet::ConnSecurity;
use crate::rxkad::ticket::{kvno_ok, Ticket, NEVER, SKEW};
use crate::rxkad::{code, Level, RxkadError, SECURITY_INDEX};

/// Re-challenge interval and count (OpenAFS: 2 s, 50 times; our calls
/// have a 1 s request deadline, so a few suffice).
pub const CHALLENGE_EVERY: Duration = Duration::from_secs(1);
pub const CHALLENGES: u32 = 5;
/// DATA datagrams (and bytes) held per connection until it is secured.
pub const HOLD_PACKETS: usize = 8;
pub const HOLD_BYTES: usize = 16 * 1024;

/// Security state of an index-2 connection.
pub(super) enum Auth {
    Pending(Pending),
    Secured(Box<Secured>),
    /// Refused: the connection ABORT to repeat.
    Failed {
        abort: Vec<u8>,
    },
}

pub(super) struct Pending {
    nonce: u32,
    /// Challenges sent so far, and when the next is due.
    sent: u32,
    next: Instant,
    service_id: u16,
    /// (call, seq, datagram) as received.
    held: Vec<(u32, u32, Vec<u8>)>,
    held_bytes: usize,
}

pub(super) struct Secured {
    pub(super) sec: ConnSecurity,
    pub(super) principal: Principal,
    pub(super) kvno: u32,
    /// Ticket end (Unix time; [`NEVER`]).
    pub(super) expires: u32,
    /// Per channel, the lowest call number still new.
    min_call: [u32; 4],
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Pending(p) => write!(
                f,
                "Pending {{ challenges: {}, held: {} datagrams }}",
                p.sent,
                p.held.len()
            ),
            Auth::Secured(s) => write!(
                f,
                "Secured {{ {:?}, {}, kvno {}, expires {} }}",
                s.sec, s.principal, s.kvno, s.expires
            ),
            Auth::Failed { .. } => f.write_str("Failed"),
        }
    }
}

/// The secured state of a connection, if it is secured.
pub(super) fn secured(a: &Auth) -> Option<&Secured> {
    match a {
        Auth::Secured(s) => Some(s),
        _ => None,
    }
}

/// What the application learns about a call.
pub(super) fn call_info(peer: SocketAddr, s: Option<&Secured>) -> CallInfo {
    match s {
        None => CallInfo {
            peer,
            level: Level::Clear,
            principal: None,
            expires: None,
        },
        Some(s) => CallInfo {
            peer,
            level: s.sec.level(),
            principal: Some(s.principal.clone()),
            expires: Some(s.expires),
        },
    }
}

/// Header cksum of every sub-packet of a DATA datagram.
pub(super) fn check_cksums(sec: &ConnSecurity, h: &Header, body: &[u8]) -> Result<(), RxkadError> {
    let subs = wire::split_jumbo(h, body).map_err(|e| {
        RxkadError::new(code::RXKADSEALEDINCON, format!("DATA does not split: {e}"))
    })?;
    subs.iter().try_for_each(|s| {
        sec.check_cksum(s.header.call, s.header.cid, s.header.seq, s.header.cksum)
    })
}

/// Header cksum check and unseal of one received sub-packet.
pub(super) fn open_sub(sec: &ConnSecurity, sub: &SubPacket<'_>) -> Result<Vec<u8>, RxkadError> {
    let h = &sub.header;
    sec.check_cksum(h.call, h.cid, h.seq, h.cksum)?;
    sec.unseal(h.call, h.seq, sub.data)
}

/// RXKADEXPIRED if the connection's ticket ended (skew allowed) by `now`.
pub(super) fn expired(s: &Secured, now: u32) -> Option<RxkadError> {
    (s.expires != NEVER && u64::from(now) > u64::from(s.expires) + u64::from(SKEW)).then(|| {
        RxkadError::new(
            code::RXKADEXPIRED,
            format!(
                "the connection's ticket expired at {} (now {now})",
                s.expires
            ),
        )
    })
}

fn conn_header(conn: &ConnKey, ptype: u8, serial: u32, service_id: u16) -> Header {
    Header {
        epoch: conn.epoch,
        cid: conn.cid,
        call: 0,
        seq: 0,
        serial,
        ptype,
        flags: 0,
        user_status: 0,
        security_index: SECURITY_INDEX,
        cksum: 0,
        service_id,
    }
}

fn err(c: i32, what: impl Into<String>) -> RxkadError {
    RxkadError::new(c, what)
}

impl Server {
    /// Whether a securityIndex is served: 0 always, 2 with server keys.
    pub(super) fn takes_index(&self, index: u8) -> bool {
        index == 0 || (index == SECURITY_INDEX && self.cfg.security.is_some())
    }

    /// Before the channel rules: whether a call packet may go on. Drops
    /// plain packets on an index-2 connection and stale call numbers on a
    /// secured one; repeats the connection ABORT of a refused one.
    pub(super) fn security_gate(&mut self, key: &CallKey, h: &Header) -> bool {
        let Some(slot) = key.1 else { return false };
        let secure = h.security_index == SECURITY_INDEX;
        match (self.auth.get(&slot.conn), secure) {
            (None, _) => true,
            (Some(_), false) => false,
            (Some(Auth::Pending(_)), true) => true,
            (Some(Auth::Secured(s)), true) => h.call >= s.min_call[slot.channel],
            (Some(Auth::Failed { abort }), true) => {
                if h.ptype == ptype::DATA {
                    self.out.push((slot.conn.peer, abort.clone()));
                }
                false
            }
        }
    }

    /// After admission, for an index-2 packet: true if the connection is
    /// secured (go on); else a DATA is held and the connection challenged.
    pub(super) fn secured_or_hold(
        &mut self,
        key: CallKey,
        h: &Header,
        bytes: &[u8],
        now: Instant,
    ) -> bool {
        let Some(slot) = key.1 else { return false };
        if let Some(c) = self.live.get_mut(&key) {
            c.id.security_index = h.security_index;
        }
        match self.auth.get_mut(&slot.conn) {
            Some(Auth::Secured(_)) => return true,
            Some(Auth::Failed { .. }) => return false,
            Some(Auth::Pending(p)) => {
                let dup = p.held.iter().any(|(c, s, _)| (*c, *s) == (h.call, h.seq));
                if h.ptype == ptype::DATA
                    && !dup
                    && p.held.len() < HOLD_PACKETS
                    && p.held_bytes + bytes.len() <= HOLD_BYTES
                {
                    p.held_bytes += bytes.len();
                    p.held.push((h.call, h.seq, bytes.to_vec()));
                }
                return h.ptype != ptype::DATA;
            }
            None => {}
        }
        if h.ptype != ptype::DATA {
            return true;
        }
        let Some(sec) = &self.cfg.security else {
            return false;
        };
        let nonce = (sec.nonce)();
        let held = if bytes.len() <= HOLD_BYTES {
            vec![(h.call, h.seq, bytes.to_vec())]
        } else {
            Vec::new()
        };
        self.auth.insert(
            slot.conn,
            Auth::Pending(Pending {
                nonce,
                sent: 1,
                next: now + CHALLENGE_EVERY,
                service_id: h.service_id,
                held_bytes: held.iter().map(|d| d.2.len()).sum(),
                held,
            }),
        );
        let c = self.challenge_packet(&slot.conn, h.service_id, nonce);
        self.out.push((slot.conn.peer, c));
        false
    }

    fn next_serial(&mut self, conn: &ConnKey) -> u32 {
        match self.conns.get_mut(conn) {
            Some(c) => {
                c.serial = c.serial.wrapping_add(1);
                c.serial
            }
            None => 1,
        }
    }

    fn challenge_packet(&mut self, conn: &ConnKey, service_id: u16, nonce: u32) -> Vec<u8> {
        let min_level = self
            .cfg
            .security
            .as_ref()
            .map_or(0, |s| s.min_level.as_u32());
        let serial = self.next_serial(conn);
        let h = conn_header(conn, ptype::CHALLENGE, serial, service_id);
        let body = Challenge { nonce, min_level }.encode().to_vec();
        emit(h, Body::Other(body))
    }

    /// A RESPONSE packet (call 0).
    pub(super) fn on_response(
        &mut self,
        peer: Peer,
        p: &Packet,
        now: Instant,
        app: &mut dyn FnMut(&[u8], &CallInfo) -> AppReply,
    ) {
        let h = &p.header;
        if !h.is_client_initiated()
            || h.service_id != self.cfg.service_id
            || h.security_index != SECURITY_INDEX
        {
            return;
        }
        let ck = ConnKey {
            peer,
            epoch: h.epoch,
            cid: h.cid & !CHANNEL_MASK,
        };
        let (Some(Auth::Pending(pending)), Body::Other(body)) = (self.auth.get(&ck), &p.body)
        else {
            return;
        };
        let (nonce, service_id) = (pending.nonce, pending.service_id);
        match self.verify_response(&ck, body, nonce) {
            Ok(s) => {
                self.stats.rxkad_secured += 1;
                self.logs.push(format!(
                    "rxkad: connection {:08x}:{:08x} from {} secured: {}, level {}, kvno {}, \
                     ticket ends {}",
                    ck.epoch,
                    ck.cid,
                    peer.1,
                    escape_controls(&s.principal.to_string()),
                    s.sec.level(),
                    s.kvno,
                    if s.expires == NEVER {
                        "never".to_string()
                    } else {
                        s.expires.to_string()
                    }
                ));
                let old = self.auth.insert(ck, Auth::Secured(Box::new(s)));
                if let Some(Auth::Pending(p)) = old {
                    for (_, _, d) in p.held {
                        self.dispatch(peer, &d, now, app);
                    }
                }
            }
            Err(e) => self.refuse_conn(ck, service_id, &e, now),
        }
    }

    /// rxkad.md §1, OpenAFS order, plus our service check.
    fn verify_response(
        &self,
        ck: &ConnKey,
        body: &[u8],
        nonce: u32,
    ) -> Result<Secured, RxkadError> {
        let Some(sec) = &self.cfg.security else {
            return Err(err(code::RXKADUNKNOWNKEY, "no server keys"));
        };
        let r = SealedResponse::decode(body)?;
        if !kvno_ok(r.kvno) {
            return Err(err(
                code::RXKADUNKNOWNKEY,
                format!(
                    "kvno {} is not a ticket key we take (0..=255, not 213)",
                    r.kvno
                ),
            ));
        }
        let Some(key) = sec.keys.iter().find(|k| k.kvno == r.kvno) else {
            let have: Vec<String> = sec.keys.iter().map(|k| k.kvno.to_string()).collect();
            return Err(err(
                code::RXKADUNKNOWNKEY,
                format!(
                    "no server key with kvno {} (have {})",
                    r.kvno,
                    have.join(", ")
                ),
            ));
        };
        let t = Ticket::open(&r.ticket, key)
            .map_err(|e| err(e.code, format!("{} (kvno {})", e.what, r.kvno)))?;
        let who = Principal {
            name: t.name.clone(),
            instance: t.instance.clone(),
            realm: t.realm.clone(),
        };
        if t.service != sec.service {
            return Err(err(
                code::RXKADBADTICKET,
                format!(
                    "ticket of {who} is for service \"{}\", this server is \"{}\"",
                    t.service, sec.service
                ),
            ));
        }
        t.check_times((sec.now)())
            .map_err(|e| err(e.code, format!("{who}: {}", e.what)))?;
        let f = r.open(t.session_key)?;
        if f.epoch != ck.epoch || f.cid != ck.cid {
            return Err(err(
                code::RXKADSEALEDINCON,
                format!(
                    "response sealed for connection {:08x}:{:08x}, came on {:08x}:{:08x}",
                    f.epoch, f.cid, ck.epoch, ck.cid
                ),
            ));
        }
        let min_call = self.call_numbers(ck, &f.call_ids)?;
        if f.inc_nonce != nonce.wrapping_add(1) {
            return Err(err(
                code::RXKADOUTOFSEQUENCE,
                "response answers another challenge (replayed or stale)",
            ));
        }
        let level = Level::from_u32(f.level)
            .ok_or_else(|| err(code::RXKADLEVELFAIL, format!("response level {}", f.level)))?;
        if level < sec.min_level {
            return Err(err(
                code::RXKADLEVELFAIL,
                format!(
                    "level {level} is below this server's minimum {}",
                    sec.min_level
                ),
            ));
        }
        Ok(Secured {
            sec: ConnSecurity::new(t.session_key, ck.epoch, ck.cid, level),
            principal: who,
            kvno: r.kvno,
            expires: t.end(),
            min_call,
        })
    }

    /// Check the RESPONSE's call numbers (Linux `rxkad_verify_response`,
    /// OpenAFS: none negative) and give the lowest new call per channel:
    /// the call in progress on a channel must be the one declared; on an
    /// idle channel the declared call is used up (a replay of it is
    /// stale), unless it is the call waiting in the backlog there.
    fn call_numbers(&self, ck: &ConnKey, ids: &[u32; 4]) -> Result<[u32; 4], RxkadError> {
        let source = Source::of(ck.peer.1.ip());
        let mut min = [0u32; 4];
        for (channel, &id) in ids.iter().enumerate() {
            let bad = |what: String| err(code::RXKADSEALEDINCON, what);
            if id > i32::MAX as u32 {
                return Err(bad(format!(
                    "response call number {id} on channel {channel}"
                )));
            }
            let key = (source, Some(Slot { conn: *ck, channel }));
            let live = self.live.get(&key).map(|c| c.id.call);
            let finished = self
                .conns
                .get(ck)
                .and_then(|c| c.finished[channel].as_ref())
                .map(|f| f.call);
            let waiting = self.backlog.get(&key).map(|w| w.id.call);
            min[channel] = match live {
                Some(n) if n != id => {
                    return Err(bad(format!(
                        "response says call {id} on channel {channel}, the call there is {n}"
                    )))
                }
                Some(n) => n,
                None if finished.is_some_and(|m| id < m) => {
                    return Err(bad(format!(
                        "response says call {id} on channel {channel}, below its finished call"
                    )))
                }
                None if waiting == Some(id) => id,
                None => id.saturating_add(1),
            };
        }
        Ok(min)
    }

    /// Refuse a connection: connection ABORT with the rxkad code, the held
    /// calls aborted with it, one log line.
    fn refuse_conn(&mut self, ck: ConnKey, service_id: u16, e: &RxkadError, now: Instant) {
        self.stats.rxkad_refused += 1;
        let serial = self.next_serial(&ck);
        let abort = emit(
            conn_header(&ck, ptype::ABORT, serial, service_id),
            Body::Abort {
                code: e.code,
                extra: vec![],
            },
        );
        self.out.push((ck.peer, abort.clone()));
        self.logs.push(format!(
            "rxkad: connection {:08x}:{:08x} from {} refused: {} -> connection abort",
            ck.epoch,
            ck.cid,
            ck.peer.1,
            escape_controls(&e.to_string())
        ));
        self.auth.insert(ck, Auth::Failed { abort });
        let source = Source::of(ck.peer.1.ip());
        for channel in 0..4 {
            let key = (source, Some(Slot { conn: ck, channel }));
            if self.live.contains_key(&key) {
                let note = format!("rxkad: {}", escape_controls(&e.what));
                self.abort_call(key, e.code, note, "refused by rxkad", now);
            }
        }
    }

    /// When the next CHALLENGE is due.
    pub(super) fn next_challenge(&self) -> Option<Instant> {
        self.auth
            .values()
            .filter_map(|a| match a {
                Auth::Pending(p) if p.sent < CHALLENGES => Some(p.next),
                _ => None,
            })
            .min()
    }

    /// Repeat due CHALLENGEs to connections with a call still waiting on
    /// them; a connection whose calls are gone gets no more and drops what
    /// it held.
    pub(super) fn rechallenge(&mut self, now: Instant) {
        let mut due = Vec::new();
        for (k, a) in self.auth.iter_mut() {
            let Auth::Pending(p) = a else { continue };
            if p.sent >= CHALLENGES || now < p.next {
                continue;
            }
            if !has_live(&self.live, k) {
                p.sent = CHALLENGES;
                p.held = Vec::new();
                p.held_bytes = 0;
                continue;
            }
            p.sent += 1;
            p.next = now + CHALLENGE_EVERY;
            due.push((*k, p.service_id, p.nonce));
        }
        for (k, service_id, nonce) in due {
            let c = self.challenge_packet(&k, service_id, nonce);
            self.out.push((k.peer, c));
        }
    }

    /// Forget the security state of forgotten connections.
    pub(super) fn sweep_auth(&mut self) {
        let conns = &self.conns;
        self.auth.retain(|k, _| conns.contains_key(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rxkad::handshake::{build_response, ResponseFields};
    use crate::rxkad::ticket::{fix_parity, life_for};
    use std::sync::atomic::{AtomicU32, Ordering};

    const NOW: u32 = 1_800_000_000;
    const KS: [u8; 8] = [0x3B, 0x5D, 0x7F, 0x91, 0xA2, 0xC4, 0xE6, 0x08];
    const CID: u32 = 0x0000_0104;
    const EPOCH: u32 = 0x8000_0777;

    fn now_fn() -> u32 {
        NOW
    }

    fn nonce_fn() -> u32 {
        static N: AtomicU32 = AtomicU32::new(0x5EED_0000);
        N.fetch_add(0x0101, Ordering::Relaxed)
    }

    fn skey(kvno: u32) -> ServerKey {
        ServerKey {
            kvno,
            key: fix_parity(*b"srvkey!!"),
        }
    }

    fn scfg(min_level: Level, deadline: Duration) -> ServerConfig {
        ServerConfig {
            service_id: 7,
            max_calls: 4,
            max_calls_per_source: 4,
            backlog: 0,
            backlog_bytes: 0,
            request_deadline: deadline,
            max_request: 10_000,
            too_large_abort: 3,
            abort_name: |c| abort::name(c).unwrap_or("test code"),
            version: "test 1".into(),
            security: Some(ServerSecurity {
                keys: vec![
                    skey(3),
                    ServerKey {
                        kvno: 4,
                        key: fix_parity(*b"rolled!!"),
                    },
                ],
                min_level,
                service: "netboot-config".into(),
                now: now_fn,
                nonce: nonce_fn,
            }),
        }
    }

    fn server(min_level: Level) -> Server {
        Server::new(scfg(min_level, Duration::from_secs(1)))
    }

    fn ticket(start: u32, service: &str) -> Ticket {
        Ticket {
            name: "netboot".into(),
            instance: "mac-52-54-00-12-34-56".into(),
            realm: "EXAMPLE".into(),
            host: [0; 4],
            session_key: KS,
            start,
            life: life_for(3600).unwrap(),
            service: service.into(),
            service_instance: String::new(),
        }
    }

    fn good_ticket() -> Vec<u8> {
        ticket(NOW - 60, "netboot-config").seal(&skey(3)).unwrap()
    }

    /// A scripted rxkad client built from the pure pieces.
    struct Client {
        peer: Peer,
        cid: u32,
        kvno: u32,
        ticket: Vec<u8>,
        level: Level,
        sec: ConnSecurity,
        serial: u32,
    }

    impl Client {
        fn new(level: Level, kvno: u32, ticket: Vec<u8>) -> Client {
            Client {
                peer: (0, SocketAddr::from(([10, 9, 0, 1], 7000))),
                cid: CID,
                kvno,
                ticket,
                level,
                sec: ConnSecurity::new(KS, EPOCH, CID, level),
                serial: 0,
            }
        }

        fn header(&mut self, ptype: u8, call: u32, seq: u32, fl: u8) -> Header {
            self.serial += 1;
            Header {
                epoch: EPOCH,
                cid: self.cid,
                call,
                seq,
                serial: self.serial,
                ptype,
                flags: fl | flags::CLIENT_INITIATED,
                user_status: 0,
                security_index: SECURITY_INDEX,
                cksum: 0,
                service_id: 7,
            }
        }

        fn data(&mut self, call: u32, seq: u32, last: bool, payload: &[u8]) -> Vec<u8> {
            let fl = if last { flags::LAST_PACKET } else { 0 };
            let mut h = self.header(ptype::DATA, call, seq, fl);
            h.cksum = self.sec.header_cksum(call, self.cid, seq);
            emit(h, Body::Data(self.sec.seal(call, seq, payload)))
        }

        fn respond(&mut self, challenge: &[u8], call_ids: [u32; 4]) -> Vec<u8> {
            let p = Packet::decode(challenge).unwrap();
            assert_eq!(p.header.ptype, ptype::CHALLENGE);
            let Body::Other(b) = &p.body else { panic!() };
            let c = Challenge::decode(b).unwrap();
            let f = ResponseFields {
                epoch: EPOCH,
                cid: self.cid & !3,
                call_ids,
                inc_nonce: c.nonce.wrapping_add(1),
                level: self.level.as_u32(),
            };
            let body = build_response(&f, KS, self.kvno, &self.ticket);
            let mut h = self.header(ptype::RESPONSE, 0, 0, 0);
            h.cid &= !3;
            emit(h, Body::Other(body))
        }

        /// The user bytes of a reply DATA packet.
        fn open(&self, pkt: &[u8]) -> Result<Vec<u8>, RxkadError> {
            let p = Packet::decode(pkt).unwrap();
            let h = p.header;
            assert_eq!((h.ptype, h.security_index), (ptype::DATA, SECURITY_INDEX));
            let Body::Data(d) = &p.body else { panic!() };
            self.sec.check_cksum(h.call, h.cid, h.seq, h.cksum)?;
            self.sec.unseal(h.call, h.seq, d)
        }
    }

    /// (type, call, abort code) of a datagram.
    type Kind = (u8, u32, Option<i32>);

    /// (type, call, abort code) of each datagram out.
    fn kinds(out: &[Vec<u8>]) -> Vec<Kind> {
        out.iter()
            .map(|b| {
                let p = Packet::decode(b).unwrap();
                let code = match p.body {
                    Body::Abort { code, .. } => Some(code),
                    _ => None,
                };
                (p.header.ptype, p.header.call, code)
            })
            .collect()
    }

    fn out(s: &mut Server) -> Vec<Vec<u8>> {
        s.drain_transmit().map(|(_, b)| b).collect()
    }

    /// Calls the application saw, and an echo.
    fn app(seen: &mut Vec<CallInfo>) -> impl FnMut(&[u8], &CallInfo) -> AppReply + '_ {
        |req: &[u8], info: &CallInfo| {
            seen.push(info.clone());
            AppReply::Data {
                data: req.repeat(if req.first() == Some(&b'L') { 300 } else { 1 }),
                note: "echo".into(),
            }
        }
    }

    /// DATA → CHALLENGE → RESPONSE → the held DATA is served, sealed.
    fn handshake(
        s: &mut Server,
        c: &mut Client,
        t: Instant,
        seen: &mut Vec<CallInfo>,
    ) -> Vec<Vec<u8>> {
        let d = c.data(1, 1, true, b"hello");
        s.handle_datagram(c.peer, &d, t, &mut app(seen));
        let o = out(s);
        assert_eq!(kinds(&o), [(ptype::CHALLENGE, 0, None)]);
        let r = c.respond(&o[0], [1, 0, 0, 0]);
        s.handle_datagram(c.peer, &r, t, &mut app(seen));
        out(s)
    }

    #[test]
    fn good_handshake_at_every_level() {
        for level in [Level::Clear, Level::Auth, Level::Encrypt] {
            let t = Instant::now();
            let mut s = server(Level::Clear);
            let mut c = Client::new(level, 3, good_ticket());
            let mut seen = Vec::new();
            let d = c.data(1, 1, true, b"hello");
            s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
            let o = out(&mut s);
            // The CHALLENGE: connection-level, 16-byte v2, our min level.
            let ch = Packet::decode(&o[0]).unwrap();
            assert_eq!(
                (
                    ch.header.call,
                    ch.header.seq,
                    ch.header.cksum,
                    ch.header.cid
                ),
                (0, 0, 0, CID)
            );
            let Body::Other(b) = &ch.body else { panic!() };
            assert_eq!(
                (b.len(), &b[..4], &b[8..12]),
                (16, &[0, 0, 0, 2][..], &[0; 4][..])
            );
            assert!(seen.is_empty(), "held until the RESPONSE");
            let r = c.respond(&o[0], [1, 0, 0, 0]);
            s.handle_datagram(c.peer, &r, t, &mut app(&mut seen));
            let o = out(&mut s);
            assert_eq!(kinds(&o), [(ptype::DATA, 1, None)], "{level}");
            assert_eq!(c.open(&o[0]).unwrap(), b"hello", "{level}");
            if level == Level::Encrypt {
                assert!(!o[0].windows(5).any(|w| w == b"hello"));
            }
            assert_eq!(seen.len(), 1);
            let info = &seen[0];
            assert_eq!(info.level, level);
            let p = info.principal.as_ref().unwrap();
            assert_eq!(p.to_string(), "netboot.mac-52-54-00-12-34-56@EXAMPLE");
            assert_eq!(info.expires, Some(NOW - 60 + 3600));
            let logs: Vec<_> = s.drain_logs().collect();
            assert!(
                logs[0].starts_with(&format!(
                    "rxkad: connection 80000777:00000104 from 10.9.0.1:7000 secured: \
                     netboot.mac-52-54-00-12-34-56@EXAMPLE, level {level}, kvno 3"
                )),
                "{logs:?}"
            );
            assert_eq!(s.stats.rxkad_secured, 1);
            // A second call on the secured connection: no new handshake.
            let d = c.data(2, 1, true, b"again");
            s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
            let o = out(&mut s);
            assert_eq!(kinds(&o), [(ptype::DATA, 2, None)]);
            assert_eq!(c.open(&o[0]).unwrap(), b"again");
        }
    }

    #[test]
    fn large_request_and_reply_are_split_to_fit_sealed() {
        let t = Instant::now();
        let mut s = server(Level::Encrypt);
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        let mut seen = Vec::new();
        let _ = handshake(&mut s, &mut c, t, &mut seen);
        // A 3-packet request (1400 user bytes each at encrypt).
        let req: Vec<u8> = (0..3000)
            .map(|i| if i == 0 { b'L' } else { i as u8 })
            .collect();
        for (i, chunk) in req.chunks(1400).enumerate() {
            let d = c.data(2, i as u32 + 1, i == 2, chunk);
            s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
        }
        let o: Vec<_> = out(&mut s)
            .into_iter()
            .filter(|b| Packet::decode(b).unwrap().header.ptype == ptype::DATA)
            .collect();
        assert_eq!(seen.len(), 2);
        let mut got = Vec::new();
        for b in &o {
            assert!(
                b.len() <= wire::HEADER_LEN + wire::JUMBO_DATALEN,
                "{}",
                b.len()
            );
            got.extend(c.open(b).unwrap());
        }
        // 300 × 3000 bytes = 900 kB > the window: the first 15 packets.
        assert_eq!(o.len(), 15);
        assert_eq!(got, req.repeat(300)[..15 * 1400]);
    }

    fn refused(min: Level, c: &mut Client) -> (Vec<Kind>, Vec<String>, usize) {
        let t = Instant::now();
        let mut s = server(min);
        let mut seen = Vec::new();
        let o = handshake(&mut s, c, t, &mut seen);
        let logs: Vec<_> = s.drain_logs().collect();
        // Later DATA on the refused connection gets the connection ABORT.
        let d = c.data(1, 1, true, b"hello");
        s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
        let again = kinds(&out(&mut s));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].0, again[0].1), (ptype::ABORT, 0));
        assert_eq!(s.stats.rxkad_refused, 1);
        (kinds(&o), logs, seen.len())
    }

    /// The connection ABORT, the held call's ABORT, the log line.
    fn assert_refused(min: Level, mut c: Client, want: i32, why: &str) {
        let (k, logs, served) = refused(min, &mut c);
        assert_eq!(
            k,
            [(ptype::ABORT, 0, Some(want)), (ptype::ABORT, 1, Some(want))],
            "{why}"
        );
        assert_eq!(served, 0, "{why}: the application never saw the call");
        let line = logs
            .iter()
            .find(|l| {
                l.starts_with("rxkad: connection 80000777:00000104 from 10.9.0.1:7000 refused")
            })
            .unwrap_or_else(|| panic!("{why}: {logs:?}"));
        assert!(line.contains(why), "{line}");
        assert!(
            line.contains(crate::rxkad::code_name(want).unwrap()),
            "{line}"
        );
        // Never key material in the logs.
        for l in &logs {
            assert!(!l.contains("srvkey") && !l.contains("3b5d"), "{l}");
        }
    }

    #[test]
    fn wrong_server_key_is_refused() {
        let other = ServerKey {
            kvno: 3,
            key: fix_parity(*b"notmine!"),
        };
        let t = ticket(NOW - 60, "netboot-config").seal(&other).unwrap();
        assert_refused(
            Level::Clear,
            Client::new(Level::Encrypt, 3, t),
            code::RXKADBADTICKET,
            "ticket",
        );
        // An unknown kvno.
        assert_refused(
            Level::Clear,
            Client::new(Level::Encrypt, 9, good_ticket()),
            code::RXKADUNKNOWNKEY,
            "no server key with kvno 9 (have 3, 4)",
        );
        // The right key under the wrong kvno (4 is another key).
        assert_refused(
            Level::Clear,
            Client::new(Level::Encrypt, 4, good_ticket()),
            code::RXKADBADTICKET,
            "(kvno 4)",
        );
    }

    #[test]
    fn expired_and_future_tickets_are_refused() {
        let old = ticket(NOW - 3600 - 901, "netboot-config")
            .seal(&skey(3))
            .unwrap();
        assert_refused(
            Level::Clear,
            Client::new(Level::Auth, 3, old),
            code::RXKADEXPIRED,
            "expired",
        );
        let future = ticket(NOW + 901, "netboot-config").seal(&skey(3)).unwrap();
        assert_refused(
            Level::Clear,
            Client::new(Level::Auth, 3, future),
            code::RXKADNOAUTH,
            "not valid before",
        );
        // Within the skew both are fine.
        let mut seen = Vec::new();
        let t = Instant::now();
        let mut s = server(Level::Clear);
        let edge = ticket(NOW - 3600 - 899, "netboot-config")
            .seal(&skey(3))
            .unwrap();
        let o = handshake(&mut s, &mut Client::new(Level::Auth, 3, edge), t, &mut seen);
        assert_eq!(kinds(&o), [(ptype::DATA, 1, None)]);
    }

    #[test]
    fn ticket_for_another_service_is_refused() {
        let t = ticket(NOW, "afs").seal(&skey(3)).unwrap();
        assert_refused(
            Level::Clear,
            Client::new(Level::Encrypt, 3, t),
            code::RXKADBADTICKET,
            "is for service \"afs\", this server is \"netboot-config\"",
        );
    }

    #[test]
    fn level_below_minimum_is_refused() {
        assert_refused(
            Level::Encrypt,
            Client::new(Level::Auth, 3, good_ticket()),
            code::RXKADLEVELFAIL,
            "level auth is below this server's minimum encrypt",
        );
        // The CHALLENGE says the minimum.
        let t = Instant::now();
        let mut s = server(Level::Encrypt);
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        let d = c.data(1, 1, true, b"x");
        s.handle_datagram(c.peer, &d, t, &mut app(&mut Vec::new()));
        let o = out(&mut s);
        let Body::Other(b) = Packet::decode(&o[0]).unwrap().body else {
            panic!()
        };
        assert_eq!(Challenge::decode(&b).unwrap().min_level, 2);
    }

    #[test]
    fn tampered_response_is_refused() {
        let t = Instant::now();
        let mut s = server(Level::Clear);
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        let d = c.data(1, 1, true, b"hello");
        let mut seen = Vec::new();
        s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
        let o = out(&mut s);
        let mut r = c.respond(&o[0], [1, 0, 0, 0]);
        r[wire::HEADER_LEN + 20] ^= 1; // inside the sealed part
        s.handle_datagram(c.peer, &r, t, &mut app(&mut seen));
        assert_eq!(
            kinds(&out(&mut s))[0],
            (ptype::ABORT, 0, Some(code::RXKADSEALEDINCON))
        );
        // A RESPONSE declaring another call than the one held.
        let mut s = server(Level::Clear);
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        s.handle_datagram(c.peer, &c.data(1, 1, true, b"x"), t, &mut app(&mut seen));
        let o = out(&mut s);
        let r = c.respond(&o[0], [5, 0, 0, 0]);
        s.handle_datagram(c.peer, &r, t, &mut app(&mut seen));
        assert_eq!(
            kinds(&out(&mut s))[0],
            (ptype::ABORT, 0, Some(code::RXKADSEALEDINCON))
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn tampered_data_is_aborted() {
        for level in [Level::Clear, Level::Auth, Level::Encrypt] {
            let t = Instant::now();
            let mut s = server(Level::Clear);
            let mut c = Client::new(level, 3, good_ticket());
            let mut seen = Vec::new();
            let _ = handshake(&mut s, &mut c, t, &mut seen);
            // A wrong header cksum.
            let mut d = c.data(2, 1, true, b"config please");
            d[25] ^= 1;
            s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
            assert_eq!(
                kinds(&out(&mut s)),
                [(ptype::ABORT, 2, Some(code::RXKADSEALEDINCON))],
                "{level}"
            );
            // A sealed first block altered (levels 1, 2).
            if level != Level::Clear {
                let mut d = c.data(3, 1, true, b"config please");
                d[wire::HEADER_LEN + 1] ^= 1;
                s.handle_datagram(c.peer, &d, t, &mut app(&mut seen));
                assert_eq!(
                    kinds(&out(&mut s)),
                    [(ptype::ABORT, 3, Some(code::RXKADSEALEDINCON))],
                    "{level}"
                );
            }
            // A plain packet on the secured connection: dropped.
            let mut h = c.header(ptype::DATA, 4, 1, flags::LAST_PACKET);
            h.security_index = 0;
            s.handle_datagram(
                c.peer,
                &emit(h, Body::Data(b"x".to_vec())),
                t,
                &mut app(&mut seen),
            );
            assert_eq!(out(&mut s), Vec::<Vec<u8>>::new());
            assert_eq!(seen.len(), 1, "only the first call reached the application");
            let logs: Vec<_> = s.drain_logs().collect();
            assert!(
                logs.iter()
                    .any(|l| l.contains("rxkad: DATA call 2 seq 1: header checksum")
                        && l.contains("RXKADSEALEDINCON")),
                "{logs:?}"
            );
        }
    }

    #[test]
    fn replayed_response_and_replayed_call() {
        let t = Instant::now();
        let mut s = server(Level::Clear);
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        let mut seen = Vec::new();
        let first = c.data(1, 1, true, b"hello");
        s.handle_datagram(c.peer, &first, t, &mut app(&mut seen));
        let o = out(&mut s);
        let response = c.respond(&o[0], [1, 0, 0, 0]);
        s.handle_datagram(c.peer, &response, t, &mut app(&mut seen));
        let reply = out(&mut s);
        // The final ACK ends call 1.
        let mut h = c.header(ptype::ACK, 1, 0, 0);
        h.cksum = 0;
        let ack = emit(h, Body::Ack(wire::Ack::new(2, 1, 0, ack_reason::IDLE)));
        s.handle_datagram(c.peer, &ack, t, &mut app(&mut seen));
        assert_eq!(
            (kinds(&reply).len(), seen.len(), s.active_calls()),
            (1, 1, 0)
        );
        // A replayed RESPONSE on the secured connection: ignored.
        s.handle_datagram(c.peer, &response, t, &mut app(&mut seen));
        // A replayed call 1 on the secured connection: not served again.
        s.handle_datagram(c.peer, &first, t, &mut app(&mut seen));
        assert_eq!((out(&mut s), seen.len()), (vec![], 1));
        // The server forgets the connection; the attacker replays call 1
        // and, to the new CHALLENGE, the captured RESPONSE: old nonce.
        let later = t + LINGER + Duration::from_secs(1);
        s.handle_timeout(later);
        let _ = out(&mut s);
        s.handle_datagram(c.peer, &first, later, &mut app(&mut seen));
        let o = out(&mut s);
        assert_eq!(kinds(&o), [(ptype::CHALLENGE, 0, None)]);
        s.handle_datagram(c.peer, &response, later, &mut app(&mut seen));
        assert_eq!(
            kinds(&out(&mut s)),
            [
                (ptype::ABORT, 0, Some(code::RXKADOUTOFSEQUENCE)),
                (ptype::ABORT, 1, Some(code::RXKADOUTOFSEQUENCE))
            ]
        );
        assert_eq!(seen.len(), 1);
        // A RESPONSE on a connection never challenged: ignored.
        let mut s = server(Level::Clear);
        s.handle_datagram(c.peer, &response, t, &mut app(&mut seen));
        assert_eq!(out(&mut s), Vec::<Vec<u8>>::new());
    }

    /// After a re-handshake, the calls the RESPONSE declared used are stale.
    #[test]
    fn calls_declared_used_are_stale() {
        let t = Instant::now();
        let mut s = server(Level::Clear);
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        let mut seen = Vec::new();
        // Channel 1 used call 6 before (a forgotten connection); call 7 on
        // channel 0 triggers the handshake.
        let replay = {
            let mut c1 = Client::new(Level::Encrypt, 3, good_ticket());
            c1.cid = CID | 1;
            c1.data(6, 1, true, b"old")
        };
        s.handle_datagram(c.peer, &c.data(7, 1, true, b"new"), t, &mut app(&mut seen));
        let o = out(&mut s);
        let r = c.respond(&o[0], [7, 6, 0, 0]);
        s.handle_datagram(c.peer, &r, t, &mut app(&mut seen));
        assert_eq!(kinds(&out(&mut s)), [(ptype::DATA, 7, None)]);
        s.handle_datagram(c.peer, &replay, t, &mut app(&mut seen));
        assert_eq!((out(&mut s), seen.len()), (vec![], 1), "call 6 is stale");
    }

    #[test]
    fn rechallenge_is_bounded_and_the_deadline_holds() {
        let t = Instant::now();
        let mut s = Server::new(scfg(Level::Clear, Duration::from_secs(10)));
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        let mut seen = Vec::new();
        s.handle_datagram(c.peer, &c.data(1, 1, true, b"x"), t, &mut app(&mut seen));
        let mut challenges = kinds(&out(&mut s)).len();
        assert_eq!(s.next_timeout(), Some(t + CHALLENGE_EVERY));
        for i in 1..=8 {
            s.handle_timeout(t + CHALLENGE_EVERY * i);
            let k = kinds(&out(&mut s));
            assert!(k.iter().all(|x| *x == (ptype::CHALLENGE, 0, None)), "{k:?}");
            challenges += k.len();
        }
        assert_eq!(challenges, CHALLENGES as usize);
        // The same nonce each time: a late RESPONSE to any of them works.
        s.handle_timeout(t + Duration::from_secs(10));
        assert_eq!(kinds(&out(&mut s)), [(ptype::ABORT, 1, Some(-3))]);
        // With the 1 s deadline: one challenge more at most before it ends.
        let mut s = server(Level::Clear);
        s.handle_datagram(c.peer, &c.data(1, 1, true, b"x"), t, &mut app(&mut seen));
        let _ = out(&mut s);
        s.handle_timeout(t + Duration::from_secs(1));
        let k = kinds(&out(&mut s));
        assert_eq!(k.last(), Some(&(ptype::ABORT, 1, Some(-3))), "{k:?}");
        s.handle_timeout(t + Duration::from_secs(2));
        assert_eq!(
            out(&mut s),
            Vec::<Vec<u8>>::new(),
            "no call waits: no challenge"
        );
    }

    #[test]
    fn held_data_is_bounded_and_deduplicated() {
        let t = Instant::now();
        let mut s = server(Level::Clear);
        let mut c = Client::new(Level::Auth, 3, good_ticket());
        let mut seen = Vec::new();
        let packets: Vec<_> = (1..=12)
            .map(|q| c.data(1, q, q == 12, &[q as u8; 100]))
            .collect();
        for p in packets.iter().chain(&packets) {
            s.handle_datagram(c.peer, p, t, &mut app(&mut seen));
        }
        let o = out(&mut s);
        assert_eq!(kinds(&o), [(ptype::CHALLENGE, 0, None)]);
        let Some(Auth::Pending(p)) = s.auth.values().next() else {
            panic!()
        };
        assert_eq!(p.held.len(), HOLD_PACKETS);
        let seqs: Vec<u32> = p.held.iter().map(|h| h.1).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
        // After the RESPONSE the held 8 are taken; the rest come again.
        let r = c.respond(&o[0], [1, 0, 0, 0]);
        s.handle_datagram(c.peer, &r, t, &mut app(&mut seen));
        for p in &packets[8..] {
            s.handle_datagram(c.peer, p, t, &mut app(&mut seen));
        }
        assert_eq!(seen.len(), 1);
        let reply: Vec<u8> = out(&mut s)
            .iter()
            .filter(|b| Packet::decode(b).unwrap().header.ptype == ptype::DATA)
            .flat_map(|b| c.open(b).unwrap())
            .collect();
        let want: Vec<u8> = (1..=12u8).flat_map(|q| [q; 100]).collect();
        assert_eq!(reply, want);
    }

    #[test]
    fn rxkad_without_server_keys_is_refused() {
        let t = Instant::now();
        let mut s = Server::new(ServerConfig {
            security: None,
            ..scfg(Level::Clear, Duration::from_secs(1))
        });
        let mut c = Client::new(Level::Encrypt, 3, good_ticket());
        s.handle_datagram(
            c.peer,
            &c.data(1, 1, true, b"x"),
            t,
            &mut app(&mut Vec::new()),
        );
        assert_eq!(
            kinds(&out(&mut s)),
            [(ptype::ABORT, 1, Some(code::RXKADUNKNOWNKEY))]
        );
    }

    #[test]
    fn expired_connection_aborts_new_calls() {
        let t = Instant::now();
        let mut s = server(Level::Clear);
        // A ticket ending just now: the handshake passes, then time moves.
        let tk = ticket(NOW - 3600, "netboot-config").seal(&skey(3)).unwrap();
        let mut c = Client::new(Level::Encrypt, 3, tk);
        let mut seen = Vec::new();
        let o = handshake(&mut s, &mut c, t, &mut seen);
        assert_eq!(kinds(&o), [(ptype::DATA, 1, None)]);
        let s2 = &mut s;
        if let Some(Auth::Secured(sec)) = s2.auth.values_mut().next() {
            sec.expires = NOW - SKEW - 1;
        }
        s.handle_datagram(c.peer, &c.data(2, 1, true, b"x"), t, &mut app(&mut seen));
        assert_eq!(
            kinds(&out(&mut s)),
            [(ptype::ABORT, 2, Some(code::RXKADEXPIRED))]
        );
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn plain_calls_still_served_with_no_principal() {
        let t = Instant::now();
        let mut s = server(Level::Encrypt);
        let id = CallId {
            epoch: EPOCH,
            cid: 8,
            call: 1,
            service_id: 7,
            security_index: 0,
        };
        let mut cc =
            crate::rxrpc::call::ClientCall::new(id, b"plain", 100, t, Duration::from_secs(1));
        let mut seen = Vec::new();
        let p = (0, SocketAddr::from(([10, 9, 0, 2], 7000)));
        s.handle_datagram(p, &cc.poll_transmit().unwrap(), t, &mut app(&mut seen));
        assert_eq!(kinds(&out(&mut s)), [(ptype::DATA, 1, None)]);
        assert_eq!(seen[0].level, Level::Clear);
        assert_eq!((seen[0].principal.as_ref(), seen[0].expires), (None, None));
    }
}
