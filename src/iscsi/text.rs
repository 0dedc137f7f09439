//! Text keys and their negotiation (RFC 7143 §6, §13).
//!
//! Data segments of Login and Text PDUs carry `key=value` pairs, each ended by
//! a NUL. Keys are negotiated by kind: numerical (min or max), boolean (AND or
//! OR), list (the responder picks the first it supports) or declarative (each
//! side states its own value). Unknown keys are answered `NotUnderstood`.

use std::fmt;

/// Longest key name (RFC 7143 §6.1: 63 bytes) and value we accept (8192 for
/// ordinary values; a SendTargets reply is split into many pairs).
pub const MAX_KEY_LEN: usize = 63;
pub const MAX_VALUE_LEN: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// A pair without `=` (the raw text, truncated).
    NoEquals(String),
    /// A key that is empty, too long or holds characters outside RFC 7143 §6.1.
    BadKey(String),
    ValueTooLong {
        key: String,
        len: usize,
    },
    /// The data segment is not terminated by NUL (RFC 7143 §6.1).
    Unterminated,
    NotUtf8,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::NoEquals(s) => write!(f, "text pair without '=': {s:?}"),
            TextError::BadKey(k) => write!(f, "invalid key name {k:?}"),
            TextError::ValueTooLong { key, len } => {
                write!(f, "value of {key} is {len} bytes (limit {MAX_VALUE_LEN})")
            }
            TextError::Unterminated => write!(f, "text data not NUL-terminated"),
            TextError::NotUtf8 => write!(f, "text data is not UTF-8"),
        }
    }
}

impl std::error::Error for TextError {}

fn valid_key(k: &str) -> bool {
    // RFC 7143 §6.1: letters, digits, '.', '-', '+', '@', '_'; vendor keys
    // start with "X-" or "X#".
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@#".contains(&b))
}

/// Parse a data segment into pairs, order kept. A trailing partial pair
/// (continued in the next PDU) must be joined by the caller first.
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    // Padding after the last NUL is not part of DataSegmentLength, but some
    // targets include extra NULs: skip empty pairs.
    if !data.is_empty() && data.last() != Some(&0) {
        return Err(TextError::Unterminated);
    }
    let mut out = Vec::new();
    for raw in data.split(|&b| b == 0) {
        if raw.is_empty() {
            continue;
        }
        let s = std::str::from_utf8(raw).map_err(|_| TextError::NotUtf8)?;
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| TextError::NoEquals(s.chars().take(64).collect()))?;
        if !valid_key(k) {
            return Err(TextError::BadKey(k.chars().take(64).collect()));
        }
        if v.len() > MAX_VALUE_LEN {
            return Err(TextError::ValueTooLong {
                key: k.to_string(),
                len: v.len(),
            });
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Encode pairs as `k=v\0…`.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref().as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_ref().as_bytes());
        out.push(0);
    }
    out
}

/// Data segment limit for Login and Text PDUs until the peer declared its
/// MaxRecvDataSegmentLength (RFC 7143 §13.12 default), and the most the
/// kernel's iscsi_tcp carries in one login or text PDU (reference §2:
/// larger SEND_PDU data is refused).
pub const LOGIN_DATA_SEGMENT: usize = 8192;

/// Cut one logical text data segment (RFC 7143 §6.1) into data segments
/// of at most `limit` bytes, to go out with the C bit on all but the last.
/// A piece ends after a NUL where one lies in its window, so each pair
/// stays whole for targets that join text only at pair boundaries; a pair
/// longer than the limit is cut inside, which RFC 7143 §6.1 allows
/// ("key=value pairs may span PDU boundaries"). Empty text is one empty
/// piece. The pieces concatenate back to `data`.
pub fn split_segments(data: &[u8], limit: usize) -> Vec<&[u8]> {
    let limit = limit.max(1);
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() > limit {
        let window = rest.get(..limit).unwrap_or(rest);
        let cut = window
            .iter()
            .rposition(|&b| b == 0)
            .map_or(limit, |nul| nul + 1);
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Special answers (RFC 7143 §6.2).
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";
pub const IRRELEVANT: &str = "Irrelevant";
pub const REJECT: &str = "Reject";

/// How a key is negotiated (RFC 7143 §6.2.2, §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Result is the smaller of the two values, within `lo..=hi`.
    Min { lo: u32, hi: u32 },
    /// Result is the larger of the two values, within `lo..=hi`.
    Max { lo: u32, hi: u32 },
    /// Result is Yes only if both say Yes.
    And,
    /// Result is Yes if either says Yes.
    Or,
    /// Responder picks the first value of the offer it supports.
    List,
    /// Each side states its own value; no negotiation (numeric range checked).
    DeclarativeNumber { lo: u32, hi: u32 },
    /// Declarative string (names, aliases, addresses).
    Declarative,
}

/// Operational keys an initiator negotiates for a normal session, with their
/// kind and RFC 7143 default. Security keys (AuthMethod, CHAP_*) and the login
/// declaratives (InitiatorName, TargetName, SessionType) are handled by login.
pub const KEYS: &[(&str, Kind, &str)] = &[
    ("HeaderDigest", Kind::List, "None"),
    ("DataDigest", Kind::List, "None"),
    ("MaxConnections", Kind::Min { lo: 1, hi: 65535 }, "1"),
    ("InitialR2T", Kind::Or, "Yes"),
    ("ImmediateData", Kind::And, "Yes"),
    (
        "MaxRecvDataSegmentLength",
        Kind::DeclarativeNumber {
            lo: 512,
            hi: 16_777_215,
        },
        "8192",
    ),
    (
        "MaxBurstLength",
        Kind::Min {
            lo: 512,
            hi: 16_777_215,
        },
        "262144",
    ),
    (
        "FirstBurstLength",
        Kind::Min {
            lo: 512,
            hi: 16_777_215,
        },
        "65536",
    ),
    ("DefaultTime2Wait", Kind::Max { lo: 0, hi: 3600 }, "2"),
    ("DefaultTime2Retain", Kind::Min { lo: 0, hi: 3600 }, "20"),
    ("MaxOutstandingR2T", Kind::Min { lo: 1, hi: 65535 }, "1"),
    ("DataPDUInOrder", Kind::Or, "Yes"),
    ("DataSequenceInOrder", Kind::Or, "Yes"),
    ("ErrorRecoveryLevel", Kind::Min { lo: 0, hi: 2 }, "0"),
    ("TargetAlias", Kind::Declarative, ""),
    ("TargetAddress", Kind::Declarative, ""),
    (
        "TargetPortalGroupTag",
        Kind::DeclarativeNumber { lo: 0, hi: 65535 },
        "1",
    ),
    // Obsolete since RFC 7143 (markers); some targets still offer them.
    ("IFMarker", Kind::And, "No"),
    ("OFMarker", Kind::And, "No"),
];

pub fn kind_of(key: &str) -> Option<Kind> {
    KEYS.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, kind, _)| *kind)
}

pub fn default_of(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _, _)| *k == key).map(|(_, _, d)| *d)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

fn parse_num(v: &str) -> Option<u32> {
    // RFC 7143 §6.1: decimal, or hex with 0x; we never see base64 numbers.
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

/// Why a value from the peer is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// The answer breaks the key's rule (e.g. a Min answer above our offer).
    Illegal {
        key: String,
        offered: String,
        answered: String,
    },
    /// The peer answered Reject to a value we must have.
    Rejected { key: String, offered: String },
    /// An offer or answer that does not parse as the key's type.
    BadValue { key: String, value: String },
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiationError::Illegal { key, offered, answered } => write!(
                f,
                "target answered {key}={answered} to our offer {key}={offered}, which RFC 7143 does not allow"
            ),
            NegotiationError::Rejected { key, offered } => {
                write!(f, "target rejected {key}={offered}")
            }
            NegotiationError::BadValue { key, value } => {
                write!(f, "invalid value {value:?} for {key}")
            }
        }
    }
}

impl std::error::Error for NegotiationError {}

/// Check a value against a key's type; used for our own offers (overrides
/// from the command line) before they are sent.
pub fn validate(key: &str, value: &str) -> Result<(), NegotiationError> {
    let bad = || NegotiationError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
    };
    match kind_of(key) {
        Some(Kind::Min { lo, hi } | Kind::Max { lo, hi } | Kind::DeclarativeNumber { lo, hi }) => {
            match parse_num(value) {
                Some(n) if (lo..=hi).contains(&n) => Ok(()),
                _ => Err(bad()),
            }
        }
        Some(Kind::And | Kind::Or) => parse_bool(value).map(|_| ()).ok_or_else(bad),
        Some(Kind::List) => {
            if value.split(',').all(|v| matches!(v, "None" | "CRC32C")) {
                Ok(())
            } else {
                Err(bad())
            }
        }
        Some(Kind::Declarative) | None => Ok(()),
    }
}

/// The responder's side: our answer to a key the target offered.
/// `ours` is what we would offer for that key (our limit or preference).
pub fn answer(key: &str, offered: &str, ours: Option<&str>) -> String {
    let Some(kind) = kind_of(key) else {
        return NOT_UNDERSTOOD.to_string();
    };
    let ours = ours.or_else(|| default_of(key)).unwrap_or("");
    match kind {
        Kind::Min { lo, hi } | Kind::Max { lo, hi } => {
            let (Some(o), Some(m)) = (parse_num(offered), parse_num(ours)) else {
                return REJECT.to_string();
            };
            if !(lo..=hi).contains(&o) {
                return REJECT.to_string();
            }
            let v = if matches!(kind, Kind::Min { .. }) {
                o.min(m)
            } else {
                o.max(m)
            };
            v.to_string()
        }
        Kind::And | Kind::Or => {
            let (Some(o), Some(m)) = (parse_bool(offered), parse_bool(ours)) else {
                return REJECT.to_string();
            };
            yes_no(if kind == Kind::And { o && m } else { o || m }).to_string()
        }
        Kind::List => {
            let supported: Vec<&str> = ours.split(',').collect();
            offered
                .split(',')
                .find(|v| supported.contains(v))
                .map(str::to_string)
                .unwrap_or_else(|| REJECT.to_string())
        }
        // Declaratives are statements, not offers: nothing to answer.
        Kind::DeclarativeNumber { .. } | Kind::Declarative => String::new(),
    }
}

/// The originator's side: the value in force after the target answered our
/// offer. `Ok(None)` means "Irrelevant": the key keeps its default.
pub fn settle(
    key: &str,
    offered: &str,
    answered: &str,
) -> Result<Option<String>, NegotiationError> {
    let illegal = || NegotiationError::Illegal {
        key: key.to_string(),
        offered: offered.to_string(),
        answered: answered.to_string(),
    };
    match answered {
        IRRELEVANT | NOT_UNDERSTOOD => return Ok(None),
        REJECT => {
            return Err(NegotiationError::Rejected {
                key: key.to_string(),
                offered: offered.to_string(),
            })
        }
        _ => {}
    }
    let Some(kind) = kind_of(key) else {
        return Ok(Some(answered.to_string()));
    };
    match kind {
        Kind::Min { lo, hi } | Kind::Max { lo, hi } => {
            let (Some(o), Some(a)) = (parse_num(offered), parse_num(answered)) else {
                return Err(illegal());
            };
            let ok = (lo..=hi).contains(&a)
                && if matches!(kind, Kind::Min { .. }) {
                    a <= o
                } else {
                    a >= o
                };
            if ok {
                Ok(Some(a.to_string()))
            } else {
                Err(illegal())
            }
        }
        Kind::And | Kind::Or => {
            let (Some(o), Some(a)) = (parse_bool(offered), parse_bool(answered)) else {
                return Err(illegal());
            };
            // AND: an offer of No can only come back No; OR: Yes only Yes.
            if (kind == Kind::And && !o && a) || (kind == Kind::Or && o && !a) {
                return Err(illegal());
            }
            Ok(Some(yes_no(a).to_string()))
        }
        Kind::List => {
            if offered.split(',').any(|v| v == answered) {
                Ok(Some(answered.to_string()))
            } else {
                Err(illegal())
            }
        }
        Kind::DeclarativeNumber { lo, hi } => match parse_num(answered) {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n.to_string())),
            _ => Err(NegotiationError::BadValue {
                key: key.to_string(),
                value: answered.to_string(),
            }),
        },
        Kind::Declarative => Ok(Some(answered.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_encode_roundtrip() {
        let data = b"HeaderDigest=None\0MaxRecvDataSegmentLength=262144\0X-com.vendor=a=b\0";
        let pairs = parse(data).unwrap();
        assert_eq!(
            pairs[2],
            ("X-com.vendor".into(), "a=b".into()),
            "only the first = splits"
        );
        assert_eq!(encode(&pairs), data.to_vec());
    }

    #[test]
    fn split_segments_at_pair_boundaries_within_the_limit() {
        let pieces = |d: &'static [u8], n| split_segments(d, n);
        assert_eq!(pieces(b"", 8), vec![&b""[..]]);
        assert_eq!(pieces(b"a=1\0", 8), vec![&b"a=1\0"[..]]);
        // Whole pairs while they fit.
        assert_eq!(
            pieces(b"a=1\0b=2\0c=3\0", 8),
            vec![&b"a=1\0b=2\0"[..], b"c=3\0"]
        );
        // A pair longer than the limit is cut inside it.
        assert_eq!(
            pieces(b"k=0123456789\0x=1\0", 8),
            vec![&b"k=012345"[..], b"6789\0", b"x=1\0"]
        );
        // Exactly at the limit: one piece.
        assert_eq!(pieces(b"a=1\0b=2\0", 8), vec![&b"a=1\0b=2\0"[..]]);
        // Limit 0 cannot loop.
        assert_eq!(pieces(b"ab", 0), vec![&b"a"[..], b"b"]);
        let big = encode(
            &(0..2000)
                .map(|i| (format!("X-k{i}"), "v".repeat(i % 50)))
                .collect::<Vec<_>>(),
        );
        let p = split_segments(&big, LOGIN_DATA_SEGMENT);
        assert!(p.len() > 1 && p.iter().all(|c| c.len() <= LOGIN_DATA_SEGMENT));
        assert!(p.iter().all(|c| c.last() == Some(&0)), "pairs kept whole");
        assert_eq!(p.concat(), big);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse(b"a=b"), Err(TextError::Unterminated));
        assert_eq!(
            parse(b"novalue\0"),
            Err(TextError::NoEquals("novalue".into()))
        );
        assert_eq!(parse(b"=x\0"), Err(TextError::BadKey(String::new())));
        assert_eq!(parse(b"a b=x\0"), Err(TextError::BadKey("a b".into())));
        assert_eq!(parse(b"k=\xff\0"), Err(TextError::NotUtf8));
        assert_eq!(parse(b"").unwrap(), vec![]);
        assert_eq!(
            parse(b"\0\0a=\0").unwrap(),
            vec![("a".into(), String::new())]
        );
    }

    #[test]
    fn settle_numeric() {
        assert_eq!(
            settle("MaxBurstLength", "262144", "65536")
                .unwrap()
                .as_deref(),
            Some("65536")
        );
        assert!(matches!(
            settle("MaxBurstLength", "65536", "262144"),
            Err(NegotiationError::Illegal { .. })
        ));
        assert_eq!(
            settle("DefaultTime2Wait", "2", "5").unwrap().as_deref(),
            Some("5")
        );
        let err = |k, o, a| settle(k, o, a).unwrap_err().to_string();
        assert_eq!(
            err("DefaultTime2Wait", "2", "1"),
            "target answered DefaultTime2Wait=1 to our offer DefaultTime2Wait=2, which RFC 7143 does not allow"
        );
        // A number that does not parse is an illegal answer too.
        assert_eq!(
            err("ErrorRecoveryLevel", "0", "abc"),
            "target answered ErrorRecoveryLevel=abc to our offer ErrorRecoveryLevel=0, which RFC 7143 does not allow"
        );
        assert_eq!(
            settle("MaxBurstLength", "262144", "0x10000")
                .unwrap()
                .as_deref(),
            Some("65536")
        );
    }

    #[test]
    fn settle_boolean() {
        assert_eq!(
            settle("ImmediateData", "Yes", "No").unwrap().as_deref(),
            Some("No")
        );
        assert_eq!(
            settle("ImmediateData", "No", "Yes").map_err(|e| e.to_string()),
            Err("target answered ImmediateData=Yes to our offer ImmediateData=No, which RFC 7143 does not allow".into()),
            "AND cannot turn No into Yes"
        );
        assert_eq!(
            settle("InitialR2T", "No", "Yes").unwrap().as_deref(),
            Some("Yes")
        );
        assert_eq!(
            settle("InitialR2T", "Yes", "No").map_err(|e| e.to_string()),
            Err("target answered InitialR2T=No to our offer InitialR2T=Yes, which RFC 7143 does not allow".into()),
            "OR cannot turn Yes into No"
        );
    }

    #[test]
    fn settle_list_and_specials() {
        assert_eq!(
            settle("HeaderDigest", "CRC32C,None", "None")
                .unwrap()
                .as_deref(),
            Some("None")
        );
        assert_eq!(
            settle("HeaderDigest", "None", "CRC32C").map_err(|e| e.to_string()),
            Err("target answered HeaderDigest=CRC32C to our offer HeaderDigest=None, which RFC 7143 does not allow".into())
        );
        assert_eq!(settle("MaxBurstLength", "1", IRRELEVANT).unwrap(), None);
        assert_eq!(settle("X-foo", "1", NOT_UNDERSTOOD).unwrap(), None);
        assert_eq!(
            settle("DataDigest", "CRC32C", REJECT),
            Err(NegotiationError::Rejected {
                key: "DataDigest".into(),
                offered: "CRC32C".into()
            })
        );
    }

    #[test]
    fn answer_target_offers() {
        assert_eq!(answer("X-vendor.key", "1", None), NOT_UNDERSTOOD);
        assert_eq!(
            answer("MaxBurstLength", "1048576", Some("262144")),
            "262144"
        );
        assert_eq!(answer("DefaultTime2Wait", "0", Some("2")), "2");
        assert_eq!(answer("ImmediateData", "Yes", Some("No")), "No");
        assert_eq!(answer("InitialR2T", "No", Some("No")), "No");
        assert_eq!(answer("HeaderDigest", "CRC32C,None", Some("None")), "None");
        assert_eq!(answer("HeaderDigest", "CRC32C", Some("None")), REJECT);
        assert_eq!(answer("MaxBurstLength", "99999999999", None), REJECT);
        assert_eq!(
            answer("MaxRecvDataSegmentLength", "8192", Some("262144")),
            ""
        );
    }

    #[test]
    fn validate_overrides() {
        assert!(validate("MaxRecvDataSegmentLength", "65536").is_ok());
        let err = |k, v| validate(k, v).unwrap_err().to_string();
        // Below the 512 minimum (RFC 7143 §13.12).
        assert_eq!(
            err("MaxRecvDataSegmentLength", "100"),
            r#"invalid value "100" for MaxRecvDataSegmentLength"#
        );
        // Boolean values are case-sensitive (RFC 7143 §6.2).
        assert_eq!(
            err("ImmediateData", "yes"),
            r#"invalid value "yes" for ImmediateData"#
        );
        assert!(validate("HeaderDigest", "CRC32C,None").is_ok());
        assert_eq!(
            err("HeaderDigest", "MD5"),
            r#"invalid value "MD5" for HeaderDigest"#
        );
    }
}
