//! The iSCSI Boot Firmware Table as the kernel shows it under
//! `/sys/firmware/ibft/` (`drivers/firmware/iscsi_ibft.c` fills
//! `drivers/scsi/iscsi_boot_sysfs.c`'s kobjects): one directory per
//! structure, `initiator`, `ethernet<N>` and `target<N>`, one text file per
//! field that the table has.
//!
//! Pure: [`parse`] takes the tree as a map `"dir/attribute" → bytes`
//! ([`Tree`]; [`sysfs::read_tree`] reads it, bounded) and yields a typed
//! [`Table`]; [`plan::merge`] turns the table into root paths, an `ip=`
//! entry per NIC and the initiator name. [`build`] writes a binary ACPI
//! table (tests and the VM rig only).
//!
//! Text formats (observed on 6.1 and 6.12, `ibft-ipv6-vlan.md` §1.3): IPv4
//! as `198.18.0.2\n`, IPv6 uncompressed (`%pI6`); numbers decimal; `mac` as
//! `52:54:00:12:34:56`; strings with a trailing newline; `subnet-mask`
//! without one (and meaningless for IPv6: not read, `prefix-len` is); `lun`
//! as each of its 8 SAM bytes in unpadded `%x` ([`decode_lun`]). Only the
//! fields that are set are visible: IP fields when not null, `prefix-len`
//! when not 0, names when their length is not 0, `chap-name` and
//! `chap-secret` only together.
//!
//! Flags (`iscsi_boot_sysfs.c`, the iBFT spec): bit 0 "block valid", bit 1
//! "firmware boot selected". Like open-iscsi (`fwparam_sysfs.c`
//! `find_boot_flag`: some firmware sets only bit 1) an entry with either
//! bit is used and one with neither is skipped; the boot-selected ones come
//! first.

pub mod build;
pub mod plan;
pub mod sysfs;

use crate::plan::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The tree: `"target0/port"` → the attribute's bytes.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// Where the kernel shows the table.
pub const SYSFS_DIR: &str = "/sys/firmware/ibft";

/// Flag bits of every structure.
pub const FLAG_VALID: u8 = 1;
pub const FLAG_BOOT_SELECTED: u8 = 2;
/// NIC flag bit 2: the address is global (clear: link-local).
pub const FLAG_NIC_GLOBAL: u8 = 4;

/// NIC `origin` (iBFT "IP address origin", RFC 4293 `IpAddressOriginTC`).
pub const ORIGIN_DHCP: u8 = 3;

/// At most this many `ethernet<N>` or `target<N>` entries: the control
/// structure has room for 2 of each, newer kernels read more offsets; an
/// index is a u8.
pub const MAX_ENTRIES: usize = 16;
/// The longest attribute we read: sysfs shows at most a page; our longest
/// field is a name of 223 bytes (RFC 7143 §4.2.7.1) or a CHAP secret.
pub const MAX_ATTR_LEN: usize = 1024;
/// CHAP names and secrets: RFC 7143 allows 255-byte values in the login;
/// the iBFT string length is a u16 but nothing longer is sensible.
pub const MAX_CHAP_LEN: usize = 255;
/// Host name: 253 (a DNS name; the kernel's own limit is 64).
pub const MAX_HOSTNAME_LEN: usize = 253;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub initiator: Option<Initiator>,
    /// Sorted by index.
    pub nics: Vec<Nic>,
    /// Sorted by index.
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiator {
    pub flags: u8,
    pub name: Option<String>,
    pub isns_server: Option<IpAddr>,
    pub slp_server: Option<IpAddr>,
    pub pri_radius_server: Option<IpAddr>,
    pub sec_radius_server: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The sysfs directory: `ethernet0`.
    pub entry: String,
    pub index: u8,
    pub flags: u8,
    pub address: Option<IpAddr>,
    pub prefix_len: Option<u8>,
    pub origin: u8,
    pub gateway: Option<IpAddr>,
    pub primary_dns: Option<IpAddr>,
    pub secondary_dns: Option<IpAddr>,
    /// The `dhcp` attribute: the DHCP server the firmware used.
    pub dhcp_server: Option<IpAddr>,
    /// VLAN ID; 0 = untagged.
    pub vlan: u16,
    /// Lowercase, colon separated.
    pub mac: String,
    pub hostname: Option<String>,
}

impl Nic {
    /// The address came from DHCP: dracut's rule (`45net-lib/net-lib.sh`
    /// `ibft_to_cmdline`): a `dhcp` attribute, or origin 3.
    pub fn uses_dhcp(&self) -> bool {
        self.dhcp_server.is_some() || self.origin == ORIGIN_DHCP
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The sysfs directory: `target0`.
    pub entry: String,
    pub index: u8,
    pub flags: u8,
    pub address: IpAddr,
    pub port: u16,
    pub lun: u64,
    /// 0 none, 1 one-way, 2 mutual.
    pub chap_type: u8,
    /// The index of the NIC this target is reached through.
    pub nic_assoc: u8,
    pub name: Option<String>,
    pub chap: Option<Credential>,
    /// The target's name and secret for mutual CHAP (`rev-chap-name`,
    /// `rev-chap-name-secret`).
    pub reverse_chap: Option<Credential>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub name: String,
    pub secret: Secret,
}

pub const CHAP_NONE: u8 = 0;
pub const CHAP_ONE_WAY: u8 = 1;
pub const CHAP_MUTUAL: u8 = 2;

/// An entry is used when either flag bit is set (module docs).
pub fn usable(flags: u8) -> bool {
    flags & (FLAG_VALID | FLAG_BOOT_SELECTED) != 0
}

pub fn boot_selected(flags: u8) -> bool {
    flags & FLAG_BOOT_SELECTED != 0
}

/// The usable entries of `v` (in index order), the boot-selected first.
/// Two passes instead of a sort: the binary carries no sort for it.
fn boot_first<T>(v: &[T], flags: impl Fn(&T) -> u8) -> Vec<&T> {
    let mut out: Vec<&T> = v
        .iter()
        .filter(|e| usable(flags(e)) && boot_selected(flags(e)))
        .collect();
    out.extend(
        v.iter()
            .filter(|e| usable(flags(e)) && !boot_selected(flags(e))),
    );
    out
}

impl Table {
    /// The targets to log in to, in failover order: usable ones, the
    /// boot-selected first, then by index.
    pub fn boot_targets(&self) -> Vec<&Target> {
        boot_first(&self.targets, |t| t.flags)
    }

    /// The NICs to configure: the usable NICs that the boot targets are
    /// associated with, in the targets' order; if none is, the usable NICs
    /// with the boot-selected first.
    pub fn boot_nics(&self) -> Vec<&Nic> {
        let usable_nic = |i: u8| self.nics.iter().find(|n| n.index == i && usable(n.flags));
        let mut out: Vec<&Nic> = Vec::new();
        for t in self.boot_targets() {
            if let Some(n) = usable_nic(t.nic_assoc) {
                if !out.iter().any(|o| o.index == n.index) {
                    out.push(n);
                }
            }
        }
        if out.is_empty() {
            out = boot_first(&self.nics, |n| n.flags);
        }
        out
    }

    /// The initiator name, if the initiator structure is usable and has one.
    pub fn initiator_name(&self) -> Option<&str> {
        self.initiator
            .as_ref()
            .filter(|i| usable(i.flags))
            .and_then(|i| i.name.as_deref())
    }
}

// ---------------------------------------------------------------------------
// Errors

/// A field of the table that cannot be used. Display: `iBFT target0/port:
/// "0" is not a port in 1..65535`; values escaped and cut, secrets never
/// shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbftError {
    /// `target0/port`, or `target0` for an entry-wide problem.
    pub at: String,
    pub what: String,
}

impl fmt::Display for IbftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iBFT {}: {}", self.at, self.what)
    }
}

impl std::error::Error for IbftError {}

fn err(at: impl Into<String>, what: impl Into<String>) -> IbftError {
    IbftError {
        at: crate::escape::escape_controls(&at.into()).into_owned(),
        what: what.into(),
    }
}

/// A value for a message: escaped, quoted, cut at 64 characters.
/// The attribute's trailing newline is not part of the value.
fn shown(bytes: &[u8]) -> String {
    let b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    crate::escape::quote_max(&String::from_utf8_lossy(b), 64)
}

// ---------------------------------------------------------------------------
// Per-attribute text decoders (pure, never panic; fuzzed)

/// The attribute's text: UTF-8, one trailing newline dropped, at most
/// [`MAX_ATTR_LEN`] bytes.
pub fn decode_text(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > MAX_ATTR_LEN {
        return None;
    }
    let s = std::str::from_utf8(bytes).ok()?;
    Some(s.strip_suffix('\n').unwrap_or(s))
}

/// A decimal number of at most `max`.
pub fn decode_uint(bytes: &[u8], max: u64) -> Option<u64> {
    let s = decode_text(bytes)?;
    crate::cmdline::rootpath::parse_dec(s).filter(|&n| n <= max)
}

/// An IPv4 (`%pI4`) or IPv6 (`%pI6`, uncompressed; any form accepted)
/// address. `None` for text that is neither. The null address (shown by
/// no kernel, but written by some firmware) is `Some(None)`: absent.
pub fn decode_ip(bytes: &[u8]) -> Option<Option<IpAddr>> {
    let s = decode_text(bytes)?;
    if s.is_empty() || s.len() > 45 {
        return None;
    }
    let a: IpAddr = s.parse().ok()?;
    // An IPv4-mapped IPv6 address is the IPv4 address (the table's own
    // encoding of IPv4).
    let a = match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    };
    Some((!a.is_unspecified()).then_some(a))
}

/// `52:54:00:12:34:56` (any case) → lowercase.
pub fn decode_mac(bytes: &[u8]) -> Option<String> {
    let s = decode_text(bytes)?;
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| s.to_ascii_lowercase())
}

/// A name or secret: 1..=`max` bytes, no control characters.
pub fn decode_string(bytes: &[u8], max: usize) -> Option<&str> {
    let s = decode_text(bytes)?;
    (!s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)).then_some(s)
}

/// The `lun` attribute: the kernel prints each of the boot LUN's 8 bytes
/// (SAM order) as unpadded `%x` and concatenates them (`iscsi_ibft.c`
/// `ibft_attr_show_target`, `ISCSI_BOOT_TGT_LUN`), so `00 01 00 00 00 00
/// 00 00` shows as `01000000`. That is ambiguous in general; what we
/// accept is unambiguous:
/// - 8 digits: every byte < 16, one digit each;
/// - a single-level LUN (bytes 2..8 zero, so the text ends in `000000`),
///   peripheral addressing (byte 0 = 0, LUN = byte 1 < 256) or flat
///   addressing (byte 0 = 0x40 | high 6 bits, two digits; byte 1 the low
///   8 bits).
///
/// Byte 0 = 0 and byte 1 < 16 is both forms (8 digits): the same LUN.
pub fn decode_lun(bytes: &[u8]) -> Option<u64> {
    let s = decode_text(bytes)?;
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = |t: &str| u8::from_str_radix(t, 16).ok();
    let sam = |b0: u8, b1: u8| -> Option<u64> {
        match b0 >> 6 {
            0 if b0 == 0 => Some(u64::from(b1)),
            1 => Some((u64::from(b0 & 0x3f) << 8) | u64::from(b1)),
            _ => None,
        }
    };
    if s.len() == 8 {
        let b: Vec<u8> = s
            .bytes()
            .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
            .collect();
        if b.get(2..).is_some_and(|r| r.iter().any(|&x| x != 0)) {
            // A multi-level LUN: not something a boot table names.
            return None;
        }
        return sam(*b.first()?, *b.get(1)?);
    }
    let head = s.strip_suffix("000000")?;
    match head.len() {
        // "0" + two digits of byte 1 (byte 1 ≥ 16).
        3 if head.starts_with('0') => sam(0, hex(head.get(1..)?)?),
        // Two digits of a flat-addressing byte 0, one of byte 1.
        3 => sam(hex(head.get(..2)?)?, hex(head.get(2..)?)?),
        4 => sam(hex(head.get(..2)?)?, hex(head.get(2..)?)?),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Assembly from the tree

/// The attributes of one directory.
struct Entry<'t> {
    dir: &'t str,
    /// Sorted by name (the tree's order).
    attrs: Vec<(&'t str, &'t [u8])>,
}

impl<'t> Entry<'t> {
    fn at(&self, attr: &str) -> String {
        format!("{}/{attr}", self.dir)
    }

    fn get(&self, attr: &str) -> Option<&'t [u8]> {
        let i = self.attrs.binary_search_by(|(a, _)| (*a).cmp(attr)).ok()?;
        self.attrs.get(i).map(|(_, b)| *b)
    }

    fn required(&self, attr: &str) -> Result<&'t [u8], IbftError> {
        self.get(attr)
            .ok_or_else(|| err(self.at(attr), "missing (the kernel always shows it)"))
    }

    fn uint(&self, attr: &str, max: u64, required: bool) -> Result<Option<u64>, IbftError> {
        let Some(b) = self.get(attr) else {
            if required {
                return Err(err(self.at(attr), "missing (the kernel always shows it)"));
            }
            return Ok(None);
        };
        decode_uint(b, max).map(Some).ok_or_else(|| {
            err(
                self.at(attr),
                format!("{} is not an integer in 0..{max}", shown(b)),
            )
        })
    }

    fn u8(&self, attr: &str) -> Result<u8, IbftError> {
        Ok(self.uint(attr, 255, true)?.unwrap_or(0) as u8)
    }

    fn ip(&self, attr: &str) -> Result<Option<IpAddr>, IbftError> {
        let Some(b) = self.get(attr) else {
            return Ok(None);
        };
        decode_ip(b).ok_or_else(|| err(self.at(attr), format!("{} is not an IP address", shown(b))))
    }

    fn string(&self, attr: &str, max: usize, what: &str) -> Result<Option<String>, IbftError> {
        let Some(b) = self.get(attr) else {
            return Ok(None);
        };
        decode_string(b, max)
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| {
                err(
                    self.at(attr),
                    format!(
                        "{} is not {what} (1..{max} bytes, no control characters)",
                        shown(b)
                    ),
                )
            })
    }

    /// A secret: its value never appears in the error.
    fn secret(&self, attr: &str) -> Result<Option<Secret>, IbftError> {
        let Some(b) = self.get(attr) else {
            return Ok(None);
        };
        decode_string(b, MAX_CHAP_LEN)
            .map(|s| Some(Secret::new(s)))
            .ok_or_else(|| {
                err(
                    self.at(attr),
                    format!(
                        "the secret (not shown, {} bytes) is not 1..{MAX_CHAP_LEN} bytes of text without control characters",
                        b.len()
                    ),
                )
            })
    }

    fn credential(&self, name: &str, secret: &str) -> Result<Option<Credential>, IbftError> {
        match (
            self.string(name, MAX_CHAP_LEN, "a CHAP name")?,
            self.secret(secret)?,
        ) {
            (Some(name), Some(secret)) => Ok(Some(Credential { name, secret })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(err(self.at(secret), "missing while the CHAP name is set")),
            (None, Some(_)) => Err(err(self.at(name), "missing while the CHAP secret is set")),
        }
    }
}

/// `ethernet12` → 12 (decimal, ≤ 255, no leading zeros but `0` itself).
fn entry_number(dir: &str, prefix: &str) -> Option<u8> {
    let n = dir.strip_prefix(prefix)?;
    if n.len() > 1 && n.starts_with('0') {
        return None;
    }
    crate::cmdline::rootpath::parse_dec(n)
        .filter(|&i| i <= 255)
        .map(|i| i as u8)
}

/// The typed table from the tree (module docs). Directories other than
/// `initiator`, `ethernet<N>`, `target<N>` (`acpi_header`, a `device`
/// link's contents) are ignored.
pub fn parse(tree: &Tree) -> Result<Table, IbftError> {
    // The tree is sorted by path, so one directory's attributes are
    // contiguous ("target1/…" sorts before "target10/…": '/' < '0') and
    // sorted by name.
    let mut dirs: Vec<Entry> = Vec::new();
    for (path, bytes) in tree {
        let Some((dir, attr)) = path.split_once('/') else {
            continue;
        };
        if attr.contains('/') {
            continue;
        }
        let known = dir == "initiator"
            || entry_number(dir, "ethernet").is_some()
            || entry_number(dir, "target").is_some();
        if !known {
            continue;
        }
        match dirs.last_mut() {
            Some(e) if e.dir == dir => e.attrs.push((attr, bytes.as_slice())),
            _ => dirs.push(Entry {
                dir,
                attrs: vec![(attr, bytes.as_slice())],
            }),
        }
    }
    let mut table = Table {
        initiator: None,
        nics: Vec::new(),
        targets: Vec::new(),
    };
    for e in &dirs {
        let dir = &e.dir;
        if *dir == "initiator" {
            table.initiator = Some(initiator(e)?);
        } else if let Some(n) = entry_number(dir, "ethernet") {
            if table.nics.len() >= MAX_ENTRIES {
                return Err(err(
                    *dir,
                    format!("more than {MAX_ENTRIES} ethernet entries"),
                ));
            }
            let nic = nic(e, n)?;
            // In index order (the tree's is by name: ethernet10 < ethernet2).
            let at = table.nics.partition_point(|o| o.index < nic.index);
            table.nics.insert(at, nic);
        } else if let Some(n) = entry_number(dir, "target") {
            if table.targets.len() >= MAX_ENTRIES {
                return Err(err(*dir, format!("more than {MAX_ENTRIES} target entries")));
            }
            let t = target(e, n)?;
            let at = table.targets.partition_point(|o| o.index < t.index);
            table.targets.insert(at, t);
        }
    }
    Ok(table)
}

fn initiator(e: &Entry) -> Result<Initiator, IbftError> {
    let flags = e.u8("flags")?;
    let name = e.string(
        "initiator-name",
        crate::cmdline::rootpath::MAX_NAME_LEN,
        "an iSCSI name",
    )?;
    Ok(Initiator {
        flags,
        name,
        isns_server: e.ip("isns-server")?,
        slp_server: e.ip("slp-server")?,
        pri_radius_server: e.ip("pri-radius-server")?,
        sec_radius_server: e.ip("sec-radius-server")?,
    })
}

fn nic(e: &Entry, number: u8) -> Result<Nic, IbftError> {
    let index = e.u8("index")?;
    if index != number {
        return Err(err(
            e.at("index"),
            format!("{index} is not the directory's number {number}"),
        ));
    }
    let mac_bytes = e.required("mac")?;
    let mac = decode_mac(mac_bytes).ok_or_else(|| {
        err(
            e.at("mac"),
            format!("{} is not a MAC like 52:54:00:12:34:56", shown(mac_bytes)),
        )
    })?;
    let address = e.ip("ip-addr")?;
    let max_prefix = if matches!(address, Some(IpAddr::V4(_))) {
        32
    } else {
        128
    };
    let prefix_len = e.uint("prefix-len", max_prefix, false)?.map(|p| p as u8);
    Ok(Nic {
        entry: e.dir.to_string(),
        index,
        flags: e.u8("flags")?,
        address,
        prefix_len,
        origin: e.u8("origin")?,
        gateway: e.ip("gateway")?,
        primary_dns: e.ip("primary-dns")?,
        secondary_dns: e.ip("secondary-dns")?,
        dhcp_server: e.ip("dhcp")?,
        vlan: e.uint("vlan", 65535, true)?.unwrap_or(0) as u16,
        mac,
        hostname: e.string("hostname", MAX_HOSTNAME_LEN, "a host name")?,
    })
}

fn target(e: &Entry, number: u8) -> Result<Target, IbftError> {
    let index = e.u8("index")?;
    if index != number {
        return Err(err(
            e.at("index"),
            format!("{index} is not the directory's number {number}"),
        ));
    }
    let flags = e.u8("flags")?;
    // ip-addr is shown only when not null; a target without one is
    // checked when it is used (an unused entry may be empty).
    let address = e.ip("ip-addr")?;
    let port = e.uint("port", 65535, true)?.unwrap_or(0) as u16;
    let lun_bytes = e.required("lun")?;
    let lun = decode_lun(lun_bytes).ok_or_else(|| {
        err(
            e.at("lun"),
            format!(
                "{} is not a single-level LUN (the kernel prints its 8 bytes as unpadded hex)",
                shown(lun_bytes)
            ),
        )
    })?;
    let chap_type = e.u8("chap-type")?;
    let nic_assoc = e.u8("nic-assoc")?;
    let name = e.string(
        "target-name",
        crate::cmdline::rootpath::MAX_NAME_LEN,
        "an iSCSI name",
    )?;
    let chap = e.credential("chap-name", "chap-secret")?;
    // The kernel's attribute name for the reverse secret.
    let reverse_chap = e.credential("rev-chap-name", "rev-chap-name-secret")?;
    let t = Target {
        entry: e.dir.to_string(),
        index,
        flags,
        address: address.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        port,
        lun,
        chap_type,
        nic_assoc,
        name,
        chap,
        reverse_chap,
    };
    if usable(flags) {
        check_target(&t, address.is_some())?;
    }
    Ok(t)
}

/// What a target that is used must have.
fn check_target(t: &Target, has_address: bool) -> Result<(), IbftError> {
    let at = |a: &str| format!("{}/{a}", t.entry);
    if !has_address {
        return Err(err(at("ip-addr"), "missing: the target has no address"));
    }
    if t.port == 0 {
        return Err(err(at("port"), "\"0\" is not a port in 1..65535"));
    }
    match t.name.as_deref() {
        None => return Err(err(at("target-name"), "missing: the target has no name")),
        Some(n) if !crate::cmdline::rootpath::valid_target(n) => {
            return Err(err(
                at("target-name"),
                format!("{} has spaces or control characters", shown(n.as_bytes())),
            ))
        }
        Some(_) => {}
    }
    match t.chap_type {
        CHAP_NONE => {}
        CHAP_ONE_WAY if t.chap.is_none() => {
            return Err(err(at("chap-name"), "missing while chap-type is 1 (CHAP)"))
        }
        CHAP_MUTUAL if t.chap.is_none() => {
            return Err(err(
                at("chap-name"),
                "missing while chap-type is 2 (mutual CHAP)",
            ))
        }
        CHAP_MUTUAL if t.reverse_chap.is_none() => {
            return Err(err(
                at("rev-chap-name"),
                "missing while chap-type is 2 (mutual CHAP)",
            ))
        }
        CHAP_ONE_WAY | CHAP_MUTUAL => {}
        n => {
            return Err(err(
                at("chap-type"),
                format!("{n} is not 0 (none), 1 (CHAP) or 2 (mutual CHAP)"),
            ))
        }
    }
    if t.reverse_chap.is_some() && t.chap.is_none() {
        return Err(err(
            at("chap-name"),
            "missing: mutual CHAP (rev-chap-name) needs the initiator's CHAP name too",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
