//! The recovery history: what `netboot status` shows. Pure: a bounded list
//! of records with the session's state, serialised to
//! /run/netboot/recovery.json by the resident.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Records kept (the oldest go first): a flapping link must not grow the
/// resident's memory without bound.
pub const MAX_RECORDS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Logged in; the resident listens.
    LoggedIn,
    /// A connection error is being recovered.
    Recovering,
    /// iscsid runs: it owns the session; the resident has left.
    HandedToIscsid,
    /// The session is gone (logged out, destroyed).
    Gone,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::LoggedIn => "logged in",
            State::Recovering => "recovering",
            State::HandedToIscsid => "handed to iscsid",
            State::Gone => "gone",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// CLOCK_BOOTTIME, µs (the printk clock).
    pub t_us: u64,
    pub event: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub sid: u32,
    pub target: String,
    pub pid: u32,
    pub state: State,
    pub recoveries: u32,
    /// Records dropped because of [`MAX_RECORDS`].
    pub dropped: u64,
    pub records: Vec<Record>,
}

impl History {
    pub fn new(sid: u32, target: &str, pid: u32) -> History {
        History {
            sid,
            target: target.to_string(),
            pid,
            state: State::LoggedIn,
            recoveries: 0,
            dropped: 0,
            records: Vec::new(),
        }
    }

    pub fn push(&mut self, t_us: u64, event: &str, detail: impl Into<String>) {
        if self.records.len() >= MAX_RECORDS {
            self.records.remove(0);
            self.dropped += 1;
        }
        self.records.push(Record {
            t_us,
            event: event.to_string(),
            detail: detail.into(),
        });
    }

    /// Text for `netboot status`; values from the file are escaped.
    pub fn render(&self) -> String {
        let esc = crate::escape::escape_controls;
        let mut s = format!(
            "session {} ({}): {}; resident pid {}; {} recover{}\n",
            self.sid,
            esc(&self.target),
            self.state.name(),
            self.pid,
            self.recoveries,
            if self.recoveries == 1 { "y" } else { "ies" }
        );
        if self.dropped > 0 {
            let _ = writeln!(s, "  ({} older records dropped)", self.dropped);
        }
        for r in &self.records {
            let _ = writeln!(
                s,
                "  [{:>12.6}] {:<12} {}",
                r.t_us as f64 / 1e6,
                esc(&r.event),
                esc(&r.detail)
            );
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_rendered() {
        let mut h = History::new(1, "iqn.x:\u{1b}[2J", 99);
        for i in 0..(MAX_RECORDS as u64 + 5) {
            h.push(i * 1_000_000, "attempt", format!("n={i}"));
        }
        assert_eq!(h.records.len(), MAX_RECORDS);
        assert_eq!(h.dropped, 5);
        assert_eq!(h.records[0].detail, "n=5");
        h.recoveries = 1;
        let text = h.render();
        assert!(
            text.starts_with(
                "session 1 (iqn.x:\\u{1b}[2J): logged in; resident pid 99; 1 recovery\n"
            ),
            "{text}"
        );
        assert!(text.contains("(5 older records dropped)"));
        let back: History = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }
}
