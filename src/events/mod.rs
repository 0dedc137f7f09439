//! Boot events: the schema, the connector emitter, the step recorder, the boot
//! report and the listener's decoding.
//!
//! # Transport
//! Each event is one JSON object in the `data` of one `cn_msg`, multicast on a
//! NETLINK_CONNECTOR group (see `connector.rs`). Defaults: group
//! [`DEFAULT_GROUP`] (26), id [`DEFAULT_ID`] (`idx 0x4e42` "NB", `val 1`).
//! - idx: kernel users own idx `0..CN_NETLINK_USERS` (11, connector.h) and a
//!   message whose `{idx,val}` matches one runs that kernel callback (the
//!   kernel always gets a unicast copy, af_netlink.c), so we stay far above.
//! - group: kernel users broadcast on group = idx (the seed doc: "connector
//!   core assigns netlink group to the user which is equal to its id.idx"), so
//!   groups 1..=10 are theirs and a new kernel user would take 11 next. The
//!   connector socket is created with `CN_NETLINK_USERS + 0xf` = 26 groups,
//!   "additional 0xf numbers … to be used by non-in-kernel users" (seed doc):
//!   26 is the highest group every kernel since 2.6.14 accepts and the last
//!   one a growing kernel user list would reach.
//! - seq: starts at 0 and is incremented with each message (seed doc: "locally
//!   unique sequence … incremented with each message sent"); copied into
//!   `nlmsg_seq`. Listeners find lost events from gaps in it.
//! - ack: the seed doc asks for "a random acknowledge number"; a reply would
//!   carry ack + 1. We never expect a reply, so one random ack is drawn per
//!   emitter and kept for all its messages: it names the stream, so a listener
//!   can tell a restarted agent (same portid, new ack, seq back to 0) from loss.
//!
//! # Schema (v 1)
//! | event        | fields besides `v`, `event`, `t_us` |
//! |--------------|-------------------------------------|
//! | `boot_start` | `boot_us`, `version` |
//! | `step_start` | `step`, `facts`? |
//! | `step_end`   | `step`, `result` (`ok`/`error`), `duration_us`, `error`?, `facts`? |
//! | `boot_end`   | `outcome` (`ok`/`failed:STEP`), `total_us`, `error`? |
//! | `log`        | `level` (`error`…`trace`), `msg` |
//!
//! `t_us`: µs since the agent started (CLOCK_BOOTTIME); `boot_us`: CLOCK_BOOTTIME
//! at agent start, so `boot_us + t_us` lines up with kernel log timestamps.
//! `facts`: a flat object of strings, integers and booleans. `truncated: true`
//! marks an event shortened to fit [`crate::connector::MAX_DATA_LEN`].
//! Unknown fields must be ignored by readers; new fields do not bump `v`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

use crate::connector::{CbId, CN_NETLINK_USERS};

mod emit;
pub mod listen;
mod recorder;
pub mod report;
pub mod sock;

pub use emit::{EmitStats, Emitter};
pub use recorder::{BootOutcome, Recorder, StepHandle};
pub use report::{BootReport, ReportError, StepReport, DEFAULT_REPORT_PATH};

/// Schema version carried in every event and in the report.
pub const SCHEMA_VERSION: u32 = 1;
/// Default connector group (see the module docs for why 26).
pub const DEFAULT_GROUP: u32 = 26;
/// Default `{idx, val}`: idx 0x4e42 is ASCII "NB"; val 1 is the boot event stream.
pub const DEFAULT_ID: CbId = CbId {
    idx: 0x4e42,
    val: 1,
};

/// Step names, dotted `area.action`, in boot order.
pub mod step {
    pub const PSEUDOFS: &str = "pseudofs";
    pub const MODULES: &str = "modules";
    pub const NET_LINK: &str = "net.link";
    pub const NET_ADDR: &str = "net.addr";
    pub const CONFIG_FETCH: &str = "config.fetch";
    pub const ISCSI_CONNECT: &str = "iscsi.connect";
    pub const ISCSI_LOGIN: &str = "iscsi.login";
    pub const SCSI_SCAN: &str = "scsi.scan";
    pub const DISK_WAIT: &str = "disk.wait";
    pub const ROOT_FIND: &str = "root.find";
    pub const QUEUE_TUNE: &str = "queue.tune";
    pub const ROOT_MOUNT: &str = "root.mount";
    pub const SWITCH_ROOT: &str = "switch_root";
    /// All of the above, in order.
    pub const ALL: [&str; 13] = [
        PSEUDOFS,
        MODULES,
        NET_LINK,
        NET_ADDR,
        CONFIG_FETCH,
        ISCSI_CONNECT,
        ISCSI_LOGIN,
        SCSI_SCAN,
        DISK_WAIT,
        ROOT_FIND,
        QUEUE_TUNE,
        ROOT_MOUNT,
        SWITCH_ROOT,
    ];
}

/// Where events go (the plan's type; `None` means `netboot.events=off`).
pub use crate::plan::EventsTarget;

/// The default connector address of boot events.
pub const DEFAULT_TARGET: EventsTarget = EventsTarget {
    group: DEFAULT_GROUP,
    idx: DEFAULT_ID.idx,
    val: DEFAULT_ID.val,
};

/// A `netboot.events=` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsError {
    /// Not `off` and not `GROUP[:IDX.VAL]`.
    Syntax { value: String },
    /// A number that does not parse (`what` is group, idx or val).
    Number {
        value: String,
        what: &'static str,
        text: String,
    },
    /// Group outside 1..=32 (netlink groups of the connector socket).
    GroupRange { value: String, group: u32 },
    /// Group 1..=10: kernel connector users broadcast there.
    GroupKernel { value: String, group: u32 },
    /// idx below CN_NETLINK_USERS would run a kernel callback.
    IdxKernel { value: String, idx: u32 },
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventsError::Syntax { value } => {
                write!(f, "netboot.events={value:?}: expected off or GROUP[:IDX.VAL], e.g. 26:0x4e42.1")
            }
            EventsError::Number { value, what, text } => write!(
                f,
                "netboot.events={value:?}: {what} {text:?} is not a number (decimal or 0x hex)"
            ),
            EventsError::GroupRange { value, group } => {
                write!(f, "netboot.events={value:?}: group {group} is outside 1..=32")
            }
            EventsError::GroupKernel { value, group } => write!(
                f,
                "netboot.events={value:?}: group {group} belongs to a kernel connector user; use 11..=32 (default 26)"
            ),
            EventsError::IdxKernel { value, idx } => write!(
                f,
                "netboot.events={value:?}: idx {idx} is reserved for kernel connector users (< 11); use e.g. 0x4e42"
            ),
        }
    }
}

impl std::error::Error for EventsError {}

fn parse_u32(value: &str, what: &'static str, text: &str) -> Result<u32, EventsError> {
    let r = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    // `parse` accepts a leading '+'; we do not.
    r.ok()
        .filter(|_| !text.starts_with('+'))
        .ok_or_else(|| EventsError::Number {
            value: value.to_string(),
            what,
            text: text.to_string(),
        })
}

/// Parse `netboot.events=off|GROUP[:IDX.VAL]` (numbers decimal or `0x` hex);
/// `None` is `off`.
pub fn parse_events_target(value: &str) -> Result<Option<EventsTarget>, EventsError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    if v.is_empty() {
        return Err(EventsError::Syntax {
            value: value.to_string(),
        });
    }
    let (g, id) = match v.split_once(':') {
        Some((g, id)) => (g, Some(id)),
        None => (v, None),
    };
    let group = parse_u32(value, "group", g)?;
    if !(1..=32).contains(&group) {
        return Err(EventsError::GroupRange {
            value: value.to_string(),
            group,
        });
    }
    if group < CN_NETLINK_USERS {
        return Err(EventsError::GroupKernel {
            value: value.to_string(),
            group,
        });
    }
    let (idx, val) = match id {
        None => (DEFAULT_ID.idx, DEFAULT_ID.val),
        Some(id) => {
            let (i, l) = id.split_once('.').ok_or_else(|| EventsError::Syntax {
                value: value.to_string(),
            })?;
            (parse_u32(value, "idx", i)?, parse_u32(value, "val", l)?)
        }
    };
    if idx < CN_NETLINK_USERS {
        return Err(EventsError::IdxKernel {
            value: value.to_string(),
            idx,
        });
    }
    Ok(Some(EventsTarget { group, idx, val }))
}

/// Facts about a step: a flat map of typed values (strings, integers,
/// booleans). There is deliberately no way to add a [`crate::plan::Secret`]'s
/// content: [`Facts::secret`] records only that one is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts(pub(crate) Map<String, Value>);

impl Facts {
    pub fn new() -> Facts {
        Facts(Map::new())
    }
    pub fn str(mut self, key: &str, value: impl Into<String>) -> Facts {
        self.0.insert(key.to_string(), Value::String(value.into()));
        self
    }
    pub fn u64(mut self, key: &str, value: u64) -> Facts {
        self.0.insert(key.to_string(), Value::from(value));
        self
    }
    pub fn i64(mut self, key: &str, value: i64) -> Facts {
        self.0.insert(key.to_string(), Value::from(value));
        self
    }
    pub fn bool(mut self, key: &str, value: bool) -> Facts {
        self.0.insert(key.to_string(), Value::Bool(value));
        self
    }
    /// Record that a secret is configured, as `"***"` (or `""` when empty).
    pub fn secret(mut self, key: &str, value: &crate::plan::Secret) -> Facts {
        let shown = if value.is_empty() { "" } else { "***" };
        self.0
            .insert(key.to_string(), Value::String(shown.to_string()));
        self
    }
    /// Add every fact of `other`, replacing equal keys.
    pub fn merge(&mut self, other: Facts) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Defence in depth against leaking secrets: every string that leaves the
/// agent (event payload, report, log line) passes through [`Redactor`], which
/// replaces each configured secret by `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Non-empty secrets, longest first so a secret containing another is
    /// replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: Vec<String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// This redactor plus `more` secrets.
    pub fn with(&self, more: Vec<String>) -> Redactor {
        let mut all = self.secrets.clone();
        all.extend(more);
        Redactor::new(all)
    }

    /// `s` with every secret replaced by `***`.
    pub fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        out
    }

    /// True if any secret occurs in `s`.
    pub fn leaks(&self, s: &str) -> bool {
        self.secrets.iter().any(|x| s.contains(x.as_str()))
    }

    /// Redact every string (keys too) inside a JSON value, so the result
    /// still serializes to valid JSON.
    pub fn redact_value(&self, v: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_value(x)),
            Value::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut x) in old {
                    self.redact_value(&mut x);
                    m.insert(self.redact(&k).into_owned(), x);
                }
            }
            _ => {}
        }
    }
}

/// One event as it travels: the union of all event kinds' fields. Used to
/// write (emitter) and to read (listener); unknown fields are ignored on read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub v: u32,
    pub event: String,
    pub t_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub facts: Map<String, Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Event kind names, as in the `event` field.
pub mod kind {
    pub const BOOT_START: &str = "boot_start";
    pub const STEP_START: &str = "step_start";
    pub const STEP_END: &str = "step_end";
    pub const BOOT_END: &str = "boot_end";
    pub const LOG: &str = "log";
}

/// Monotonic time in µs (CLOCK_BOOTTIME: counts from kernel start, like the
/// kernel log's timestamps, and keeps counting across suspend).
pub fn boottime_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (ts.tv_sec as u64).saturating_mul(1_000_000) + (ts.tv_nsec as u64) / 1000
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_target_table() {
        fn g(group: u32, idx: u32, val: u32) -> Result<Option<EventsTarget>, &'static str> {
            Ok(Some(EventsTarget { group, idx, val }))
        }
        let cases: &[(&str, Result<Option<EventsTarget>, &str>)] = &[
            ("off", Ok(None)),
            ("OFF", Ok(None)),
            ("26", g(26, 0x4e42, 1)),
            ("11:0x4e42.1", g(11, 0x4e42, 1)),
            ("32:20000.0x10", g(32, 20000, 16)),
            (
                "",
                Err(r#"netboot.events="": expected off or GROUP[:IDX.VAL], e.g. 26:0x4e42.1"#),
            ),
            (
                "26:77",
                Err(r#"netboot.events="26:77": expected off or GROUP[:IDX.VAL], e.g. 26:0x4e42.1"#),
            ),
            (
                "x",
                Err(r#"netboot.events="x": group "x" is not a number (decimal or 0x hex)"#),
            ),
            (
                "+26",
                Err(r#"netboot.events="+26": group "+26" is not a number (decimal or 0x hex)"#),
            ),
            (
                "26:0xzz.1",
                Err(
                    r#"netboot.events="26:0xzz.1": idx "0xzz" is not a number (decimal or 0x hex)"#,
                ),
            ),
            (
                "26:99.",
                Err(r#"netboot.events="26:99.": val "" is not a number (decimal or 0x hex)"#),
            ),
            ("0", Err(r#"netboot.events="0": group 0 is outside 1..=32"#)),
            (
                "33",
                Err(r#"netboot.events="33": group 33 is outside 1..=32"#),
            ),
            (
                "1",
                Err(
                    r#"netboot.events="1": group 1 belongs to a kernel connector user; use 11..=32 (default 26)"#,
                ),
            ),
            (
                "26:1.1",
                Err(
                    r#"netboot.events="26:1.1": idx 1 is reserved for kernel connector users (< 11); use e.g. 0x4e42"#,
                ),
            ),
        ];
        for (input, want) in cases {
            let got = parse_events_target(input).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "input {input:?}");
        }
    }

    #[test]
    fn redactor_replaces_longest_first_and_keeps_json_valid() {
        let r = Redactor::new(vec!["".into(), "pa\"ss".into(), "pa\"ssword".into()]);
        assert_eq!(r.redact("x pa\"ssword y pa\"ss"), "x *** y ***");
        let mut v = serde_json::json!({"pa\"ss": ["pa\"ss", 1, {"k": "1pa\"ss2"}]});
        r.redact_value(&mut v);
        assert_eq!(v.to_string(), r#"{"***":["***",1,{"k":"1***2"}]}"#);
        assert!(!r.leaks(&v.to_string()));
    }

    #[test]
    fn facts_are_typed_and_secrets_masked() {
        let f = Facts::new()
            .str("target", "iqn.x")
            .u64("lun", 0)
            .bool("mutual", true)
            .secret("chap", &crate::plan::Secret::new("hunter2hunter2"));
        assert_eq!(
            serde_json::to_string(f.as_map()).unwrap(),
            r#"{"chap":"***","lun":0,"mutual":true,"target":"iqn.x"}"#
        );
    }
}
