//! `rd.iscsi.param=KEY=VALUE`: open-iscsi node settings (iscsid.conf and
//! `iscsiadm -m node -o update` spelling) mapped onto what the kernel
//! session and our login use. A key we cannot honour is refused with the
//! list of the ones we can — never accepted and then ignored.
//!
//! Pure: [`NodeSettings::apply`] is tested without a kernel; the executor
//! pushes the result with SET_PARAM (`iscsi::kernel::SessionSetup`).

use std::fmt;
use std::time::Duration;

/// The session settings that node keys can change, with open-iscsi's
/// defaults (iscsid.conf as shipped by Debian's open-iscsi 2.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// `node.session.timeo.replacement_timeout`: seconds the kernel queues
    /// I/O while a connection is recovered before failing it (SESS_RECOVERY_TMO).
    pub replacement_timeout: u32,
    /// `node.session.err_timeo.abort_timeout` (ABORT_TMO).
    pub abort_timeout: u32,
    /// `node.session.err_timeo.lu_reset_timeout` (LU_RESET_TMO).
    pub lu_reset_timeout: u32,
    /// `node.session.err_timeo.tgt_reset_timeout` (TGT_RESET_TMO).
    pub tgt_reset_timeout: u32,
    /// `node.conn[0].timeo.noop_out_interval` (RECV_TMO in the kernel: the
    /// idle time before a NOP-Out ping).
    pub noop_out_interval: u32,
    /// `node.conn[0].timeo.noop_out_timeout` (PING_TMO).
    pub noop_out_timeout: u32,
    /// `node.conn[0].timeo.login_timeout`: one login PDU exchange.
    pub login_timeout: Duration,
    /// RFC 7143 keys from `node.session.iscsi.*` / `node.conn[0].iscsi.*`,
    /// offered at login exactly like `netboot.param.KEY=VALUE`.
    pub login_keys: Vec<(String, String)>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            replacement_timeout: 120,
            abort_timeout: 15,
            lu_reset_timeout: 30,
            tgt_reset_timeout: 30,
            noop_out_interval: 5,
            noop_out_timeout: 5,
            login_timeout: Duration::from_secs(15),
            login_keys: Vec::new(),
        }
    }
}

/// Longest timeout accepted, seconds (one day: longer is a typo).
pub const MAX_TIMEOUT_S: u32 = 86_400;

/// The keys we honour, for the error text and `--help`.
pub const SUPPORTED: &str = "node.session.timeo.replacement_timeout, \
node.session.err_timeo.{abort,lu_reset,tgt_reset}_timeout, \
node.conn[0].timeo.{noop_out_interval,noop_out_timeout,login_timeout}, \
node.session.iscsi.{InitialR2T,ImmediateData,FirstBurstLength,MaxBurstLength,MaxOutstandingR2T,DefaultTime2Wait,DefaultTime2Retain}, \
node.conn[0].iscsi.{MaxRecvDataSegmentLength,HeaderDigest,DataDigest}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeParamError {
    /// A key open-iscsi has but we do not act on; `hint` says what to use
    /// (`key` quoted, cut with `…` if long).
    Unsupported { key: String, hint: &'static str },
    /// Not a number in range (`value` quoted, cut with `…` if long).
    Range {
        key: String,
        value: String,
        min: u32,
        max: u32,
    },
    /// The login key's value fails its RFC 7143 check.
    LoginKey { key: String, error: String },
}

impl fmt::Display for NodeParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeParamError::Unsupported { key, hint } => {
                write!(
                    f,
                    "node key {key} is not supported{hint}; supported: {SUPPORTED}"
                )
            }
            NodeParamError::Range {
                key,
                value,
                min,
                max,
            } => write!(f, "{key}: {value} is not an integer in {min}..{max}"),
            NodeParamError::LoginKey { key, error } => write!(f, "{key}: {error}"),
        }
    }
}

impl std::error::Error for NodeParamError {}

/// Keys whose value can be a password: never echoed.
fn sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret")
}

impl NodeSettings {
    /// Apply node keys in command-line order (the last one wins).
    pub fn apply<'a>(
        &mut self,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), NodeParamError> {
        for (k, v) in params {
            self.apply_one(k, v)?;
        }
        Ok(())
    }

    /// Check one key without keeping it (the command-line parser).
    pub fn check(key: &str, value: &str) -> Result<(), NodeParamError> {
        NodeSettings::default().apply_one(key, value)
    }

    fn apply_one(&mut self, key: &str, value: &str) -> Result<(), NodeParamError> {
        let secs = |min: u32| -> Result<u32, NodeParamError> {
            let bad = || NodeParamError::Range {
                key: key.to_string(),
                value: crate::escape::quote_max(value, 32),
                min,
                max: MAX_TIMEOUT_S,
            };
            if value.is_empty() || value.len() > 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u32 = value.parse().map_err(|_| bad())?;
            if n < min || n > MAX_TIMEOUT_S {
                return Err(bad());
            }
            Ok(n)
        };
        match key {
            "node.session.timeo.replacement_timeout" => self.replacement_timeout = secs(0)?,
            "node.session.err_timeo.abort_timeout" => self.abort_timeout = secs(1)?,
            "node.session.err_timeo.lu_reset_timeout" => self.lu_reset_timeout = secs(1)?,
            "node.session.err_timeo.tgt_reset_timeout" => self.tgt_reset_timeout = secs(1)?,
            "node.conn[0].timeo.noop_out_interval" => self.noop_out_interval = secs(0)?,
            "node.conn[0].timeo.noop_out_timeout" => self.noop_out_timeout = secs(0)?,
            "node.conn[0].timeo.login_timeout" => {
                self.login_timeout = Duration::from_secs(u64::from(secs(1)?))
            }
            k => {
                let login_key = k
                    .strip_prefix("node.session.iscsi.")
                    .filter(|n| SESSION_KEYS.contains(n))
                    .or_else(|| {
                        k.strip_prefix("node.conn[0].iscsi.")
                            .filter(|n| CONN_KEYS.contains(n))
                    });
                let Some(name) = login_key else {
                    return Err(NodeParamError::Unsupported {
                        key: crate::escape::quote_max(k, 80),
                        hint: hint(k),
                    });
                };
                // open-iscsi spells digests "CRC32C,None"; RFC 7143 lists
                // are the same syntax, so the value passes through.
                crate::iscsi::text::validate(name, value).map_err(|e| {
                    NodeParamError::LoginKey {
                        key: k.to_string(),
                        error: if sensitive(k) {
                            "invalid value".into()
                        } else {
                            e.to_string()
                        },
                    }
                })?;
                match self.login_keys.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.to_string(),
                    None => self.login_keys.push((name.to_string(), value.to_string())),
                }
            }
        }
        Ok(())
    }

    /// The login timeout of one PDU exchange, capped by `left`.
    pub fn pdu_timeout(&self, left: Duration) -> Duration {
        self.login_timeout.min(left)
    }
}

const SESSION_KEYS: [&str; 7] = [
    "InitialR2T",
    "ImmediateData",
    "FirstBurstLength",
    "MaxBurstLength",
    "MaxOutstandingR2T",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
];
const CONN_KEYS: [&str; 3] = ["MaxRecvDataSegmentLength", "HeaderDigest", "DataDigest"];

/// Where the setting lives in netboot instead.
fn hint(key: &str) -> &'static str {
    if key.starts_with("node.session.auth.") {
        " (CHAP: rd.iscsi.username/password, rd.iscsi.in.username/password or netboot.secrets=)"
    } else if key == "node.session.cmds_max" {
        " (use netboot.cmds_max=)"
    } else if key == "node.session.queue_depth" {
        " (use netboot.queue_depth=)"
    } else if key == "node.session.initial_login_retry_max" {
        " (use rd.iscsi.login_retry_max=)"
    } else {
        ""
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_login_keys_are_applied_in_order() {
        let mut s = NodeSettings::default();
        s.apply([
            ("node.session.timeo.replacement_timeout", "30"),
            ("node.conn[0].timeo.login_timeout", "5"),
            ("node.conn[0].iscsi.HeaderDigest", "CRC32C,None"),
            ("node.session.iscsi.FirstBurstLength", "65536"),
            ("node.session.timeo.replacement_timeout", "0"),
            ("node.session.err_timeo.abort_timeout", "7"),
            ("node.conn[0].timeo.noop_out_interval", "0"),
        ])
        .unwrap();
        assert_eq!(s.replacement_timeout, 0);
        assert_eq!(s.abort_timeout, 7);
        assert_eq!(s.noop_out_interval, 0);
        assert_eq!(s.login_timeout, Duration::from_secs(5));
        assert_eq!(
            s.login_keys,
            [
                ("HeaderDigest".to_string(), "CRC32C,None".to_string()),
                ("FirstBurstLength".to_string(), "65536".to_string())
            ]
        );
        assert_eq!(
            s.pdu_timeout(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let e = |k, v| NodeSettings::check(k, v).unwrap_err().to_string();
        assert_eq!(
            e("node.session.timeo.replacement_timeout", "99999999999"),
            r#"node.session.timeo.replacement_timeout: "99999999999" is not an integer in 0..86400"#
        );
        assert_eq!(
            e("node.session.err_timeo.abort_timeout", "0"),
            r#"node.session.err_timeo.abort_timeout: "0" is not an integer in 1..86400"#
        );
        assert_eq!(
            e("node.session.cmds_max", "64"),
            format!(
                r#"node key "node.session.cmds_max" is not supported (use netboot.cmds_max=); supported: {SUPPORTED}"#
            )
        );
        assert_eq!(
            e("node.startup", "automatic"),
            format!(r#"node key "node.startup" is not supported; supported: {SUPPORTED}"#)
        );
        // A long value is cut, and the cut is marked.
        let long = "9".repeat(40);
        assert_eq!(
            e("node.session.timeo.replacement_timeout", long.as_str()),
            format!(
                r#"node.session.timeo.replacement_timeout: "{}"… is not an integer in 0..86400"#,
                "9".repeat(32)
            )
        );
        assert!(e("node.session.auth.password", "hunter2").contains("rd.iscsi.username"));
        assert!(!e("node.session.auth.password", "hunter2").contains("hunter2"));
        assert_eq!(
            e("node.session.iscsi.FirstBurstLength", "x"),
            format!(
                "node.session.iscsi.FirstBurstLength: {}",
                crate::iscsi::text::validate("FirstBurstLength", "x").unwrap_err()
            )
        );
    }
}
