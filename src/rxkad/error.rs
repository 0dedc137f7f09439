//! rxkad errors: an abort code (rxkad.md §7) and what failed, in words.
//! The words never contain key bytes, ticket bytes or session keys.

use std::fmt;

/// The rxkad abort codes (OpenAFS rxkad_errs.et = Linux uapi rxrpc.h).
pub mod code {
    pub const RXKADINCONSISTENCY: i32 = 19_270_400;
    pub const RXKADPACKETSHORT: i32 = 19_270_401;
    pub const RXKADLEVELFAIL: i32 = 19_270_402;
    pub const RXKADTICKETLEN: i32 = 19_270_403;
    pub const RXKADOUTOFSEQUENCE: i32 = 19_270_404;
    pub const RXKADNOAUTH: i32 = 19_270_405;
    pub const RXKADBADKEY: i32 = 19_270_406;
    pub const RXKADBADTICKET: i32 = 19_270_407;
    pub const RXKADUNKNOWNKEY: i32 = 19_270_408;
    pub const RXKADEXPIRED: i32 = 19_270_409;
    pub const RXKADSEALEDINCON: i32 = 19_270_410;
    pub const RXKADDATALEN: i32 = 19_270_411;
    pub const RXKADILLEGALLEVEL: i32 = 19_270_412;
}

const NAMES: [&str; 13] = [
    "RXKADINCONSISTENCY",
    "RXKADPACKETSHORT",
    "RXKADLEVELFAIL",
    "RXKADTICKETLEN",
    "RXKADOUTOFSEQUENCE",
    "RXKADNOAUTH",
    "RXKADBADKEY",
    "RXKADBADTICKET",
    "RXKADUNKNOWNKEY",
    "RXKADEXPIRED",
    "RXKADSEALEDINCON",
    "RXKADDATALEN",
    "RXKADILLEGALLEVEL",
];

/// The name of an rxkad abort code, None for any other code.
pub fn code_name(c: i32) -> Option<&'static str> {
    let i = c.checked_sub(code::RXKADINCONSISTENCY)?;
    NAMES.get(usize::try_from(i).ok()?).copied()
}

/// What failed (`what`, plain words) and the abort code that says so on
/// the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxkadError {
    pub code: i32,
    pub what: String,
}

impl RxkadError {
    pub fn new(code: i32, what: impl Into<String>) -> RxkadError {
        RxkadError {
            code,
            what: what.into(),
        }
    }
}

impl fmt::Display for RxkadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match code_name(self.code) {
            Some(n) => write!(f, "{} (rxkad {n} {})", self.what, self.code),
            None => write!(f, "{} (abort {})", self.what, self.code),
        }
    }
}

impl std::error::Error for RxkadError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_the_table() {
        assert_eq!(code_name(19_270_400), Some("RXKADINCONSISTENCY"));
        assert_eq!(code_name(code::RXKADSEALEDINCON), Some("RXKADSEALEDINCON"));
        assert_eq!(code_name(19_270_412), Some("RXKADILLEGALLEVEL"));
        assert_eq!(code_name(19_270_413), None);
        assert_eq!(code_name(19_270_399), None);
        assert_eq!(code_name(i32::MIN), None);
        assert_eq!(code_name(-5), None);
        let e = RxkadError::new(code::RXKADEXPIRED, "ticket expired");
        assert_eq!(
            e.to_string(),
            "ticket expired (rxkad RXKADEXPIRED 19270409)"
        );
    }
}
