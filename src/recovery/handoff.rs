//! What PID 1 hands to the resident: the session and everything a new
//! login needs. Encoded as JSON on a pipe (pure encode/decode here; the
//! decoder takes bytes from another process and never panics).

use crate::plan::{Chap, EventsTarget, MutualChap};
use serde::{Deserialize, Serialize};

/// Cap on the handoff's size (a few portals and names: far below). Under
/// a pipe's 64 KiB buffer: PID 1 writes it whole before the fork.
pub const MAX_LEN: usize = 60 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub sid: u32,
    pub cid: u32,
    pub host_no: u32,
    pub target: String,
    pub initiator: String,
    pub isid: [u8; 6],
    pub tsih: u16,
    /// Portals of this target, the one logged in first (failover order).
    pub portals: Vec<PortalSpec>,
    pub chap: Option<ChapSpec>,
    /// Login keys offered (rd.iscsi.param= / netboot.param.*).
    pub offers: Vec<(String, String)>,
    pub login_timeout_ms: u64,
    pub replacement_timeout_s: u32,
    pub events: Option<EventsSpec>,
    /// `netboot.log=` as a level name (`info`, `warn`…).
    pub log: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSpec {
    pub host: String,
    pub port: u16,
    pub tpgt: u16,
}

/// CHAP with the secrets in clear: the handoff travels on a pipe between
/// two of our processes and is never written anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChapSpec {
    pub username: String,
    pub secret: String,
    pub mutual: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsSpec {
    pub group: u32,
    pub idx: u32,
    pub val: u32,
}

impl ChapSpec {
    pub fn from_chap(c: &Chap) -> ChapSpec {
        ChapSpec {
            username: c.username.clone(),
            secret: c.secret.expose().to_string(),
            mutual: c
                .mutual
                .as_ref()
                .map(|m| (m.username.clone(), m.secret.expose().to_string())),
        }
    }

    pub fn to_chap(&self) -> Chap {
        Chap {
            username: self.username.clone(),
            secret: crate::plan::secret::Secret::new(self.secret.clone()),
            mutual: self.mutual.as_ref().map(|(u, s)| MutualChap {
                username: u.clone(),
                secret: crate::plan::secret::Secret::new(s.clone()),
            }),
        }
    }
}

impl EventsSpec {
    pub fn from_target(t: &EventsTarget) -> EventsSpec {
        EventsSpec {
            group: t.group,
            idx: t.idx,
            val: t.val,
        }
    }
    pub fn to_target(self) -> EventsTarget {
        EventsTarget {
            group: self.group,
            idx: self.idx,
            val: self.val,
        }
    }
}

/// Why a handoff could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffError {
    TooLarge(usize),
    Json(String),
    NoPortal,
}

impl std::fmt::Display for HandoffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandoffError::TooLarge(n) => write!(f, "handoff of {n} bytes is over {MAX_LEN}"),
            // serde_json's message names a position, never the input.
            HandoffError::Json(e) => write!(f, "handoff does not decode: {e}"),
            HandoffError::NoPortal => f.write_str("handoff names no portal"),
        }
    }
}

impl std::error::Error for HandoffError {}

impl Handoff {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Handoff, HandoffError> {
        if bytes.len() > MAX_LEN {
            return Err(HandoffError::TooLarge(bytes.len()));
        }
        let h: Handoff = serde_json::from_slice(bytes)
            .map_err(|e| HandoffError::Json(format!("line {} column {}", e.line(), e.column())))?;
        if h.portals.is_empty() {
            return Err(HandoffError::NoPortal);
        }
        Ok(h)
    }

    /// The secrets to redact from everything the resident logs.
    pub fn secrets(&self) -> Vec<String> {
        self.chap
            .iter()
            .flat_map(|c| {
                std::iter::once(c.secret.clone()).chain(c.mutual.iter().map(|m| m.1.clone()))
            })
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub fn sample() -> Handoff {
        Handoff {
            sid: 1,
            cid: 0,
            host_no: 0,
            target: "iqn.2026-11.test:root".into(),
            initiator: "iqn.2026-11.org.netboot:525400123456".into(),
            isid: [0x80, 1, 2, 3, 0, 1],
            tsih: 7,
            portals: vec![PortalSpec {
                host: "198.18.0.1".into(),
                port: 3260,
                tpgt: 1,
            }],
            chap: Some(ChapSpec {
                username: "u".into(),
                secret: "s3cret-of-twelve".into(),
                mutual: Some(("t".into(), "tsecret-of-twelve".into())),
            }),
            offers: vec![("MaxRecvDataSegmentLength".into(), "65536".into())],
            login_timeout_ms: 15000,
            replacement_timeout_s: 120,
            events: Some(EventsSpec {
                group: 26,
                idx: 0x4e42,
                val: 1,
            }),
            log: "info".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_use() {
        let h = sample();
        assert_eq!(Handoff::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.secrets(), ["s3cret-of-twelve", "tsecret-of-twelve"]);
        let c = h.chap.as_ref().unwrap().to_chap();
        assert_eq!(ChapSpec::from_chap(&c), *h.chap.as_ref().unwrap());
        let mut none = sample();
        none.portals.clear();
        assert_eq!(Handoff::decode(&none.encode()), Err(HandoffError::NoPortal));
        assert!(matches!(
            Handoff::decode(b"{\"sid\":"),
            Err(HandoffError::Json(_))
        ));
        let big = vec![b' '; MAX_LEN + 1];
        assert!(matches!(
            Handoff::decode(&big),
            Err(HandoffError::TooLarge(_))
        ));
        // The error never echoes the input (it may hold a secret).
        let e = Handoff::decode(b"{\"chap\": \"s3cret-of-twelve\"").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
