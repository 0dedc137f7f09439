//! The rxkad files, pure (no I/O: callers read and write them, bounded):
//!
//! - **server key file** (`netboot-configd --rxkad-keys FILE`): the DES
//!   keys tickets are sealed with, one line per key version (kvno), so that
//!   keys can be rolled: a new kvno is added, new tokens are minted with it,
//!   and the old kvno is dropped once no token of it is left;
//! - **token file** (the agent's `/etc/netboot/config.token`, written by
//!   `netboot-configd token`): what a client needs to speak rxkad — the
//!   sealed ticket, its session key, kvno, validity and whom it names;
//! - **OpenAFS `KeyFile`** (binary; rxkad.md §8) from a server key file, so
//!   an OpenAFS server can check our tickets;
//! - the **kernel key payload** of a token ([`Token::kernel_key_v1`],
//!   rxkad.md §6) for `add_key("rxrpc", …)`.
//!
//! Text format of both files: one `name = value` per line, blank lines and
//! lines starting with `#` ignored, no other syntax. Every number has a
//! cap, every string a length and character rule. Errors name the file,
//! the line and the field, and show the value only for fields that are
//! not secret (never a key, session key or ticket).
//!
//! ```text
//! # netboot-configd rxkad server keys (mode 0600)
//! key = 1 f1e2d3c4b5a69788
//! key = 2 0123456789abcdef
//! ```
//!
//! ```text
//! # netboot rxkad token (mode 0600, in the initramfs only)
//! version = 1
//! service = netboot-config
//! name = netboot
//! instance = mac-52-54-00-12-34-56
//! realm =
//! kvno = 2
//! start = 1764650400
//! expiry = 1767242400
//! session_key = 0123456789abcdef
//! ticket = 5a1f…   (hex, 32..1024 bytes, a multiple of 8)
//! ```

use super::ticket::{ServerKey, Ticket};
use std::fmt;
use std::fmt::Write as _;

/// Largest key file or token file read (a token is about 2.2 KB).
pub const MAX_FILE: usize = 16 * 1024;
/// Most keys in a server key file: a handful are live while rolling.
pub const MAX_KEYS: usize = 16;
/// Most keys OpenAFS reads from a `KeyFile` (keys.c `_parseOriginalKeyFile`).
pub const MAX_OPENAFS_KEYS: usize = 8;
/// Highest kvno of a Kerberos-4 style ticket (kvno 256 and 213 mean
/// Kerberos 5 to OpenAFS; Linux refuses ≥ 256, rxkad.md §1).
pub const MAX_KVNO: u32 = 255;
/// Ticket length bounds every stack accepts (rxkad.md §9 item 3).
pub const MIN_TICKET: usize = 32;
pub const MAX_TICKET: usize = 1024;
/// Longest ticket name, instance, realm, service (Linux: ≤ 40 printable).
pub const MAX_NAME: usize = 40;
/// Token file version written and read.
pub const TOKEN_VERSION: u32 = 1;
/// The service our tickets are for (ticket service name).
pub const SERVICE: &str = "netboot-config";
/// Ticket name of every netboot token.
pub const TOKEN_NAME: &str = "netboot";
/// Instance prefixes: one machine (`mac-52-54-00-12-34-56`) or a fleet.
pub const MACHINE_PREFIX: &str = "mac-";
pub const FLEET_PREFIX: &str = "fleet-";
/// Longest token lifetime: 30 days (OpenAFS's largest finite ticket life,
/// rxkad.md §4; `tkt_CheckTimes` refuses longer ones).
pub const MAX_LIFETIME: u32 = 30 * 86_400;
/// The `description` of the agent's kernel key (`add_key("rxrpc", …)`).
pub const KERNEL_KEY_DESCRIPTION: &str = "netboot@config";
/// The security index of rxkad (rxkad.md §7).
const RXKAD_INDEX: u16 = 2;

/// What is wrong in which file, where. `line` 0: the whole file; `field`
/// empty: no single field. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub msg: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::escape::quote_max(&self.file, 200))?;
        if self.line > 0 {
            write!(f, ": line {}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.msg)
    }
}

impl std::error::Error for FileError {}

fn err(file: &str, line: usize, field: &str, msg: impl Into<String>) -> FileError {
    FileError {
        file: file.to_string(),
        line,
        field: field.to_string(),
        msg: msg.into(),
    }
}

/// A value for a message: quoted, escaped, cut at 64 characters.
fn shown(v: &str) -> String {
    crate::escape::quote_max(v, 64)
}

/// The `name = value` lines of a file, with their line numbers; names as
/// written (shown in errors escaped and cut).
fn entries<'a>(text: &'a str, file: &str) -> Result<Vec<(usize, &'a str, &'a str)>, FileError> {
    if text.len() > MAX_FILE {
        return Err(err(
            file,
            0,
            "",
            format!("{} bytes, more than {MAX_FILE}", text.len()),
        ));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(err(file, n, "", "not NAME = VALUE"));
        };
        out.push((n, k.trim(), v.trim()));
    }
    Ok(out)
}

/// A decimal number in `0..=max`, digits only (no sign, no spaces).
fn number(file: &str, line: usize, field: &str, v: &str, max: u64) -> Result<u64, FileError> {
    let bad = || {
        err(
            file,
            line,
            field,
            format!("{} is not a number in 0..{max}", shown(v)),
        )
    };
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad()),
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Hex digits to bytes; `None` for an odd count or a non-hex character.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| match p {
            [h, l] => Some(hex_digit(*h)? << 4 | hex_digit(*l)?),
            _ => None,
        })
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// An 8-byte key as 16 hex digits. The error never shows the value.
fn key8(file: &str, line: usize, field: &str, v: &str) -> Result<[u8; 8], FileError> {
    match from_hex(v).as_deref() {
        Some(&[a, b, c, d, e, f, g, h]) => Ok([a, b, c, d, e, f, g, h]),
        _ => Err(err(
            file,
            line,
            field,
            "expected 16 hex digits (value not shown)",
        )),
    }
}

/// A ticket name part: printable ASCII without spaces, `=` or `#`, at most
/// [`MAX_NAME`] characters (Linux's limit; OpenAFS allows 63).
pub fn valid_name_part(s: &str) -> bool {
    s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'=' && b != b'#')
}

fn name_part<'a>(
    file: &str,
    line: usize,
    field: &str,
    v: &'a str,
    may_be_empty: bool,
) -> Result<&'a str, FileError> {
    if (v.is_empty() && !may_be_empty) || !valid_name_part(v) {
        return Err(err(
            file,
            line,
            field,
            format!(
                "{} is not {}1..{MAX_NAME} printable characters without spaces",
                shown(v),
                if may_be_empty { "0 or " } else { "" }
            ),
        ));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Server key file
// ---------------------------------------------------------------------------

/// The keys of a server key file, in file order; at least one, kvnos
/// distinct and ≤ [`MAX_KVNO`], no DES weak key.
pub fn parse_key_file(text: &str, file: &str) -> Result<Vec<ServerKey>, FileError> {
    let mut keys: Vec<ServerKey> = Vec::new();
    for (n, k, v) in entries(text, file)? {
        if k != "key" {
            return Err(err(
                file,
                n,
                "",
                format!(
                    "unknown name {} (a key file has only key = KVNO HEX)",
                    shown(k)
                ),
            ));
        }
        let mut words = v.split_ascii_whitespace();
        let (Some(kv), Some(hex), None) = (words.next(), words.next(), words.next()) else {
            return Err(err(file, n, "key", "expected KVNO and 16 hex digits"));
        };
        let kvno = number(file, n, "key kvno", kv, u64::from(MAX_KVNO))? as u32;
        if !super::ticket::kvno_ok(kvno) {
            return Err(err(
                file,
                n,
                "key kvno",
                format!("kvno {kvno} is reserved (OpenAFS reads it as Kerberos 5)"),
            ));
        }
        let key = key8(file, n, "key", hex)?;
        if super::ticket::is_weak(&super::ticket::fix_parity(key)) {
            return Err(err(
                file,
                n,
                "key",
                format!(
                    "kvno {kvno} is a DES weak key; make a new one with `netboot-configd key new`"
                ),
            ));
        }
        if keys.iter().any(|k| k.kvno == kvno) {
            return Err(err(
                file,
                n,
                "key kvno",
                format!("kvno {kvno} appears twice"),
            ));
        }
        if keys.len() == MAX_KEYS {
            return Err(err(file, n, "key", format!("more than {MAX_KEYS} keys")));
        }
        keys.push(ServerKey { kvno, key });
    }
    if keys.is_empty() {
        return Err(err(file, 0, "", "no key = KVNO HEX line"));
    }
    Ok(keys)
}

/// The newest key: the highest kvno (what `token` mints with by default).
pub fn latest(keys: &[ServerKey]) -> Option<&ServerKey> {
    keys.iter().max_by_key(|k| k.kvno)
}

/// A server key file holding `keys` (kvno order), with a comment header.
pub fn encode_key_file(keys: &[ServerKey]) -> String {
    let mut s = String::from(
        "# netboot-configd rxkad server keys (netboot-configd key new); keep secret, mode 0600.\n\
         # One line per key version: key = KVNO HEX. To roll keys add a new kvno, mint new\n\
         # tokens (netboot-configd token), rebuild the initramfs images, then drop the old kvno.\n",
    );
    let mut sorted: Vec<&ServerKey> = keys.iter().collect();
    sorted.sort_by_key(|k| k.kvno);
    for k in sorted {
        let _ = writeln!(s, "key = {} {}", k.kvno, to_hex(&k.key));
    }
    s
}

/// OpenAFS's original `KeyFile` (rxkad.md §8; [O] src/auth/keys.c
/// `_parseOriginalKeyFile`): BE32 count, then per key BE32 kvno and the 8
/// key bytes; at most [`MAX_OPENAFS_KEYS`].
pub fn openafs_keyfile(keys: &[ServerKey]) -> Result<Vec<u8>, String> {
    if keys.is_empty() || keys.len() > MAX_OPENAFS_KEYS {
        return Err(format!(
            "OpenAFS's KeyFile holds 1..{MAX_OPENAFS_KEYS} keys; the key file has {}",
            keys.len()
        ));
    }
    let mut out = Vec::with_capacity(4 + 12 * keys.len());
    out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    for k in keys {
        out.extend_from_slice(&k.kvno.to_be_bytes());
        out.extend_from_slice(&k.key);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Token file
// ---------------------------------------------------------------------------

/// A client token: the sealed ticket and what the client needs to use it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub service: String,
    pub name: String,
    pub instance: String,
    pub realm: String,
    pub kvno: u32,
    /// Unix times (s): the ticket's start and end.
    pub start: u32,
    pub expiry: u32,
    pub session_key: [u8; 8],
    /// Sealed with the server key: opaque to the client.
    pub ticket: Vec<u8>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("principal", &self.principal())
            .field("service", &self.service)
            .field("kvno", &self.kvno)
            .field("start", &self.start)
            .field("expiry", &self.expiry)
            .field("session_key", &"***")
            .field("ticket", &format_args!("<{} bytes>", self.ticket.len()))
            .finish()
    }
}

/// Whom a token names, as configd's policy reads its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// `mac-52-54-00-12-34-56`: that machine only (MAC lowercase, `:`).
    Machine(String),
    /// `fleet-NAME`: any machine.
    Fleet(String),
}

impl Holder {
    /// The holder a ticket's name and instance stand for; `None` if they
    /// are not a netboot principal.
    pub fn of(name: &str, instance: &str) -> Option<Holder> {
        if name != TOKEN_NAME {
            return None;
        }
        if let Some(m) = instance.strip_prefix(MACHINE_PREFIX) {
            let mac = crate::cmdline::ip::parse_mac(&m.replace('-', ":"))?;
            return (mac.replace(':', "-") == m).then_some(Holder::Machine(mac));
        }
        let f = instance.strip_prefix(FLEET_PREFIX)?;
        valid_fleet(f).then(|| Holder::Fleet(f.to_string()))
    }

    /// The ticket instance for this holder.
    pub fn instance(&self) -> String {
        match self {
            Holder::Machine(mac) => format!("{MACHINE_PREFIX}{}", mac.replace(':', "-")),
            Holder::Fleet(f) => format!("{FLEET_PREFIX}{f}"),
        }
    }
}

/// A fleet name: `a-z 0-9 -`, 1..34 characters (so the instance fits 40).
pub fn valid_fleet(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= MAX_NAME - FLEET_PREFIX.len()
        && f.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The fields a token file must have, in the order it is written.
const TOKEN_FIELDS: [&str; 10] = [
    "version",
    "service",
    "name",
    "instance",
    "realm",
    "kvno",
    "start",
    "expiry",
    "session_key",
    "ticket",
];

impl Token {
    /// `name.instance@realm` (the instance and realm parts only when set).
    pub fn principal(&self) -> String {
        let mut s = self.name.clone();
        if !self.instance.is_empty() {
            s.push('.');
            s.push_str(&self.instance);
        }
        if !self.realm.is_empty() {
            s.push('@');
            s.push_str(&self.realm);
        }
        s
    }

    /// Mint a token: a ticket for `holder` valid from `start` for
    /// `lifetime` seconds (1..[`MAX_LIFETIME`]), sealed with `key`, for
    /// the session key `session_key` (random bytes from the caller: this
    /// module does no I/O; parity is fixed here, a weak key refused).
    pub fn mint(
        key: &ServerKey,
        holder: &Holder,
        start: u32,
        lifetime: u32,
        session_key: [u8; 8],
    ) -> Result<Token, String> {
        if lifetime == 0 || lifetime > MAX_LIFETIME {
            return Err(format!(
                "lifetime {lifetime} s is not in 1..{MAX_LIFETIME} s (30 days)"
            ));
        }
        let life = super::ticket::life_for(lifetime)
            .ok_or_else(|| format!("lifetime {lifetime} s has no ticket encoding"))?;
        let ks = super::ticket::fix_parity(session_key);
        if super::ticket::is_weak(&ks) {
            return Err("the random session key is a DES weak key; try again".into());
        }
        let t = Ticket {
            name: TOKEN_NAME.to_string(),
            instance: holder.instance(),
            realm: String::new(),
            host: [0; 4],
            session_key: ks,
            start,
            life,
            service: SERVICE.to_string(),
            service_instance: String::new(),
        };
        let expiry = t.end();
        let ticket = t.seal(key).map_err(|e| e.to_string())?;
        Ok(Token {
            service: t.service.clone(),
            name: t.name.clone(),
            instance: t.instance.clone(),
            realm: t.realm.clone(),
            kvno: key.kvno,
            start,
            expiry,
            session_key: ks,
            ticket,
        })
    }

    /// The token file's text (module docs), with a comment saying whom it
    /// names and when it expires.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# netboot rxkad token for {} (netboot-configd token); keep secret, mode 0600.\n\
             # valid {} .. {}; server key version {}",
            self.principal(),
            utc(self.start),
            utc(self.expiry),
            self.kvno
        );
        let _ = writeln!(s, "version = {TOKEN_VERSION}");
        let _ = writeln!(s, "service = {}", self.service);
        let _ = writeln!(s, "name = {}", self.name);
        let _ = writeln!(s, "instance = {}", self.instance);
        let _ = writeln!(s, "realm = {}", self.realm);
        let _ = writeln!(s, "kvno = {}", self.kvno);
        let _ = writeln!(s, "start = {}", self.start);
        let _ = writeln!(s, "expiry = {}", self.expiry);
        let _ = writeln!(s, "session_key = {}", to_hex(&self.session_key));
        let _ = writeln!(s, "ticket = {}", to_hex(&self.ticket));
        s
    }

    /// Parse a token file: every field exactly once, nothing else.
    pub fn parse(text: &str, file: &str) -> Result<Token, FileError> {
        let mut seen: [Option<(usize, &str)>; TOKEN_FIELDS.len()] = [None; TOKEN_FIELDS.len()];
        for (n, k, v) in entries(text, file)? {
            let Some(i) = TOKEN_FIELDS.iter().position(|f| *f == k) else {
                return Err(err(
                    file,
                    n,
                    "",
                    format!(
                        "unknown name {} (a token file has {})",
                        shown(k),
                        TOKEN_FIELDS.join(", ")
                    ),
                ));
            };
            let Some(slot) = seen.get_mut(i) else {
                continue;
            };
            if let Some((first, _)) = slot {
                return Err(err(
                    file,
                    n,
                    k,
                    format!("given twice (first on line {first})"),
                ));
            }
            *slot = Some((n, v));
        }
        let get = |i: usize| -> Result<(usize, &str), FileError> {
            let name = TOKEN_FIELDS.get(i).copied().unwrap_or("");
            seen.get(i)
                .copied()
                .flatten()
                .ok_or_else(|| err(file, 0, name, "missing"))
        };
        let (n, v) = get(0)?;
        let version = number(file, n, "version", v, u64::from(u32::MAX))?;
        if version != u64::from(TOKEN_VERSION) {
            return Err(err(
                file,
                n,
                "version",
                format!("version {version} is not supported (this netboot reads {TOKEN_VERSION})"),
            ));
        }
        let (n, v) = get(1)?;
        let service = name_part(file, n, "service", v, false)?.to_string();
        let (n, v) = get(2)?;
        let name = name_part(file, n, "name", v, false)?.to_string();
        let (n, v) = get(3)?;
        let instance = name_part(file, n, "instance", v, true)?.to_string();
        let (n, v) = get(4)?;
        let realm = name_part(file, n, "realm", v, true)?.to_string();
        let (n, v) = get(5)?;
        let kvno = number(file, n, "kvno", v, u64::from(MAX_KVNO))? as u32;
        let (n, v) = get(6)?;
        let start = number(file, n, "start", v, u64::from(u32::MAX))? as u32;
        let (n, v) = get(7)?;
        let expiry = number(file, n, "expiry", v, u64::from(u32::MAX))? as u32;
        if expiry <= start {
            return Err(err(
                file,
                n,
                "expiry",
                format!("{expiry} is not after start {start}"),
            ));
        }
        let (n, v) = get(8)?;
        let session_key = key8(file, n, "session_key", v)?;
        let (n, v) = get(9)?;
        let ticket = match from_hex(v) {
            Some(t) if (MIN_TICKET..=MAX_TICKET).contains(&t.len()) && t.len() % 8 == 0 => t,
            _ => {
                return Err(err(
                    file,
                    n,
                    "ticket",
                    format!(
                        "expected hex of {MIN_TICKET}..{MAX_TICKET} bytes, a multiple of 8 \
                         (value not shown)"
                    ),
                ))
            }
        };
        Ok(Token {
            service,
            name,
            instance,
            realm,
            kvno,
            start,
            expiry,
            session_key,
            ticket,
        })
    }

    /// The payload of an `rxrpc` kernel key in the v1 form (rxkad.md §6,
    /// include/keys/rxrpc-type.h `rxrpc_key_data_v1` after a version word),
    /// **host byte order**: u32 kver = 1, u16 security index = 2, u16
    /// ticket length, u32 expiry, u32 kvno, 8 bytes session key, ticket.
    /// The kernel takes the key's expiry from it.
    pub fn kernel_key_v1(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(24 + self.ticket.len());
        p.extend_from_slice(&1u32.to_ne_bytes());
        p.extend_from_slice(&RXKAD_INDEX.to_ne_bytes());
        // parse() and mint() bound the ticket at MAX_TICKET (< 65536).
        p.extend_from_slice(&(self.ticket.len().min(usize::from(u16::MAX)) as u16).to_ne_bytes());
        p.extend_from_slice(&self.expiry.to_ne_bytes());
        p.extend_from_slice(&self.kvno.to_ne_bytes());
        p.extend_from_slice(&self.session_key);
        p.extend_from_slice(&self.ticket);
        p
    }

    /// Not yet valid or expired at `now` (Unix s), by the token's own
    /// times: a hint for messages. The server decides (its clock, its
    /// skew allowance).
    pub fn expired_at(&self, now: u64) -> bool {
        now >= u64::from(self.expiry)
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian; the
/// days-to-civil algorithm of H. Hinnant's "chrono-compatible low-level
/// date algorithms").
pub fn utc(t: u32) -> String {
    let t = u64::from(t);
    let (days, secs) = (t / 86_400, t % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `--lifetime` text: `N` seconds or `N` with a unit `s`, `m`, `h`, `d`;
/// 1 s .. 30 days.
pub fn parse_lifetime(v: &str) -> Result<u32, String> {
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (v.get(..i).unwrap_or(""), v.get(i..).unwrap_or("")),
        None => (v, "s"),
    };
    let mult: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let n = (digits.len() <= 10)
        .then(|| digits.parse::<u64>().ok())
        .flatten();
    match n.map(|n| n.saturating_mul(mult)) {
        Some(s) if mult > 0 && (1..=u64::from(MAX_LIFETIME)).contains(&s) => Ok(s as u32),
        _ => Err(format!(
            "{}: expected a duration of 1 s .. 30 d, as N, Ns, Nm, Nh or Nd (e.g. 30d)",
            shown(v)
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const F: &str = "/etc/netboot/config.token";

    fn key(kvno: u32) -> ServerKey {
        ServerKey {
            kvno,
            key: super::super::ticket::fix_parity([0x13, 0x57, 0x9b, 0xdf, 0x02, 0x46, 0x8a, 0xce]),
        }
    }

    fn token() -> Token {
        Token::mint(
            &key(3),
            &Holder::Machine("52:54:00:12:34:56".into()),
            1_764_650_400,
            86_400,
            [1, 2, 3, 4, 5, 6, 7, 8],
        )
        .unwrap()
    }

    #[test]
    fn key_file_round_trip_and_openafs_bytes() {
        let keys = vec![key(7), key(2)];
        let text = encode_key_file(&keys);
        let back = parse_key_file(&text, "k").unwrap();
        assert_eq!(
            back.iter().map(|k| (k.kvno, k.key)).collect::<Vec<_>>(),
            vec![(2, key(2).key), (7, key(7).key)]
        );
        assert_eq!(latest(&back).unwrap().kvno, 7);
        let b = openafs_keyfile(&back).unwrap();
        assert_eq!(b.len(), 4 + 2 * 12);
        assert_eq!(&b[0..4], &[0, 0, 0, 2]);
        assert_eq!(&b[4..8], &[0, 0, 0, 2]);
        assert_eq!(&b[8..16], &key(2).key);
        assert_eq!(&b[16..20], &[0, 0, 0, 7]);
        let nine: Vec<ServerKey> = (1..=9).map(key).collect();
        assert!(openafs_keyfile(&nine).is_err());
    }

    #[test]
    fn key_file_errors_name_line_and_field_never_the_key() {
        let e = |t: &str| parse_key_file(t, "/k").unwrap_err().to_string();
        assert_eq!(e(""), r#""/k": no key = KVNO HEX line"#);
        assert_eq!(
            e("# c\nkey = 1 0123\n"),
            r#""/k": line 2: key: expected 16 hex digits (value not shown)"#
        );
        assert_eq!(
            e("key = 256 0123456789abcdef\n"),
            r#""/k": line 1: key kvno: "256" is not a number in 0..255"#
        );
        assert_eq!(
            e("key = 1 0123456789abcdef\nkey = 1 1123456789abcdef\n"),
            r#""/k": line 2: key kvno: kvno 1 appears twice"#
        );
        assert_eq!(
            e("kee = 1 0123456789abcdef\n"),
            r#""/k": line 1: unknown name "kee" (a key file has only key = KVNO HEX)"#
        );
        assert_eq!(
            e("key = 1 0101010101010101\n"),
            "\"/k\": line 1: key: kvno 1 is a DES weak key; make a new one with `netboot-configd key new`"
        );
        assert!(!e("key = 1 0123456789abcdeg\n").contains("0123"));
        assert!(e(&"#".repeat(MAX_FILE + 1)).contains("more than 16384"));
    }

    #[test]
    fn token_round_trip_and_errors() {
        let t = token();
        assert_eq!(t.principal(), "netboot.mac-52-54-00-12-34-56");
        assert_eq!(t.service, SERVICE);
        assert!(t.expiry > t.start + 86_399);
        let text = t.encode();
        assert!(text.contains("# valid 2025-12-02 04:40:00 UTC .. "));
        assert_eq!(Token::parse(&text, F).unwrap(), t);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&to_hex(&t.session_key)) && dbg.contains("***"));

        let e = |t: &str| Token::parse(t, F).unwrap_err().to_string();
        let without = |f: &str| {
            text.lines()
                .filter(|l| !l.starts_with(&format!("{f} ")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            e(&without("ticket")),
            r#""/etc/netboot/config.token": ticket: missing"#
        );
        let twice = format!("{text}kvno = 3\n");
        assert!(
            e(&twice).ends_with("kvno: given twice (first on line 8)"),
            "{}",
            e(&twice)
        );
        let bad_ks = text.replace(&to_hex(&t.session_key), "zz");
        assert!(e(&bad_ks).ends_with("session_key: expected 16 hex digits (value not shown)"));
        let short = text.replace(&to_hex(&t.ticket), "00112233");
        assert!(e(&short).contains("ticket: expected hex of 32..1024 bytes"));
        let v2 = text.replace("version = 1", "version = 2");
        assert!(e(&v2).ends_with("version 2 is not supported (this netboot reads 1)"));
        let exp = text.replace(&format!("expiry = {}", t.expiry), "expiry = 5");
        assert!(e(&exp).ends_with("expiry: 5 is not after start 1764650400"));
        assert!(e("x = 1\n").contains("unknown name \"x\""));
        assert!(e("garbage\n").ends_with("line 1: not NAME = VALUE"));
    }

    #[test]
    fn kernel_key_v1_layout_host_order() {
        let t = token();
        let p = t.kernel_key_v1();
        assert_eq!(p.len(), 24 + t.ticket.len());
        assert_eq!(&p[0..4], &1u32.to_ne_bytes());
        assert_eq!(&p[4..6], &2u16.to_ne_bytes());
        assert_eq!(&p[6..8], &(t.ticket.len() as u16).to_ne_bytes());
        assert_eq!(&p[8..12], &t.expiry.to_ne_bytes());
        assert_eq!(&p[12..16], &3u32.to_ne_bytes());
        assert_eq!(&p[16..24], &t.session_key);
        assert_eq!(&p[24..], &t.ticket[..]);
        // x86_64 is little-endian: kver 1 is 01 00 00 00.
        #[cfg(target_endian = "little")]
        assert_eq!(&p[0..8], &[1, 0, 0, 0, 2, 0, t.ticket.len() as u8, 0]);
    }

    #[test]
    fn the_minted_ticket_opens_with_the_server_key() {
        let t = token();
        let k = key(3);
        let opened = Ticket::open(&t.ticket, &k).unwrap();
        assert_eq!(opened.name, "netboot");
        assert_eq!(opened.instance, "mac-52-54-00-12-34-56");
        assert_eq!(opened.service, SERVICE);
        assert_eq!(opened.session_key, t.session_key);
        assert_eq!(opened.start, t.start);
        assert_eq!(opened.end(), t.expiry);
        assert!(Token::mint(&k, &Holder::Fleet("a".into()), 0, MAX_LIFETIME + 1, [9; 8]).is_err());
    }

    #[test]
    fn holders() {
        assert_eq!(
            Holder::of("netboot", "mac-52-54-00-12-34-56"),
            Some(Holder::Machine("52:54:00:12:34:56".into()))
        );
        assert_eq!(
            Holder::of("netboot", "fleet-rack-7"),
            Some(Holder::Fleet("rack-7".into()))
        );
        assert_eq!(Holder::of("afs", "fleet-rack-7"), None);
        assert_eq!(Holder::of("netboot", "mac-52:54:00:12:34:56"), None);
        assert_eq!(Holder::of("netboot", "mac-52-54-00-12-34-5G"), None);
        assert_eq!(Holder::of("netboot", "fleet-"), None);
        assert_eq!(Holder::of("netboot", "fleet-A"), None);
        assert_eq!(Holder::of("netboot", ""), None);
        assert_eq!(
            Holder::Machine("52:54:00:12:34:56".into()).instance(),
            "mac-52-54-00-12-34-56"
        );
        assert!(!valid_fleet(&"a".repeat(35)));
    }

    #[test]
    fn lifetimes_and_dates() {
        assert_eq!(parse_lifetime("30d"), Ok(MAX_LIFETIME));
        assert_eq!(parse_lifetime("90"), Ok(90));
        assert_eq!(parse_lifetime("12h"), Ok(43_200));
        assert_eq!(parse_lifetime("5m"), Ok(300));
        assert!(parse_lifetime("31d").is_err());
        assert!(parse_lifetime("0").is_err());
        assert!(parse_lifetime("1w").is_err());
        assert!(parse_lifetime("99999999999999999999d").is_err());
        assert!(parse_lifetime("").is_err());
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(u32::MAX), "2106-02-07 06:28:15 UTC");
    }

    #[test]
    fn parsers_survive_garbage() {
        let t = token().encode();
        for n in 0..t.len() {
            if t.is_char_boundary(n) {
                let _ = Token::parse(&t[..n], F);
            }
        }
        for s in [
            "=",
            "key=",
            "key = 1",
            "key = 1 2 3",
            "\u{0}=\u{1}",
            "ticket = 0",
        ] {
            let _ = parse_key_file(s, "k");
            let _ = Token::parse(s, "t");
        }
    }
}
