//! The iSCSI root path: RFC 4173 `iscsi:server:proto:port:lun:target` with
//! dracut's credential and iface/netdev extensions.

use crate::plan::RootPath;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootPathError {
    /// Placeholder until the parser lands.
    Unparsed(String),
}

impl fmt::Display for RootPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootPathError::Unparsed(v) => write!(f, "cannot parse root path {v:?}"),
        }
    }
}

impl std::error::Error for RootPathError {}

/// Parse one root path (with or without the `iscsi:` prefix).
pub fn parse(value: &str) -> Result<RootPath, RootPathError> {
    Err(RootPathError::Unparsed(value.to_string()))
}
