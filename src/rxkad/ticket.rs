//! rxkad tickets in the "Kerberos 4" form (rxkad.md §4), kvno < 256: the
//! plaintext layout, DES-PCBC sealing under the server key (IV = the key),
//! the OpenAFS life byte and the OpenAFS time checks.
//!
//! Sealing makes tickets that both OpenAFS and Linux accept (names ≤ 40
//! printable characters, sealed length 32..=1024); opening follows the
//! OpenAFS server's rules (configd is an OpenAFS-style server), plus
//! printable ASCII names (they reach log lines and the application).
//!
//! DES lives only here: the agent carries tickets opaquely, so only
//! `netboot-configd` (minting, opening) links it.

use super::error::{code, RxkadError};
use super::fcrypt::{pcbc_decrypt_with, pcbc_encrypt_with};
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use std::fmt;

/// "Never expires" as an end time (life byte 0xFF).
pub const NEVER: u32 = 0xFFFF_FFFF;
/// OpenAFS `KTC_TIME_UNCERTAINTY`: clock skew allowed either way.
pub const SKEW: u32 = 900;
/// OpenAFS `MAXKTCTICKETLIFETIME`: 30 days.
pub const MAX_LIFETIME: u32 = 30 * 24 * 3600;
/// OpenAFS sealed ticket length bounds (`MINKTCTICKETLEN`, `MAXKTCTICKETLEN`).
pub const MIN_TICKET_LEN: usize = 32;
pub const MAX_TICKET_LEN: usize = 12_000;
/// Linux server's bound (`MAXKRB5TICKETLEN`); our tickets stay below it.
pub const LINUX_MAX_TICKET_LEN: usize = 1024;
/// Name fields: OpenAFS takes up to 63 bytes, Linux up to 40 printable.
pub const MAX_NAME_OPEN: usize = 63;
pub const MAX_NAME_SEAL: usize = 40;

/// The OpenAFS life table (lifetimes.h), seconds, for bytes 0x80..=0xBF.
pub const LIFETIMES: [u32; 64] = [
    38400, 41055, 43894, 46929, 50174, 53643, 57352, 61318, 65558, 70091, 74937, 80119, 85658,
    91581, 97914, 104684, 111922, 119661, 127935, 136781, 146239, 156350, 167161, 178720, 191077,
    204289, 218415, 233517, 249664, 266926, 285383, 305116, 326213, 348769, 372885, 398668, 426234,
    455705, 487215, 520904, 556921, 595430, 636601, 680618, 727680, 777995, 831789, 889303, 950794,
    1016537, 1086825, 1161973, 1242318, 1328218, 1420057, 1518247, 1623226, 1735464, 1855462,
    1983758, 2120925, 2267576, 2424367, 2592000,
];

/// A server key: its version number (kvno, in every RESPONSE) and the 8
/// DES key bytes. `Debug` shows the kvno only.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKey {
    pub kvno: u32,
    pub key: [u8; 8],
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey {{ kvno: {}, key: *** }}", self.kvno)
    }
}

/// Whether a kvno can name a Kerberos-4-form ticket key: below 256, and not
/// 213 (OpenAFS decodes kvno 256 and 213 as Kerberos 5, rxkad.md §1).
pub fn kvno_ok(kvno: u32) -> bool {
    kvno < 256 && kvno != 213
}

/// A ticket's contents. `Debug` hides the session key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    pub name: String,
    pub instance: String,
    pub realm: String,
    /// IPv4 address of the requester; checked by nobody (rxkad.md §4).
    pub host: [u8; 4],
    pub session_key: [u8; 8],
    /// Unix time the ticket becomes valid.
    pub start: u32,
    /// OpenAFS life byte (see [`life_for`], [`life_to_time`]).
    pub life: u8,
    pub service: String,
    pub service_instance: String,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("name", &self.name)
            .field("instance", &self.instance)
            .field("realm", &self.realm)
            .field("host", &self.host)
            .field("session_key", &"***")
            .field("start", &self.start)
            .field("life", &self.life)
            .field("service", &self.service)
            .field("service_instance", &self.service_instance)
            .finish()
    }
}

/// End time of a ticket starting at `start` with life byte `life` (OpenAFS
/// `life_to_time`): 0xFF never; below 0x80 life × 300 s; 0x80..=0xBF the
/// table; above, 30 days. u32 arithmetic as OpenAFS: an end that wraps
/// lies before the start, which [`Ticket::check_times`] refuses.
pub fn life_to_time(start: u32, life: u8) -> u32 {
    if life == 0xFF {
        return NEVER;
    }
    let secs = match life {
        0..=0x7F => u32::from(life) * 300,
        0x80..=0xBF => LIFETIMES[usize::from(life - 0x80)],
        _ => MAX_LIFETIME,
    };
    start.wrapping_add(secs)
}

/// The life byte for a lifetime of `seconds` (OpenAFS `time_to_life`): the
/// shortest encodable lifetime ≥ `seconds`. None for 0 or more than 30
/// days; `u32::MAX` means "never expires" (0xFF), which OpenAFS accepts.
pub fn life_for(seconds: u32) -> Option<u8> {
    if seconds == NEVER {
        return Some(0xFF);
    }
    if seconds == 0 || seconds > MAX_LIFETIME {
        return None;
    }
    if seconds < LIFETIMES[0] {
        return u8::try_from(seconds.div_ceil(300)).ok();
    }
    let i = LIFETIMES.iter().position(|&t| t >= seconds)?;
    u8::try_from(0x80 + i).ok()
}

/// Set each byte's low bit so that the byte has odd parity (DES keys).
pub fn fix_parity(key: [u8; 8]) -> [u8; 8] {
    key.map(|b| {
        let high = b & 0xFE;
        if high.count_ones() % 2 == 0 {
            high | 1
        } else {
            high
        }
    })
}

/// The 4 weak and 12 semi-weak DES keys (odd parity form).
const WEAK: [[u8; 8]; 16] = [
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE],
    [0x1F, 0x1F, 0x1F, 0x1F, 0x0E, 0x0E, 0x0E, 0x0E],
    [0xE0, 0xE0, 0xE0, 0xE0, 0xF1, 0xF1, 0xF1, 0xF1],
    [0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE],
    [0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01],
    [0x1F, 0xE0, 0x1F, 0xE0, 0x0E, 0xF1, 0x0E, 0xF1],
    [0xE0, 0x1F, 0xE0, 0x1F, 0xF1, 0x0E, 0xF1, 0x0E],
    [0x01, 0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1],
    [0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1, 0x01],
    [0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E, 0xFE],
    [0xFE, 0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E],
    [0x01, 0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E],
    [0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E, 0x01],
    [0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1, 0xFE],
    [0xFE, 0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1],
];

/// Whether `key` is a weak or semi-weak DES key (parity bits ignored).
pub fn is_weak(key: &[u8; 8]) -> bool {
    let k = fix_parity(*key);
    WEAK.contains(&k)
}

fn des_encrypt(key: &[u8; 8], iv: [u8; 8], data: &mut [u8]) -> Result<(), RxkadError> {
    let c = des::Des::new(key.into());
    pcbc_encrypt_with(|b| c.encrypt_block(b.into()), iv, data)
}

fn des_decrypt(key: &[u8; 8], iv: [u8; 8], data: &mut [u8]) -> Result<(), RxkadError> {
    let c = des::Des::new(key.into());
    pcbc_decrypt_with(|b| c.decrypt_block(b.into()), iv, data)
}

/// DES-PCBC-seal raw ticket plaintext (a multiple of 8 bytes) as
/// [`Ticket::seal`] does, without building or checking the fields: for
/// tests and fuzzing of [`Ticket::open`] with chosen plaintext.
pub fn seal_plaintext(plain: &[u8], key: &ServerKey) -> Result<Vec<u8>, RxkadError> {
    let mut p = plain.to_vec();
    des_encrypt(&key.key, key.key, &mut p)?;
    Ok(p)
}

fn bad(what: impl Into<String>) -> RxkadError {
    RxkadError::new(code::RXKADBADTICKET, what)
}

fn printable(s: &[u8]) -> bool {
    s.iter().all(|&c| (0x20..=0x7E).contains(&c))
}

/// Check one name field for sealing: printable ASCII, `min..=max` bytes.
fn seal_field(what: &str, s: &str, min: usize) -> Result<(), RxkadError> {
    let n = s.len();
    if n < min || n > MAX_NAME_SEAL || !printable(s.as_bytes()) {
        return Err(bad(format!(
            "ticket {what} must be {min} to {MAX_NAME_SEAL} printable ASCII characters \
             (got {n} bytes)"
        )));
    }
    Ok(())
}

/// A reader over the decrypted plaintext.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RxkadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(bad(format!("ticket ends inside its {what}")));
        };
        let s = self.b.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], RxkadError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A NUL-terminated name of `min..=63` printable characters.
    fn name(&mut self, what: &str, min: usize) -> Result<String, RxkadError> {
        let rest = self.b.get(self.pos..).unwrap_or(&[]);
        let Some(n) = rest.iter().position(|&c| c == 0) else {
            return Err(bad(format!("ticket {what} is not NUL-terminated")));
        };
        if n < min || n > MAX_NAME_OPEN {
            return Err(bad(format!(
                "ticket {what} is {n} bytes, allowed {min} to {MAX_NAME_OPEN}"
            )));
        }
        let s = self.take(n + 1, what)?;
        let s = s.get(..n).unwrap_or(&[]);
        if !printable(s) {
            return Err(bad(format!("ticket {what} is not printable ASCII")));
        }
        Ok(String::from_utf8_lossy(s).into_owned())
    }
}

impl Ticket {
    /// End time (OpenAFS `life_to_time`; [`NEVER`] for life 0xFF).
    pub fn end(&self) -> u32 {
        life_to_time(self.start, self.life)
    }

    /// The plaintext, zero-padded to a multiple of 8 (flags 0: big-endian).
    fn plaintext(&self) -> Result<Vec<u8>, RxkadError> {
        seal_field("name", &self.name, 1)?;
        seal_field("instance", &self.instance, 0)?;
        seal_field("realm", &self.realm, 0)?;
        seal_field("service name", &self.service, 1)?;
        seal_field("service instance", &self.service_instance, 0)?;
        if self.life == 0 {
            return Err(bad("ticket life byte 0 (no lifetime)"));
        }
        let mut p = Vec::with_capacity(256);
        p.push(0u8);
        for s in [&self.name, &self.instance, &self.realm] {
            p.extend_from_slice(s.as_bytes());
            p.push(0);
        }
        p.extend_from_slice(&self.host);
        p.extend_from_slice(&self.session_key);
        p.push(self.life);
        p.extend_from_slice(&self.start.to_be_bytes());
        for s in [&self.service, &self.service_instance] {
            p.extend_from_slice(s.as_bytes());
            p.push(0);
        }
        p.resize(p.len().next_multiple_of(8).max(MIN_TICKET_LEN), 0);
        Ok(p)
    }

    /// Seal with DES-PCBC, key and IV = the server key (OpenAFS
    /// `tkt_MakeTicket`). Refuses what OpenAFS or Linux would refuse.
    pub fn seal(&self, key: &ServerKey) -> Result<Vec<u8>, RxkadError> {
        if !kvno_ok(key.kvno) {
            return Err(RxkadError::new(
                code::RXKADUNKNOWNKEY,
                format!("kvno {} cannot seal a ticket (0..=255, not 213)", key.kvno),
            ));
        }
        let mut p = self.plaintext()?;
        if p.len() > LINUX_MAX_TICKET_LEN {
            return Err(RxkadError::new(
                code::RXKADTICKETLEN,
                format!("ticket of {} bytes exceeds {LINUX_MAX_TICKET_LEN}", p.len()),
            ));
        }
        des_encrypt(&key.key, key.key, &mut p)?;
        Ok(p)
    }

    /// Open a sealed ticket with `key` (OpenAFS `tkt_DecodeTicket` rules):
    /// 32 ≤ length ≤ 12000 (RXKADTICKETLEN), a multiple of 8, every field
    /// present and in bounds, and the parsed length rounded up to 8 equal
    /// to the sealed length, or the sealed length 56 (RXKADBADTICKET).
    /// Flags bit 0 means host and start are little-endian.
    pub fn open(sealed: &[u8], key: &ServerKey) -> Result<Ticket, RxkadError> {
        let len = sealed.len();
        if !(MIN_TICKET_LEN..=MAX_TICKET_LEN).contains(&len) {
            return Err(RxkadError::new(
                code::RXKADTICKETLEN,
                format!("ticket of {len} bytes, allowed {MIN_TICKET_LEN} to {MAX_TICKET_LEN}"),
            ));
        }
        if len % 8 != 0 {
            return Err(bad(format!("ticket of {len} bytes: not a multiple of 8")));
        }
        let mut p = sealed.to_vec();
        des_decrypt(&key.key, key.key, &mut p)?;
        let mut r = Reader { b: &p, pos: 0 };
        let [flags] = r.array::<1>("flags")?;
        let little = flags & 1 != 0;
        let name = r.name("name", 1)?;
        let instance = r.name("instance", 0)?;
        let realm = r.name("realm", 0)?;
        let mut host = r.array::<4>("host")?;
        let session_key = r.array::<8>("session key")?;
        let [life] = r.array::<1>("life")?;
        let start = r.array::<4>("start")?;
        let start = if little {
            host.reverse();
            u32::from_le_bytes(start)
        } else {
            u32::from_be_bytes(start)
        };
        let service = r.name("service name", 1)?;
        let service_instance = r.name("service instance", 0)?;
        if r.pos.next_multiple_of(8) != len && len != 56 {
            return Err(bad(format!(
                "ticket fields end at byte {}, the ticket is {len} bytes",
                r.pos
            )));
        }
        Ok(Ticket {
            name,
            instance,
            realm,
            host,
            session_key,
            start,
            life,
            service,
            service_instance,
        })
    }

    /// OpenAFS `tkt_CheckTimes` at `now` (Unix seconds), skew 900 s:
    /// not yet valid → RXKADNOAUTH, expired → RXKADEXPIRED, inconsistent
    /// times → RXKADBADTICKET.
    pub fn check_times(&self, now: u32) -> Result<(), RxkadError> {
        let end = self.end();
        match check_times(self.start, end, now) {
            1.. => Ok(()),
            0 => Err(RxkadError::new(
                code::RXKADNOAUTH,
                format!(
                    "ticket not valid before {} (now {now}, {SKEW} s skew allowed)",
                    self.start
                ),
            )),
            -1 => Err(RxkadError::new(
                code::RXKADEXPIRED,
                format!("ticket expired at {end} (now {now}, {SKEW} s skew allowed)"),
            )),
            _ => Err(bad(format!(
                "ticket times inconsistent: start {}, end {end}, now {now}",
                self.start
            ))),
        }
    }
}

/// OpenAFS `tkt_CheckTimes(start, end, now)`: 2 active, 1 active (no start
/// or no end), 0 not yet valid, −1 expired, −2 bad (rxkad.md §4).
pub fn check_times(start: u32, end: u32, now: u32) -> i32 {
    let (s, e, n) = (i64::from(start), i64::from(end), i64::from(now));
    let (skew, max) = (i64::from(SKEW), i64::from(MAX_LIFETIME));
    if s >= e || s > n + skew + max || (end != NEVER && e - s > max) {
        return -2;
    }
    if e + skew < n {
        return if n - s > max + 24 * 3600 { -2 } else { -1 };
    }
    let started = s - skew <= n;
    match (started, start == 0 || end == NEVER) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key() -> ServerKey {
        ServerKey {
            kvno: 3,
            key: fix_parity(*b"netboot!"),
        }
    }

    pub(crate) fn ticket() -> Ticket {
        Ticket {
            name: "netboot".into(),
            instance: "mac-52-54-00-12-34-56".into(),
            realm: "EXAMPLE.ORG".into(),
            host: [198, 18, 0, 2],
            session_key: fix_parity(*b"sessionK"),
            start: 1_800_000_000,
            life: life_for(8 * 3600).unwrap(),
            service: "netboot-config".into(),
            service_instance: String::new(),
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let t = ticket();
        let sealed = t.seal(&key()).unwrap();
        assert_eq!(sealed.len() % 8, 0);
        assert!((32..=1024).contains(&sealed.len()));
        let back = Ticket::open(&sealed, &key()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.end(), t.start + 8 * 3600);
        // Debug never shows the session key.
        let d = format!("{back:?} {:?}", key());
        assert!(d.contains("***") && !d.contains("sessionK") && !d.contains("netboot!"));
        assert!(!format!("{:?}", key().key).is_empty());
    }

    /// Known answer: DES-PCBC of one block with IV = key equals DES-ECB of
    /// (P ⊕ key) — checks our PCBC glue against the `des` crate directly,
    /// and the crate against the classic FIPS 81 vector.
    #[test]
    fn des_known_answer() {
        let k = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        let c = des::Des::new(&k.into());
        let mut b = *b"Now is t";
        c.encrypt_block((&mut b).into());
        assert_eq!(b, [0x3F, 0xA4, 0x0E, 0x8A, 0x98, 0x4D, 0x48, 0x15]);
        let mut p = *b"Now is t";
        p.iter_mut().zip(k).for_each(|(x, y)| *x ^= y);
        let mut q = *b"Now is t";
        des_encrypt(&k, k, &mut q).unwrap();
        c.encrypt_block((&mut p).into());
        assert_eq!(q, p);
    }

    #[test]
    fn minimal_ticket_is_32_bytes() {
        let t = Ticket {
            name: "a".into(),
            instance: String::new(),
            realm: String::new(),
            service: "s".into(),
            ..ticket()
        };
        let s = t.seal(&key()).unwrap();
        assert_eq!(s.len(), 32);
        assert_eq!(Ticket::open(&s, &key()).unwrap(), t);
    }

    #[test]
    fn wrong_key_is_bad_ticket() {
        let sealed = ticket().seal(&key()).unwrap();
        let other = ServerKey {
            kvno: 3,
            key: fix_parity(*b"otherkey"),
        };
        let e = Ticket::open(&sealed, &other).unwrap_err();
        assert_eq!(e.code, code::RXKADBADTICKET, "{e}");
    }

    #[test]
    fn tampering_is_detected() {
        let sealed = ticket().seal(&key()).unwrap();
        let mut detected = 0;
        for i in 0..sealed.len() {
            let mut s = sealed.clone();
            s[i] ^= 0x40;
            match Ticket::open(&s, &key()) {
                Err(e) => {
                    assert_eq!(e.code, code::RXKADBADTICKET);
                    detected += 1;
                }
                Ok(t) => assert_ne!(t, ticket(), "byte {i}"),
            }
        }
        // PCBC garbles everything after the flip: nearly every flip breaks
        // the structure; none yields the original ticket.
        assert!(detected > sealed.len() / 2, "{detected}");
    }

    #[test]
    fn length_rules() {
        let k = key();
        for (len, want) in [
            (0, code::RXKADTICKETLEN),
            (31, code::RXKADTICKETLEN),
            (12_008, code::RXKADTICKETLEN),
            (33, code::RXKADBADTICKET),
            (12_000, code::RXKADBADTICKET),
        ] {
            let e = Ticket::open(&vec![0u8; len], &k).unwrap_err();
            assert_eq!(e.code, want, "len {len}: {e}");
        }
        // Parsed length must round up to the sealed length: 8 extra bytes
        // of padding are refused...
        let mut p = ticket().plaintext().unwrap();
        p.extend_from_slice(&[0; 8]);
        des_encrypt(&k.key, k.key, &mut p).unwrap();
        let e = Ticket::open(&p, &k).unwrap_err();
        assert_eq!(e.code, code::RXKADBADTICKET);
        assert!(e.what.contains("fields end at byte"), "{e}");
        // ...except at 56 bytes (OpenAFS's exception).
        let t = Ticket {
            name: "a".into(),
            instance: String::new(),
            realm: String::new(),
            service: "s".into(),
            ..ticket()
        };
        let mut p = t.plaintext().unwrap();
        assert_eq!(p.len(), 32);
        p.resize(56, 0);
        des_encrypt(&k.key, k.key, &mut p).unwrap();
        assert_eq!(Ticket::open(&p, &k).unwrap(), t);
    }

    fn seal_raw(plain: &[u8]) -> Vec<u8> {
        let mut p = plain.to_vec();
        p.resize(p.len().next_multiple_of(8).max(32), 0);
        let k = key();
        des_encrypt(&k.key, k.key, &mut p).unwrap();
        p
    }

    #[test]
    fn field_rules_on_open() {
        let body = |name: &[u8], service: &[u8]| {
            let mut p = vec![0u8];
            p.extend_from_slice(name);
            p.extend_from_slice(b"\0\0\0");
            p.extend_from_slice(&[1, 2, 3, 4]);
            p.extend_from_slice(&[9; 8]);
            p.push(12);
            p.extend_from_slice(&100u32.to_be_bytes());
            p.extend_from_slice(service);
            p.extend_from_slice(b"\0\0");
            p
        };
        let open = |p: &[u8]| Ticket::open(&seal_raw(p), &key());
        assert!(open(&body(b"n", b"s")).is_ok());
        assert!(open(&body(&[b'n'; 63], b"s")).is_ok());
        for (what, p) in [
            ("empty name", body(b"", b"s")),
            ("64-byte name", body(&[b'n'; 64], b"s")),
            ("control char", body(b"a\x1bb", b"s")),
            ("empty service", body(b"n", b"")),
            ("no NUL", vec![0, b'a', b'b', b'c', 1, 2, 3, 4]),
            ("truncated", body(b"n", b"s")[..20].to_vec()),
        ] {
            let e = open(&p).unwrap_err();
            assert_eq!(e.code, code::RXKADBADTICKET, "{what}: {e}");
        }
        // Little-endian flag: host and start are swapped.
        let mut p = body(b"n", b"s");
        p[0] = 1;
        let t = open(&p).unwrap();
        assert_eq!(t.host, [4, 3, 2, 1]);
        assert_eq!(t.start, u32::from_le_bytes(100u32.to_be_bytes()));
    }

    #[test]
    fn seal_refuses_what_a_peer_would_refuse() {
        let k = key();
        for (what, t) in [
            (
                "empty name",
                Ticket {
                    name: String::new(),
                    ..ticket()
                },
            ),
            (
                "41-char name",
                Ticket {
                    name: "x".repeat(41),
                    ..ticket()
                },
            ),
            (
                "41-char realm",
                Ticket {
                    realm: "x".repeat(41),
                    ..ticket()
                },
            ),
            (
                "newline",
                Ticket {
                    instance: "a\nb".into(),
                    ..ticket()
                },
            ),
            (
                "non-ASCII",
                Ticket {
                    instance: "é".into(),
                    ..ticket()
                },
            ),
            (
                "empty service",
                Ticket {
                    service: String::new(),
                    ..ticket()
                },
            ),
            (
                "life 0",
                Ticket {
                    life: 0,
                    ..ticket()
                },
            ),
        ] {
            let e = t.seal(&k).unwrap_err();
            assert_eq!(e.code, code::RXKADBADTICKET, "{what}");
        }
        let t = Ticket {
            name: "x".repeat(40),
            instance: "x".repeat(40),
            realm: "x".repeat(40),
            service: "x".repeat(40),
            service_instance: "x".repeat(40),
            ..ticket()
        };
        assert!(t.seal(&k).unwrap().len() <= LINUX_MAX_TICKET_LEN);
        for kvno in [213, 256, u32::MAX] {
            let e = ticket().seal(&ServerKey { kvno, ..k.clone() }).unwrap_err();
            assert_eq!(e.code, code::RXKADUNKNOWNKEY);
        }
        assert!(kvno_ok(0) && kvno_ok(255) && !kvno_ok(213));
    }

    #[test]
    fn life_table_encode_decode() {
        assert_eq!(life_to_time(1000, 0xFF), NEVER);
        assert_eq!(life_to_time(1000, 1), 1300);
        assert_eq!(life_to_time(1000, 0x7F), 1000 + 127 * 300);
        assert_eq!(life_to_time(0, 0x80), 38400);
        assert_eq!(life_to_time(0, 0xBF), 2_592_000);
        assert_eq!(life_to_time(0, 0xC0), MAX_LIFETIME);
        assert_eq!(life_to_time(0, 0xFE), MAX_LIFETIME);
        assert_eq!(life_for(0), None);
        assert_eq!(life_for(MAX_LIFETIME + 1), None);
        assert_eq!(life_for(NEVER), Some(0xFF));
        assert_eq!(life_for(1), Some(1));
        assert_eq!(life_for(300), Some(1));
        assert_eq!(life_for(301), Some(2));
        assert_eq!(life_for(38_100), Some(0x7F));
        assert_eq!(life_for(38_101), Some(0x80));
        assert_eq!(life_for(38_400), Some(0x80));
        assert_eq!(life_for(38_401), Some(0x81));
        assert_eq!(life_for(MAX_LIFETIME), Some(0xBF));
        // Every lifetime encodes to the shortest life ≥ it.
        for s in (1..=MAX_LIFETIME).step_by(997) {
            let l = life_for(s).unwrap();
            assert!(life_to_time(0, l) >= s, "{s}");
            if l > 1 && l != 0x80 {
                assert!(life_to_time(0, l - 1) < s, "{s}");
            }
        }
        // Wrapping end: start near the top of u32.
        assert!(life_to_time(u32::MAX - 10, 1) < u32::MAX - 10);
    }

    #[test]
    fn time_checks() {
        let t = ticket(); // start 1.8e9, 8 h
        let (s, e) = (t.start, t.end());
        assert!(t.check_times(s).is_ok());
        assert!(t.check_times(s - SKEW).is_ok());
        assert!(t.check_times(e + SKEW).is_ok());
        let c = |now| t.check_times(now).unwrap_err().code;
        assert_eq!(c(s - SKEW - 1), code::RXKADNOAUTH);
        assert_eq!(c(e + SKEW + 1), code::RXKADEXPIRED);
        assert_eq!(c(s + MAX_LIFETIME + 24 * 3600 + 1), code::RXKADBADTICKET);
        assert_eq!(c(s - SKEW - MAX_LIFETIME - 1), code::RXKADBADTICKET);
        // A wrapped end lies before the start.
        let w = Ticket {
            start: u32::MAX - 10,
            life: 1,
            ..ticket()
        };
        assert_eq!(
            w.check_times(u32::MAX - 10).unwrap_err().code,
            code::RXKADBADTICKET
        );
        // Never-expiring and start-0 tickets.
        let never = Ticket {
            life: 0xFF,
            ..ticket()
        };
        assert!(never.check_times(u32::MAX - 1).is_ok());
        assert_eq!(check_times(0, 100, 50), 1);
        assert_eq!(check_times(100, NEVER, 50), 1);
        assert_eq!(check_times(100, 200, 150), 2);
        assert_eq!(check_times(200, 200, 150), -2);
    }

    #[test]
    fn parity_and_weak_keys() {
        let k = fix_parity([0; 8]);
        assert_eq!(k, [1; 8]);
        assert!(fix_parity(*b"abcdefgh")
            .iter()
            .all(|b| b.count_ones() % 2 == 1));
        assert!(is_weak(&[1; 8]));
        assert!(is_weak(&[0; 8]), "parity ignored");
        assert!(is_weak(&[0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1, 0xFE]));
        assert!(!is_weak(&key().key));
    }
}
