//! Kernel connector (NETLINK_CONNECTOR) wire format: `nlmsghdr` + `cn_msg`.
//!
//! Pure code: encoding and decoding never touch a socket (the socket is in
//! `events::sock`). Everything is host byte order, as in
//! `include/uapi/linux/connector.h` and `include/uapi/linux/netlink.h`; the
//! `nlmsghdr` framing is [`super::hdr`]'s.
//!
//! ```text
//! nlmsghdr (16 B)  len u32 | type u16 | flags u16 | seq u32 | pid u32
//! cn_msg   (20 B)  idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16
//! data     (len B)
//! ```
//!
//! Decoding is checked: short input, a `cn_msg.len` beyond the buffer and an
//! `nlmsg_len` that lies all give a [`CodecError`], never a panic.

use std::fmt;
use std::mem::size_of;

use super::hdr::{self, HdrError, NlMsgBuilder, NlMsgHdr, NLMSG_DONE, NLMSG_HDRLEN};

/// `NETLINK_CONNECTOR` protocol number (`include/uapi/linux/netlink.h`).
pub const NETLINK_CONNECTOR: u32 = 11;
/// `sizeof(struct cn_msg)` without the flexible `data[]`.
pub const CN_MSG_HDRLEN: usize = 20;
/// `CONNECTOR_MAX_MSG_SIZE` (connector.h). `cn_rx_skb` (drivers/connector/
/// connector.c) compares it with `nlmsg_len(nlh)`, i.e. `cn_msg` header + data.
pub const CONNECTOR_MAX_MSG_SIZE: usize = 16384;
/// Largest `data` we send: the connector limit minus the `cn_msg` header.
pub const MAX_DATA_LEN: usize = CONNECTOR_MAX_MSG_SIZE - CN_MSG_HDRLEN;
/// `CN_NETLINK_USERS` (connector.h): kernel users own idx 0..11 and group = idx.
pub const CN_NETLINK_USERS: u32 = 11;

/// `struct cb_id` as laid out by the kernel.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RawCbId {
    idx: u32,
    val: u32,
}

/// `struct cn_msg` header as laid out by the kernel (connector.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RawCnMsg {
    id: RawCbId,
    seq: u32,
    ack: u32,
    len: u16,
    flags: u16,
}

const _: () = assert!(size_of::<RawCbId>() == 8);
const _: () = assert!(size_of::<RawCnMsg>() == CN_MSG_HDRLEN);

// Named offsets inside `cn_msg` (connector.h).
const CN_IDX: usize = 0;
const CN_VAL: usize = 4;
const CN_SEQ: usize = 8;
const CN_ACK: usize = 12;
const CN_LEN: usize = 16;
const CN_FLAGS: usize = 18;

/// Connector user identifier (`struct cb_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CbId {
    pub idx: u32,
    pub val: u32,
}

/// One connector message (`struct cn_msg` + data), owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnMsg {
    pub id: CbId,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub data: Vec<u8>,
}

/// Why bytes are not a connector message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer bytes than the fixed header `what` needs.
    Short {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// `cn_msg.len` points past the end of the buffer.
    DataBeyond { len: usize, have: usize },
    /// `nlmsg_len` is smaller than a header, or larger than the datagram.
    NlLen { nlmsg_len: u32, have: usize },
    /// `cn_msg` + data does not fit in `nlmsg_len`.
    CnBeyondNl { need: usize, nlmsg_len: u32 },
    /// Data longer than `cn_msg.len` (u16) or the connector limit can carry.
    TooLong { len: usize, max: usize },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Short { what, need, have } => {
                write!(f, "short {what}: need {need} bytes, have {have}")
            }
            CodecError::DataBeyond { len, have } => {
                write!(
                    f,
                    "cn_msg.len {len} exceeds the {have} bytes after the header"
                )
            }
            CodecError::NlLen { nlmsg_len, have } => {
                write!(
                    f,
                    "nlmsg_len {nlmsg_len} is invalid for a {have}-byte datagram"
                )
            }
            CodecError::CnBeyondNl { need, nlmsg_len } => {
                write!(f, "cn_msg needs {need} bytes but nlmsg_len is {nlmsg_len}")
            }
            CodecError::TooLong { len, max } => {
                write!(
                    f,
                    "data of {len} bytes exceeds the connector limit of {max}"
                )
            }
        }
    }
}

impl std::error::Error for CodecError {}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl CnMsg {
    /// Bytes this message takes on the wire (header + data, unpadded).
    pub fn wire_len(&self) -> usize {
        CN_MSG_HDRLEN + self.data.len()
    }

    /// Append `cn_msg` header + data to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if self.data.len() > MAX_DATA_LEN {
            return Err(CodecError::TooLong {
                len: self.data.len(),
                max: MAX_DATA_LEN,
            });
        }
        // MAX_DATA_LEN < u16::MAX, so the cast cannot truncate.
        let len = self.data.len() as u16;
        out.extend_from_slice(&self.id.idx.to_ne_bytes());
        out.extend_from_slice(&self.id.val.to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&self.ack.to_ne_bytes());
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// `cn_msg` header + data.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Decode one `cn_msg`; bytes after `data[len]` (netlink padding) are ignored.
    pub fn decode(b: &[u8]) -> Result<CnMsg, CodecError> {
        if b.len() < CN_MSG_HDRLEN {
            return Err(CodecError::Short {
                what: "cn_msg",
                need: CN_MSG_HDRLEN,
                have: b.len(),
            });
        }
        let len = usize::from(u16_at(b, CN_LEN));
        let rest = &b[CN_MSG_HDRLEN..];
        let data = rest.get(..len).ok_or(CodecError::DataBeyond {
            len,
            have: rest.len(),
        })?;
        Ok(CnMsg {
            id: CbId {
                idx: u32_at(b, CN_IDX),
                val: u32_at(b, CN_VAL),
            },
            seq: u32_at(b, CN_SEQ),
            ack: u32_at(b, CN_ACK),
            flags: u16_at(b, CN_FLAGS),
            data: data.to_vec(),
        })
    }

    /// A whole netlink message: `nlmsghdr` + this `cn_msg`, framed like the
    /// kernel's `cn_netlink_send_mult`: type `NLMSG_DONE`, `nlmsg_seq = cn_msg.seq`.
    /// `pid` is the sender's port id (0 lets the kernel fill it in).
    pub fn encode_nl(&self, pid: u32) -> Result<Vec<u8>, CodecError> {
        Ok(NlMsgBuilder::new(NLMSG_DONE, 0, self.seq, pid)
            .bytes(&self.encode()?)
            .finish())
    }
}

impl From<HdrError> for CodecError {
    fn from(e: HdrError) -> CodecError {
        match e {
            HdrError::Short { have, .. } => CodecError::Short {
                what: "nlmsghdr",
                need: NLMSG_HDRLEN,
                have,
            },
            HdrError::BadLength { len, have, .. } => CodecError::NlLen {
                nlmsg_len: len,
                have,
            },
            // Not produced here: the connector never asks for the control
            // payload (its messages are all NLMSG_DONE without an error code).
            HdrError::ShortControl { len, .. } => CodecError::Short {
                what: "nlmsgerr",
                need: 4,
                have: len,
            },
        }
    }
}

/// The `cn_msg` in one netlink message, checking both lengths as
/// `cn_call_callback` does: `nlmsg_len >= NLMSG_HDRLEN + sizeof(cn_msg) + len`.
fn cn_of(m: &hdr::NlMsg<'_>) -> Result<(NlMsgHdr, CnMsg), CodecError> {
    let body = m.body;
    if body.len() < CN_MSG_HDRLEN {
        return Err(CodecError::Short {
            what: "cn_msg",
            need: CN_MSG_HDRLEN,
            have: body.len(),
        });
    }
    let need = NLMSG_HDRLEN + CN_MSG_HDRLEN + usize::from(u16_at(body, CN_LEN));
    if need > m.hdr.len as usize {
        return Err(CodecError::CnBeyondNl {
            need,
            nlmsg_len: m.hdr.len,
        });
    }
    Ok((m.hdr, CnMsg::decode(body)?))
}

/// Decode the netlink message at the start of `b` carrying a `cn_msg`.
pub fn decode_nl(b: &[u8]) -> Result<(NlMsgHdr, CnMsg), CodecError> {
    cn_of(&hdr::message_at(b, 0)?)
}

/// Iterate over the netlink messages in one datagram (NLMSG_NEXT). Stops
/// after the first error, which it yields.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        inner: hdr::messages(datagram),
        failed: false,
    }
}

/// Iterator returned by [`messages`].
pub struct Messages<'a> {
    inner: hdr::Messages<'a>,
    failed: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<(NlMsgHdr, CnMsg), CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self
            .inner
            .next()?
            .map_err(CodecError::from)
            .and_then(|m| cn_of(&m));
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> CnMsg {
        CnMsg {
            id: CbId {
                idx: 0x4e42,
                val: 1,
            },
            seq: 7,
            ack: 0xdead_beef,
            flags: 0x0102,
            data: b"{}x".to_vec(),
        }
    }

    /// Expected bytes, annotated field by field (x86_64 = little endian).
    #[cfg(target_endian = "little")]
    fn sample_bytes() -> Vec<u8> {
        let mut v = vec![
            0x42, 0x4e, 0x00, 0x00, // id.idx 0x4e42
            0x01, 0x00, 0x00, 0x00, // id.val 1
            0x07, 0x00, 0x00, 0x00, // seq 7
            0xef, 0xbe, 0xad, 0xde, // ack 0xdeadbeef
            0x03, 0x00, // len 3
            0x02, 0x01, // flags 0x0102
        ];
        v.extend_from_slice(b"{}x");
        v
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn cn_msg_bytes_both_ways() {
        assert_eq!(sample().encode().unwrap(), sample_bytes());
        assert_eq!(CnMsg::decode(&sample_bytes()).unwrap(), sample());
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn nl_frame_bytes_both_ways() {
        let b = sample().encode_nl(0x1234).unwrap();
        let mut want = vec![
            0x27, 0x00, 0x00, 0x00, // nlmsg_len 16 + 20 + 3 = 39
            0x03, 0x00, // nlmsg_type NLMSG_DONE
            0x00, 0x00, // nlmsg_flags
            0x07, 0x00, 0x00, 0x00, // nlmsg_seq = cn_msg.seq
            0x34, 0x12, 0x00, 0x00, // nlmsg_pid
        ];
        want.extend_from_slice(&sample_bytes());
        want.push(0); // NLMSG_ALIGN padding to 40
        assert_eq!(b, want);
        let (h, m) = decode_nl(&b).unwrap();
        assert_eq!(
            h,
            NlMsgHdr {
                len: 39,
                ty: NLMSG_DONE,
                flags: 0,
                seq: 7,
                pid: 0x1234
            }
        );
        assert_eq!(m, sample());
    }

    #[test]
    fn short_and_lying_inputs_are_errors() {
        let good = sample().encode_nl(1).unwrap();
        for n in 0..good.len() - 1 {
            // Every strict prefix shorter than nlmsg_len must fail, never panic.
            assert!(decode_nl(&good[..n]).is_err(), "prefix {n}");
        }
        assert_eq!(
            CnMsg::decode(&[0; 5]),
            Err(CodecError::Short {
                what: "cn_msg",
                need: 20,
                have: 5
            })
        );
        // cn_msg.len larger than what follows.
        let mut cn = sample().encode().unwrap();
        cn[CN_LEN] = 200;
        assert_eq!(
            CnMsg::decode(&cn),
            Err(CodecError::DataBeyond { len: 200, have: 3 })
        );
        // nlmsg_len larger than the datagram.
        let mut nl = good.clone();
        nl[0] = 200;
        assert_eq!(
            decode_nl(&nl),
            Err(CodecError::NlLen {
                nlmsg_len: 200,
                have: 40
            })
        );
        // nlmsg_len smaller than the header.
        nl[0] = 3;
        assert_eq!(
            decode_nl(&nl),
            Err(CodecError::NlLen {
                nlmsg_len: 3,
                have: 40
            })
        );
        // nlmsg_len cuts into the cn_msg data.
        nl[0] = 37;
        assert_eq!(
            decode_nl(&nl),
            Err(CodecError::CnBeyondNl {
                need: 39,
                nlmsg_len: 37
            })
        );
        assert_eq!(
            CodecError::CnBeyondNl {
                need: 39,
                nlmsg_len: 37
            }
            .to_string(),
            "cn_msg needs 39 bytes but nlmsg_len is 37"
        );
    }

    #[test]
    fn too_long_is_refused_on_encode() {
        let mut m = sample();
        m.data = vec![b'a'; MAX_DATA_LEN];
        assert_eq!(m.encode().unwrap().len(), CONNECTOR_MAX_MSG_SIZE);
        m.data.push(b'a');
        assert_eq!(
            m.encode(),
            Err(CodecError::TooLong {
                len: 16365,
                max: 16364
            })
        );
    }

    #[test]
    fn iterates_several_messages() {
        let mut d = sample().encode_nl(1).unwrap();
        let mut second = sample();
        second.seq = 8;
        d.extend(second.encode_nl(1).unwrap());
        let seqs: Vec<u32> = messages(&d).map(|r| r.unwrap().1.seq).collect();
        assert_eq!(seqs, [7, 8]);
        d.extend_from_slice(&[1, 2, 3]);
        assert!(messages(&d).nth(2).unwrap().is_err());
    }
}
