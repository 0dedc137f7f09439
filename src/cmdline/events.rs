//! `netboot.events=off|GROUP[:IDX.VAL]`: where boot events go, as a
//! [`EventsTarget`] (`None` is `off`). GROUP alone keeps the default id
//! ([`DEFAULT_EVENTS_TARGET`]). Refused: groups outside the connector
//! socket's 1..=32, and groups and idx below `CN_NETLINK_USERS` (11,
//! connector.h), which belong to kernel connector users (why: the `events`
//! module docs, "Transport").

use crate::netlink::connector::CN_NETLINK_USERS;
use crate::plan::{EventsTarget, DEFAULT_EVENTS_TARGET};
use std::fmt;

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
pub fn parse(value: &str) -> Result<Option<EventsTarget>, EventsError> {
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
        None => (DEFAULT_EVENTS_TARGET.idx, DEFAULT_EVENTS_TARGET.val),
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

#[cfg(test)]
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
            let got = parse(input).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "input {input:?}");
        }
    }
}
