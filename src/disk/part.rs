//! Partition tables: MBR (with the extended/logical chain) and GPT.
//!
//! Pure: bytes come through [`ReadAt`], so tests feed image files or
//! slices. Numbering, PARTUUID and PARTLABEL follow the kernel, because
//! `root=PARTUUID=` must name the same partition the kernel would:
//! block/partitions/msdos.c (primaries 1–4 by slot, logicals from 5) and
//! block/partitions/efi.c (entry index + 1).

use std::fmt;

/// Random access to a device or image. Short reads are errors.
pub trait ReadAt {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Mbr,
    Gpt,
}

/// One partition as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The kernel's partition number (`sda<number>`).
    pub number: u32,
    /// Byte offset and length on the disk.
    pub start: u64,
    pub len: u64,
    /// PARTUUID as the kernel prints it (lowercase).
    pub uuid: String,
    /// PARTLABEL (GPT only).
    pub label: Option<String>,
    /// MBR: two hex digits (`83`); GPT: the type GUID.
    pub ptype: String,
    /// MBR extended container (holds no file system).
    pub extended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    /// MBR disk signature (`xxxxxxxx`) or GPT disk GUID.
    pub id: String,
    pub parts: Vec<Partition>,
}

#[derive(Debug)]
pub enum PartError {
    Read {
        what: &'static str,
        offset: u64,
        err: std::io::Error,
    },
    /// Protective MBR present but the GPT header at LBA 1 is unusable; the
    /// kernel then shows no partitions at all (msdos.c skips 0xEE disks).
    GptHeader {
        reason: &'static str,
        value: u64,
    },
    GptEntriesCrc {
        want: u32,
        got: u32,
    },
    SectorSize(u32),
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::Read { what, offset, err } => {
                write!(f, "reading the {what} at byte {offset}: {err}")
            }
            PartError::GptHeader { reason, value } => write!(
                f,
                "protective MBR found but the GPT header at LBA 1 is invalid: {reason} ({value:#x}); \
                 hint: the kernel ignores such a disk's partitions too, repair it with `sgdisk -e` or `sfdisk --relocate`"
            ),
            PartError::GptEntriesCrc { want, got } => write!(
                f,
                "GPT partition entry array CRC32 mismatch: header says {want:#010x}, entries hash to {got:#010x}"
            ),
            PartError::SectorSize(s) => {
                write!(f, "logical sector size {s} is not a power of two in 512..=4096")
            }
        }
    }
}

impl std::error::Error for PartError {}

/// CRC-32 (IEEE 802.3, reflected, as UEFI spec §4.2 and the kernel's
/// `efi_crc32` = `crc32_le(~0, …) ^ ~0`). Bitwise: the GPT is read once.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}
fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}
fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A GUID in the mixed-endian text form (`%pUl`, the kernel's PARTUUID and
/// blkid's UUID): first three fields little-endian, the rest as stored.
pub fn guid(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    for (i, &j) in order.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let v = b.get(j).copied().unwrap_or(0);
        out.push(char::from(HEX[usize::from(v >> 4)]));
        out.push(char::from(HEX[usize::from(v & 15)]));
    }
    out
}

// MBR layout (msdos.c, `struct msdos_partition` in include/linux/msdos_partition.h).
const MBR_DISK_SIG: usize = 440;
const MBR_TABLE: usize = 446;
const MBR_ENTRY: usize = 16;
const MBR_MAGIC: usize = 510;
const PE_TYPE: usize = 4;
const PE_START: usize = 8;
const PE_SECTORS: usize = 12;
const TYPE_GPT_PROTECTIVE: u8 = 0xee;
/// msdos.c `is_extended_partition`: DOS_EXTENDED, WIN98_EXTENDED, LINUX_EXTENDED.
fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0f | 0x85)
}
/// Bound on the logical chain; msdos.c gives up after 100 links (`loopct`).
const MAX_EBR: usize = 100;

// GPT header (efi.h `gpt_header`).
const GPT_SIG: &[u8; 8] = b"EFI PART";
const GH_SIZE: usize = 12;
const GH_CRC: usize = 16;
const GH_MY_LBA: usize = 24;
const GH_FIRST_USABLE: usize = 40;
const GH_LAST_USABLE: usize = 48;
const GH_DISK_GUID: usize = 56;
const GH_ENTRIES_LBA: usize = 72;
const GH_NUM_ENTRIES: usize = 80;
const GH_ENTRY_SIZE: usize = 84;
const GH_ENTRIES_CRC: usize = 88;
/// `sizeof(gpt_header)` without the reserved tail.
const GH_MIN_SIZE: u32 = 92;
// GPT entry (efi.h `gpt_entry`), 128 bytes; efi.c rejects other sizes.
const GPT_ENTRY_SIZE: u32 = 128;
const GE_UNIQUE: usize = 16;
const GE_FIRST: usize = 32;
const GE_LAST: usize = 40;
const GE_NAME: usize = 56;
const GE_NAME_UNITS: usize = 36;
/// More entries than any tool writes (128 by default); bounds the read.
const GPT_MAX_ENTRIES: u32 = 4096;

fn read(
    dev: &mut dyn ReadAt,
    what: &'static str,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, PartError> {
    let mut buf = vec![0u8; len];
    dev.read_at(offset, &mut buf)
        .map_err(|err| PartError::Read { what, offset, err })?;
    Ok(buf)
}

/// Read the partition table. `Ok(None)`: no MBR signature, so no table
/// (e.g. a file system on the whole disk). `sector` is the logical block
/// size (`/sys/block/X/queue/logical_block_size`); MBR and GPT count in it.
pub fn parse(dev: &mut dyn ReadAt, sector: u32) -> Result<Option<Table>, PartError> {
    if !(512..=4096).contains(&sector) || !sector.is_power_of_two() {
        return Err(PartError::SectorSize(sector));
    }
    let mbr = read(dev, "MBR", 0, 512)?;
    if mbr.get(MBR_MAGIC..MBR_MAGIC + 2) != Some(&[0x55, 0xaa]) {
        return Ok(None);
    }
    let entry = |i: usize| mbr.get(MBR_TABLE + i * MBR_ENTRY..MBR_TABLE + (i + 1) * MBR_ENTRY);
    // efi.c is_pmbr_valid: any 0xEE slot makes it a (possibly hybrid) GPT disk.
    if (0..4).any(|i| entry(i).and_then(|e| e.get(PE_TYPE).copied()) == Some(TYPE_GPT_PROTECTIVE)) {
        return parse_gpt(dev, u64::from(sector)).map(Some);
    }
    // msdos.c: a boot indicator other than 0x00/0x80 means the 0x55AA is
    // not a partition table (e.g. a FAT boot sector); no partitions then.
    if (0..4).any(|i| {
        entry(i)
            .and_then(|e| e.first().copied())
            .is_some_and(|b| b != 0 && b != 0x80)
    }) {
        return Ok(None);
    }
    let sig = le32(&mbr, MBR_DISK_SIG);
    let ss = u64::from(sector);
    let mut parts = Vec::new();
    let mut ext: Option<(u64, u64)> = None;
    for slot in 0..4u32 {
        let Some(e) = entry(slot as usize) else { break };
        let t = e.get(PE_TYPE).copied().unwrap_or(0);
        let start = u64::from(le32(e, PE_START));
        let n = u64::from(le32(e, PE_SECTORS));
        // msdos.c: `if (!size) continue;` — an empty slot keeps its number.
        if n == 0 {
            continue;
        }
        let extended = is_extended(t);
        if extended && ext.is_none() {
            ext = Some((start, n));
        }
        parts.push(mbr_part(sig, slot + 1, start * ss, n * ss, t, extended));
    }
    if let Some((ext_start, _)) = ext {
        logical_chain(dev, sig, ss, ext_start, &mut parts)?;
    }
    Ok(Some(Table {
        kind: TableKind::Mbr,
        id: format!("{sig:08x}"),
        parts,
    }))
}

fn mbr_part(sig: u32, number: u32, start: u64, len: u64, t: u8, extended: bool) -> Partition {
    Partition {
        number,
        start,
        len,
        // msdos.c: `snprintf(info->uuid, …, "%08x-%02x", disksig, slot)`.
        uuid: format!("{sig:08x}-{number:02x}"),
        label: None,
        ptype: format!("{t:02x}"),
        extended,
    }
}

/// Walk the EBR chain (msdos.c `parse_extended`): in each EBR, data entries
/// are relative to that EBR, the link to the next EBR is relative to the
/// start of the outermost extended partition. Logicals number from 5.
fn logical_chain(
    dev: &mut dyn ReadAt,
    sig: u32,
    ss: u64,
    ext_start: u64,
    parts: &mut Vec<Partition>,
) -> Result<(), PartError> {
    let mut this = ext_start;
    let mut next_no = 5u32;
    for _ in 0..MAX_EBR {
        let Some(off) = this.checked_mul(ss) else {
            break;
        };
        let ebr = read(dev, "extended boot record", off, 512)?;
        if ebr.get(MBR_MAGIC..MBR_MAGIC + 2) != Some(&[0x55, 0xaa]) {
            break;
        }
        let mut link = None;
        for i in 0..4 {
            let Some(e) = ebr.get(MBR_TABLE + i * MBR_ENTRY..MBR_TABLE + (i + 1) * MBR_ENTRY)
            else {
                break;
            };
            let t = e.get(PE_TYPE).copied().unwrap_or(0);
            let start = u64::from(le32(e, PE_START));
            let n = u64::from(le32(e, PE_SECTORS));
            if n == 0 {
                continue;
            }
            if is_extended(t) {
                // Only the first link counts (msdos.c "Next, process the
                // (first) extended partition").
                link.get_or_insert(start);
            } else {
                let abs = this.saturating_add(start).saturating_mul(ss);
                parts.push(mbr_part(sig, next_no, abs, n.saturating_mul(ss), t, false));
                next_no += 1;
            }
        }
        match link {
            Some(l) => this = ext_start.saturating_add(l),
            None => break,
        }
    }
    Ok(())
}

fn gpt_bad(reason: &'static str, value: u64) -> PartError {
    PartError::GptHeader { reason, value }
}

fn parse_gpt(dev: &mut dyn ReadAt, ss: u64) -> Result<Table, PartError> {
    let lba1 = read(dev, "GPT header", ss, ss as usize)?;
    if lba1.get(..8) != Some(GPT_SIG.as_slice()) {
        return Err(gpt_bad("no \"EFI PART\" signature", le64(&lba1, 0)));
    }
    let size = le32(&lba1, GH_SIZE);
    if size < GH_MIN_SIZE || u64::from(size) > ss {
        return Err(gpt_bad("header size out of range", u64::from(size)));
    }
    let mut hdr = lba1.get(..size as usize).unwrap_or_default().to_vec();
    let want = le32(&hdr, GH_CRC);
    if let Some(c) = hdr.get_mut(GH_CRC..GH_CRC + 4) {
        c.fill(0);
    }
    if crc32(&hdr) != want {
        return Err(gpt_bad("header CRC32 mismatch", u64::from(want)));
    }
    if le64(&hdr, GH_MY_LBA) != 1 {
        return Err(gpt_bad("my_lba is not 1", le64(&hdr, GH_MY_LBA)));
    }
    let first_usable = le64(&hdr, GH_FIRST_USABLE);
    let last_usable = le64(&hdr, GH_LAST_USABLE);
    if last_usable < first_usable {
        return Err(gpt_bad("last usable LBA below first usable", last_usable));
    }
    let esize = le32(&hdr, GH_ENTRY_SIZE);
    if esize != GPT_ENTRY_SIZE {
        return Err(gpt_bad("partition entry size is not 128", u64::from(esize)));
    }
    let count = le32(&hdr, GH_NUM_ENTRIES);
    if count > GPT_MAX_ENTRIES {
        return Err(gpt_bad("too many partition entries", u64::from(count)));
    }
    let entries_lba = le64(&hdr, GH_ENTRIES_LBA);
    let off = entries_lba
        .checked_mul(ss)
        .ok_or(gpt_bad("entry array LBA overflows", entries_lba))?;
    let array = read(
        dev,
        "GPT entry array",
        off,
        (count * GPT_ENTRY_SIZE) as usize,
    )?;
    let want = le32(&hdr, GH_ENTRIES_CRC);
    let got = crc32(&array);
    if got != want {
        return Err(PartError::GptEntriesCrc { want, got });
    }
    let mut parts = Vec::new();
    for (i, e) in array.chunks_exact(GPT_ENTRY_SIZE as usize).enumerate() {
        let ptype = e.get(..16).unwrap_or_default();
        if ptype.iter().all(|&b| b == 0) {
            continue; // unused entry
        }
        let first = le64(e, GE_FIRST);
        let last = le64(e, GE_LAST);
        // efi.c is_pte_valid: entries outside the usable area are skipped
        // (but keep their number: the kernel numbers by index).
        if first < first_usable || last > last_usable || last < first {
            continue;
        }
        let units = (0..GE_NAME_UNITS)
            .map(|k| le16(e, GE_NAME + 2 * k))
            .take_while(|&u| u != 0);
        let name: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        parts.push(Partition {
            number: i as u32 + 1,
            start: first.saturating_mul(ss),
            len: (last - first).saturating_add(1).saturating_mul(ss),
            uuid: guid(e.get(GE_UNIQUE..GE_UNIQUE + 16).unwrap_or_default()),
            label: Some(name),
            ptype: guid(ptype),
            extended: false,
        });
    }
    Ok(Table {
        kind: TableKind::Gpt,
        id: guid(hdr.get(GH_DISK_GUID..GH_DISK_GUID + 16).unwrap_or_default()),
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard CRC-32 check value (ITU-T V.42 / zlib crc32).
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn guid_is_mixed_endian() {
        let raw = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        // The EFI system partition type GUID, as in the UEFI spec.
        assert_eq!(guid(&raw), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }

    fn mbr_with(entries: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut d = vec![0u8; 512 * 64];
        d[440..444].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        for (i, &(t, s, n)) in entries.iter().enumerate() {
            let e = 446 + i * 16;
            d[e + 4] = t;
            d[e + 8..e + 12].copy_from_slice(&s.to_le_bytes());
            d[e + 12..e + 16].copy_from_slice(&n.to_le_bytes());
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d
    }

    #[test]
    fn mbr_numbers_by_slot_and_chains_logicals() {
        // slot 1 empty, slot 2 Linux, slot 3 extended at 10 with two logicals.
        let mut d = mbr_with(&[(0, 0, 0), (0x83, 2, 4), (0x05, 10, 40)]);
        // EBR at 10: logical at +1 (2 sectors), link to +20.
        let ebr = |d: &mut Vec<u8>, at: usize, data: (u32, u32), link: Option<u32>| {
            let b = at * 512;
            d[b + 446 + 4] = 0x83;
            d[b + 446 + 8..b + 446 + 12].copy_from_slice(&data.0.to_le_bytes());
            d[b + 446 + 12..b + 446 + 16].copy_from_slice(&data.1.to_le_bytes());
            if let Some(l) = link {
                d[b + 462 + 4] = 0x05;
                d[b + 462 + 8..b + 462 + 12].copy_from_slice(&l.to_le_bytes());
                d[b + 462 + 12..b + 462 + 16].copy_from_slice(&5u32.to_le_bytes());
            }
            d[b + 510] = 0x55;
            d[b + 511] = 0xaa;
        };
        ebr(&mut d, 10, (1, 2), Some(20));
        ebr(&mut d, 30, (1, 3), None);
        let t = parse(&mut d.as_slice(), 512).unwrap().unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        assert_eq!(t.id, "deadbeef");
        let got: Vec<_> = t
            .parts
            .iter()
            .map(|p| (p.number, p.start / 512, p.len / 512, p.uuid.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, 2, 4, "deadbeef-02"),
                (3, 10, 40, "deadbeef-03"),
                (5, 11, 2, "deadbeef-05"),
                (6, 31, 3, "deadbeef-06"),
            ]
        );
        assert!(t.parts[1].extended);
    }

    #[test]
    fn bad_boot_indicator_is_no_table() {
        let mut d = mbr_with(&[(0x83, 2, 4)]);
        d[446 + 16] = 0x12; // slot 2's boot indicator
        assert!(parse(&mut d.as_slice(), 512).unwrap().is_none());
        d[446 + 16] = 0x80;
        assert_eq!(
            parse(&mut d.as_slice(), 512).unwrap().unwrap().parts.len(),
            1
        );
    }

    #[test]
    fn ebr_loop_is_bounded() {
        let mut d = mbr_with(&[(0x05, 10, 40)]);
        let b = 10 * 512;
        d[b + 446 + 4] = 0x83;
        d[b + 446 + 8] = 1;
        d[b + 446 + 12] = 1;
        d[b + 462 + 4] = 0x05; // links to itself
        d[b + 462 + 12] = 1;
        d[b + 510] = 0x55;
        d[b + 511] = 0xaa;
        let t = parse(&mut d.as_slice(), 512).unwrap().unwrap();
        assert_eq!(t.parts.len(), 1 + MAX_EBR);
    }

    #[test]
    fn no_signature_is_no_table_and_errors_read() {
        let d = vec![0u8; 1024];
        assert!(parse(&mut d.as_slice(), 512).unwrap().is_none());
        let pm = mbr_with(&[(0xee, 1, 63)]);
        let e = parse(&mut pm.as_slice(), 512).unwrap_err().to_string();
        assert!(e.starts_with("protective MBR found but the GPT header at LBA 1 is invalid: no \"EFI PART\" signature"), "{e}");
        let short = &pm[..512];
        let e = parse(&mut &short[..], 512).unwrap_err().to_string();
        assert!(e.starts_with("reading the GPT header at byte 512: "), "{e}");
        assert_eq!(
            parse(&mut &short[..], 1000).unwrap_err().to_string(),
            "logical sector size 1000 is not a power of two in 512..=4096"
        );
    }
}
