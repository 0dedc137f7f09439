//! The few SCSI commands the userspace tools need (SPC-4, SBC-3), as pure
//! CDB builders and checked response parsers.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScsiError {
    /// A response shorter than the fields we read (command, bytes).
    Short { what: &'static str, len: usize },
}

impl fmt::Display for ScsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScsiError::Short { what, len } => write!(f, "{what} response too short ({len} bytes)"),
        }
    }
}

impl std::error::Error for ScsiError {}

pub const INQUIRY: u8 = 0x12;
pub const REPORT_LUNS: u8 = 0xa0;
pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
pub const READ_CAPACITY_16: u8 = 0x10;
pub const TEST_UNIT_READY: u8 = 0x00;

/// REPORT LUNS (SPC-4 §6.33), select report 0 (all logical units).
pub fn report_luns(alloc: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = REPORT_LUNS;
    c[6..10].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// Standard INQUIRY (SPC-4 §6.6).
pub fn inquiry(alloc: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = INQUIRY;
    c[3..5].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// READ CAPACITY (16) (SBC-3 §5.16).
pub fn read_capacity16(alloc: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = SERVICE_ACTION_IN_16;
    c[1] = READ_CAPACITY_16;
    c[10..14].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// Encode a LUN number as the 8-byte SAM LUN field: peripheral addressing
/// below 256, flat space addressing up to 16383 (SAM-5 §4.7.7).
pub fn encode_lun(lun: u64) -> u64 {
    if lun < 256 {
        lun << 48
    } else {
        ((0x4000 | (lun & 0x3fff)) << 48) & 0xffff_0000_0000_0000
    }
}

/// Decode the first level of a SAM LUN (peripheral or flat addressing).
pub fn decode_lun(raw: u64) -> u64 {
    let first = (raw >> 48) as u16;
    match first >> 14 {
        0 => u64::from(first & 0xff),
        1 => u64::from(first & 0x3fff),
        // Logical unit / extended addressing: keep the raw value.
        _ => raw,
    }
}

/// LUN list from REPORT LUNS parameter data.
pub fn parse_report_luns(d: &[u8]) -> Result<Vec<u64>, ScsiError> {
    if d.len() < 8 {
        return Err(ScsiError::Short {
            what: "REPORT LUNS",
            len: d.len(),
        });
    }
    let list_len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    let body = &d[8..];
    let n = (list_len / 8).min(body.len() / 8);
    Ok(body
        .chunks_exact(8)
        .take(n)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            decode_lun(u64::from_be_bytes(b))
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inquiry {
    pub peripheral_qualifier: u8,
    pub device_type: u8,
    pub vendor: String,
    pub product: String,
    pub revision: String,
}

fn ascii_field(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                char::from(c)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Standard INQUIRY data (SPC-4 §6.6.2): needs 36 bytes for the identifiers.
pub fn parse_inquiry(d: &[u8]) -> Result<Inquiry, ScsiError> {
    if d.len() < 36 {
        return Err(ScsiError::Short {
            what: "INQUIRY",
            len: d.len(),
        });
    }
    Ok(Inquiry {
        peripheral_qualifier: d[0] >> 5,
        device_type: d[0] & 0x1f,
        vendor: ascii_field(&d[8..16]),
        product: ascii_field(&d[16..32]),
        revision: ascii_field(&d[32..36]),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capacity {
    pub blocks: u64,
    pub block_size: u32,
}

impl Capacity {
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// READ CAPACITY (16) data (SBC-3 §5.16.2): last LBA + 1 blocks.
pub fn parse_read_capacity16(d: &[u8]) -> Result<Capacity, ScsiError> {
    if d.len() < 12 {
        return Err(ScsiError::Short {
            what: "READ CAPACITY(16)",
            len: d.len(),
        });
    }
    let mut last = [0u8; 8];
    last.copy_from_slice(&d[0..8]);
    Ok(Capacity {
        blocks: u64::from_be_bytes(last).saturating_add(1),
        block_size: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
    })
}

/// Fixed or descriptor sense data → (key, asc, ascq) (SPC-4 §4.5).
pub fn parse_sense(s: &[u8]) -> Option<(u8, u8, u8)> {
    match s.first()? & 0x7f {
        0x70 | 0x71 if s.len() >= 14 => Some((s[2] & 0x0f, s[12], s[13])),
        0x72 | 0x73 if s.len() >= 4 => Some((s[1] & 0x0f, s[2], s[3])),
        _ => None,
    }
}

pub fn device_type_name(t: u8) -> &'static str {
    match t {
        0x00 => "disk",
        0x01 => "tape",
        0x05 => "cd/dvd",
        0x07 => "optical",
        0x0c => "controller",
        0x0d => "enclosure",
        0x1f => "unknown",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_encoding() {
        assert_eq!(encode_lun(1), 0x0001_0000_0000_0000);
        assert_eq!(decode_lun(encode_lun(1)), 1);
        assert_eq!(decode_lun(encode_lun(300)), 300);
        assert_eq!(encode_lun(300) >> 62, 1, "flat addressing");
    }

    #[test]
    fn report_luns_parse() {
        let mut d = vec![0, 0, 0, 16, 0, 0, 0, 0];
        d.extend_from_slice(&encode_lun(0).to_be_bytes());
        d.extend_from_slice(&encode_lun(1).to_be_bytes());
        assert_eq!(parse_report_luns(&d).unwrap(), vec![0, 1]);
        // List length larger than the data returned (allocation too small).
        d[3] = 255;
        assert_eq!(parse_report_luns(&d).unwrap(), vec![0, 1]);
        assert_eq!(
            parse_report_luns(&d[..4]).unwrap_err().to_string(),
            "REPORT LUNS response too short (4 bytes)"
        );
    }

    #[test]
    fn inquiry_parse() {
        let mut d = vec![0u8; 36];
        d[0] = 0x0c;
        d[8..16].copy_from_slice(b"IET     ");
        d[16..32].copy_from_slice(b"Controller      ");
        d[32..36].copy_from_slice(b"0001");
        let i = parse_inquiry(&d).unwrap();
        assert_eq!(
            (i.device_type, i.vendor.as_str(), i.product.as_str()),
            (0x0c, "IET", "Controller")
        );
        assert_eq!(
            parse_inquiry(&d[..35]).map(|_| ()).unwrap_err().to_string(),
            "INQUIRY response too short (35 bytes)"
        );
    }

    #[test]
    fn capacity_parse() {
        let mut d = vec![0u8; 32];
        d[0..8].copy_from_slice(&131_071u64.to_be_bytes());
        d[8..12].copy_from_slice(&512u32.to_be_bytes());
        let c = parse_read_capacity16(&d).unwrap();
        assert_eq!(c.bytes(), 64 << 20);
        assert_eq!(
            parse_read_capacity16(&d[..11])
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "READ CAPACITY(16) response too short (11 bytes)"
        );
    }

    #[test]
    fn sense_parse() {
        let mut fixed = vec![0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x05;
        fixed[12] = 0x25;
        assert_eq!(parse_sense(&fixed), Some((5, 0x25, 0)));
        assert_eq!(parse_sense(&[0x72, 0x06, 0x29, 0x00]), Some((6, 0x29, 0)));
        assert_eq!(parse_sense(&[0x70]), None);
        assert_eq!(parse_sense(&[]), None);
    }
}
