//! The emitter: turns events into connector messages and multicasts them.
//! It never blocks and never fails the boot: send errors are counted and
//! logged at debug level only.

use rustix::io::Errno;
use serde_json::Value;

use super::sock::CnSocket;
use super::{kind, EventRecord, EventsTarget, Facts, SCHEMA_VERSION};
use crate::netlink::connector::{CbId, CnMsg, MAX_DATA_LEN};
use crate::plan::secret::Redactor;
use crate::sys::clock::boottime_us;

/// What happened to the events offered to an [`Emitter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmitStats {
    /// Handed to the kernel without error.
    pub sent: u64,
    /// ECONNREFUSED: the multicast was delivered but the kernel's unicast copy
    /// was refused (no connector in this netns, reference §1.4).
    pub refused: u64,
    /// ENOBUFS / EAGAIN: dropped under memory pressure; not retried.
    pub dropped: u64,
    /// Any other error, or no socket (events off or socket() failed).
    pub failed: u64,
    /// Events shortened to fit the connector limit.
    pub truncated: u64,
}

/// Sends boot events. Create one per boot; see the module docs of
/// [`crate::events`] for group, id, seq and ack.
#[derive(Debug)]
pub struct Emitter {
    sock: Option<CnSocket>,
    group: u32,
    id: CbId,
    seq: u32,
    ack: u32,
    origin_us: u64,
    redactor: Redactor,
    stats: EmitStats,
}

/// Cut `s` to at most `max` bytes at a UTF-8 character boundary.
fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Facts' strings are cut to this many bytes first when an event is too big.
const FACT_STR_MAX: usize = 256;

impl Emitter {
    /// An emitter for `target`. Never fails: if the socket cannot be made
    /// (no CONFIG_CONNECTOR, no permission) events are counted as failed.
    /// `secrets` are replaced by `***` in every payload.
    /// `target` `None` (`netboot.events=off`) sends nothing.
    pub fn new(target: Option<EventsTarget>, secrets: Vec<String>) -> Emitter {
        let (sock, group, id) = match target {
            None => (None, 0, CbId { idx: 0, val: 0 }),
            Some(EventsTarget { group, idx, val }) => {
                let sock = match CnSocket::open() {
                    Ok(s) => Some(s),
                    Err(e) => {
                        log::debug!("events: {e}; boot events disabled");
                        None
                    }
                };
                (sock, group, CbId { idx, val })
            }
        };
        Emitter {
            sock,
            group,
            id,
            seq: 0,
            ack: crate::entropy::unique_u32(),
            origin_us: boottime_us(),
            redactor: Redactor::new(secrets),
            stats: EmitStats::default(),
        }
    }

    /// Apply a fetched config: redact `more` secrets from now on, and send
    /// to `target` (a changed group or id; `None` stops sending). The
    /// sequence numbers continue, so a listener sees no gap.
    pub fn retarget(&mut self, target: Option<EventsTarget>, more: Vec<String>) {
        self.redactor = self.redactor.with(more);
        match target {
            None => self.sock = None,
            Some(EventsTarget { group, idx, val }) => {
                if self.sock.is_none() {
                    self.sock = CnSocket::open().ok();
                }
                self.group = group;
                self.id = CbId { idx, val };
            }
        }
    }

    /// µs since this emitter (≈ the agent) started.
    pub fn t_us(&self) -> u64 {
        boottime_us().saturating_sub(self.origin_us)
    }
    /// CLOCK_BOOTTIME in µs when this emitter was created.
    pub fn origin_us(&self) -> u64 {
        self.origin_us
    }
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
    pub fn stats(&self) -> EmitStats {
        self.stats
    }
    /// The seq the next message will carry.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }
    /// Our netlink port id (0 without a socket).
    pub fn portid(&self) -> u32 {
        self.sock.as_ref().map_or(0, CnSocket::portid)
    }

    fn record(&self, event: &str) -> EventRecord {
        EventRecord {
            v: SCHEMA_VERSION,
            event: event.to_string(),
            t_us: self.t_us(),
            ..Default::default()
        }
    }

    pub fn boot_start(&mut self) {
        let mut r = self.record(kind::BOOT_START);
        r.boot_us = Some(self.origin_us);
        r.version = Some(env!("CARGO_PKG_VERSION").to_string());
        self.emit(r);
    }

    pub fn step_start(&mut self, step: &str, facts: &Facts) {
        let mut r = self.record(kind::STEP_START);
        r.step = Some(step.to_string());
        r.facts = facts.0.clone();
        self.emit(r);
    }

    /// `step_start` for a step that began at `start_us` (µs since the
    /// agent started), which may be before now.
    pub fn step_start_at(&mut self, step: &str, start_us: u64, facts: &Facts) {
        let mut r = self.record(kind::STEP_START);
        r.step = Some(step.to_string());
        r.start_us = Some(start_us);
        r.facts = facts.0.clone();
        self.emit(r);
    }

    /// `step_end` carrying the step's start too: its whole span.
    pub fn step_end_at(
        &mut self,
        step: &str,
        start_us: u64,
        duration_us: u64,
        result: Result<(), &str>,
        facts: &Facts,
    ) {
        let mut r = self.record(kind::STEP_END);
        r.step = Some(step.to_string());
        r.start_us = Some(start_us);
        r.duration_us = Some(duration_us);
        r.result = Some(if result.is_ok() { "ok" } else { "error" }.to_string());
        r.error = result.err().map(str::to_string);
        r.facts = facts.0.clone();
        self.emit(r);
    }

    /// `result`: `Err(text)` for a failed step.
    pub fn step_end(
        &mut self,
        step: &str,
        duration_us: u64,
        result: Result<(), &str>,
        facts: &Facts,
    ) {
        let mut r = self.record(kind::STEP_END);
        r.step = Some(step.to_string());
        r.duration_us = Some(duration_us);
        r.result = Some(if result.is_ok() { "ok" } else { "error" }.to_string());
        r.error = result.err().map(str::to_string);
        r.facts = facts.0.clone();
        self.emit(r);
    }

    /// `outcome`: `ok` or `failed:STEP`; `error` the failing step's message.
    pub fn boot_end(&mut self, outcome: &str, error: Option<&str>, total_us: u64) {
        let mut r = self.record(kind::BOOT_END);
        r.outcome = Some(outcome.to_string());
        r.error = error.map(str::to_string);
        r.total_us = Some(total_us);
        self.emit(r);
    }

    pub fn log(&mut self, level: log::Level, msg: &str) {
        let mut r = self.record(kind::LOG);
        r.level = Some(level.as_str().to_ascii_lowercase());
        r.msg = Some(msg.to_string());
        self.emit(r);
    }

    /// The JSON bytes that would be sent for `rec`: secrets redacted, at
    /// most [`MAX_DATA_LEN`] bytes, always one valid JSON object.
    pub fn payload(&self, rec: &EventRecord) -> Vec<u8> {
        self.build(rec).0
    }

    /// [`Self::payload`] and whether it had to be shortened.
    fn build(&self, rec: &EventRecord) -> (Vec<u8>, bool) {
        let mut r = rec.clone();
        let red = &self.redactor;
        for s in [
            &mut r.step,
            &mut r.result,
            &mut r.outcome,
            &mut r.version,
            &mut r.level,
            &mut r.msg,
            &mut r.error,
        ]
        .into_iter()
        .flatten()
        {
            *s = red.redact(s).into_owned();
        }
        let mut facts = Value::Object(std::mem::take(&mut r.facts));
        red.redact_value(&mut facts);
        if let Value::Object(m) = facts {
            r.facts = m;
        }
        let (out, truncated) = fit(r);
        if red.leaks(&String::from_utf8_lossy(&out)) {
            // Only possible outside strings (a secret made of digits matching
            // a number): send the bare event kind rather than risk it.
            let bare = EventRecord {
                v: rec.v,
                event: red.redact(&rec.event).into_owned(),
                t_us: rec.t_us,
                truncated: true,
                ..Default::default()
            };
            return (serde_json::to_vec(&bare).unwrap_or_default(), true);
        }
        (out, truncated)
    }

    /// Send one event (fills in nothing: build it with the helpers above).
    pub fn emit(&mut self, rec: EventRecord) {
        let (data, truncated) = self.build(&rec);
        if truncated {
            self.stats.truncated += 1;
        }
        self.send_raw(data);
    }

    /// Frame `data` as the next cn_msg and multicast it.
    fn send_raw(&mut self, data: Vec<u8>) {
        let seq = self.seq;
        // The seq is consumed even if sending fails: the multicast may have
        // gone out before the kernel copy failed (af_netlink.c netlink_sendmsg).
        self.seq = self.seq.wrapping_add(1);
        let Some(sock) = &self.sock else {
            self.stats.failed += 1;
            return;
        };
        let msg = CnMsg {
            id: self.id,
            seq,
            ack: self.ack,
            flags: 0,
            data,
        };
        let frame = match msg.encode_nl(sock.portid()) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("events: seq {seq}: {e}");
                self.stats.failed += 1;
                return;
            }
        };
        match sock.send_group(self.group, &frame) {
            Ok(_) => self.stats.sent += 1,
            Err(Errno::CONNREFUSED) => self.stats.refused += 1,
            Err(e) if e == Errno::NOBUFS || e == Errno::AGAIN => {
                log::debug!("events: seq {seq} dropped: {e}");
                self.stats.dropped += 1;
            }
            Err(e) => {
                log::debug!("events: seq {seq} to group {}: {e}", self.group);
                self.stats.failed += 1;
            }
        }
    }
}

/// Serialize `r`, shrinking it until it fits in one connector message:
/// long fact strings first, then whole facts (last key first), then the
/// longest free-text field. Strings are cut at character boundaries and the
/// result is always re-serialized, so it is always valid JSON.
fn fit(mut r: EventRecord) -> (Vec<u8>, bool) {
    let ser = |r: &EventRecord| serde_json::to_vec(r).unwrap_or_default();
    let mut out = ser(&r);
    if out.len() <= MAX_DATA_LEN {
        return (out, false);
    }
    r.truncated = true;
    for v in r.facts.values_mut() {
        if let Value::String(s) = v {
            truncate_at_char(s, FACT_STR_MAX);
        }
    }
    out = ser(&r);
    while out.len() > MAX_DATA_LEN && !r.facts.is_empty() {
        if let Some(k) = r.facts.keys().next_back().cloned() {
            r.facts.remove(&k);
        }
        out = ser(&r);
    }
    while out.len() > MAX_DATA_LEN {
        let longest = [&mut r.msg, &mut r.error, &mut r.step, &mut r.outcome]
            .into_iter()
            .flatten()
            .max_by_key(|s| s.len());
        match longest {
            Some(s) if !s.is_empty() => {
                let keep = s.len() * 3 / 4;
                truncate_at_char(s, keep);
            }
            _ => break,
        }
        out = ser(&r);
    }
    (out, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn off(secrets: &[&str]) -> Emitter {
        Emitter::new(None, secrets.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn payload_redacts_every_field() {
        let e = off(&["s3cr3t-chap"]);
        let rec = EventRecord {
            v: 1,
            event: "step_end".into(),
            step: Some("iscsi.login".into()),
            error: Some("CHAP failed for s3cr3t-chap".into()),
            facts: Facts::new()
                .str("note", "xs3cr3t-chapx")
                .str("s3cr3t-chap", "k")
                .0,
            ..Default::default()
        };
        let p = String::from_utf8(e.payload(&rec)).unwrap();
        assert!(!p.contains("s3cr3t-chap"), "{p}");
        assert!(p.contains("CHAP failed for ***"), "{p}");
        serde_json::from_str::<Value>(&p).unwrap();
    }

    #[test]
    fn oversized_payload_stays_valid_json_at_char_boundary() {
        let e = off(&[]);
        // Multi-byte characters so a naive byte cut would split one.
        let big = "é€😀".repeat(4000);
        let mut facts = Facts::new();
        for i in 0..100 {
            facts = facts.str(&format!("k{i:03}"), big.clone());
        }
        let rec = EventRecord {
            v: 1,
            event: "step_end".into(),
            error: Some(big.clone()),
            msg: Some(big.clone()),
            facts: facts.0,
            ..Default::default()
        };
        let p = e.payload(&rec);
        assert!(p.len() <= MAX_DATA_LEN, "{}", p.len());
        let back: EventRecord = serde_json::from_slice(&p).unwrap();
        assert!(back.truncated);
        assert_eq!(back.event, "step_end");
        // Control characters expand 6x when escaped; still fits.
        let ctl = EventRecord {
            v: 1,
            event: "log".into(),
            msg: Some("\u{1}".repeat(20_000)),
            ..Default::default()
        };
        let p = e.payload(&ctl);
        assert!(p.len() <= MAX_DATA_LEN);
        assert!(serde_json::from_slice::<EventRecord>(&p).unwrap().truncated);
    }

    #[test]
    fn small_payload_is_untouched() {
        let e = off(&[]);
        let rec = EventRecord {
            v: 1,
            event: "log".into(),
            t_us: 5,
            level: Some("info".into()),
            msg: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(
            e.payload(&rec),
            br#"{"v":1,"event":"log","t_us":5,"level":"info","msg":"hi"}"#
        );
    }

    #[test]
    fn off_emitter_counts_and_advances_seq() {
        let mut e = off(&[]);
        e.boot_start();
        e.log(log::Level::Info, "x");
        assert_eq!(e.next_seq(), 2);
        assert_eq!(e.stats().failed, 2);
    }
}
