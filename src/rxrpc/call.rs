//! Sans-IO RxRPC call machinery: the send queue with retransmission, the
//! receive queue with reassembly, and the client call state machine. The
//! caller feeds decoded packets and the clock in, and takes datagrams out;
//! nothing here touches a socket, so tests drive it packet by packet.
//!
//! Flow (rxrpc.md §1.8): client DATA 1..N → server reply DATA 1..M (seq
//! restarts at 1, implicitly hard-ACKing the request) → client final ACK
//! with firstPacket = M + 1, reason IDLE (Linux behaviour).
//!
//! Retransmission: a fixed initial RTO doubled on every expiry up to
//! [`RTO_MAX`] (RFC 6298 §5.5 style backoff; Rx has no standard RTO), with a
//! REQUEST_ACK on every retransmitted packet so the peer tells us what it
//! has. NACKed packets (rxrpc.md §1.5 `acks[]` = 0) are resent at once.
//!
//! rxkad (security index 2, rxkad.md §1–§3): a [`ClientCall::secured`]
//! call answers the server's CHALLENGE with a RESPONSE carrying the token's
//! ticket (nonce + 1, the latest call number per channel, our level; a
//! challenge asking for more than our level is refused), sends every DATA
//! with the header checksum and sealed at the connection's level, and
//! checks and unseals every reply DATA before it is reassembled: a reply
//! packet that fails either aborts the call (RXKADSEALEDINCON) and is an
//! error, never data. A connection ABORT (call 0, e.g. RXKADEXPIRED after
//! our RESPONSE) ends the call with its code.

use super::wire::{ack_reason, flags, ptype, Ack, Body, Header, Packet, SubPacket, JUMBO_DATALEN};
use crate::rxkad::files::Token;
use crate::rxkad::handshake::{build_response, Challenge, ResponseFields};
use crate::rxkad::packet::ConnSecurity;
use crate::rxkad::{code as rxkad_code, Level, RxkadError};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

pub const RTO_INITIAL: Duration = Duration::from_millis(100);
pub const RTO_MAX: Duration = Duration::from_secs(2);
/// Highest seq we accept ahead of the next expected one (our advertised
/// rwind, wire::OUR_TRAILER).
pub const RX_WINDOW: u32 = 32;
/// Window used before the peer told us its rwind (rxrpc.md §1.5: absent ⇒ 15).
pub const DEFAULT_PEER_WINDOW: u32 = 15;

/// Identity of a call on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId {
    pub epoch: u32,
    pub cid: u32,
    pub call: u32,
    pub service_id: u16,
    pub security_index: u8,
}

impl CallId {
    pub fn header(&self, ptype: u8, seq: u32, serial: u32, fl: u8) -> Header {
        Header {
            epoch: self.epoch,
            cid: self.cid,
            call: self.call,
            seq,
            serial,
            ptype,
            flags: fl,
            user_status: 0,
            security_index: self.security_index,
            cksum: 0,
            service_id: self.service_id,
        }
    }

    pub fn matches(&self, h: &Header) -> bool {
        h.epoch == self.epoch && h.cid == self.cid && h.call == self.call
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}:{:08x}:{}", self.epoch, self.cid, self.call)
    }
}

/// Encode a packet we built ourselves; our bodies are always encodable
/// (acks[] ≤ 255 entries), so failure is a bug reported as an empty datagram.
pub fn emit(header: Header, body: Body) -> Vec<u8> {
    Packet { header, body }.encode().unwrap_or_default()
}

/// Outgoing DATA of one direction of a call.
#[derive(Debug)]
pub struct TxQueue {
    chunks: Vec<Vec<u8>>,
    acked: Vec<bool>,
    sent: Vec<bool>,
    /// `CLIENT_INITIATED` for requests, 0 for replies.
    base_flags: u8,
    pub rto: Duration,
    pub timer: Option<Instant>,
    pub peer_window: u32,
    pub retransmits: u32,
    /// rxkad: every DATA sealed and checksummed (rxkad.md §2, §3).
    security: Option<ConnSecurity>,
}

impl TxQueue {
    /// Split `data` into packets of at most 1412 bytes (one empty packet for
    /// an empty message: an empty reply is a valid success, rxrpc.md §1.8).
    pub fn new(data: &[u8], base_flags: u8) -> TxQueue {
        TxQueue::with_security(data, base_flags, None)
    }

    /// [`TxQueue::new`] whose packets are sealed at `security`'s level:
    /// chunks of `max_data(1412)` user bytes, each payload
    /// `ConnSecurity::seal`ed and the header cksum set.
    pub fn with_security(data: &[u8], base_flags: u8, security: Option<ConnSecurity>) -> TxQueue {
        let per = security
            .as_ref()
            .map_or(JUMBO_DATALEN, |s| s.max_data(JUMBO_DATALEN).max(1));
        let chunks: Vec<Vec<u8>> = if data.is_empty() {
            vec![Vec::new()]
        } else {
            data.chunks(per).map(<[u8]>::to_vec).collect()
        };
        let n = chunks.len();
        TxQueue {
            chunks,
            acked: vec![false; n],
            sent: vec![false; n],
            base_flags,
            rto: RTO_INITIAL,
            timer: None,
            peer_window: DEFAULT_PEER_WINDOW,
            retransmits: 0,
            security,
        }
    }

    pub fn len(&self) -> u32 {
        self.chunks.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn all_acked(&self) -> bool {
        self.acked.iter().all(|&a| a)
    }

    /// Every packet has gone out at least once: only acknowledgements (or
    /// retransmissions) are left.
    pub fn all_sent(&self) -> bool {
        self.sent.iter().all(|&s| s)
    }

    fn hard_acked(&self) -> u32 {
        self.acked.iter().take_while(|&&a| a).count() as u32
    }

    fn packet(&self, id: &CallId, i: usize, serial: &mut u32, extra: u8) -> Vec<u8> {
        let mut fl = self.base_flags | extra;
        if i + 1 == self.chunks.len() {
            fl |= flags::LAST_PACKET;
        }
        *serial = serial.wrapping_add(1);
        let seq = i as u32 + 1;
        let mut h = id.header(ptype::DATA, seq, *serial, fl);
        let chunk = self.chunks.get(i).map_or(&[][..], Vec::as_slice);
        match &self.security {
            None => emit(h, Body::Data(chunk.to_vec())),
            Some(sec) => {
                h.cksum = sec.header_cksum(id.call, id.cid, seq);
                emit(h, Body::Data(sec.seal(id.call, seq, chunk)))
            }
        }
    }

    /// Send packets never sent before, inside the peer's window.
    pub fn send_new(
        &mut self,
        id: &CallId,
        serial: &mut u32,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) {
        let limit = (self.hard_acked() + self.peer_window.max(1)) as usize;
        for i in 0..self.chunks.len().min(limit) {
            if !self.sent[i] {
                self.sent[i] = true;
                out.push(self.packet(id, i, serial, 0));
            }
        }
        if self.timer.is_none() && !self.all_acked() {
            self.timer = Some(now + self.rto);
        }
    }

    /// Apply an ACK; resend NACKed packets at once. Returns true if the ACK
    /// moved anything forward.
    pub fn on_ack(
        &mut self,
        id: &CallId,
        ack: &Ack,
        serial: &mut u32,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> bool {
        if let Some(t) = &ack.trailer {
            self.peer_window = t.rwind.clamp(1, 255);
        }
        let before = self.acked.iter().filter(|&&a| a).count();
        for (i, a) in self.acked.iter_mut().enumerate() {
            if ack.acks_seq(i as u32 + 1) {
                *a = true;
            }
        }
        let progressed = self.acked.iter().filter(|&&a| a).count() > before;
        // NACKs below the highest soft-ACK mean loss (rxrpc.md §1.5).
        for (k, &v) in ack.acks.iter().enumerate() {
            let i = ack.first_packet as usize + k;
            if v == 0 && i >= 1 && i <= self.chunks.len() && self.sent[i - 1] && !self.acked[i - 1]
            {
                let highest_soft = ack.acks.iter().rposition(|&a| a == 1).unwrap_or(0);
                if k < highest_soft {
                    out.push(self.packet(id, i - 1, serial, flags::REQUEST_ACK));
                }
            }
        }
        if progressed {
            self.rto = RTO_INITIAL;
            self.timer = (!self.all_acked()).then(|| now + self.rto);
        }
        self.send_new(id, serial, now, out);
        progressed
    }

    pub fn ack_all(&mut self) {
        self.acked.iter_mut().for_each(|a| *a = true);
        self.timer = None;
    }

    /// RTO expiry: resend every unacked packet already sent, with
    /// REQUEST_ACK, and back off.
    pub fn on_timeout(
        &mut self,
        id: &CallId,
        serial: &mut u32,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) {
        for i in 0..self.chunks.len() {
            if self.sent[i] && !self.acked[i] {
                out.push(self.packet(id, i, serial, flags::REQUEST_ACK));
            }
        }
        self.retransmits += 1;
        self.rto = (self.rto * 2).min(RTO_MAX);
        self.timer = (!self.all_acked()).then(|| now + self.rto);
    }
}

/// What a received DATA sub-packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxOutcome {
    New,
    Duplicate,
    /// Beyond the window, or after the last packet: dropped.
    Dropped,
    /// Accepting it would exceed the size bound.
    TooLarge,
}

/// Incoming DATA of one direction: reassembly with a byte bound.
#[derive(Debug, Default)]
pub struct RxQueue {
    /// Out-of-order packets above `next`.
    pending: BTreeMap<u32, Vec<u8>>,
    data: Vec<u8>,
    /// Next seq expected in order (starts at 1).
    next: u32,
    last: Option<u32>,
    max_bytes: usize,
    pending_bytes: usize,
    /// Serial of the newest packet seen, for ACKs.
    pub last_serial: u32,
    pub highest_seq: u32,
}

impl RxQueue {
    pub fn new(max_bytes: usize) -> RxQueue {
        RxQueue {
            next: 1,
            max_bytes,
            ..RxQueue::default()
        }
    }

    pub fn accept(&mut self, sub: &SubPacket<'_>) -> RxOutcome {
        let seq = sub.header.seq;
        self.last_serial = sub.header.serial;
        if seq < self.next || self.pending.contains_key(&seq) {
            return RxOutcome::Duplicate;
        }
        if seq >= self.next.saturating_add(RX_WINDOW) || self.last.is_some_and(|l| seq > l) {
            return RxOutcome::Dropped;
        }
        if self.data.len() + self.pending_bytes + sub.data.len() > self.max_bytes {
            return RxOutcome::TooLarge;
        }
        if sub.header.flags & flags::LAST_PACKET != 0 {
            self.last = Some(seq);
        }
        self.highest_seq = self.highest_seq.max(seq);
        self.pending_bytes += sub.data.len();
        self.pending.insert(seq, sub.data.to_vec());
        while let Some(d) = self.pending.remove(&self.next) {
            self.pending_bytes -= d.len();
            self.data.extend_from_slice(&d);
            self.next += 1;
        }
        RxOutcome::New
    }

    pub fn complete(&self) -> bool {
        self.last.is_some_and(|l| self.next > l)
    }

    pub fn in_order(&self, seq: u32) -> bool {
        seq + 1 == self.next && self.pending.is_empty()
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// ACK describing what we hold: hard-ACK below `next`, soft ACK/NACK up
    /// to the highest seq seen (rxrpc.md §1.5).
    pub fn ack(&self, serial: u32, reason: u8) -> Ack {
        let mut a = Ack::new(self.next, self.highest_seq, serial, reason);
        if let Some(&top) = self.pending.keys().next_back() {
            a.acks = (self.next..=top.min(self.next + 254))
                .map(|s| u8::from(self.pending.contains_key(&s)))
                .collect();
        }
        a
    }
}

/// How a call ended, from the client's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The call was aborted with this code (rxrpc.md §1.9): by the peer,
    /// or, for the kernel transport, possibly by the local kernel.
    Aborted(i32),
    /// The server has no free call slot (BUSY packet).
    Busy,
    /// No complete reply before the deadline.
    Timeout,
    /// The reply exceeded our bound; we aborted the call.
    ReplyTooLarge { max: usize },
    /// Socket error (text of the io::Error, with the peer).
    Io(String),
    /// rxkad failed on our side: a CHALLENGE we cannot answer (its level
    /// above ours, undecodable), or a reply packet whose checksum or seal
    /// is wrong. We aborted the call (or connection) with the code.
    Security(RxkadError),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Rx's own codes have names here; positive codes belong to the
            // service, which names them (config::fetch).
            CallError::Aborted(c) => match super::wire::abort::name(*c) {
                Some(name) => write!(f, "call aborted with code {c} ({name})"),
                None => write!(f, "call aborted with code {c}"),
            },
            CallError::Busy => write!(f, "server busy (all call slots in use); try again later"),
            CallError::Timeout => write!(f, "no reply before the deadline"),
            CallError::ReplyTooLarge { max } => write!(f, "reply exceeds {max} bytes"),
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Security(e) => write!(f, "rxkad: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// What a secured client call needs: the token's ticket and session key,
/// the keyed connection, and the latest call number of each channel of
/// the connection (for the RESPONSE, rxkad.md §9 item 6). `Debug` shows
/// neither key nor ticket.
#[derive(Clone)]
pub struct ClientSecurity {
    pub conn: ConnSecurity,
    session_key: [u8; 8],
    kvno: u32,
    ticket: Vec<u8>,
    pub call_ids: [u32; 4],
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientSecurity {{ level: {}, kvno: {}, call_ids: {:?}, keys: *** }}",
            self.conn.level(),
            self.kvno,
            self.call_ids
        )
    }
}

impl ClientSecurity {
    /// The connection {epoch, cid} secured with `token` at `level`
    /// (csum_iv is computed here, when the connection is created).
    pub fn new(token: &Token, level: Level, epoch: u32, cid: u32) -> ClientSecurity {
        ClientSecurity {
            conn: ConnSecurity::new(token.session_key, epoch, cid, level),
            session_key: token.session_key,
            kvno: token.kvno,
            ticket: token.ticket.clone(),
            call_ids: [0; 4],
        }
    }

    pub fn level(&self) -> Level {
        self.conn.level()
    }

    /// The RESPONSE body for `challenge` on connection {epoch, cid}, or
    /// why it is refused (the challenge wants more than our level).
    pub fn respond(
        &self,
        challenge: &Challenge,
        epoch: u32,
        cid: u32,
    ) -> Result<Vec<u8>, RxkadError> {
        let ours = self.level().as_u32();
        if challenge.min_level > ours {
            return Err(RxkadError::new(
                rxkad_code::RXKADLEVELFAIL,
                format!(
                    "the server asks for security level {} or more, we are set to {}",
                    challenge.min_level,
                    self.level()
                ),
            ));
        }
        let f = ResponseFields {
            epoch,
            cid: cid & !super::wire::CHANNEL_MASK,
            call_ids: self.call_ids,
            inc_nonce: challenge.nonce.wrapping_add(1),
            level: ours,
        };
        Ok(build_response(
            &f,
            self.session_key,
            self.kvno,
            &self.ticket,
        ))
    }
}

/// One client call, sans-IO.
#[derive(Debug)]
pub struct ClientCall {
    pub id: CallId,
    serial: u32,
    tx: TxQueue,
    rx: RxQueue,
    deadline: Instant,
    result: Option<Result<Vec<u8>, CallError>>,
    out: Vec<Vec<u8>>,
    /// Timer for "reply is slow: tell the server what we have".
    rx_timer: Option<Instant>,
    /// rxkad, for a secured call.
    security: Option<Box<ClientSecurity>>,
}

impl ClientCall {
    pub fn new(
        id: CallId,
        request: &[u8],
        max_reply: usize,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        let mut c = ClientCall {
            id,
            serial: 0,
            tx: TxQueue::new(request, flags::CLIENT_INITIATED),
            rx: RxQueue::new(max_reply),
            deadline: now + timeout,
            result: None,
            out: Vec::new(),
            rx_timer: None,
            security: None,
        };
        c.tx.send_new(&id, &mut c.serial, now, &mut c.out);
        c
    }

    /// A call secured with rxkad (`id.security_index` is set to 2 here):
    /// DATA sealed at `sec`'s level, CHALLENGE answered, replies checked.
    /// `sec.call_ids` must already hold this call's number on its channel.
    pub fn secured(
        mut id: CallId,
        request: &[u8],
        max_reply: usize,
        now: Instant,
        timeout: Duration,
        sec: ClientSecurity,
    ) -> Self {
        id.security_index = crate::rxkad::SECURITY_INDEX;
        let mut c = ClientCall {
            id,
            serial: 0,
            tx: TxQueue::with_security(request, flags::CLIENT_INITIATED, Some(sec.conn.clone())),
            rx: RxQueue::new(max_reply),
            deadline: now + timeout,
            result: None,
            out: Vec::new(),
            rx_timer: None,
            security: Some(Box::new(sec)),
        };
        c.tx.send_new(&id, &mut c.serial, now, &mut c.out);
        c
    }

    /// The serial counter after this call (the connection's next call
    /// continues it: serials are per connection, rxrpc.md §1.1).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Start the serial counter at `serial` (the connection's so far).
    pub fn continue_serial(&mut self, serial: u32) {
        self.serial = serial;
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }

    pub fn result(&self) -> Option<&Result<Vec<u8>, CallError>> {
        self.result.as_ref()
    }

    pub fn take_result(&mut self) -> Option<Result<Vec<u8>, CallError>> {
        self.result.take()
    }

    pub fn next_timeout(&self) -> Instant {
        [self.tx.timer, self.rx_timer]
            .into_iter()
            .flatten()
            .fold(self.deadline, Instant::min)
    }

    fn ack(&mut self, reason: u8, provoking_serial: u32) {
        self.serial = self.serial.wrapping_add(1);
        let h = self
            .id
            .header(ptype::ACK, 0, self.serial, flags::CLIENT_INITIATED);
        let a = self.rx.ack(provoking_serial, reason);
        self.out.push(emit(h, Body::Ack(a)));
    }

    fn fail(&mut self, e: CallError) {
        self.result = Some(Err(e));
        self.tx.timer = None;
        self.rx_timer = None;
    }

    /// Same connection (epoch, cid without the channel), any call.
    fn same_conn(&self, h: &Header) -> bool {
        h.epoch == self.id.epoch
            && h.cid & !super::wire::CHANNEL_MASK == self.id.cid & !super::wire::CHANNEL_MASK
    }

    /// Send a connection ABORT (call 0) with `code`.
    fn abort_conn(&mut self, code: i32) {
        self.serial = self.serial.wrapping_add(1);
        let mut h = self
            .id
            .header(ptype::ABORT, 0, self.serial, flags::CLIENT_INITIATED);
        h.call = 0;
        self.out.push(emit(
            h,
            Body::Abort {
                code,
                extra: vec![],
            },
        ));
    }

    /// Send a call ABORT with `code` and end the call with `e`.
    fn abort_call(&mut self, code: i32, e: CallError) {
        self.serial = self.serial.wrapping_add(1);
        let h = self
            .id
            .header(ptype::ABORT, 0, self.serial, flags::CLIENT_INITIATED);
        self.out.push(emit(
            h,
            Body::Abort {
                code,
                extra: vec![],
            },
        ));
        self.fail(e);
    }

    /// A connection-level packet (call 0) of our connection: CHALLENGE or
    /// connection ABORT.
    fn handle_conn(&mut self, p: &Packet) {
        match (&p.body, p.header.ptype) {
            (Body::Abort { code, .. }, _) => self.fail(CallError::Aborted(*code)),
            (Body::Other(b), ptype::CHALLENGE) => {
                // An unsecured call has no answer; its server would not
                // challenge index 0, so this is someone else's packet.
                let Some(sec) = &self.security else {
                    return;
                };
                let reply =
                    Challenge::decode(b).and_then(|c| sec.respond(&c, self.id.epoch, self.id.cid));
                match reply {
                    Ok(body) => {
                        self.serial = self.serial.wrapping_add(1);
                        let mut h = self.id.header(
                            ptype::RESPONSE,
                            0,
                            self.serial,
                            flags::CLIENT_INITIATED,
                        );
                        h.call = 0;
                        h.cid = self.id.cid & !super::wire::CHANNEL_MASK;
                        self.out.push(emit(h, Body::Other(body)));
                    }
                    Err(e) => {
                        self.abort_conn(e.code);
                        self.fail(CallError::Security(e));
                    }
                }
            }
            _ => {}
        }
    }

    pub fn handle(&mut self, p: &Packet, now: Instant) {
        if self.result.is_some() || p.header.is_client_initiated() {
            return;
        }
        if p.header.call == 0 && self.same_conn(&p.header) {
            self.handle_conn(p);
            return;
        }
        if !self.id.matches(&p.header) {
            return;
        }
        match &p.body {
            Body::Data(body) => {
                // Reply DATA hard-ACKs the whole request (rxrpc.md §1.8).
                self.tx.ack_all();
                let Ok(subs) = super::wire::split_jumbo(&p.header, body) else {
                    return;
                };
                for sub in &subs {
                    if sub.header.seq == 0 {
                        continue;
                    }
                    // rxkad: checksum and seal before anything is kept.
                    let opened: Vec<u8>;
                    let opened_sub: SubPacket<'_>;
                    let sub = match &self.security {
                        None => sub,
                        Some(sec) => {
                            let h = &sub.header;
                            let ok = sec
                                .conn
                                .check_cksum(h.call, h.cid, h.seq, h.cksum)
                                .and_then(|()| sec.conn.unseal(h.call, h.seq, sub.data));
                            match ok {
                                Ok(data) => {
                                    opened = data;
                                    opened_sub = SubPacket {
                                        header: sub.header,
                                        data: &opened,
                                    };
                                    &opened_sub
                                }
                                Err(e) => {
                                    self.abort_call(e.code, CallError::Security(e));
                                    return;
                                }
                            }
                        }
                    };
                    match self.rx.accept(sub) {
                        RxOutcome::TooLarge => {
                            self.serial = self.serial.wrapping_add(1);
                            let h = self.id.header(
                                ptype::ABORT,
                                0,
                                self.serial,
                                flags::CLIENT_INITIATED,
                            );
                            self.out.push(emit(
                                h,
                                Body::Abort {
                                    code: super::wire::abort::RXGEN_CC_UNMARSHAL,
                                    extra: vec![],
                                },
                            ));
                            self.fail(CallError::ReplyTooLarge {
                                max: self.rx.max_bytes,
                            });
                            return;
                        }
                        RxOutcome::Duplicate => self.ack(ack_reason::DUPLICATE, sub.header.serial),
                        RxOutcome::Dropped => {
                            self.ack(ack_reason::EXCEEDS_WINDOW, sub.header.serial)
                        }
                        RxOutcome::New => {
                            if self.rx.complete() {
                                // Final ACK (Linux: IDLE), firstPacket = last + 1.
                                self.ack(ack_reason::IDLE, sub.header.serial);
                                self.result = Some(Ok(self.rx.take()));
                                self.tx.timer = None;
                                self.rx_timer = None;
                                return;
                            }
                            if !self.rx.in_order(sub.header.seq) {
                                self.ack(ack_reason::OUT_OF_SEQUENCE, sub.header.serial);
                            } else if sub.header.flags & flags::REQUEST_ACK != 0 {
                                self.ack(ack_reason::REQUESTED, sub.header.serial);
                            }
                        }
                    }
                }
                self.rx_timer = Some(now + self.tx.rto);
            }
            Body::Ack(a) => {
                if a.reason == ack_reason::PING && p.header.flags & flags::REQUEST_ACK != 0 {
                    self.ack(ack_reason::PING_RESPONSE, p.header.serial);
                }
                let id = self.id;
                self.tx.on_ack(&id, a, &mut self.serial, now, &mut self.out);
            }
            Body::AckAll(_) => self.tx.ack_all(),
            Body::Abort { code, .. } => self.fail(CallError::Aborted(*code)),
            Body::Busy(_) => self.fail(CallError::Busy),
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.result.is_some() {
            return;
        }
        if now >= self.deadline {
            // Tell the server we gave up (RX_CALL_TIMEOUT), so it frees the slot.
            self.serial = self.serial.wrapping_add(1);
            let h = self
                .id
                .header(ptype::ABORT, 0, self.serial, flags::CLIENT_INITIATED);
            self.out.push(emit(
                h,
                Body::Abort {
                    code: super::wire::abort::RX_CALL_TIMEOUT,
                    extra: vec![],
                },
            ));
            self.fail(CallError::Timeout);
            return;
        }
        if self.tx.timer.is_some_and(|t| now >= t) {
            let id = self.id;
            self.tx
                .on_timeout(&id, &mut self.serial, now, &mut self.out);
        }
        if self.rx_timer.is_some_and(|t| now >= t) {
            // Reply stalled: say what we hold so the server resends the gaps.
            self.ack(ack_reason::DELAY, 0);
            self.rx_timer = Some(now + RTO_MAX.min(self.tx.rto * 2));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id() -> CallId {
        CallId {
            epoch: 0x8000_0001,
            cid: 4,
            call: 1,
            service_id: 52,
            security_index: 0,
        }
    }

    fn reply(seq: u32, serial: u32, fl: u8, data: &[u8]) -> Packet {
        Packet {
            header: id().header(ptype::DATA, seq, serial, fl),
            body: Body::Data(data.to_vec()),
        }
    }

    /// The VL_ProbeServer exchange of rxrpc.md §1.8, driven by hand.
    #[test]
    fn probe_server_flow() {
        let t0 = Instant::now();
        let mut c = ClientCall::new(id(), &[0, 0, 2, 2], 100, t0, Duration::from_secs(5));
        let req = Packet::decode(&c.poll_transmit().expect("request")).expect("decode");
        assert_eq!(req.header.flags, 0x05);
        assert_eq!((req.header.seq, req.header.serial), (1, 1));
        assert!(c.poll_transmit().is_none());
        c.handle(&reply(1, 2, flags::LAST_PACKET, &[]), t0);
        assert_eq!(c.result(), Some(&Ok(vec![])));
        let ack = Packet::decode(&c.poll_transmit().expect("final ack")).expect("decode");
        let Body::Ack(a) = ack.body else {
            panic!("not ack")
        };
        assert_eq!(
            (a.first_packet, a.reason, a.serial),
            (2, ack_reason::IDLE, 2)
        );
        assert_eq!(ack.header.flags, flags::CLIENT_INITIATED);
    }

    #[test]
    fn retransmit_backoff_and_deadline() {
        let t0 = Instant::now();
        let mut c = ClientCall::new(id(), &[1], 100, t0, Duration::from_secs(1));
        c.poll_transmit();
        let t1 = c.next_timeout();
        assert_eq!(t1, t0 + RTO_INITIAL);
        c.handle_timeout(t1);
        let p = Packet::decode(&c.poll_transmit().expect("retx")).expect("decode");
        assert_eq!(p.header.flags, 0x07);
        assert_eq!(p.header.serial, 2);
        assert_eq!(c.next_timeout(), t1 + RTO_INITIAL * 2);
        c.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(c.result(), Some(&Err(CallError::Timeout)));
    }

    #[test]
    fn out_of_order_and_duplicate_reply() {
        let t0 = Instant::now();
        let mut c = ClientCall::new(id(), &[1], 10_000, t0, Duration::from_secs(5));
        c.poll_transmit();
        let a = vec![b'a'; JUMBO_DATALEN];
        c.handle(&reply(2, 3, flags::LAST_PACKET, b"b"), t0);
        let ack = Packet::decode(&c.poll_transmit().expect("ack")).expect("decode");
        let Body::Ack(ack) = ack.body else { panic!() };
        assert_eq!(
            (ack.first_packet, ack.reason, ack.acks.as_slice()),
            (1, 3, &[0u8, 1][..])
        );
        c.handle(&reply(2, 4, flags::LAST_PACKET, b"b"), t0);
        assert!(c.result().is_none());
        c.handle(&reply(1, 2, 0, &a), t0);
        let mut want = a.clone();
        want.push(b'b');
        assert_eq!(c.result(), Some(&Ok(want)));
    }

    fn rxkad_token() -> Token {
        let k = crate::rxkad::ticket::ServerKey {
            kvno: 5,
            key: crate::rxkad::ticket::fix_parity([0x31, 0x75, 0xb9, 0xfd, 0x20, 0x64, 0xa8, 0xec]),
        };
        Token::mint(
            &k,
            &crate::rxkad::files::Holder::Fleet("t".into()),
            1_000,
            3_600,
            [0x5a; 8],
        )
        .unwrap()
    }

    fn secured(level: Level) -> (ClientCall, ConnSecurity, Instant) {
        let t0 = Instant::now();
        let tok = rxkad_token();
        let mut sec = ClientSecurity::new(&tok, level, id().epoch, id().cid);
        sec.call_ids[0] = 1;
        let c = ClientCall::secured(id(), b"request", 100, t0, Duration::from_secs(5), sec);
        let server = ConnSecurity::new(tok.session_key, id().epoch, id().cid, level);
        (c, server, t0)
    }

    fn challenge(min_level: u32) -> Packet {
        let mut h = id().header(ptype::CHALLENGE, 0, 1, 0);
        h.call = 0;
        h.security_index = 2;
        Packet {
            header: h,
            body: Body::Other(
                Challenge {
                    nonce: 0xffff_ffff,
                    min_level,
                }
                .encode()
                .to_vec(),
            ),
        }
    }

    #[test]
    fn secured_call_seals_answers_the_challenge_and_unseals() {
        for level in [Level::Auth, Level::Encrypt] {
            let (mut c, server, t0) = secured(level);
            let req = Packet::decode(&c.poll_transmit().unwrap()).unwrap();
            assert_eq!(req.header.security_index, 2);
            assert_eq!(req.header.cksum, server.header_cksum(1, 4, 1));
            assert_ne!(req.header.cksum, 0);
            let Body::Data(d) = &req.body else { panic!() };
            assert_ne!(&d[..], b"request");
            assert_eq!(server.unseal(1, 1, d).unwrap(), b"request");

            c.handle(&challenge(level.as_u32()), t0);
            let resp = Packet::decode(&c.poll_transmit().unwrap()).unwrap();
            assert_eq!(resp.header.ptype, ptype::RESPONSE);
            assert_eq!((resp.header.call, resp.header.seq), (0, 0));
            assert_eq!(resp.header.flags, flags::CLIENT_INITIATED);
            let Body::Other(b) = &resp.body else { panic!() };
            let sr = crate::rxkad::handshake::SealedResponse::decode(b).unwrap();
            assert_eq!(sr.kvno, 5);
            let f = sr.open(rxkad_token().session_key).unwrap();
            assert_eq!(f.inc_nonce, 0, "nonce + 1 wraps");
            assert_eq!(f.level, level.as_u32());
            assert_eq!(f.call_ids, [1, 0, 0, 0]);
            assert_eq!((f.epoch, f.cid), (id().epoch, id().cid));

            let mut h = id().header(ptype::DATA, 1, 2, flags::LAST_PACKET);
            h.security_index = 2;
            h.cksum = server.header_cksum(1, 4, 1);
            let reply = Packet {
                header: h,
                body: Body::Data(server.seal(1, 1, b"the config")),
            };
            c.handle(&reply, t0);
            assert_eq!(c.result(), Some(&Ok(b"the config".to_vec())));
        }
    }

    #[test]
    fn secured_call_refuses_bad_replies_and_high_challenges() {
        // A reply with a wrong header cksum, or tampered payload: an error, never data.
        for tamper in [true, false] {
            let (mut c, server, t0) = secured(Level::Encrypt);
            c.poll_transmit();
            let mut h = id().header(ptype::DATA, 1, 2, flags::LAST_PACKET);
            h.cksum = server.header_cksum(1, 4, 1);
            let mut body = server.seal(1, 1, b"chap secret");
            if tamper {
                body[3] ^= 1;
            } else {
                h.cksum ^= 0x10;
            }
            c.handle(
                &Packet {
                    header: h,
                    body: Body::Data(body),
                },
                t0,
            );
            match c.result() {
                Some(Err(CallError::Security(e))) => {
                    assert_eq!(e.code, rxkad_code::RXKADSEALEDINCON)
                }
                r => panic!("{r:?}"),
            }
            let ab = Packet::decode(&c.poll_transmit().unwrap()).unwrap();
            assert!(matches!(
                ab.body,
                Body::Abort {
                    code: 19_270_410,
                    ..
                }
            ));
            assert_eq!(ab.header.call, 1);
        }
        // The server wants encrypt, we are set to auth.
        let (mut c, _, t0) = secured(Level::Auth);
        c.poll_transmit();
        c.handle(&challenge(2), t0);
        match c.result() {
            Some(Err(CallError::Security(e))) => {
                assert_eq!(e.code, rxkad_code::RXKADLEVELFAIL);
                assert!(e.to_string().contains("we are set to auth"), "{e}");
            }
            r => panic!("{r:?}"),
        }
        let ab = Packet::decode(&c.poll_transmit().unwrap()).unwrap();
        assert_eq!(ab.header.call, 0);
        // A connection abort ends the call with its code.
        let (mut c, _, t0) = secured(Level::Encrypt);
        let mut h = id().header(ptype::ABORT, 0, 3, 0);
        h.call = 0;
        c.handle(
            &Packet {
                header: h,
                body: Body::Abort {
                    code: rxkad_code::RXKADEXPIRED,
                    extra: vec![],
                },
            },
            t0,
        );
        assert_eq!(
            c.result(),
            Some(&Err(CallError::Aborted(rxkad_code::RXKADEXPIRED)))
        );
        // An unsecured call ignores challenges (not its connection's business).
        let mut c = ClientCall::new(id(), &[1], 10, t0, Duration::from_secs(5));
        c.poll_transmit();
        c.handle(&challenge(0), t0);
        assert!(c.result().is_none() && c.poll_transmit().is_none());
    }

    #[test]
    fn abort_busy_and_too_large() {
        let t0 = Instant::now();
        let mut c = ClientCall::new(id(), &[1], 10, t0, Duration::from_secs(5));
        c.handle(
            &Packet {
                header: id().header(ptype::ABORT, 0, 9, 0),
                body: Body::Abort {
                    code: -455,
                    extra: vec![],
                },
            },
            t0,
        );
        assert_eq!(c.result(), Some(&Err(CallError::Aborted(-455))));

        let mut c = ClientCall::new(id(), &[1], 10, t0, Duration::from_secs(5));
        c.handle(
            &Packet {
                header: id().header(ptype::BUSY, 0, 1, 0),
                body: Body::Busy(vec![]),
            },
            t0,
        );
        assert_eq!(c.result(), Some(&Err(CallError::Busy)));

        let mut c = ClientCall::new(id(), &[1], 10, t0, Duration::from_secs(5));
        c.poll_transmit();
        c.handle(&reply(1, 2, flags::LAST_PACKET, &[0; 11]), t0);
        assert_eq!(c.result(), Some(&Err(CallError::ReplyTooLarge { max: 10 })));
        let ab = Packet::decode(&c.poll_transmit().expect("abort")).expect("decode");
        assert!(matches!(ab.body, Body::Abort { code: -451, .. }));
    }
}
