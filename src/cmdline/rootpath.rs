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
//! Errors quote the value with credentials masked ([`mask`]: `user:***@…`
//! where rule 1 finds them, and whatever else could be a credential under
//! another reading of the value, by the value's [`Masker`]).

use super::mask::Masker;
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

/// The value with its credentials masked, for messages and events, from
/// the parser's own reading ([`split_auth`]): user names stay, passwords
/// become `***` (`user:***@…`, `user:***:tuser:***@…`), anything not
/// cleanly `user:pass[:ruser:rpass]` becomes `***` entirely. Then the
/// value's [`Masker`] replaces whatever else could be a credential under
/// another reading (a password holding `@`, a mistyped path the parser
/// sees no credentials in), so a secret never shows, whatever it starts
/// with (`iqn.`…) and however the value is mistyped.
pub fn mask(value: &str) -> String {
    Masker::for_root_path(value).mask(&mask_by_split(value))
}

/// [`mask`] without the masker: the credentials of the parser's reading,
/// or, when that reading fails and another `@` leaves valid credentials
/// and a valid path (a password holding `@`), of that one.
fn mask_by_split(value: &str) -> String {
    let (prefix, v) = match value.strip_prefix("iscsi:") {
        Some(v) => ("iscsi:", v),
        None => ("", value),
    };
    match best_split(v) {
        (Some(auth), rest) => format!("{prefix}{}@{rest}", mask_auth(auth)),
        (None, _) => value.to_string(),
    }
}

/// How many `@` (from the start, besides the last) the readings of a
/// value try: more is not a root path, and the work stays linear.
const AT_READINGS: usize = 8;

/// The `@`s a value's credentials may end at: the first [`AT_READINGS`]
/// and the last, in order.
pub(crate) fn auth_ends(v: &str) -> Vec<usize> {
    let mut ats: Vec<usize> = v
        .match_indices('@')
        .map(|(i, _)| i)
        .take(AT_READINGS)
        .collect();
    if let Some(last) = v.rfind('@') {
        if ats.last() != Some(&last) {
            ats.push(last);
        }
    }
    ats
}

/// The parser's split if the value parses; else the first `@` after valid
/// credentials that leaves a valid path without credentials; else the
/// parser's split.
fn best_split(v: &str) -> (Option<&str>, &str) {
    let parser = split_auth(v);
    if parse_raw(v).is_ok() {
        return parser;
    }
    for at in auth_ends(v) {
        let (auth, rest) = (v.get(..at).unwrap_or(""), v.get(at + 1..).unwrap_or(""));
        if parse_auth(auth).is_some() && split_auth(rest).0.is_none() && parse_raw(rest).is_ok() {
            return (Some(auth), rest);
        }
    }
    parser
}

/// True if `prefix` is a complete, valid root path, read with credentials
/// ending at any of its `@` or without: an `@` right after it is then part
/// of a target name (`server::::iqn.a@b`), not the end of credentials.
/// Anything less (a bad port, a bad LUN) could as well be credentials
/// holding `:`, so it counts as credentials: masking too much beats
/// showing a password.
pub(crate) fn is_path_before_at(prefix: &str) -> bool {
    parse_raw(prefix).is_ok()
        || auth_ends(prefix).into_iter().any(|at| {
            let (auth, rest) = (
                prefix.get(..at).unwrap_or(""),
                prefix.get(at + 1..).unwrap_or(""),
            );
            parse_auth(auth).is_some() && split_auth(rest).0.is_none() && parse_raw(rest).is_ok()
        })
}

/// `user:***` / `user:***:tuser:***` for valid credentials, else `***`
/// (with an empty field, which field is the user name is anyone's guess);
/// empty stays empty.
fn mask_auth(auth: &str) -> String {
    if auth.is_empty() {
        return String::new();
    }
    let fields: Vec<&str> = auth.split(':').collect();
    match fields.as_slice() {
        [u, _] if parse_auth(auth).is_some() => format!("{u}:***"),
        [u, _, r, _] if parse_auth(auth).is_some() => format!("{u}:***:{r}:***"),
        _ => "***".to_string(),
    }
}

/// Rule 1, the one place that decides where credentials are: everything
/// before the first `@` when dracut's glob `*@*:*:*:*:*` matches (at least
/// four `:` after it), else none. Returns (credentials, the rest).
pub fn split_auth(v: &str) -> (Option<&str>, &str) {
    match v.split_once('@') {
        Some((a, r)) if r.matches(':').count() >= 4 => (Some(a), r),
        _ => (None, v),
    }
}

/// Rule 3: (`proto:port[:iface:netdev]:lun`, target) of the part after the
/// server's `:`. The target starts at the first `:iqn.`, `:eui.` or
/// `:naa.` (or at the very start), else it is the last field.
fn target_split(rest: &str) -> Option<(&str, &str)> {
    const MARKERS: [&str; 3] = ["iqn.", "eui.", "naa."];
    if MARKERS.iter().any(|m| rest.starts_with(m)) {
        return Some(("", rest));
    }
    let at = MARKERS
        .iter()
        .filter_map(|m| rest.find(&format!(":{m}")))
        .min();
    match at {
        Some(i) => Some((rest.get(..i).unwrap_or(""), rest.get(i + 1..).unwrap_or(""))),
        None => rest.rsplit_once(':'),
    }
}

/// Which rule a value breaks, with the part that breaks it (a slice of
/// the value, so nothing is copied before we know it is safe to show).
enum Fault<'a> {
    Empty,
    Credentials,
    Server(&'a str),
    UnclosedBracket,
    Ipv6(&'a str),
    Fields,
    Protocol(&'a str),
    Port(&'a str),
    Lun(&'a str),
    EmptyTarget,
    Target,
}

/// Parse one root path (with or without the `iscsi:` prefix). Errors
/// quote the value [`mask`]ed, and a field only where the masked value
/// shows it too (when the credentials are mistyped, a "field" can be cut
/// from a password).
pub fn parse(value: &str) -> Result<RootPath, RootPathError> {
    parse_raw(value).map_err(|fault| {
        let masker = Masker::for_root_path(value);
        let masked = masker.mask(&mask_by_split(value));
        let path = quote(&masked);
        let field = |f: &str| {
            if masked.contains(f) {
                masker.mask(&quote(f))
            } else {
                "\"***\"".to_string()
            }
        };
        match fault {
            Fault::Empty => RootPathError::Empty,
            Fault::Credentials => RootPathError::Credentials { path },
            Fault::Server(s) => RootPathError::Server {
                server: field(s),
                path,
            },
            Fault::UnclosedBracket => RootPathError::UnclosedBracket { path },
            Fault::Ipv6(s) => RootPathError::Ipv6 {
                server: field(s),
                path,
            },
            Fault::Fields => RootPathError::Fields { path },
            Fault::Protocol(p) => RootPathError::Protocol {
                proto: field(p),
                path,
            },
            Fault::Port(p) => RootPathError::Port {
                port: field(p),
                path,
            },
            Fault::Lun(l) => RootPathError::Lun {
                lun: field(l),
                path,
            },
            Fault::EmptyTarget => RootPathError::EmptyTarget { path },
            Fault::Target => RootPathError::Target { path },
        }
    })
}

/// The parser proper: rules 1-4 of the module docs, no message built.
fn parse_raw(value: &str) -> Result<RootPath, Fault<'_>> {
    let v = value.strip_prefix("iscsi:").unwrap_or(value);
    if v.is_empty() {
        return Err(Fault::Empty);
    }

    // 1. Credentials: dracut's `*@*:*:*:*:*`.
    let (auth, rest) = split_auth(v);
    let chap = match auth {
        None | Some("") => None,
        Some(a) => Some(parse_auth(a).ok_or(Fault::Credentials)?),
    };

    // 2. Server.
    let (server, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (inner, after) = r.split_once(']').ok_or(Fault::UnclosedBracket)?;
        let addr: Ipv6Addr = inner
            .parse()
            .map_err(|_| Fault::Ipv6(rest.get(..inner.len() + 2).unwrap_or(rest)))?;
        let after = after.strip_prefix(':').ok_or(Fault::Fields)?;
        (addr.to_string(), after)
    } else {
        let (s, after) = rest.split_once(':').ok_or(Fault::Fields)?;
        if !valid_host(s) {
            return Err(Fault::Server(s));
        }
        (s.to_string(), after)
    };

    // 3. Target name.
    let (head, target) = target_split(rest).ok_or(Fault::Fields)?;

    // 4. proto:port[:iface:netdev]:lun
    let fields: Vec<&str> = head.split(':').collect();
    let (proto, port, iface, netdev, lun) = match fields.as_slice() {
        [p, po, l] => (*p, *po, "", "", *l),
        [p, po, i, n, l] => (*p, *po, *i, *n, *l),
        _ => return Err(Fault::Fields),
    };
    if !(proto.is_empty() || proto == "6") {
        return Err(Fault::Protocol(proto));
    }
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        parse_dec(port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or(Fault::Port(port))?
    };
    let lun = parse_lun(lun).ok_or(Fault::Lun(lun))?;
    if target.is_empty() {
        return Err(Fault::EmptyTarget);
    }
    if !valid_target(target) {
        return Err(Fault::Target);
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
        assert_eq!(mask("h::::t@x"), "h::::t@x");
        assert_eq!(mask("u:pw@host"), "u:***@host");
        // Issue 12: a password or target user name that starts like a
        // target name is still a credential.
        assert_eq!(mask("iscsi:u:iqn.pw@h::::iqn.t"), "iscsi:u:***@h::::iqn.t");
        assert_eq!(
            mask("u:iqn.2026-11.x:y:iqn.2026-11.org.t:root:zz@h::::iqn.t"),
            "***@h::::iqn.t"
        );
        assert_eq!(
            mask("u:eui.pw:iqn.2026-11.org.t:naa.pw2@h::99999::iqn.t"),
            "u:***:iqn.2026-11.org.t:***@h::99999::iqn.t"
        );
    }
}
