//! iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment, the data
//! segment, and typed views of the PDUs an initiator sends and receives.
//!
//! Pure code: no I/O. Everything on the wire is big-endian. Decoding is checked
//! and never panics; a PDU whose opcode we do not model is kept whole as
//! [`Message::Other`] so a newer target does not break us.

use std::fmt;

/// Basic Header Segment length (RFC 7143 §11.2.1).
pub const BHS_LEN: usize = 48;
/// Largest data segment we accept from a peer before negotiation settles it.
/// DataSegmentLength is 24 bits; RFC 7143 caps MaxRecvDataSegmentLength at 2^24-1.
pub const MAX_DATA_SEGMENT: usize = (1 << 24) - 1;
/// ITT / TTT value meaning "none" (RFC 7143 §11.2.1.8).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Opcodes (RFC 7143 §11.2.1.2). Initiator opcodes 0x00-0x1f, target 0x20-0x3f.
pub mod op {
    pub const NOP_OUT: u8 = 0x00;
    pub const SCSI_CMD: u8 = 0x01;
    pub const TASK_MGMT: u8 = 0x02;
    pub const LOGIN: u8 = 0x03;
    pub const TEXT: u8 = 0x04;
    pub const DATA_OUT: u8 = 0x05;
    pub const LOGOUT: u8 = 0x06;
    pub const SNACK: u8 = 0x10;
    pub const NOP_IN: u8 = 0x20;
    pub const SCSI_RSP: u8 = 0x21;
    pub const TASK_MGMT_RSP: u8 = 0x22;
    pub const LOGIN_RSP: u8 = 0x23;
    pub const TEXT_RSP: u8 = 0x24;
    pub const DATA_IN: u8 = 0x25;
    pub const LOGOUT_RSP: u8 = 0x26;
    pub const R2T: u8 = 0x31;
    pub const ASYNC: u8 = 0x32;
    pub const REJECT: u8 = 0x3f;
}

/// Immediate-delivery bit in byte 0 (RFC 7143 §11.2.1.1).
pub const IMMEDIATE: u8 = 0x40;
/// Final bit in byte 1 of most PDUs.
pub const FINAL: u8 = 0x80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PduError {
    /// Fewer than 48 bytes: no header to read.
    ShortHeader { len: usize },
    /// The header announces more AHS + data than the buffer holds.
    ShortSegment { need: usize, have: usize },
    /// A typed view was asked of a PDU with another opcode.
    WrongOpcode { expected: u8, found: u8 },
    /// A data segment too large to encode in 24 bits.
    DataTooLong { len: usize },
    /// A field holds a value the RFC forbids (name, value).
    BadField { field: &'static str, value: u32 },
}

impl fmt::Display for PduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PduError::ShortHeader { len } => {
                write!(f, "PDU header truncated: {len} of {BHS_LEN} bytes")
            }
            PduError::ShortSegment { need, have } => {
                write!(
                    f,
                    "PDU truncated: header announces {need} bytes, have {have}"
                )
            }
            PduError::WrongOpcode { expected, found } => {
                write!(f, "expected opcode {expected:#04x}, got {found:#04x}")
            }
            PduError::DataTooLong { len } => {
                write!(f, "data segment of {len} bytes does not fit 24 bits")
            }
            PduError::BadField { field, value } => write!(f, "invalid {field} {value:#x}"),
        }
    }
}

impl std::error::Error for PduError {}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A raw PDU: header, additional header segments and data segment, exactly as
/// carried on the wire (without padding and digests).
#[derive(Clone, PartialEq, Eq)]
pub struct Pdu {
    pub bhs: [u8; BHS_LEN],
    pub ahs: Vec<u8>,
    pub data: Vec<u8>,
}

impl fmt::Debug for Pdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pdu")
            .field("opcode", &format_args!("{:#04x}", self.opcode()))
            .field("flags", &format_args!("{:#04x}", self.bhs[1]))
            .field("itt", &format_args!("{:#010x}", self.itt()))
            .field("ahs_len", &self.ahs.len())
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Header lengths announced in a BHS: (AHS bytes, data segment bytes).
/// Used by stream readers to know how much follows the 48-byte header.
pub fn segment_lengths(bhs: &[u8; BHS_LEN]) -> (usize, usize) {
    let ahs = usize::from(bhs[4]) * 4;
    let data = (usize::from(bhs[5]) << 16) | (usize::from(bhs[6]) << 8) | usize::from(bhs[7]);
    (ahs, data)
}

/// Bytes that follow the BHS on the wire for these lengths (padding included,
/// digests excluded — we never negotiate them on a userspace channel).
pub fn wire_tail_len(ahs: usize, data: usize) -> usize {
    ahs + data + pad4(data)
}

impl Pdu {
    pub fn new(bhs: [u8; BHS_LEN], data: Vec<u8>) -> Self {
        Pdu {
            bhs,
            ahs: Vec::new(),
            data,
        }
    }

    /// Decode one PDU from the front of `buf`; returns it and the bytes used
    /// (header, AHS, data and data padding).
    pub fn decode(buf: &[u8]) -> Result<(Pdu, usize), PduError> {
        let head: &[u8; BHS_LEN] = buf
            .get(..BHS_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(PduError::ShortHeader { len: buf.len() })?;
        let (ahs_len, data_len) = segment_lengths(head);
        let total = BHS_LEN + wire_tail_len(ahs_len, data_len);
        if buf.len() < total {
            return Err(PduError::ShortSegment {
                need: total,
                have: buf.len(),
            });
        }
        let ahs = buf[BHS_LEN..BHS_LEN + ahs_len].to_vec();
        let start = BHS_LEN + ahs_len;
        let data = buf[start..start + data_len].to_vec();
        Ok((
            Pdu {
                bhs: *head,
                ahs,
                data,
            },
            total,
        ))
    }

    /// Encode: lengths are written from `ahs` and `data`; data is zero-padded
    /// to a multiple of 4.
    pub fn encode(&self) -> Result<Vec<u8>, PduError> {
        if self.data.len() > MAX_DATA_SEGMENT {
            return Err(PduError::DataTooLong {
                len: self.data.len(),
            });
        }
        if self.ahs.len() % 4 != 0 || self.ahs.len() / 4 > usize::from(u8::MAX) {
            return Err(PduError::BadField {
                field: "AHS length",
                value: self.ahs.len() as u32,
            });
        }
        let mut out = Vec::with_capacity(BHS_LEN + wire_tail_len(self.ahs.len(), self.data.len()));
        let mut bhs = self.bhs;
        bhs[4] = (self.ahs.len() / 4) as u8;
        let len = self.data.len();
        bhs[5..8].copy_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
        out.extend_from_slice(&bhs);
        out.extend_from_slice(&self.ahs);
        out.extend_from_slice(&self.data);
        out.resize(out.len() + pad4(len), 0);
        Ok(out)
    }

    pub fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3f
    }
    pub fn immediate(&self) -> bool {
        self.bhs[0] & IMMEDIATE != 0
    }
    pub fn flags(&self) -> u8 {
        self.bhs[1]
    }
    pub fn itt(&self) -> u32 {
        be32(&self.bhs, 16)
    }
}

fn be16(b: &[u8; BHS_LEN], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8; BHS_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8; BHS_LEN], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}
fn put16(b: &mut [u8; BHS_LEN], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
fn put32(b: &mut [u8; BHS_LEN], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8; BHS_LEN], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn expect_op(p: &Pdu, expected: u8) -> Result<(), PduError> {
    if p.opcode() == expected {
        Ok(())
    } else {
        Err(PduError::WrongOpcode {
            expected,
            found: p.opcode(),
        })
    }
}

/// Sequence numbers a target reports in most responses (RFC 7143 §11.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetSn {
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl TargetSn {
    fn read(b: &[u8; BHS_LEN]) -> Self {
        TargetSn {
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
        }
    }
    fn write(&self, b: &mut [u8; BHS_LEN]) {
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
    }
}

/// Login stages (RFC 7143 §11.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Security = 0,
    Operational = 1,
    FullFeature = 3,
}

impl Stage {
    pub fn from_bits(v: u8) -> Result<Stage, PduError> {
        match v {
            0 => Ok(Stage::Security),
            1 => Ok(Stage::Operational),
            3 => Ok(Stage::FullFeature),
            other => Err(PduError::BadField {
                field: "login stage",
                value: u32::from(other),
            }),
        }
    }
}

const LOGIN_TRANSIT: u8 = 0x80;
const LOGIN_CONTINUE: u8 = 0x40;

/// Login Request (RFC 7143 §11.12). Always sent with the immediate bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub data: Vec<u8>,
}

fn login_flags(transit: bool, cont: bool, csg: Stage, nsg: Stage) -> u8 {
    let mut f = (csg as u8) << 2 | nsg as u8;
    if transit {
        f |= LOGIN_TRANSIT;
    }
    if cont {
        f |= LOGIN_CONTINUE;
    }
    f
}

/// (transit, continue, csg, nsg). NSG is meaningful only with T=1 (RFC 7143
/// §11.12.3); with T=0 it is kept as sent when it names a stage (istgt sends
/// NSG=1 with T=0) and read as CSG when it holds the reserved value 2.
fn read_login_flags(f: u8) -> Result<(bool, bool, Stage, Stage), PduError> {
    let transit = f & LOGIN_TRANSIT != 0;
    let cont = f & LOGIN_CONTINUE != 0;
    let csg = Stage::from_bits((f >> 2) & 3)?;
    let nsg = match Stage::from_bits(f & 3) {
        Ok(s) => s,
        Err(e) if transit => return Err(e),
        Err(_) => csg,
    };
    if transit && cont {
        // RFC 7143 §11.12.2: T and C must not both be set.
        return Err(PduError::BadField {
            field: "login flags (T and C)",
            value: u32::from(f),
        });
    }
    Ok((transit, cont, csg, nsg))
}

impl LoginRequest {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = IMMEDIATE | op::LOGIN;
        b[1] = login_flags(self.transit, self.cont, self.csg, self.nsg);
        b[2] = self.version_max;
        b[3] = self.version_min;
        b[8..14].copy_from_slice(&self.isid);
        put16(&mut b, 14, self.tsih);
        put32(&mut b, 16, self.itt);
        put16(&mut b, 20, self.cid);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::LOGIN)?;
        let b = &p.bhs;
        let (transit, cont, csg, nsg) = read_login_flags(b[1])?;
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(LoginRequest {
            transit,
            cont,
            csg,
            nsg,
            version_max: b[2],
            version_min: b[3],
            isid,
            tsih: be16(b, 14),
            itt: be32(b, 16),
            cid: be16(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            data: p.data.clone(),
        })
    }
}

/// Login Response (RFC 7143 §11.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub sn: TargetSn,
    pub status_class: u8,
    pub status_detail: u8,
    pub data: Vec<u8>,
}

impl LoginResponse {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::LOGIN_RSP;
        b[1] = login_flags(self.transit, self.cont, self.csg, self.nsg);
        b[2] = self.version_max;
        b[3] = self.version_active;
        b[8..14].copy_from_slice(&self.isid);
        put16(&mut b, 14, self.tsih);
        put32(&mut b, 16, self.itt);
        self.sn.write(&mut b);
        b[36] = self.status_class;
        b[37] = self.status_detail;
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::LOGIN_RSP)?;
        let b = &p.bhs;
        let (transit, cont, csg, nsg) = read_login_flags(b[1])?;
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(LoginResponse {
            transit,
            cont,
            csg,
            nsg,
            version_max: b[2],
            version_active: b[3],
            isid,
            tsih: be16(b, 14),
            itt: be32(b, 16),
            sn: TargetSn::read(b),
            status_class: b[36],
            status_detail: b[37],
            data: p.data.clone(),
        })
    }

    /// Status as one number, class in the high byte (0x0201 etc.).
    pub fn status(&self) -> u16 {
        u16::from(self.status_class) << 8 | u16::from(self.status_detail)
    }
}

const TEXT_CONTINUE: u8 = 0x40;

/// Text Request (RFC 7143 §11.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub data: Vec<u8>,
}

impl TextRequest {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::TEXT | if self.immediate { IMMEDIATE } else { 0 };
        b[1] = if self.final_ { FINAL } else { 0 } | if self.cont { TEXT_CONTINUE } else { 0 };
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.ttt);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::TEXT)?;
        let b = &p.bhs;
        Ok(TextRequest {
            immediate: p.immediate(),
            final_: b[1] & FINAL != 0,
            cont: b[1] & TEXT_CONTINUE != 0,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            data: p.data.clone(),
        })
    }
}

/// Text Response (RFC 7143 §11.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResponse {
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub sn: TargetSn,
    pub data: Vec<u8>,
}

impl TextResponse {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::TEXT_RSP;
        b[1] = if self.final_ { FINAL } else { 0 } | if self.cont { TEXT_CONTINUE } else { 0 };
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.ttt);
        self.sn.write(&mut b);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::TEXT_RSP)?;
        let b = &p.bhs;
        Ok(TextResponse {
            final_: b[1] & FINAL != 0,
            cont: b[1] & TEXT_CONTINUE != 0,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn: TargetSn::read(b),
            data: p.data.clone(),
        })
    }
}

/// SCSI Command flags (RFC 7143 §11.3.1).
pub const CMD_READ: u8 = 0x40;
pub const CMD_WRITE: u8 = 0x20;
/// Task attribute: simple (RFC 7143 §11.3.1.2).
pub const ATTR_SIMPLE: u8 = 0x01;

/// SCSI Command (RFC 7143 §11.3). The CDB is at most 16 bytes here (no AHS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    /// Byte 1 as sent: F, R, W and the task attribute.
    pub flags: u8,
    pub lun: u64,
    pub itt: u32,
    pub expected_len: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: [u8; 16],
    pub data: Vec<u8>,
}

impl ScsiCommand {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::SCSI_CMD | if self.immediate { IMMEDIATE } else { 0 };
        b[1] = self.flags;
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.expected_len);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        b[32..48].copy_from_slice(&self.cdb);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::SCSI_CMD)?;
        let b = &p.bhs;
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&b[32..48]);
        Ok(ScsiCommand {
            immediate: p.immediate(),
            flags: b[1],
            lun: be64(b, 8),
            itt: be32(b, 16),
            expected_len: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            cdb,
            data: p.data.clone(),
        })
    }
}

/// Residual flags shared by SCSI Response and Data-In (RFC 7143 §11.4.1).
pub const RESIDUAL_OVERFLOW: u8 = 0x04;
pub const RESIDUAL_UNDERFLOW: u8 = 0x02;

/// SCSI Response (RFC 7143 §11.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    /// Byte 1: F plus the o/u/O/U residual bits.
    pub flags: u8,
    /// iSCSI service response: 0 = command completed at target.
    pub response: u8,
    /// SCSI status (0 GOOD, 2 CHECK CONDITION, …).
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub sn: TargetSn,
    pub exp_data_sn: u32,
    pub bidi_residual: u32,
    pub residual: u32,
    /// Data segment: SenseLength (2 bytes) + sense data, or empty.
    pub data: Vec<u8>,
}

impl ScsiResponse {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::SCSI_RSP;
        b[1] = self.flags;
        b[2] = self.response;
        b[3] = self.status;
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.snack_tag);
        self.sn.write(&mut b);
        put32(&mut b, 36, self.exp_data_sn);
        put32(&mut b, 40, self.bidi_residual);
        put32(&mut b, 44, self.residual);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::SCSI_RSP)?;
        let b = &p.bhs;
        Ok(ScsiResponse {
            flags: b[1],
            response: b[2],
            status: b[3],
            itt: be32(b, 16),
            snack_tag: be32(b, 20),
            sn: TargetSn::read(b),
            exp_data_sn: be32(b, 36),
            bidi_residual: be32(b, 40),
            residual: be32(b, 44),
            data: p.data.clone(),
        })
    }

    /// Sense bytes from the data segment (RFC 7143 §11.4.7), if any.
    pub fn sense(&self) -> &[u8] {
        if self.data.len() < 2 {
            return &[];
        }
        let n = usize::from(u16::from_be_bytes([self.data[0], self.data[1]]));
        &self.data[2..(2 + n).min(self.data.len())]
    }
}

/// Data-In flag bits (RFC 7143 §11.7.1).
pub const DATA_IN_ACK: u8 = 0x40;
pub const DATA_IN_STATUS: u8 = 0x01;

/// SCSI Data-In (RFC 7143 §11.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataIn {
    /// Byte 1: F, A, O, U, S.
    pub flags: u8,
    /// SCSI status, valid only with the S bit (phase collapse).
    pub status: u8,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub sn: TargetSn,
    pub data_sn: u32,
    pub offset: u32,
    pub residual: u32,
    pub data: Vec<u8>,
}

impl DataIn {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::DATA_IN;
        b[1] = self.flags;
        b[3] = self.status;
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.ttt);
        self.sn.write(&mut b);
        put32(&mut b, 36, self.data_sn);
        put32(&mut b, 40, self.offset);
        put32(&mut b, 44, self.residual);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::DATA_IN)?;
        let b = &p.bhs;
        Ok(DataIn {
            flags: b[1],
            status: b[3],
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn: TargetSn::read(b),
            data_sn: be32(b, 36),
            offset: be32(b, 40),
            residual: be32(b, 44),
            data: p.data.clone(),
        })
    }

    pub fn is_final(&self) -> bool {
        self.flags & FINAL != 0
    }
    pub fn has_status(&self) -> bool {
        self.flags & DATA_IN_STATUS != 0
    }
}

/// NOP-Out (RFC 7143 §11.18): a ping, or the answer to a target's NOP-In.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub data: Vec<u8>,
}

impl NopOut {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::NOP_OUT | if self.immediate { IMMEDIATE } else { 0 };
        b[1] = FINAL;
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.ttt);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::NOP_OUT)?;
        let b = &p.bhs;
        Ok(NopOut {
            immediate: p.immediate(),
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            data: p.data.clone(),
        })
    }
}

/// NOP-In (RFC 7143 §11.19). TTT ≠ 0xffffffff asks us for a NOP-Out back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopIn {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub sn: TargetSn,
    pub data: Vec<u8>,
}

impl NopIn {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::NOP_IN;
        b[1] = FINAL;
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.ttt);
        self.sn.write(&mut b);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::NOP_IN)?;
        let b = &p.bhs;
        Ok(NopIn {
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn: TargetSn::read(b),
            data: p.data.clone(),
        })
    }
}

/// Logout reason codes (RFC 7143 §11.14.1).
pub const LOGOUT_CLOSE_SESSION: u8 = 0;
pub const LOGOUT_CLOSE_CONNECTION: u8 = 1;

/// Logout Request (RFC 7143 §11.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    pub reason: u8,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::LOGOUT | if self.immediate { IMMEDIATE } else { 0 };
        b[1] = FINAL | (self.reason & 0x7f);
        put32(&mut b, 16, self.itt);
        put16(&mut b, 20, self.cid);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        Pdu::new(b, Vec::new())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::LOGOUT)?;
        let b = &p.bhs;
        Ok(LogoutRequest {
            immediate: p.immediate(),
            reason: b[1] & 0x7f,
            itt: be32(b, 16),
            cid: be16(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
        })
    }
}

/// Logout Response (RFC 7143 §11.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    /// 0 closed successfully, 1 CID not found, 2 recovery not supported, 3 cleanup failed.
    pub response: u8,
    pub itt: u32,
    pub sn: TargetSn,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl LogoutResponse {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::LOGOUT_RSP;
        b[1] = FINAL;
        b[2] = self.response;
        put32(&mut b, 16, self.itt);
        self.sn.write(&mut b);
        put16(&mut b, 40, self.time2wait);
        put16(&mut b, 42, self.time2retain);
        Pdu::new(b, Vec::new())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::LOGOUT_RSP)?;
        let b = &p.bhs;
        Ok(LogoutResponse {
            response: b[2],
            itt: be32(b, 16),
            sn: TargetSn::read(b),
            time2wait: be16(b, 40),
            time2retain: be16(b, 42),
        })
    }
}

/// Reject (RFC 7143 §11.17). The data segment is the rejected PDU's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: u8,
    pub sn: TargetSn,
    pub data_sn: u32,
    pub data: Vec<u8>,
}

impl Reject {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::REJECT;
        b[1] = FINAL;
        b[2] = self.reason;
        put32(&mut b, 16, RESERVED_TAG);
        self.sn.write(&mut b);
        put32(&mut b, 36, self.data_sn);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::REJECT)?;
        let b = &p.bhs;
        Ok(Reject {
            reason: b[2],
            sn: TargetSn::read(b),
            data_sn: be32(b, 36),
            data: p.data.clone(),
        })
    }

    /// ITT of the rejected PDU, when its header is carried in full.
    pub fn rejected_itt(&self) -> Option<u32> {
        self.data
            .get(16..20)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }

    pub fn reason_text(&self) -> &'static str {
        reject_reason(self.reason)
    }
}

/// Reject reasons (RFC 7143 §11.17.1).
pub fn reject_reason(code: u8) -> &'static str {
    match code {
        0x02 => "data (payload) digest error",
        0x03 => "SNACK reject",
        0x04 => "protocol error",
        0x05 => "command not supported",
        0x06 => "immediate command reject",
        0x07 => "task in progress",
        0x08 => "invalid data ACK",
        0x09 => "invalid PDU field",
        0x0a => "long operation reject",
        0x0b => "deprecated (negotiation reset)",
        0x0c => "waiting for logout",
        _ => "unknown reason",
    }
}

/// Asynchronous Message (RFC 7143 §11.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: u64,
    pub sn: TargetSn,
    /// 0 SCSI event, 1 logout request, 2 drop connection, 3 drop all, 4 renegotiate, 255 vendor.
    pub event: u8,
    pub vcode: u8,
    pub params: [u16; 3],
    pub data: Vec<u8>,
}

impl AsyncMessage {
    pub fn to_pdu(&self) -> Pdu {
        let mut b = [0u8; BHS_LEN];
        b[0] = op::ASYNC;
        b[1] = FINAL;
        put64(&mut b, 8, self.lun);
        put32(&mut b, 16, RESERVED_TAG);
        self.sn.write(&mut b);
        b[36] = self.event;
        b[37] = self.vcode;
        put16(&mut b, 38, self.params[0]);
        put16(&mut b, 40, self.params[1]);
        put16(&mut b, 42, self.params[2]);
        Pdu::new(b, self.data.clone())
    }

    pub fn from_pdu(p: &Pdu) -> Result<Self, PduError> {
        expect_op(p, op::ASYNC)?;
        let b = &p.bhs;
        Ok(AsyncMessage {
            lun: be64(b, 8),
            sn: TargetSn::read(b),
            event: b[36],
            vcode: b[37],
            params: [be16(b, 38), be16(b, 40), be16(b, 42)],
            data: p.data.clone(),
        })
    }
}

/// A decoded PDU, typed where we model the opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    LoginRequest(LoginRequest),
    LoginResponse(LoginResponse),
    TextRequest(TextRequest),
    TextResponse(TextResponse),
    ScsiCommand(ScsiCommand),
    ScsiResponse(ScsiResponse),
    DataIn(DataIn),
    NopOut(NopOut),
    NopIn(NopIn),
    LogoutRequest(LogoutRequest),
    LogoutResponse(LogoutResponse),
    Reject(Reject),
    AsyncMessage(AsyncMessage),
    /// Any other opcode (R2T, task management, SNACK, vendor…), kept whole.
    Other(Pdu),
}

impl Message {
    pub fn from_pdu(p: &Pdu) -> Result<Message, PduError> {
        Ok(match p.opcode() {
            op::LOGIN => Message::LoginRequest(LoginRequest::from_pdu(p)?),
            op::LOGIN_RSP => Message::LoginResponse(LoginResponse::from_pdu(p)?),
            op::TEXT => Message::TextRequest(TextRequest::from_pdu(p)?),
            op::TEXT_RSP => Message::TextResponse(TextResponse::from_pdu(p)?),
            op::SCSI_CMD => Message::ScsiCommand(ScsiCommand::from_pdu(p)?),
            op::SCSI_RSP => Message::ScsiResponse(ScsiResponse::from_pdu(p)?),
            op::DATA_IN => Message::DataIn(DataIn::from_pdu(p)?),
            op::NOP_OUT => Message::NopOut(NopOut::from_pdu(p)?),
            op::NOP_IN => Message::NopIn(NopIn::from_pdu(p)?),
            op::LOGOUT => Message::LogoutRequest(LogoutRequest::from_pdu(p)?),
            op::LOGOUT_RSP => Message::LogoutResponse(LogoutResponse::from_pdu(p)?),
            op::REJECT => Message::Reject(Reject::from_pdu(p)?),
            op::ASYNC => Message::AsyncMessage(AsyncMessage::from_pdu(p)?),
            _ => Message::Other(p.clone()),
        })
    }

    pub fn to_pdu(&self) -> Pdu {
        match self {
            Message::LoginRequest(m) => m.to_pdu(),
            Message::LoginResponse(m) => m.to_pdu(),
            Message::TextRequest(m) => m.to_pdu(),
            Message::TextResponse(m) => m.to_pdu(),
            Message::ScsiCommand(m) => m.to_pdu(),
            Message::ScsiResponse(m) => m.to_pdu(),
            Message::DataIn(m) => m.to_pdu(),
            Message::NopOut(m) => m.to_pdu(),
            Message::NopIn(m) => m.to_pdu(),
            Message::LogoutRequest(m) => m.to_pdu(),
            Message::LogoutResponse(m) => m.to_pdu(),
            Message::Reject(m) => m.to_pdu(),
            Message::AsyncMessage(m) => m.to_pdu(),
            Message::Other(p) => p.clone(),
        }
    }
}

/// Opcode name for logs and errors.
pub fn opcode_name(code: u8) -> &'static str {
    match code {
        op::NOP_OUT => "NOP-Out",
        op::SCSI_CMD => "SCSI Command",
        op::TASK_MGMT => "Task Management Request",
        op::LOGIN => "Login Request",
        op::TEXT => "Text Request",
        op::DATA_OUT => "Data-Out",
        op::LOGOUT => "Logout Request",
        op::SNACK => "SNACK",
        op::NOP_IN => "NOP-In",
        op::SCSI_RSP => "SCSI Response",
        op::TASK_MGMT_RSP => "Task Management Response",
        op::LOGIN_RSP => "Login Response",
        op::TEXT_RSP => "Text Response",
        op::DATA_IN => "Data-In",
        op::LOGOUT_RSP => "Logout Response",
        op::R2T => "R2T",
        op::ASYNC => "Async Message",
        op::REJECT => "Reject",
        _ => "unknown opcode",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login_req() -> LoginRequest {
        LoginRequest {
            transit: true,
            cont: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 1, 2, 3, 0, 1],
            tsih: 0,
            itt: 0x0102_0304,
            cid: 0,
            cmd_sn: 7,
            exp_stat_sn: 0,
            data: b"InitiatorName=iqn.x\0".to_vec(),
        }
    }

    #[test]
    fn login_request_bytes_are_big_endian() {
        let bytes = login_req().to_pdu().encode().unwrap();
        assert_eq!(bytes[0], 0x43, "immediate | login");
        assert_eq!(bytes[1], 0x87, "T, CSG=1, NSG=3");
        let mut r = login_req();
        r.transit = false;
        r.nsg = Stage::Operational;
        assert_eq!(
            r.to_pdu().encode().unwrap()[1],
            0x05,
            "NSG kept without T, as istgt sends it"
        );
        assert_eq!(&bytes[5..8], &[0, 0, 20], "DataSegmentLength");
        assert_eq!(&bytes[8..14], &[0x80, 1, 2, 3, 0, 1]);
        assert_eq!(&bytes[16..20], &[1, 2, 3, 4], "ITT big-endian");
        assert_eq!(&bytes[24..28], &[0, 0, 0, 7], "CmdSN big-endian");
        assert_eq!(bytes.len(), 48 + 20);
    }

    #[test]
    fn roundtrip_every_typed_pdu() {
        let sn = TargetSn {
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
        };
        let msgs = vec![
            Message::LoginRequest(login_req()),
            Message::LoginResponse(LoginResponse {
                transit: false,
                cont: true,
                csg: Stage::Security,
                nsg: Stage::Security,
                version_max: 0,
                version_active: 0,
                isid: [1; 6],
                tsih: 9,
                itt: 5,
                sn,
                status_class: 2,
                status_detail: 1,
                data: b"a=b\0c".to_vec(),
            }),
            Message::TextRequest(TextRequest {
                immediate: true,
                final_: true,
                cont: false,
                lun: 0,
                itt: 4,
                ttt: RESERVED_TAG,
                cmd_sn: 1,
                exp_stat_sn: 2,
                data: b"SendTargets=All\0".to_vec(),
            }),
            Message::TextResponse(TextResponse {
                final_: false,
                cont: true,
                lun: 0,
                itt: 4,
                ttt: 77,
                sn,
                data: vec![1, 2, 3],
            }),
            Message::ScsiCommand(ScsiCommand {
                immediate: false,
                flags: FINAL | CMD_READ | ATTR_SIMPLE,
                lun: 0x0001_0000_0000_0000,
                itt: 8,
                expected_len: 96,
                cmd_sn: 3,
                exp_stat_sn: 4,
                cdb: [0x12, 0, 0, 0, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                data: vec![],
            }),
            Message::ScsiResponse(ScsiResponse {
                flags: FINAL | RESIDUAL_UNDERFLOW,
                response: 0,
                status: 2,
                itt: 8,
                snack_tag: 0,
                sn,
                exp_data_sn: 1,
                bidi_residual: 0,
                residual: 10,
                data: vec![0, 3, 0x70, 0, 5],
            }),
            Message::DataIn(DataIn {
                flags: FINAL | DATA_IN_STATUS,
                status: 0,
                lun: 1,
                itt: 8,
                ttt: RESERVED_TAG,
                sn,
                data_sn: 0,
                offset: 0,
                residual: 0,
                data: vec![9; 13],
            }),
            Message::NopOut(NopOut {
                immediate: true,
                lun: 0,
                itt: RESERVED_TAG,
                ttt: 6,
                cmd_sn: 1,
                exp_stat_sn: 2,
                data: vec![],
            }),
            Message::NopIn(NopIn {
                lun: 0,
                itt: RESERVED_TAG,
                ttt: 6,
                sn,
                data: vec![],
            }),
            Message::LogoutRequest(LogoutRequest {
                immediate: true,
                reason: LOGOUT_CLOSE_SESSION,
                itt: 10,
                cid: 0,
                cmd_sn: 5,
                exp_stat_sn: 6,
            }),
            Message::LogoutResponse(LogoutResponse {
                response: 0,
                itt: 10,
                sn,
                time2wait: 2,
                time2retain: 20,
            }),
            Message::Reject(Reject {
                reason: 4,
                sn,
                data_sn: 0,
                data: vec![0; 48],
            }),
            Message::AsyncMessage(AsyncMessage {
                lun: 0,
                sn,
                event: 1,
                vcode: 0,
                params: [0, 2, 20],
                data: vec![],
            }),
        ];
        for m in msgs {
            let bytes = m.to_pdu().encode().unwrap();
            assert_eq!(bytes.len() % 4, 0);
            let (p, used) = Pdu::decode(&bytes).unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(Message::from_pdu(&p).unwrap(), m);
            assert_eq!(p.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = login_req().to_pdu().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(Pdu::decode(&bytes[..n]).is_err(), "len {n}");
        }
    }

    #[test]
    fn login_flags_t_and_c_together_rejected() {
        let mut p = login_req().to_pdu();
        p.bhs[1] |= 0x40;
        assert!(matches!(
            LoginRequest::from_pdu(&p),
            Err(PduError::BadField {
                field: "login flags (T and C)",
                ..
            })
        ));
    }

    #[test]
    fn reserved_stage_rejected() {
        let mut p = login_req().to_pdu();
        p.bhs[1] = 0x80 | (2 << 2) | 3;
        assert!(LoginRequest::from_pdu(&p).is_err());
    }

    #[test]
    fn unknown_opcode_kept_whole() {
        let mut bhs = [0u8; BHS_LEN];
        bhs[0] = op::R2T;
        let p = Pdu::new(bhs, vec![]);
        assert_eq!(Message::from_pdu(&p).unwrap(), Message::Other(p.clone()));
    }

    #[test]
    fn sense_is_bounded_by_data() {
        let r = ScsiResponse {
            flags: FINAL,
            response: 0,
            status: 2,
            itt: 0,
            snack_tag: 0,
            sn: TargetSn::default(),
            exp_data_sn: 0,
            bidi_residual: 0,
            residual: 0,
            data: vec![0, 200, 0x70],
        };
        assert_eq!(r.sense(), &[0x70]);
    }
}
