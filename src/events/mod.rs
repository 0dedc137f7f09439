//! Boot events: the schema, the connector emitter, the step recorder, the boot
//! report and the listener's decoding.
//!
//! # Transport
//! Each event is one JSON object in the `data` of one `cn_msg`, multicast on a
//! NETLINK_CONNECTOR group (see `netlink/connector.rs`). Defaults: group
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
//! | `step_start` | `step`, `start_us`?, `facts`? |
//! | `step_end`   | `step`, `result` (`ok`/`error`), `start_us`?, `duration_us`, `error`?, `facts`? |
//! | `boot_end`   | `outcome` (`ok`/`failed:STEP`), `total_us`, `error`? |
//! | `log`        | `level` (`error`…`trace`), `msg` |
//!
//! `start_us`: when the step began (µs since the agent started), so a step's
//! span is `start_us` … `start_us + duration_us` even when its events are
//! sent later (steps run by a helper thread are recorded when it is joined;
//! parallel steps overlap on that timeline).
//! `t_us`: µs since the agent started (CLOCK_BOOTTIME); `boot_us`: CLOCK_BOOTTIME
//! at agent start, so `boot_us + t_us` lines up with kernel log timestamps.
//! `facts`: a flat object of strings, integers and booleans. `truncated: true`
//! marks an event shortened to fit [`crate::netlink::connector::MAX_DATA_LEN`].
//! Unknown fields must be ignored by readers; new fields do not bump `v`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::netlink::connector::CbId;
use crate::plan::DEFAULT_EVENTS_TARGET;

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
/// Default connector group (see the module docs for why 26): the plan's
/// [`DEFAULT_EVENTS_TARGET`]'s.
pub const DEFAULT_GROUP: u32 = DEFAULT_EVENTS_TARGET.group;
/// Default `{idx, val}`: idx 0x4e42 is ASCII "NB"; val 1 is the boot event stream.
pub const DEFAULT_ID: CbId = CbId {
    idx: DEFAULT_EVENTS_TARGET.idx,
    val: DEFAULT_EVENTS_TARGET.val,
};

/// Where events go (the plan's type; `None` means `netboot.events=off`);
/// re-exported because it is the emitter's and the recorder's argument.
pub use crate::plan::EventsTarget;

/// Step names, dotted `area.action`, in boot order.
pub mod step {
    pub const PSEUDOFS: &str = "pseudofs";
    pub const MODULES: &str = "modules";
    /// `rd.iscsi.firmware` / `rd.iscsi.ibft`: the iBFT read into the plan.
    pub const FIRMWARE_IBFT: &str = "firmware.ibft";
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
    /// Helper-thread steps, overlapping the ones above: the iSCSI and SCSI
    /// modules (joined before `iscsi.connect`), then the root's file-system
    /// modules (joined once the root device is present).
    pub const MODULES_STORAGE: &str = "modules.storage";
    pub const MODULES_FS: &str = "modules.fs";
    pub const SWITCH_ROOT: &str = "switch_root";
    /// All of the above, in order.
    pub const ALL: [&str; 14] = [
        PSEUDOFS,
        MODULES,
        FIRMWARE_IBFT,
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
    pub start_us: Option<u64>,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
