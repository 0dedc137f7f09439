//! Our Rx service: `NETBOOT_CONFIG`, pure marshalling (no I/O).
//!
//! | item | value | why |
//! |---|---|---|
//! | service id | 20034 (0x4E42, "NB") | the connector idx netboot already uses (plan.rs); far from AFS's 1, 50–52, 73, 409 |
//! | UDP port | 7260 | "iSCSI 3260 in the AFS 7xxx range", clear of AFS 7000–7009 (/etc/services) and of well-known ports |
//! | opcode 1 | `GetConfig` | request: opcode + XDR `{string mac; string iqn; string hostname}`; reply: XDR `opaque json<>` |
//!
//! XDR (RFC 4506 §4.10/4.11): a string/opaque is a BE u32 length, the bytes,
//! and zero padding to a multiple of 4.
//!
//! Failures are call aborts (rxrpc.md §1.9; application codes positive):
//!
//! | code | name | when |
//! |---|---|---|
//! | 1 | `NBCONF_NOT_FOUND` | no file for any identity and no `default.json` |
//! | 2 | `NBCONF_INVALID` | the selected file fails schema validation |
//! | 3 | `NBCONF_TOO_LARGE` | the reply would exceed [`MAX_REPLY`], or the request [`MAX_REQUEST`] |
//! | 4 | `NBCONF_BAD_IDENTITY` | an identity value is not a MAC / IQN / host name (e.g. `../x`) |
//! | 5 | `NBCONF_UNREADABLE` | the selected file is not a regular file in the directory (a symlink, FIFO, directory, device), or cannot be opened or read; never a fall-through to `default.json` (store.rs) |
//! | 6 | `NBCONF_SECRETS_REFUSED` | the document holds CHAP secrets (or a sensitive parameter) and the call is not rxkad-encrypted (plain, or level `auth`), and the document does not say `"serve_secrets_insecure": true` |
//! | 7 | `NBCONF_WRONG_MACHINE` | the call's token is a machine token (`netboot.mac-…`) for another MAC than the one the request names |
//! | 8 | `NBCONF_NOT_NETBOOT_TOKEN` | the call's ticket is valid but names no netboot principal (name `netboot`, instance `mac-…` or `fleet-…`) |
//! | 9 | `NBCONF_SECURITY_REQUIRED` | a plain (security index 0) call to a configd started with `--min-level auth` or `encrypt` |
//! | 19270400.. | `RXKAD*` | rxkad refused the connection (rxkad.md §7): bad, expired or unknown-key token, level, checksum |
//! | −453 | `RXGEN_SS_UNMARSHAL` | request does not decode (truncated, bad length, trailing bytes) |
//! | −455 | `RXGEN_OPCODE` | unknown opcode |

use std::fmt;

pub const SERVICE_ID: u16 = 0x4E42;
pub const DEFAULT_PORT: u16 = 7260;
pub const OP_GET_CONFIG: u32 = 1;

pub const NBCONF_NOT_FOUND: i32 = 1;
pub const NBCONF_INVALID: i32 = 2;
pub const NBCONF_TOO_LARGE: i32 = 3;
pub const NBCONF_BAD_IDENTITY: i32 = 4;
pub const NBCONF_UNREADABLE: i32 = 5;
pub const NBCONF_SECRETS_REFUSED: i32 = 6;
pub const NBCONF_WRONG_MACHINE: i32 = 7;
pub const NBCONF_NOT_NETBOOT_TOKEN: i32 = 8;
pub const NBCONF_SECURITY_REQUIRED: i32 = 9;

/// Largest JSON document served (bytes): a config is a few KiB; 64 KiB
/// bounds server memory per call and is 47 packets of 1412 bytes.
pub const MAX_REPLY: usize = 64 * 1024;
/// Largest request: opcode + three strings of at most 255 bytes, padded.
pub const MAX_REQUEST: usize = 4 + 3 * (4 + 256);
/// Longest identity value (DNS name limit, RFC 1035 §2.3.4; IQNs are
/// ≤ 223 bytes, RFC 7143 §4.2.7).
pub const MAX_IDENTITY_LEN: usize = 255;

const _: () = assert!(MAX_REPLY + 4 <= 47 * 1412);

/// Name of an abort code for logs and errors.
pub fn abort_name(code: i32) -> &'static str {
    match code {
        NBCONF_NOT_FOUND => "NBCONF_NOT_FOUND",
        NBCONF_INVALID => "NBCONF_INVALID",
        NBCONF_TOO_LARGE => "NBCONF_TOO_LARGE",
        NBCONF_BAD_IDENTITY => "NBCONF_BAD_IDENTITY",
        NBCONF_UNREADABLE => "NBCONF_UNREADABLE",
        NBCONF_SECRETS_REFUSED => "NBCONF_SECRETS_REFUSED",
        NBCONF_WRONG_MACHINE => "NBCONF_WRONG_MACHINE",
        NBCONF_NOT_NETBOOT_TOKEN => "NBCONF_NOT_NETBOOT_TOKEN",
        NBCONF_SECURITY_REQUIRED => "NBCONF_SECURITY_REQUIRED",
        c => crate::rxrpc::wire::abort::name(c)
            .or_else(|| crate::rxkad::code_name(c))
            .unwrap_or("unknown"),
    }
}

/// What an abort code means for the agent, in words, with what to do;
/// `None` for codes whose name says enough.
pub fn abort_hint(code: i32) -> Option<&'static str> {
    use crate::rxkad::code;
    Some(match code {
        NBCONF_SECRETS_REFUSED => {
            "the config holds CHAP secrets and the call was not encrypted; \
             give the machine a token (netboot.config.security=encrypt)"
        }
        NBCONF_WRONG_MACHINE => "the token belongs to another machine (its MAC is in the token)",
        NBCONF_NOT_NETBOOT_TOKEN => "the token is not a netboot token (netboot-configd token)",
        NBCONF_SECURITY_REQUIRED => {
            "the server takes only rxkad calls; give the machine a token \
             (netboot.config.security=encrypt)"
        }
        code::RXKADEXPIRED => "the token has expired; mint a new one (netboot-configd token)",
        code::RXKADNOAUTH => "the token is not valid yet (check the clocks)",
        code::RXKADUNKNOWNKEY => {
            "the server has no key of the token's version (kvno) or no --rxkad-keys"
        }
        code::RXKADBADTICKET | code::RXKADTICKETLEN => {
            "the server cannot open the token's ticket (minted with another server key?)"
        }
        code::RXKADLEVELFAIL => "the security level is below what the server requires",
        code::RXKADSEALEDINCON | code::RXKADDATALEN => {
            "a packet failed its rxkad checksum or seal (wrong session key, or tampering)"
        }
        code::RXKADOUTOFSEQUENCE | code::RXKADINCONSISTENCY | code::RXKADPACKETSHORT => {
            "the rxkad handshake failed"
        }
        _ => return None,
    })
}

/// Who is asking. Empty strings mean "not known"; the server tries MAC,
/// then IQN, then host name, then `default`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub mac: String,
    pub iqn: String,
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdrError {
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    NotUtf8 {
        what: &'static str,
    },
    Trailing {
        bytes: usize,
    },
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdrError::Short { what, need, got } => {
                write!(f, "{what} truncated: need {need} bytes, got {got}")
            }
            XdrError::TooLong { what, len, max } => {
                write!(f, "{what} of {len} bytes exceeds {max}")
            }
            XdrError::NotUtf8 { what } => write!(f, "{what} is not UTF-8"),
            XdrError::Trailing { bytes } => {
                write!(f, "{bytes} unexpected bytes after the arguments")
            }
        }
    }
}

impl std::error::Error for XdrError {}

/// XDR reader over a byte slice; never panics.
pub struct XdrReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        XdrReader { b, pos: 0 }
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, XdrError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], XdrError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|e| self.b.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(XdrError::Short {
                what,
                need: self.pos.saturating_add(n),
                got: self.b.len(),
            }),
        }
    }

    /// `opaque<max>`: length, bytes, padding to 4.
    pub fn opaque(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], XdrError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(XdrError::TooLong { what, len, max });
        }
        let s = self.take(len, what)?;
        self.take(pad(len), what)?;
        Ok(s)
    }

    pub fn string(&mut self, what: &'static str, max: usize) -> Result<&'a str, XdrError> {
        std::str::from_utf8(self.opaque(what, max)?).map_err(|_| XdrError::NotUtf8 { what })
    }

    pub fn finish(&self) -> Result<(), XdrError> {
        match self.b.len() - self.pos.min(self.b.len()) {
            0 => Ok(()),
            bytes => Err(XdrError::Trailing { bytes }),
        }
    }
}

fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_opaque(out: &mut Vec<u8>, b: &[u8]) {
    // Callers bound `b` far below 4 GiB (MAX_REPLY, MAX_IDENTITY_LEN).
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
    out.extend(std::iter::repeat_n(0u8, pad(b.len())));
}

/// A decoded request for our service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    GetConfig(Identity),
}

/// Why a request cannot be served; maps to the abort code sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    UnknownOpcode(u32),
    Unmarshal(XdrError),
}

impl RequestError {
    pub fn abort_code(&self) -> i32 {
        match self {
            RequestError::UnknownOpcode(_) => crate::rxrpc::wire::abort::RXGEN_OPCODE,
            RequestError::Unmarshal(_) => crate::rxrpc::wire::abort::RXGEN_SS_UNMARSHAL,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            RequestError::Unmarshal(e) => write!(f, "undecodable request: {e}"),
        }
    }
}

pub fn encode_get_config(id: &Identity) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + id.mac.len() + id.iqn.len() + id.hostname.len());
    put_u32(&mut out, OP_GET_CONFIG);
    put_opaque(&mut out, id.mac.as_bytes());
    put_opaque(&mut out, id.iqn.as_bytes());
    put_opaque(&mut out, id.hostname.as_bytes());
    out
}

pub fn decode_request(b: &[u8]) -> Result<Request, RequestError> {
    let mut r = XdrReader::new(b);
    let op = r.u32("opcode").map_err(RequestError::Unmarshal)?;
    match op {
        OP_GET_CONFIG => {
            let mut s = |what| {
                r.string(what, MAX_IDENTITY_LEN)
                    .map(str::to_string)
                    .map_err(RequestError::Unmarshal)
            };
            let id = Identity {
                mac: s("mac")?,
                iqn: s("iqn")?,
                hostname: s("hostname")?,
            };
            r.finish().map_err(RequestError::Unmarshal)?;
            Ok(Request::GetConfig(id))
        }
        op => Err(RequestError::UnknownOpcode(op)),
    }
}

pub fn encode_reply(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 8);
    put_opaque(&mut out, json);
    out
}

pub fn decode_reply(b: &[u8]) -> Result<&[u8], XdrError> {
    let mut r = XdrReader::new(b);
    let json = r.opaque("config json", MAX_REPLY)?;
    r.finish()?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_config_bytes() {
        let id = Identity {
            mac: "52:54:00:12:34:56".into(),
            iqn: "iqn.x".into(),
            hostname: String::new(),
        };
        let b = encode_get_config(&id);
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 17];
        want.extend_from_slice(b"52:54:00:12:34:56\0\0\0");
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"iqn.x\0\0\0");
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(b, want);
        assert_eq!(decode_request(&b), Ok(Request::GetConfig(id)));
    }

    #[test]
    fn bad_requests() {
        assert_eq!(
            decode_request(&[0, 0, 0, 9]),
            Err(RequestError::UnknownOpcode(9))
        );
        assert!(matches!(
            decode_request(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
            Err(RequestError::Unmarshal(XdrError::TooLong { .. }))
        ));
        assert!(matches!(
            decode_request(&[0, 0]),
            Err(RequestError::Unmarshal(XdrError::Short { .. }))
        ));
        let mut b = encode_get_config(&Identity::default());
        b.push(0);
        assert_eq!(
            decode_request(&b),
            Err(RequestError::Unmarshal(XdrError::Trailing { bytes: 1 }))
        );
        assert_eq!(RequestError::UnknownOpcode(9).abort_code(), -455);
    }

    #[test]
    fn reply_round_trip() {
        let r = encode_reply(b"{}");
        assert_eq!(r, [0, 0, 0, 2, b'{', b'}', 0, 0]);
        assert_eq!(decode_reply(&r), Ok(&b"{}"[..]));
        assert!(decode_reply(&r[..5]).is_err());
    }
}
