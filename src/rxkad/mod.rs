//! rxkad, RxRPC security index 2 (rxkad.md): the pure pieces, no syscalls.
//!
//! - [`fcrypt`]: the fcrypt block cipher and PCBC over it (rxkad.md §5).
//! - [`ticket`]: Kerberos-4 form tickets sealed with DES-PCBC under the
//!   server key, the OpenAFS life byte, the time checks (rxkad.md §4).
//! - [`handshake`]: CHALLENGE and RESPONSE bodies (rxkad.md §1).
//! - [`packet`]: per-connection security after the handshake: the header
//!   checksum and the DATA payload at each level (rxkad.md §2, §3).
//!
//! Randomness is the caller's: nonces, session keys and server keys come in
//! as bytes. Nothing here prints key material: every type holding a key has
//! a `Debug` that hides it.

pub mod error;
pub mod fcrypt;
/// The key, token and OpenAFS KeyFile formats (owner: rxkad-agent).
pub mod files;
pub mod handshake;
pub mod packet;
pub mod ticket;

pub use error::{code, code_name, RxkadError};

use std::fmt;

/// The securityIndex of rxkad in the RxRPC header (rxkad.md §7).
pub const SECURITY_INDEX: u8 = 2;

/// Security level of an rxkad connection (rxkad.md §3): `Clear` = header
/// checksum only, `Auth` = plus a sealed length/check word, `Encrypt` =
/// the whole payload fcrypt-PCBC encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Clear = 0,
    Auth = 1,
    Encrypt = 2,
}

impl Level {
    pub fn from_u32(v: u32) -> Option<Level> {
        match v {
            0 => Some(Level::Clear),
            1 => Some(Level::Auth),
            2 => Some(Level::Encrypt),
            _ => None,
        }
    }

    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The word used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Level::Clear => "none",
            Level::Auth => "auth",
            Level::Encrypt => "encrypt",
        }
    }

    /// Parse "none" | "auth" | "encrypt" (the Display form).
    pub fn from_name(s: &str) -> Option<Level> {
        [Level::Clear, Level::Auth, Level::Encrypt]
            .into_iter()
            .find(|l| l.name() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for (n, l) in [(0, Level::Clear), (1, Level::Auth), (2, Level::Encrypt)] {
            assert_eq!(Level::from_u32(n), Some(l));
            assert_eq!(l.as_u32(), n);
            assert_eq!(Level::from_name(&l.to_string()), Some(l));
        }
        assert_eq!(Level::from_u32(3), None);
        assert_eq!(Level::from_name("crypt"), None);
        assert!(Level::Clear < Level::Auth && Level::Auth < Level::Encrypt);
    }
}
