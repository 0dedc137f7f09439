//! Per-connection rxkad security after the handshake (rxkad.md §2, §3),
//! the same at both ends: the DATA header checksum, and the DATA payload
//! at the connection's level.
//!
//! Sending uses the Linux form (level 1 padded to 8; level 2 padded to 8
//! with zeros). Receiving takes the Linux and the OpenAFS forms: level 1
//! unpadded (OpenAFS: max(8, 4 + len)), level 2 of any length ≥ 8, rounded
//! down to whole blocks (Linux 6.12.y "Fix rxkad crypto unalignment").

use super::error::{code, RxkadError};
use super::fcrypt::Fcrypt;
use super::{Level, SECURITY_INDEX};
use std::fmt;

/// The fcrypt schedule, csum_iv and level of one connection. `Debug` shows
/// the level only.
#[derive(Clone)]
pub struct ConnSecurity {
    cipher: Fcrypt,
    session_key: [u8; 8],
    csum_iv: [u8; 8],
    level: Level,
}

impl fmt::Debug for ConnSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnSecurity {{ level: {}, keys: *** }}", self.level)
    }
}

/// Bytes the security header and padding add at `level` for `len` user
/// bytes, in the form we send.
pub fn sealed_len(level: Level, len: usize) -> usize {
    match level {
        Level::Clear => len,
        Level::Auth => (4 + len).next_multiple_of(8),
        Level::Encrypt => (8 + len).next_multiple_of(8),
    }
}

/// Security header bytes at `level` (before padding).
pub fn overhead(level: Level) -> usize {
    match level {
        Level::Clear => 0,
        Level::Auth => 4,
        Level::Encrypt => 8,
    }
}

fn sealed(what: impl Into<String>) -> RxkadError {
    RxkadError::new(code::RXKADSEALEDINCON, what)
}

impl ConnSecurity {
    /// Key the connection: fcrypt with Ks; csum_iv = the second block of
    /// PCBC(Ks, IV = Ks) over epoch ‖ (cid & ~3) ‖ 0 ‖ 2 (rxkad.md §2).
    pub fn new(session_key: [u8; 8], epoch: u32, cid: u32, level: Level) -> ConnSecurity {
        let cipher = Fcrypt::new(session_key);
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&epoch.to_be_bytes());
        b[4..8].copy_from_slice(&(cid & !3).to_be_bytes());
        b[12..16].copy_from_slice(&u32::from(SECURITY_INDEX).to_be_bytes());
        let _ = cipher.pcbc_encrypt(session_key, &mut b);
        let mut csum_iv = [0u8; 8];
        csum_iv.copy_from_slice(&b[8..16]);
        ConnSecurity {
            cipher,
            session_key,
            csum_iv,
            level,
        }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// The header `cksum` of a DATA packet (rxkad.md §2): E(BE call ‖ BE
    /// ((cid & 3) << 30 | seq & 0x3fffffff) ⊕ csum_iv), bytes 4–5; 0 → 1.
    pub fn header_cksum(&self, call: u32, cid: u32, seq: u32) -> u16 {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&call.to_be_bytes());
        b[4..].copy_from_slice(&(((cid & 3) << 30) | (seq & 0x3fff_ffff)).to_be_bytes());
        b.iter_mut().zip(self.csum_iv).for_each(|(x, y)| *x ^= y);
        self.cipher.encrypt_block(&mut b);
        match u16::from_be_bytes([b[4], b[5]]) {
            0 => 1,
            v => v,
        }
    }

    /// Check a received DATA packet's header cksum.
    pub fn check_cksum(&self, call: u32, cid: u32, seq: u32, cksum: u16) -> Result<(), RxkadError> {
        let want = self.header_cksum(call, cid, seq);
        if cksum != want {
            return Err(sealed(format!(
                "DATA call {call} seq {seq}: header checksum {cksum:#06x} is wrong"
            )));
        }
        Ok(())
    }

    fn word(call: u32, seq: u32, len: usize) -> [u8; 4] {
        let check = (seq ^ call) & 0xffff;
        ((check << 16) | (len as u32 & 0xffff)).to_be_bytes()
    }

    /// The DATA payload for `data` (user bytes of one packet) at the
    /// connection's level: security header, data, zero pad, sealed. The
    /// length field is 16 bits: callers keep `data` within [`Self::max_data`]
    /// (longer data is cut to 65535 bytes).
    pub fn seal(&self, call: u32, seq: u32, data: &[u8]) -> Vec<u8> {
        let data = data.get(..data.len().min(0xffff)).unwrap_or(data);
        let len = data.len();
        let mut out = Vec::with_capacity(sealed_len(self.level, len));
        match self.level {
            Level::Clear => out.extend_from_slice(data),
            Level::Auth => {
                out.extend_from_slice(&Self::word(call, seq, len));
                out.extend_from_slice(data);
                out.resize(sealed_len(Level::Auth, len), 0);
                if let Some(first) = out.first_chunk_mut::<8>() {
                    self.cipher.encrypt_block(first);
                }
            }
            Level::Encrypt => {
                out.extend_from_slice(&Self::word(call, seq, len));
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(data);
                out.resize(sealed_len(Level::Encrypt, len), 0);
                let _ = self.cipher.pcbc_encrypt(self.session_key, &mut out);
            }
        }
        out
    }

    /// The user bytes of a received DATA payload (the header cksum is
    /// checked separately, [`Self::check_cksum`]). Levels 1 and 2: payload
    /// < 8 bytes or a wrong check word → RXKADSEALEDINCON; a length beyond
    /// the payload → RXKADDATALEN.
    pub fn unseal(&self, call: u32, seq: u32, payload: &[u8]) -> Result<Vec<u8>, RxkadError> {
        let hdr = overhead(self.level);
        let mut p = match self.level {
            Level::Clear => return Ok(payload.to_vec()),
            Level::Auth => payload.to_vec(),
            // Whole blocks only; a trailing partial block is not data.
            Level::Encrypt => payload
                .get(..payload.len() - payload.len() % 8)
                .unwrap_or(&[])
                .to_vec(),
        };
        if p.len() < 8 {
            return Err(sealed(format!(
                "DATA call {call} seq {seq}: {} byte payload, a {} payload needs 8",
                payload.len(),
                self.level
            )));
        }
        if self.level == Level::Auth {
            if let Some(first) = p.first_chunk_mut::<8>() {
                self.cipher.decrypt_block(first);
            }
        } else {
            let _ = self.cipher.pcbc_decrypt(self.session_key, &mut p);
        }
        let w = p.first_chunk::<4>().map_or(0, |b| u32::from_be_bytes(*b));
        let check = (seq ^ call) & 0xffff;
        if w >> 16 != check {
            return Err(sealed(format!(
                "DATA call {call} seq {seq}: sealed check word is wrong \
                 (wrong key, or the packet was altered or replayed elsewhere)"
            )));
        }
        let len = (w & 0xffff) as usize;
        let avail = p.len() - hdr;
        if len > avail {
            return Err(RxkadError::new(
                code::RXKADDATALEN,
                format!("DATA call {call} seq {seq}: sealed length {len} > {avail} bytes present"),
            ));
        }
        Ok(p.get(hdr..hdr + len).unwrap_or(&[]).to_vec())
    }

    /// User bytes that fit in one packet whose payload may be
    /// `max_payload` bytes, in the form we send.
    pub fn max_data(&self, max_payload: usize) -> usize {
        max_data(self.level, max_payload)
    }
}

/// [`ConnSecurity::max_data`] for a level.
pub fn max_data(level: Level, max_payload: usize) -> usize {
    match level {
        Level::Clear => max_payload,
        _ => (max_payload - max_payload % 8).saturating_sub(overhead(level)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KS: [u8; 8] = [0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87];

    fn sec(level: Level) -> ConnSecurity {
        ConnSecurity::new(KS, 0x8000_0001, 0x0000_0104, level)
    }

    /// csum_iv and the cksum by their definitions, with the fcrypt
    /// primitives (themselves checked against the kernel's vectors).
    #[test]
    fn csum_iv_and_header_cksum_by_definition() {
        let s = sec(Level::Clear);
        let f = Fcrypt::new(KS);
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&0x8000_0001u32.to_be_bytes());
        b[4..8].copy_from_slice(&0x104u32.to_be_bytes());
        b[15] = 2;
        f.pcbc_encrypt(KS, &mut b).unwrap();
        assert_eq!(s.csum_iv, b[8..16]);
        // Channel bits of the cid do not change csum_iv.
        assert_eq!(
            ConnSecurity::new(KS, 0x8000_0001, 0x107, Level::Auth).csum_iv,
            s.csum_iv
        );
        let mut blk = [0u8; 8];
        blk[..4].copy_from_slice(&5u32.to_be_bytes());
        blk[4..].copy_from_slice(&((2u32 << 30) | 3).to_be_bytes());
        blk.iter_mut().zip(s.csum_iv).for_each(|(x, y)| *x ^= y);
        f.encrypt_block(&mut blk);
        let want = u16::from_be_bytes([blk[4], blk[5]]).max(1);
        assert_eq!(s.header_cksum(5, 0x106, 3), want);
        assert_ne!(s.header_cksum(5, 0x106, 3), s.header_cksum(5, 0x106, 4));
        assert_ne!(s.header_cksum(5, 0x106, 3), s.header_cksum(6, 0x106, 3));
        assert_ne!(s.header_cksum(5, 0x106, 3), s.header_cksum(5, 0x105, 3));
        assert_eq!(s.check_cksum(5, 0x106, 3, want), Ok(()));
        let e = s.check_cksum(5, 0x106, 3, want ^ 1).unwrap_err();
        assert_eq!(e.code, code::RXKADSEALEDINCON);
        // Never 0, over many packets.
        assert!((0..5000).all(|q| s.header_cksum(1, 0x104, q) != 0));
    }

    #[test]
    fn round_trips_at_every_level_and_length() {
        for level in [Level::Clear, Level::Auth, Level::Encrypt] {
            let s = sec(level);
            for len in [0usize, 1, 3, 4, 5, 7, 8, 9, 100, 1400, 1404] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let p = s.seal(9, 4, &data);
                assert_eq!(p.len(), sealed_len(level, len), "{level} {len}");
                assert_eq!(s.unseal(9, 4, &p).unwrap(), data, "{level} {len}");
                if level == Level::Encrypt && len >= 8 {
                    assert!(!p.windows(8).any(|w| w == &data[..8]), "plaintext visible");
                }
            }
        }
    }

    /// Known layout: level 1 is word ‖ data, first block ECB; level 2 is
    /// word ‖ 0 ‖ data ‖ pad, PCBC from Ks.
    #[test]
    fn layouts() {
        let f = Fcrypt::new(KS);
        let a = sec(Level::Auth).seal(0x10, 0x3, b"hello");
        let mut first: [u8; 8] = a[..8].try_into().unwrap();
        f.decrypt_block(&mut first);
        assert_eq!(first, [0, 0x13, 0, 5, b'h', b'e', b'l', b'l']);
        assert_eq!(&a[8..], b"o\0\0\0\0\0\0\0");
        let mut e = sec(Level::Encrypt).seal(0x10, 0x3, b"hello");
        assert_eq!(e.len(), 16);
        f.pcbc_decrypt(KS, &mut e).unwrap();
        assert_eq!(e, b"\0\x13\0\x05\0\0\0\0hello\0\0\0");
    }

    #[test]
    fn openafs_unpadded_level1_is_accepted() {
        let s = sec(Level::Auth);
        let mut p = s.seal(2, 1, b"abcdefghi"); // 13 bytes of payload, padded to 16
        p.truncate(13);
        assert_eq!(s.unseal(2, 1, &p).unwrap(), b"abcdefghi");
        // max(8, 4 + len) for a 1-byte message.
        let mut p = s.seal(2, 1, b"x");
        assert_eq!(p.len(), 8);
        p.truncate(8);
        assert_eq!(s.unseal(2, 1, &p).unwrap(), b"x");
    }

    #[test]
    fn level2_trailing_partial_block_is_ignored() {
        let s = sec(Level::Encrypt);
        let mut p = s.seal(2, 1, b"abcdefgh"); // 16 bytes
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(s.unseal(2, 1, &p).unwrap(), b"abcdefgh");
    }

    #[test]
    fn rejections_with_their_codes() {
        for level in [Level::Auth, Level::Encrypt] {
            let s = sec(level);
            let p = s.seal(7, 2, b"some data here");
            let c = |r: Result<Vec<u8>, RxkadError>| r.unwrap_err().code;
            // Short.
            assert_eq!(
                c(s.unseal(7, 2, &p[..7])),
                code::RXKADSEALEDINCON,
                "{level}"
            );
            assert_eq!(c(s.unseal(7, 2, &[])), code::RXKADSEALEDINCON);
            // Replayed as another seq or call: the check word differs.
            assert_eq!(c(s.unseal(7, 3, &p)), code::RXKADSEALEDINCON);
            assert_eq!(c(s.unseal(8, 2, &p)), code::RXKADSEALEDINCON);
            // Another connection's key.
            let other = ConnSecurity::new([1; 8], 0x8000_0001, 0x104, level);
            assert_eq!(c(other.unseal(7, 2, &p)), code::RXKADSEALEDINCON);
            // A length beyond the payload.
            let t = s.seal(7, 2, &[0; 12]);
            assert_eq!(c(s.unseal(7, 2, &t[..8])), code::RXKADDATALEN);
        }
        // Tampering in the first block at level 2 breaks the check word.
        let s = sec(Level::Encrypt);
        let mut p = s.seal(7, 2, b"some data here");
        p[1] ^= 4;
        assert!(s.unseal(7, 2, &p).is_err());
    }

    #[test]
    fn tampered_level2_data_never_reads_back_unchanged() {
        let s = sec(Level::Encrypt);
        let data = [0x42u8; 40];
        let p = s.seal(7, 2, &data);
        for i in 0..p.len() {
            let mut t = p.clone();
            t[i] ^= 0x01;
            if let Ok(d) = s.unseal(7, 2, &t) {
                assert_ne!(d, data, "byte {i}");
            }
        }
    }

    #[test]
    fn max_data_fits() {
        assert_eq!(max_data(Level::Clear, 1412), 1412);
        assert_eq!(max_data(Level::Auth, 1412), 1404);
        assert_eq!(max_data(Level::Encrypt, 1412), 1400);
        assert_eq!(max_data(Level::Encrypt, 7), 0);
        for level in [Level::Auth, Level::Encrypt] {
            for mp in 8..200 {
                assert!(sealed_len(level, max_data(level, mp)) <= mp, "{level} {mp}");
            }
        }
        assert_eq!(
            format!("{:?}", sec(Level::Auth)),
            "ConnSecurity { level: auth, keys: *** }"
        );
    }
}
