//! CHAP with MD5 for iSCSI login (RFC 7143 §12.1.3, RFC 1994).
//!
//! Response = MD5(identifier byte ‖ secret ‖ challenge). Binary values travel
//! as `0x…` hex or `0b…` base64 (RFC 7143 §6.1); we send hex and accept both.

use std::fmt;

/// CHAP_A value for MD5 (RFC 1994 / IANA PPP authentication algorithms).
pub const ALGORITHM_MD5: &str = "5";
/// Length of the challenge we send for mutual CHAP. RFC 7143 §12.1.3 asks for
/// at least the hash length; open-iscsi and tgt both use 16 bytes.
pub const CHALLENGE_LEN: usize = 16;
/// Upper bound on a challenge we accept (RFC 7143 §12.1.3: the target limits
/// CHAP_C to 1024 binary bytes).
pub const MAX_CHALLENGE_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChapError {
    /// A CHAP key the exchange needs is absent from the target's PDU.
    MissingKey(&'static str),
    /// The target chose an algorithm other than MD5.
    Algorithm(String),
    /// CHAP_I is not a number 0..=255.
    Identifier(String),
    /// A binary value that is neither valid `0x` hex nor `0b` base64.
    Encoding { key: &'static str, value: String },
    /// A challenge that is empty or longer than 1024 bytes.
    ChallengeLength(usize),
    /// The target sent back the challenge we sent it (RFC 7143 §12.1.3: a
    /// reflection attempt).
    Reflected,
    /// Mutual CHAP: the target's name is not the one configured.
    TargetName { expected: String, got: String },
    /// Mutual CHAP: the target's response does not match its secret.
    TargetResponse { user: String },
    /// getrandom failed.
    Random(String),
}

impl fmt::Display for ChapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChapError::MissingKey(k) => write!(f, "target did not send {k}"),
            ChapError::Algorithm(a) => {
                write!(f, "target chose CHAP_A={a}; only MD5 (5) is supported")
            }
            ChapError::Identifier(v) => write!(f, "invalid CHAP_I {v:?} (must be 0..255)"),
            ChapError::Encoding { key, value } => {
                write!(f, "invalid binary value for {key}: {:?}", truncate(value))
            }
            ChapError::ChallengeLength(n) => {
                write!(f, "CHAP challenge of {n} bytes (must be 1..{MAX_CHALLENGE_LEN})")
            }
            ChapError::Reflected => write!(f, "target reflected our own CHAP challenge"),
            ChapError::TargetName { expected, got } => write!(
                f,
                "mutual CHAP: target authenticated as {got:?}, expected {expected:?}"
            ),
            ChapError::TargetResponse { user } => write!(
                f,
                "mutual CHAP: the target's response for user {user:?} did not verify (wrong target secret?)"
            ),
            ChapError::Random(e) => write!(f, "cannot read random bytes for the CHAP challenge: {e}"),
        }
    }
}

impl std::error::Error for ChapError {}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// CHAP response: MD5(id ‖ secret ‖ challenge).
pub fn response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut ctx = md5::Context::new();
    ctx.consume([id]);
    ctx.consume(secret);
    ctx.consume(challenge);
    ctx.finalize().0
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Decode an RFC 7143 §6.1 binary value: `0x`/`0X` hex (odd length allowed,
/// as a leading zero nibble) or `0b`/`0B` base64.
pub fn decode_binary(key: &'static str, v: &str) -> Result<Vec<u8>, ChapError> {
    let err = || ChapError::Encoding {
        key,
        value: v.to_string(),
    };
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        let digits: Vec<u8> = h
            .bytes()
            .map(|c| (c as char).to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()
            .ok_or_else(err)?;
        if digits.is_empty() {
            return Err(err());
        }
        let mut out = Vec::with_capacity(digits.len().div_ceil(2));
        let mut it = digits.iter();
        if digits.len() % 2 == 1 {
            out.push(*it.next().ok_or_else(err)?);
        }
        while let (Some(hi), Some(lo)) = (it.next(), it.next()) {
            out.push(hi << 4 | lo);
        }
        Ok(out)
    } else if let Some(b) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        decode_base64(b).ok_or_else(err)
    } else {
        Err(err())
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=');
    if s.is_empty() || s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Fill `buf` from the kernel's CSPRNG (getrandom(2)).
/// Bytes that must be unpredictable enough to be unique (ISIDs), drawn
/// without blocking on CRNG initialisation: GRND_INSECURE (Linux ≥ 5.6),
/// falling back to the blocking pool on older kernels.
pub fn unique_bytes(buf: &mut [u8]) -> Result<(), ChapError> {
    match rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::INSECURE) {
        Ok(n) if n == buf.len() => Ok(()),
        _ => random_bytes(buf),
    }
}

pub fn random_bytes(buf: &mut [u8]) -> Result<(), ChapError> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(ChapError::Random(e.to_string())),
        }
    }
    Ok(())
}

/// Our half of mutual CHAP: the identifier and challenge we sent the target.
#[derive(Clone, PartialEq, Eq)]
pub struct OurChallenge {
    pub id: u8,
    pub challenge: [u8; CHALLENGE_LEN],
}

impl fmt::Debug for OurChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OurChallenge {{ id: {} }}", self.id)
    }
}

impl OurChallenge {
    pub fn random() -> Result<Self, ChapError> {
        let mut b = [0u8; CHALLENGE_LEN + 1];
        random_bytes(&mut b)?;
        let mut challenge = [0u8; CHALLENGE_LEN];
        challenge.copy_from_slice(&b[1..]);
        Ok(OurChallenge {
            id: b[0],
            challenge,
        })
    }
}

/// The target's CHAP_A/CHAP_I/CHAP_C, checked.
pub struct TargetChallenge {
    pub id: u8,
    pub challenge: Vec<u8>,
}

/// Read the target's challenge from its keys (RFC 7143 §12.1.3 step 2).
pub fn read_challenge(get: impl Fn(&str) -> Option<String>) -> Result<TargetChallenge, ChapError> {
    let a = get("CHAP_A").ok_or(ChapError::MissingKey("CHAP_A"))?;
    if a != ALGORITHM_MD5 {
        return Err(ChapError::Algorithm(a));
    }
    let i = get("CHAP_I").ok_or(ChapError::MissingKey("CHAP_I"))?;
    let id: u8 = i.parse().map_err(|_| ChapError::Identifier(i.clone()))?;
    let c = get("CHAP_C").ok_or(ChapError::MissingKey("CHAP_C"))?;
    let challenge = decode_binary("CHAP_C", &c)?;
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN {
        return Err(ChapError::ChallengeLength(challenge.len()));
    }
    Ok(TargetChallenge { id, challenge })
}

/// Verify the target's mutual CHAP answer (RFC 7143 §12.1.3 step 4).
pub fn verify_target(
    id: u8,
    challenge: &[u8],
    expected_user: &str,
    secret: &[u8],
    get: impl Fn(&str) -> Option<String>,
) -> Result<(), ChapError> {
    let n = get("CHAP_N").ok_or(ChapError::MissingKey("CHAP_N"))?;
    if n != expected_user {
        return Err(ChapError::TargetName {
            expected: expected_user.to_string(),
            got: n,
        });
    }
    let r = get("CHAP_R").ok_or(ChapError::MissingKey("CHAP_R"))?;
    let got = decode_binary("CHAP_R", &r)?;
    let want = response(id, secret, challenge);
    // Constant-time compare: the digest is not secret, but it costs nothing.
    let diff = got.len() ^ want.len()
        | got
            .iter()
            .zip(want.iter())
            .fold(0usize, |acc, (a, b)| acc | usize::from(a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(ChapError::TargetResponse {
            user: expected_user.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_response_known_vector() {
        // MD5(0x01 ‖ "secret" ‖ 00 01 02 03), computed independently with
        // `printf '\x01secret\x00\x01\x02\x03' | md5sum`.
        let r = response(1, b"secret", &[0, 1, 2, 3]);
        assert_eq!(
            encode_hex(&r),
            "0x".to_string() + &md5_hex(b"\x01secret\x00\x01\x02\x03")
        );
    }

    fn md5_hex(b: &[u8]) -> String {
        format!("{:x}", md5::compute(b))
    }

    #[test]
    fn hex_and_base64_decode() {
        assert_eq!(decode_binary("CHAP_C", "0x0a0B").unwrap(), vec![0x0a, 0x0b]);
        assert_eq!(decode_binary("CHAP_C", "0xabc").unwrap(), vec![0x0a, 0xbc]);
        assert_eq!(decode_binary("CHAP_C", "0bAAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(decode_binary("CHAP_C", "0bAAE=").unwrap(), vec![0, 1]);
        // No digits, bad hex digits, no 0x/0b prefix, bad base64, a base64
        // group cut short.
        for bad in ["0x", "0xzz", "1234", "0b*", "0bA"] {
            assert_eq!(
                decode_binary("CHAP_C", bad).unwrap_err().to_string(),
                format!("invalid binary value for CHAP_C: {bad:?}")
            );
        }
    }

    #[test]
    fn challenge_checks() {
        let keys = |a: &'static str, i: &'static str, c: &'static str| {
            move |k: &str| match k {
                "CHAP_A" => Some(a.to_string()),
                "CHAP_I" => Some(i.to_string()),
                "CHAP_C" => Some(c.to_string()),
                _ => None,
            }
        };
        assert!(read_challenge(keys("5", "7", "0x0102")).is_ok());
        assert_eq!(
            read_challenge(keys("7", "7", "0x01")).err(),
            Some(ChapError::Algorithm("7".into()))
        );
        assert_eq!(
            read_challenge(keys("5", "256", "0x01")).err(),
            Some(ChapError::Identifier("256".into()))
        );
        assert_eq!(
            read_challenge(|_| None).err(),
            Some(ChapError::MissingKey("CHAP_A"))
        );
    }

    #[test]
    fn mutual_verification() {
        let good = encode_hex(&response(9, b"tsecret", &[3; CHALLENGE_LEN]));
        let get = |r: String| {
            move |k: &str| match k {
                "CHAP_N" => Some("tuser".to_string()),
                "CHAP_R" => Some(r.clone()),
                _ => None,
            }
        };
        assert!(verify_target(
            9,
            &[3; CHALLENGE_LEN],
            "tuser",
            b"tsecret",
            get(good.clone())
        )
        .is_ok());
        assert_eq!(
            verify_target(9, &[3; CHALLENGE_LEN], "tuser", b"wrong", get(good.clone())),
            Err(ChapError::TargetResponse {
                user: "tuser".into()
            })
        );
        assert!(matches!(
            verify_target(9, &[3; CHALLENGE_LEN], "other", b"tsecret", get(good)),
            Err(ChapError::TargetName { .. })
        ));
    }

    #[test]
    fn random_challenges_differ() {
        let a = OurChallenge::random().unwrap();
        let b = OurChallenge::random().unwrap();
        assert_ne!(a.challenge, b.challenge);
    }
}
