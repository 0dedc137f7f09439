//! The iSCSI root path: RFC 4173 `iscsi:server:proto:port:lun:target` with
//! dracut's credential and iface/netdev extensions (dracut.cmdline(7),
//! `parse_iscsi_root` in modules.d/40network/net-lib.sh):
//!
//! `[iscsi:][user:pass[:ruser:rpass]@]server:[proto]:[port][:[iface]:[netdev]]:[lun]:target`
//!
//! Rules, in order:
//! 1. credentials are everything before the first `@`, but only when the value
//!    matches dracut's glob `*@*:*:*:*:*` (so an `@` inside a target name
//!    works, and `@server…` means "no credentials"); 2 or 4 `:` fields;
//! 2. `[…]` is an IPv6 server, else the server ends at the first `:`;
//! 3. the target name starts at the first `:iqn.`, `:eui.` or `:naa.` and may
//!    contain colons (dracut takes the last such marker, which breaks names
//!    like `iqn.x:iqn.y`; the first is what the names mean); otherwise it is
//!    the last field;
//! 4. the remaining fields are `proto:port:lun` or
//!    `proto:port:iface:netdev:lun`. proto: empty or 6 (TCP, the only value
//!    RFC 4173 defines; EDK2 rejects others too); port: empty = 3260, else
//!    1..=65535; LUN: empty = 0, decimal (dracut), or RFC 4173 / EDK2 hex
//!    groups `4752-3A4F-6b7e-2F99` (recognised by the `-`), converted to the
//!    Linux LUN number like `scsilun_to_int()` (group k → bits 16k..16k+15).
//!
//! Errors quote the value with credentials masked (`user:***@…`).

use super::quote;
use crate::plan::{Chap, MutualChap, RootPath, Secret, DEFAULT_PORT, DEFAULT_TPGT};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 7143 §4.2.7.1: an iSCSI name is at most 223 bytes.
pub const MAX_NAME_LEN: usize = 223;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootPathError {
    Empty,
    /// `path` fields hold the whole value, credentials masked and quoted.
    Credentials {
        path: String,
    },
    Server {
        server: String,
        path: String,
    },
    UnclosedBracket {
        path: String,
    },
    Ipv6 {
        server: String,
        path: String,
    },
    Fields {
        path: String,
    },
    Protocol {
        proto: String,
        path: String,
    },
    Port {
        port: String,
        path: String,
    },
    Lun {
        lun: String,
        path: String,
    },
    EmptyTarget {
        path: String,
    },
    Target {
        path: String,
    },
}

impl fmt::Display for RootPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RootPathError::*;
        match self {
            Empty => f.write_str(
                "empty root path; expected [iscsi:][user:password@]server:[proto]:[port]:[lun]:target",
            ),
            Credentials { path } => write!(
                f,
                "credentials in {path} must be user:password@ or user:password:target-user:target-password@"
            ),
            Server { server, path } => {
                write!(f, "server {server} in {path} is not a host name or IP address")
            }
            UnclosedBracket { path } => write!(f, "unclosed \"[\" in {path}"),
            Ipv6 { server, path } => write!(f, "{server} in {path} is not an IPv6 address"),
            Fields { path } => write!(
                f,
                "{path} is not [user:password@]server:[proto]:[port]:[lun]:target"
            ),
            Protocol { proto, path } => {
                write!(f, "protocol {proto} in {path} is not empty or 6 (TCP)")
            }
            Port { port, path } => write!(f, "port {port} in {path} is not 1..65535"),
            Lun { lun, path } => write!(
                f,
                "LUN {lun} in {path} is not a decimal number or hex groups like 4752-3A4F-6b7e-2F99"
            ),
            EmptyTarget { path } => write!(f, "no target name in {path}"),
            Target { path } => write!(
                f,
                "target name in {path} is longer than {MAX_NAME_LEN} bytes or has spaces or control characters"
            ),
        }
    }
}

impl std::error::Error for RootPathError {}

/// The value with any credential part masked, for messages: the user names
/// stay, passwords become `***`; anything not cleanly `user:pass[:ruser:rpass]`
/// becomes `***` entirely. Deliberately wider than the parser's rule: it
/// masks up to the *last* `@` before the target name, even where the parser
/// would see no credentials, because a mistyped value (or a password with an
/// `@`) is exactly when a secret would otherwise leak into a message.
pub fn mask(value: &str) -> String {
    let (prefix, v) = match value.strip_prefix("iscsi:") {
        Some(v) => ("iscsi:", v),
        None => ("", value),
    };
    let region = v.get(..target_start(v).unwrap_or(v.len())).unwrap_or(v);
    let Some(at) = region.rfind('@') else {
        return value.to_string();
    };
    let (auth, rest) = (v.get(..at).unwrap_or(""), v.get(at..).unwrap_or(""));
    let fields: Vec<&str> = auth.split(':').collect();
    let masked = match fields.as_slice() {
        [""] => String::new(),
        [u, _] => format!("{u}:***"),
        [u, _, r, _] => format!("{u}:***:{r}:***"),
        _ => "***".to_string(),
    };
    format!("{prefix}{masked}{rest}")
}

/// Byte offset of the `:` that starts the target name, if a marker is present.
fn target_start(s: &str) -> Option<usize> {
    [":iqn.", ":eui.", ":naa."]
        .iter()
        .filter_map(|m| s.find(m))
        .min()
}

/// Parse one root path (with or without the `iscsi:` prefix).
pub fn parse(value: &str) -> Result<RootPath, RootPathError> {
    let masked = mask(value);
    let path = || quote(&masked);
    // A field is echoed only if the masked value shows it too: when the
    // credentials are mistyped, "fields" can be cut from the password.
    let field = |f: &str| {
        if masked.contains(f) {
            quote(f)
        } else {
            "\"***\"".to_string()
        }
    };
    let v = value.strip_prefix("iscsi:").unwrap_or(value);
    if v.is_empty() {
        return Err(RootPathError::Empty);
    }

    // 1. Credentials: dracut's `*@*:*:*:*:*`.
    let (auth, rest) = match v.split_once('@') {
        Some((a, r)) if r.matches(':').count() >= 4 => (Some(a), r),
        _ => (None, v),
    };
    let chap = match auth {
        None | Some("") => None,
        Some(a) => Some(parse_auth(a).ok_or_else(|| RootPathError::Credentials { path: path() })?),
    };

    // 2. Server.
    let (server, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (inner, after) = r
            .split_once(']')
            .ok_or_else(|| RootPathError::UnclosedBracket { path: path() })?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| RootPathError::Ipv6 {
            server: field(&format!("[{inner}]")),
            path: path(),
        })?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| RootPathError::Fields { path: path() })?;
        (addr.to_string(), after)
    } else {
        let (s, after) = rest
            .split_once(':')
            .ok_or_else(|| RootPathError::Fields { path: path() })?;
        if !valid_host(s) {
            return Err(RootPathError::Server {
                server: field(s),
                path: path(),
            });
        }
        (s.to_string(), after)
    };

    // 3. Target name. `rest` still starts with the `:` after proto, so the
    // marker search sees `:iqn.` even in `::::iqn.…`.
    let rest_c = format!(":{rest}");
    let (head, target) = match target_start(&rest_c) {
        Some(i) => (
            rest_c.get(1..i).unwrap_or(""),
            rest_c.get(i + 1..).unwrap_or(""),
        ),
        None => rest
            .rsplit_once(':')
            .ok_or_else(|| RootPathError::Fields { path: path() })?,
    };

    // 4. proto:port[:iface:netdev]:lun
    let fields: Vec<&str> = head.split(':').collect();
    let (proto, port, iface, netdev, lun) = match fields.as_slice() {
        [p, po, l] => (*p, *po, "", "", *l),
        [p, po, i, n, l] => (*p, *po, *i, *n, *l),
        _ => return Err(RootPathError::Fields { path: path() }),
    };
    if !(proto.is_empty() || proto == "6") {
        return Err(RootPathError::Protocol {
            proto: field(proto),
            path: path(),
        });
    }
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        parse_dec(port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| RootPathError::Port {
                port: field(port),
                path: path(),
            })?
    };
    let lun = parse_lun(lun).ok_or_else(|| RootPathError::Lun {
        lun: field(lun),
        path: path(),
    })?;
    if target.is_empty() {
        return Err(RootPathError::EmptyTarget { path: path() });
    }
    if !valid_target(target) {
        return Err(RootPathError::Target { path: path() });
    }
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(RootPath {
        server,
        port,
        lun,
        target: target.to_string(),
        tpgt: DEFAULT_TPGT,
        own_tpgt: false,
        chap,
        iface: opt(iface),
        netdev: opt(netdev),
    })
}

/// A target name we accept: 1..=223 bytes (RFC 7143 §4.2.7.1), no spaces
/// or control characters.
pub fn valid_target(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_NAME_LEN
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `user:pass` or `user:pass:ruser:rpass`, no empty field (also the
/// credentials of `netboot discover USER:PASS@HOST`).
pub fn parse_auth(a: &str) -> Option<Chap> {
    let f: Vec<&str> = a.split(':').collect();
    if f.iter().any(|s| s.is_empty()) {
        return None;
    }
    match f.as_slice() {
        [u, p] => Some(Chap {
            username: u.to_string(),
            secret: Secret::new(*p),
            mutual: None,
        }),
        [u, p, ru, rp] => Some(Chap {
            username: u.to_string(),
            secret: Secret::new(*p),
            mutual: Some(MutualChap {
                username: ru.to_string(),
                secret: Secret::new(*rp),
            }),
        }),
        _ => None,
    }
}

/// A host name (RFC 1123 characters) or an IPv4 literal. All-numeric dotted
/// names must be valid IPv4, so `198.18.0.256` is caught here.
pub fn valid_host(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s.parse::<Ipv4Addr>().is_ok();
    }
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Decimal digits only (no sign, no spaces), at most 20 of them.
pub fn parse_dec(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_lun(s: &str) -> Option<u64> {
    if s.is_empty() {
        return Some(0);
    }
    if !s.contains('-') {
        return parse_dec(s);
    }
    let mut lun = 0u64;
    for (k, g) in s.split('-').enumerate() {
        if k >= 4 || g.is_empty() || g.len() > 4 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        lun |= u64::from(u16::from_str_radix(g, 16).ok()?) << (16 * k);
    }
    Some(lun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_defaults() {
        let p = parse("iscsi:192.0.2.10::::iqn.2026-11.test:root").expect("valid");
        assert_eq!(
            (p.server.as_str(), p.port, p.lun, p.tpgt),
            ("192.0.2.10", 3260, 0, 1)
        );
        assert_eq!(p.target, "iqn.2026-11.test:root");
        let p = parse("192.0.2.10:6:3261:7:plain").expect("valid");
        assert_eq!((p.port, p.lun, p.target.as_str()), (3261, 7, "plain"));
    }

    #[test]
    fn hex_lun() {
        assert_eq!(parse_lun("0001-0000"), Some(1));
        assert_eq!(
            parse_lun("4752-3A4F-6b7e-2F99"),
            Some(0x2F99_6B7E_3A4F_4752)
        );
        assert_eq!(parse_lun("1-2-3-4-5"), None);
        assert_eq!(parse_lun("12345-0"), None);
    }

    #[test]
    fn masking() {
        assert_eq!(mask("iscsi:u:pw@h::::t"), "iscsi:u:***@h::::t");
        assert_eq!(mask("u:pw:r:rp@h::::t"), "u:***:r:***@h::::t");
        assert_eq!(mask("pw@h"), "***@h");
        assert_eq!(mask("h::::iqn.a@b"), "h::::iqn.a@b");
        assert_eq!(mask("u:p@ss@h::::iqn.a@b"), "u:***@h::::iqn.a@b");
        assert_eq!(mask("h::::t@x"), "***@x");
    }
}
