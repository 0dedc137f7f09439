//! The listener's logic, without the socket: decode datagrams, keep our
//! `{idx,val}`, find gaps in `seq` per sender, format lines.

use serde_json::Value;
use std::collections::HashMap;

use super::report::{facts_text, fmt_duration};
use super::{kind, EventRecord};
use crate::escape::escape_controls;
use crate::netlink::connector::{messages, CbId};

/// What one datagram turned into.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A valid event: the payload as JSON plus its cn_msg seq and sender.
    Event {
        sender: u32,
        seq: u32,
        payload: Value,
    },
    /// `count` events of `sender` never arrived: seq `first..=last`.
    Lost {
        sender: u32,
        count: u64,
        first: u32,
        last: u32,
    },
    /// Our idx/val but undecodable (why), or an undecodable datagram.
    Malformed(String),
    /// A well-formed cn_msg for another `{idx,val}` on the same group.
    Foreign,
}

/// Counters for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenStats {
    pub events: u64,
    pub lost: u64,
    pub overflows: u64,
    pub malformed: u64,
    pub foreign: u64,
}

/// Per-sender stream state: the ack that names the stream and the last seq.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ack: u32,
    last_seq: u32,
}

/// Decodes datagrams for one `{idx,val}`.
#[derive(Debug)]
pub struct Listener {
    id: CbId,
    streams: HashMap<u32, Stream>,
    pub stats: ListenStats,
}

impl Listener {
    pub fn new(id: CbId) -> Listener {
        Listener {
            id,
            streams: HashMap::new(),
            stats: ListenStats::default(),
        }
    }

    /// Decode one datagram received from port id `sender`.
    pub fn feed(&mut self, datagram: &[u8], sender: u32) -> Vec<Item> {
        let mut items = Vec::new();
        for m in messages(datagram) {
            let (_, cn) = match m {
                Ok(x) => x,
                Err(e) => {
                    self.stats.malformed += 1;
                    items.push(Item::Malformed(format!("from port {sender}: {e}")));
                    continue;
                }
            };
            if cn.id != self.id {
                self.stats.foreign += 1;
                items.push(Item::Foreign);
                continue;
            }
            let payload = match serde_json::from_slice::<Value>(&cn.data) {
                Ok(v)
                    if v.is_object()
                        && serde_json::from_value::<EventRecord>(v.clone()).is_ok() =>
                {
                    v
                }
                Ok(_) => {
                    self.stats.malformed += 1;
                    items.push(Item::Malformed(format!(
                        "from port {sender}: seq {}: not a v1 event object",
                        cn.seq
                    )));
                    continue;
                }
                Err(e) => {
                    self.stats.malformed += 1;
                    items.push(Item::Malformed(format!(
                        "from port {sender}: seq {}: not JSON: {e}",
                        cn.seq
                    )));
                    continue;
                }
            };
            // seq is "incremented with each message sent" (connector seed
            // doc); a jump forward means lost messages. A different ack is a
            // new stream (restarted agent); a step back is treated the same.
            match self.streams.get(&sender) {
                Some(s)
                    if s.ack == cn.ack
                        && cn.seq > s.last_seq.wrapping_add(1)
                        && cn.seq > s.last_seq =>
                {
                    let (first, last) = (s.last_seq + 1, cn.seq - 1);
                    let count = u64::from(last - first) + 1;
                    self.stats.lost += count;
                    items.push(Item::Lost {
                        sender,
                        count,
                        first,
                        last,
                    });
                }
                _ => {}
            }
            self.streams.insert(
                sender,
                Stream {
                    ack: cn.ack,
                    last_seq: cn.seq,
                },
            );
            self.stats.events += 1;
            items.push(Item::Event {
                sender,
                seq: cn.seq,
                payload,
            });
        }
        items
    }

    /// recv() said ENOBUFS: the socket's queue overflowed and the kernel
    /// dropped messages; the next event's seq gap tells how many.
    pub fn overflow(&mut self) {
        self.stats.overflows += 1;
    }
}

/// `--json` line: the payload with `seq` added.
pub fn json_line(seq: u32, payload: &Value) -> String {
    let mut p = payload.clone();
    if let Value::Object(m) = &mut p {
        m.insert("seq".to_string(), Value::from(seq));
    }
    p.to_string()
}

/// `--json` line for a gap.
pub fn lost_json(count: u64, first: u32, last: u32) -> String {
    serde_json::json!({"event": "lost", "reason": "gap", "count": count, "first_seq": first, "last_seq": last})
        .to_string()
}

/// Human line for a gap (stderr).
pub fn lost_text(count: u64, first: u32, last: u32) -> String {
    format!("lost {count} events (seq {first}..{last})")
}

/// Human line:
/// `  2.345678 iscsi.login      ok       812.0ms  portal=… target=…`
pub fn human_line(payload: &Value) -> String {
    let r: EventRecord = match serde_json::from_value(payload.clone()) {
        Ok(r) => r,
        Err(_) => return payload.to_string(),
    };
    let t = format!("{:>10.6}", r.t_us as f64 / 1e6);
    let (name, status, dur, mut details) = match r.event.as_str() {
        kind::BOOT_START => (
            "boot".to_string(),
            "start".to_string(),
            String::new(),
            format!(
                "netboot {} at +{:.6}s since kernel start",
                r.version.as_deref().unwrap_or("?"),
                r.boot_us.unwrap_or(0) as f64 / 1e6
            ),
        ),
        kind::STEP_START => (
            r.step.clone().unwrap_or_default(),
            "start".to_string(),
            String::new(),
            facts_text(&r.facts),
        ),
        kind::STEP_END => (
            r.step.clone().unwrap_or_default(),
            r.result.clone().unwrap_or_default(),
            r.duration_us.map(fmt_duration).unwrap_or_default(),
            facts_text(&r.facts),
        ),
        kind::BOOT_END => {
            let outcome = r.outcome.clone().unwrap_or_default();
            let (status, details) = match outcome.split_once(':') {
                Some((st, step)) => (st.to_string(), format!("step={step}")),
                None => (outcome, String::new()),
            };
            (
                "boot".to_string(),
                status,
                r.total_us.map(fmt_duration).unwrap_or_default(),
                details,
            )
        }
        kind::LOG => (
            "log".to_string(),
            r.level.clone().unwrap_or_default(),
            String::new(),
            r.msg.clone().unwrap_or_default(),
        ),
        other => (
            other.to_string(),
            String::new(),
            String::new(),
            facts_text(&r.facts),
        ),
    };
    if let Some(e) = &r.error {
        if !details.is_empty() {
            details.push(' ');
        }
        details.push_str(&format!("error={e:?}"));
    }
    if r.truncated {
        details.push_str(" [truncated]");
    }
    // Step names, facts and log messages carry what targets, DHCP and the
    // config server sent: one event, one line, whatever they hold.
    let line = format!("{t} {name:<16} {status:<6} {dur:>9}  {details}");
    escape_controls(line.trim_end()).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::netlink::connector::CnMsg;

    const ID: CbId = CbId {
        idx: 0x4e42,
        val: 1,
    };

    fn dgram(id: CbId, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
        CnMsg {
            id,
            seq,
            ack,
            flags: 0,
            data: data.to_vec(),
        }
        .encode_nl(0)
        .unwrap()
    }

    const EV: &[u8] = br#"{"v":1,"event":"log","t_us":1,"level":"info","msg":"m"}"#;

    #[test]
    fn gaps_are_counted_per_sender_and_stream() {
        let mut l = Listener::new(ID);
        assert_eq!(l.feed(&dgram(ID, 0, 9, EV), 100).len(), 1);
        assert_eq!(
            l.feed(&dgram(ID, 5, 9, EV), 200).len(),
            1,
            "other sender: new stream"
        );
        let items = l.feed(&dgram(ID, 4, 9, EV), 100);
        assert_eq!(
            items[0],
            Item::Lost {
                sender: 100,
                count: 3,
                first: 1,
                last: 3
            }
        );
        // New ack: restarted agent, seq back to 0 is no loss.
        assert_eq!(l.feed(&dgram(ID, 0, 10, EV), 100).len(), 1);
        assert_eq!(l.stats.lost, 3);
        assert_eq!(l.stats.events, 4);
    }

    #[test]
    fn garbage_is_skipped() {
        let mut l = Listener::new(ID);
        assert!(matches!(l.feed(&[1, 2, 3], 1)[0], Item::Malformed(_)));
        assert!(matches!(
            l.feed(&dgram(ID, 0, 0, b"{nope"), 1)[0],
            Item::Malformed(_)
        ));
        assert!(matches!(
            l.feed(&dgram(ID, 0, 0, b"[1]"), 1)[0],
            Item::Malformed(_)
        ));
        assert_eq!(
            l.feed(&dgram(CbId { idx: 1, val: 1 }, 0, 0, EV), 1),
            [Item::Foreign]
        );
        assert_eq!(l.stats.malformed, 3);
        assert!(matches!(
            l.feed(&dgram(ID, 1, 0, EV), 1)[0],
            Item::Event { seq: 1, .. }
        ));
    }

    #[test]
    fn human_lines() {
        let v: Value = serde_json::from_str(
            r#"{"v":1,"event":"step_end","t_us":2345678,"step":"iscsi.login","result":"ok","duration_us":812000,"facts":{"portal":"198.18.0.1:3260"}}"#,
        )
        .unwrap();
        assert_eq!(
            human_line(&v),
            "  2.345678 iscsi.login      ok       812.0ms  portal=198.18.0.1:3260"
        );
        // A forged log message or fact (a target's name, a DHCP host name)
        // stays on its event's line.
        let v: Value = serde_json::from_str(
            r#"{"v":1,"event":"log","t_us":1,"level":"info","msg":"m\n  9.000000 boot ok\u001b[2K"}"#,
        )
        .unwrap();
        assert_eq!(
            human_line(&v),
            "  0.000001 log              info              m\\n  9.000000 boot ok\\u{1b}[2K"
        );
        let v: Value = serde_json::from_str(
            r#"{"v":1,"event":"step_end","t_us":1,"step":"net.link","result":"ok","facts":{"hostname":"h\nx"}}"#,
        )
        .unwrap();
        assert_eq!(
            human_line(&v),
            "  0.000001 net.link         ok                hostname=h\\nx"
        );
        assert_eq!(
            json_line(7, &serde_json::json!({"v":1})),
            r#"{"seq":7,"v":1}"#
        );
    }
}
