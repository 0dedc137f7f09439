//! The boot plan: every input (command line, later DHCP, iBFT, RxRPC config)
//! is parsed into these values before anything is executed.

use serde::{Serialize, Serializer};
use std::fmt;

/// A secret (CHAP password). It never prints: `Debug`, `Display` and JSON all
/// show `***`; only [`Secret::expose`] gives the bytes, for the CHAP digest.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where the value is consumed (CHAP, SET_PARAM).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// CHAP credentials. `mutual` is the target's name and secret the initiator
/// checks (RFC 7143 §12.1.3, "bidirectional" CHAP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chap {
    pub username: String,
    pub secret: Secret,
    pub mutual: Option<MutualChap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MutualChap {
    pub username: String,
    pub secret: Secret,
}

/// One iSCSI root path (RFC 4173 + dracut extensions):
/// `[iscsi:][user:pass[:ruser:rpass]@]server:[proto]:[port]:[lun]:targetname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootPath {
    /// Host name or IP literal; IPv6 without the brackets.
    pub server: String,
    pub port: u16,
    pub lun: u64,
    pub target: String,
    /// Target portal group tag (default 1, as iscsistart).
    pub tpgt: u16,
    pub chap: Option<Chap>,
    /// dracut's optional iface / netdev fields, kept for information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netdev: Option<String>,
}

pub const DEFAULT_PORT: u16 = 3260;
pub const DEFAULT_TPGT: u16 = 1;

impl RootPath {
    /// `host:port`, with IPv6 literals bracketed, for messages and connect().
    pub fn portal(&self) -> String {
        if self.server.contains(':') {
            format!("[{}]:{}", self.server, self.port)
        } else {
            format!("{}:{}", self.server, self.port)
        }
    }
}
