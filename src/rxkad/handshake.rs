//! CHALLENGE and RESPONSE bodies (rxkad.md §1): the v2 challenge, the
//! response with its checksum and its PCBC-sealed middle, both directions.
//! The server's checks that need connection state (epoch, cid, call
//! numbers, nonce, level) are the caller's: [`SealedResponse::open`] gives
//! the decrypted fields after checking what it can alone.

use super::error::{code, RxkadError};
use super::fcrypt::Fcrypt;
use super::ticket::{MAX_TICKET_LEN, MIN_TICKET_LEN};
use super::{be32, SECURITY_INDEX};
use std::fmt;

/// Challenge and response protocol version.
pub const VERSION: u32 = 2;
pub const CHALLENGE_LEN: usize = 16;
/// RESPONSE bytes before the ticket.
pub const RESPONSE_HEAD_LEN: usize = 56;
/// The PCBC-sealed part of the RESPONSE head.
const SEALED: std::ops::Range<usize> = 8..48;
const OFF_CKSUM: usize = 16;

/// A v2 CHALLENGE: the nonce the client must answer with nonce + 1, and
/// the lowest level the server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: u32,
    pub min_level: u32,
}

impl Challenge {
    pub fn encode(&self) -> [u8; CHALLENGE_LEN] {
        let mut b = [0u8; CHALLENGE_LEN];
        b[0..4].copy_from_slice(&VERSION.to_be_bytes());
        b[4..8].copy_from_slice(&self.nonce.to_be_bytes());
        b[8..12].copy_from_slice(&self.min_level.to_be_bytes());
        b
    }

    /// Shorter than 16 bytes → RXKADPACKETSHORT (OpenAFS's old 8-byte form
    /// is refused, as Linux does); version ≠ 2 → RXKADINCONSISTENCY.
    pub fn decode(b: &[u8]) -> Result<Challenge, RxkadError> {
        if b.len() < CHALLENGE_LEN {
            return Err(RxkadError::new(
                code::RXKADPACKETSHORT,
                format!("challenge of {} bytes, need {CHALLENGE_LEN}", b.len()),
            ));
        }
        let word = |o| be32(b, o).unwrap_or(0);
        if word(0) != VERSION {
            return Err(RxkadError::new(
                code::RXKADINCONSISTENCY,
                format!("challenge version {}, expected {VERSION}", word(0)),
            ));
        }
        Ok(Challenge {
            nonce: word(4),
            min_level: word(8),
        })
    }
}

/// The sealed fields of a RESPONSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFields {
    pub epoch: u32,
    /// Connection id with the channel bits zero.
    pub cid: u32,
    /// Per channel, the latest call number used on it (0 if none).
    pub call_ids: [u32; 4],
    /// The challenge's nonce + 1.
    pub inc_nonce: u32,
    /// The level the client will use (0, 1, 2).
    pub level: u32,
}

/// The response checksum (rxkad.md §1): c = 1000003, then for every byte
/// c = c·0x10204081 + b, over the 56-byte head with the checksum zero.
pub fn response_checksum(head: &[u8; RESPONSE_HEAD_LEN]) -> u32 {
    let mut h = *head;
    h[OFF_CKSUM..OFF_CKSUM + 4].fill(0);
    h.iter().fold(1_000_003u32, |c, &b| {
        c.wrapping_mul(0x1020_4081).wrapping_add(u32::from(b))
    })
}

/// Client side: the whole RESPONSE body (56 bytes + ticket), checksum
/// computed, bytes 8..48 sealed with PCBC(Ks, IV = Ks). `f.cid`'s channel
/// bits are cleared here. The ticket goes out as given (its length is the
/// caller's to keep within 32..=12000, or 1024 for a Linux server).
pub fn build_response(
    f: &ResponseFields,
    session_key: [u8; 8],
    kvno: u32,
    ticket: &[u8],
) -> Vec<u8> {
    let mut head = [0u8; RESPONSE_HEAD_LEN];
    let words: [u32; 14] = [
        VERSION,
        0,
        f.epoch,
        f.cid & !3,
        0,
        u32::from(SECURITY_INDEX),
        f.call_ids[0],
        f.call_ids[1],
        f.call_ids[2],
        f.call_ids[3],
        f.inc_nonce,
        f.level,
        kvno,
        ticket.len() as u32,
    ];
    for (chunk, w) in head.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    let sum = response_checksum(&head);
    head[OFF_CKSUM..OFF_CKSUM + 4].copy_from_slice(&sum.to_be_bytes());
    // 40 bytes: always whole blocks.
    let _ = Fcrypt::new(session_key).pcbc_encrypt(session_key, &mut head[SEALED]);
    let mut out = Vec::with_capacity(RESPONSE_HEAD_LEN + ticket.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(ticket);
    out
}

/// A RESPONSE as received: the clear kvno and ticket, and the sealed head
/// to open once the ticket gave the session key. `Debug` hides the ticket.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedResponse {
    pub kvno: u32,
    pub ticket: Vec<u8>,
    head: [u8; RESPONSE_HEAD_LEN],
}

impl fmt::Debug for SealedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealedResponse {{ kvno: {}, ticket: <{} bytes> }}",
            self.kvno,
            self.ticket.len()
        )
    }
}

impl SealedResponse {
    /// Lengths and version, in the servers' order (rxkad.md §1): short →
    /// RXKADPACKETSHORT, version ≠ 2 → RXKADINCONSISTENCY, ticket length
    /// outside 32..=12000 → RXKADTICKETLEN, ticket cut short →
    /// RXKADPACKETSHORT. Bytes after the ticket are ignored.
    pub fn decode(b: &[u8]) -> Result<SealedResponse, RxkadError> {
        let short = |need: usize| {
            RxkadError::new(
                code::RXKADPACKETSHORT,
                format!("response of {} bytes, need {need}", b.len()),
            )
        };
        let mut head = [0u8; RESPONSE_HEAD_LEN];
        head.copy_from_slice(b.get(..RESPONSE_HEAD_LEN).ok_or(short(RESPONSE_HEAD_LEN))?);
        let word = |o| be32(&head, o).unwrap_or(0);
        if word(0) != VERSION {
            return Err(RxkadError::new(
                code::RXKADINCONSISTENCY,
                format!("response version {}, expected {VERSION}", word(0)),
            ));
        }
        let kvno = word(48);
        let tlen = word(52) as usize;
        if !(MIN_TICKET_LEN..=MAX_TICKET_LEN).contains(&tlen) {
            return Err(RxkadError::new(
                code::RXKADTICKETLEN,
                format!(
                    "response ticket length {tlen}, allowed {MIN_TICKET_LEN} to {MAX_TICKET_LEN}"
                ),
            ));
        }
        let need = RESPONSE_HEAD_LEN + tlen;
        let ticket = b.get(RESPONSE_HEAD_LEN..need).ok_or(short(need))?.to_vec();
        Ok(SealedResponse { kvno, ticket, head })
    }

    /// Decrypt the sealed part with the ticket's session key and check the
    /// checksum and the security index (RXKADSEALEDINCON).
    pub fn open(&self, session_key: [u8; 8]) -> Result<ResponseFields, RxkadError> {
        let mut h = self.head;
        let _ = Fcrypt::new(session_key).pcbc_decrypt(session_key, &mut h[SEALED]);
        let word = |o| be32(&h, o).unwrap_or(0);
        if word(OFF_CKSUM) != response_checksum(&h) {
            return Err(RxkadError::new(
                code::RXKADSEALEDINCON,
                "response checksum mismatch (wrong session key or altered response)",
            ));
        }
        if word(20) != u32::from(SECURITY_INDEX) {
            return Err(RxkadError::new(
                code::RXKADSEALEDINCON,
                format!("response security index {}, expected 2", word(20)),
            ));
        }
        Ok(ResponseFields {
            epoch: word(8),
            cid: word(12),
            call_ids: [word(24), word(28), word(32), word(36)],
            inc_nonce: word(40),
            level: word(44),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KS: [u8; 8] = [0x11, 0x44, 0x77, 0xAA, 0xDD, 0x00, 0x33, 0x66];

    fn fields() -> ResponseFields {
        ResponseFields {
            epoch: 0x8000_1234,
            cid: 0x0000_0040,
            call_ids: [7, 0, 2, 0],
            inc_nonce: 0xDEAD_BEF0,
            level: 2,
        }
    }

    #[test]
    fn challenge_round_trip_and_rejections() {
        let c = Challenge {
            nonce: 0xDEAD_BEEF,
            min_level: 1,
        };
        let b = c.encode();
        assert_eq!(b[..4], [0, 0, 0, 2]);
        assert_eq!(b[12..], [0; 4]);
        assert_eq!(Challenge::decode(&b), Ok(c));
        let e = Challenge::decode(&b[..8]).unwrap_err();
        assert_eq!(e.code, code::RXKADPACKETSHORT);
        let mut v1 = b;
        v1[3] = 1;
        assert_eq!(
            Challenge::decode(&v1).unwrap_err().code,
            code::RXKADINCONSISTENCY
        );
    }

    #[test]
    fn response_round_trip() {
        let ticket = vec![0x5A; 48];
        let b = build_response(&fields(), KS, 3, &ticket);
        assert_eq!(b.len(), 56 + 48);
        assert_eq!(b[..8], [0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(b[48..56], [0, 0, 0, 3, 0, 0, 0, 48]);
        let r = SealedResponse::decode(&b).unwrap();
        assert_eq!((r.kvno, r.ticket.as_slice()), (3, ticket.as_slice()));
        assert_eq!(r.open(KS).unwrap(), fields());
        assert!(!format!("{r:?}").contains("5a"));
        // The channel bits of the cid never go out.
        let f = ResponseFields {
            cid: 0x43,
            ..fields()
        };
        let r = SealedResponse::decode(&build_response(&f, KS, 3, &ticket)).unwrap();
        assert_eq!(r.open(KS).unwrap().cid, 0x40);
    }

    /// The checksum by its definition, on a hand-made head.
    #[test]
    fn checksum_known_value() {
        let head = [0u8; 56];
        let mut c = 1_000_003u32;
        for _ in 0..56 {
            c = c.wrapping_mul(0x1020_4081);
        }
        assert_eq!(response_checksum(&head), c);
        let mut h = head;
        h[16..20].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(response_checksum(&h), c, "the checksum field is zeroed");
        h[55] = 1;
        assert_eq!(response_checksum(&h), c.wrapping_add(1));
    }

    #[test]
    fn decode_rejections() {
        let good = build_response(&fields(), KS, 3, &[1; 32]);
        let e = |b: &[u8]| SealedResponse::decode(b).unwrap_err().code;
        assert_eq!(e(&good[..55]), code::RXKADPACKETSHORT);
        assert_eq!(e(&good[..87]), code::RXKADPACKETSHORT);
        let mut v = good.clone();
        v[3] = 3;
        assert_eq!(e(&v), code::RXKADINCONSISTENCY);
        for tlen in [0u32, 31, 12_001, u32::MAX] {
            let mut v = good.clone();
            v[52..56].copy_from_slice(&tlen.to_be_bytes());
            assert_eq!(e(&v), code::RXKADTICKETLEN, "{tlen}");
        }
        // Extra bytes after the ticket are ignored.
        let mut v = good.clone();
        v.extend_from_slice(&[0; 5]);
        assert!(SealedResponse::decode(&v).is_ok());
    }

    #[test]
    fn tampering_and_wrong_key_fail_the_checksum() {
        let good = build_response(&fields(), KS, 3, &[1; 32]);
        let mut other = KS;
        other[0] ^= 0x80;
        let r = SealedResponse::decode(&good).unwrap();
        assert_eq!(r.open(other).unwrap_err().code, code::RXKADSEALEDINCON);
        // Any bit of the head (sealed part, kvno, ticket length) counts.
        for i in 4..56 {
            let mut v = good.clone();
            v[i] ^= 1;
            let Ok(r) = SealedResponse::decode(&v) else {
                continue; // ticket length now out of bounds
            };
            assert_eq!(
                r.open(KS).unwrap_err().code,
                code::RXKADSEALEDINCON,
                "byte {i}"
            );
        }
    }
}
