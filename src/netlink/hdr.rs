//! Netlink framing, the one codec every family here uses: `struct nlmsghdr`,
//! `NLMSG_ALIGN`, the walk over the several messages of one datagram
//! (`NLMSG_OK`/`NLMSG_NEXT`), the control messages `NLMSG_ERROR` and
//! `NLMSG_DONE`, and `struct rtattr` attributes (the same 4-byte header and
//! alignment as `struct nlattr`).
//!
//! Pure code, host byte order, no I/O. Layouts from
//! include/uapi/linux/netlink.h and rtnetlink.h (`RTA_ALIGN`, `RTA_OK`).
//! The families — `net::rtnl`, `netlink::connector`, `iscsi::netlink` —
//! keep only their payloads and map [`HdrError`] into their own errors.
//!
//! ```text
//! nlmsghdr (16 B)  len u32 | type u16 | flags u16 | seq u32 | pid u32
//! body             nlmsg_len − 16 bytes, then padding to a multiple of 4
//! nlmsgerr         error i32 (−errno, 0 = ACK) | the request's nlmsghdr
//! rtattr   (4 B)   len u16 (header + data) | type u16 | data, padded to 4
//! ```
//!
//! Decoding is checked and never panics: a short buffer or an `nlmsg_len`
//! that lies gives an [`HdrError`]; unknown message types are handed to the
//! family unchanged (STYLE.md item 5).

use std::fmt;
use std::mem::{offset_of, size_of};

/// `NLMSG_ALIGNTO`, and `RTA_ALIGNTO` (both 4).
pub const ALIGNTO: usize = 4;
/// `NLMSG_HDRLEN`: `sizeof(struct nlmsghdr)`, already aligned.
pub const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nlmsgerr)`: the error code and the echoed request header.
pub const NLMSGERR_LEN: usize = 4 + NLMSG_HDRLEN;
/// `RTA_LENGTH(0)` / `NLA_HDRLEN`: `sizeof(struct rtattr)`.
pub const RTA_HDRLEN: usize = 4;

// Control message types (netlink.h); families start at NLMSG_MIN_TYPE.
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
pub const NLMSG_MIN_TYPE: u16 = 0x10;

// nlmsg_flags (netlink.h).
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
/// GET requests.
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
/// NEW requests.
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

/// The attribute type without `NLA_F_NESTED` (bit 15) and
/// `NLA_F_NET_BYTEORDER` (bit 14) (netlink.h `NLA_TYPE_MASK`).
pub const NLA_TYPE_MASK: u16 = 0x3fff;

/// `struct nlmsghdr`, kept only to prove the offsets below at compile time.
#[repr(C)]
#[allow(dead_code)]
struct RawNlMsgHdr {
    len: u32,
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}
/// `struct nlmsgerr` (without the extended-ACK TLVs that may follow).
#[repr(C)]
#[allow(dead_code)]
struct RawNlMsgErr {
    error: i32,
    msg: RawNlMsgHdr,
}
/// `struct rtattr` (rtnetlink.h), laid out like `struct nlattr`.
#[repr(C)]
#[allow(dead_code)]
struct RawRtAttr {
    len: u16,
    ty: u16,
}

// Named offsets inside `nlmsghdr`, `nlmsgerr` and `rtattr`.
const NL_LEN: usize = 0;
const NL_TYPE: usize = 4;
const NL_FLAGS: usize = 6;
const NL_SEQ: usize = 8;
const NL_PID: usize = 12;
const ERR_ERROR: usize = 0;
const ERR_MSG: usize = 4;
const RTA_LEN: usize = 0;
const RTA_TYPE: usize = 2;

const _: () = assert!(size_of::<RawNlMsgHdr>() == NLMSG_HDRLEN);
const _: () = assert!(offset_of!(RawNlMsgHdr, len) == NL_LEN);
const _: () = assert!(offset_of!(RawNlMsgHdr, ty) == NL_TYPE);
const _: () = assert!(offset_of!(RawNlMsgHdr, flags) == NL_FLAGS);
const _: () = assert!(offset_of!(RawNlMsgHdr, seq) == NL_SEQ);
const _: () = assert!(offset_of!(RawNlMsgHdr, pid) == NL_PID);
const _: () = assert!(size_of::<RawNlMsgErr>() == NLMSGERR_LEN);
const _: () = assert!(offset_of!(RawNlMsgErr, error) == ERR_ERROR);
const _: () = assert!(offset_of!(RawNlMsgErr, msg) == ERR_MSG);
const _: () = assert!(size_of::<RawRtAttr>() == RTA_HDRLEN);
const _: () = assert!(offset_of!(RawRtAttr, len) == RTA_LEN);
const _: () = assert!(offset_of!(RawRtAttr, ty) == RTA_TYPE);
const _: () = assert!(NLMSG_HDRLEN % ALIGNTO == 0 && RTA_HDRLEN % ALIGNTO == 0);

/// `NLMSG_ALIGN` / `RTA_ALIGN`: round up to 4. Saturates instead of
/// overflowing (lengths here come from u32 and u16 fields, far from it).
pub const fn align(len: usize) -> usize {
    len.saturating_add(ALIGNTO - 1) & !(ALIGNTO - 1)
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(s.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(s.try_into().ok()?))
}

/// `struct nlmsghdr`, decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NlMsgHdr {
    /// `nlmsg_len`: header + body, without the trailing padding.
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Sender port id (0: the kernel).
    pub pid: u32,
}

impl NlMsgHdr {
    /// The 16 header bytes.
    pub fn encode(&self) -> [u8; NLMSG_HDRLEN] {
        let mut b = [0u8; NLMSG_HDRLEN];
        b[NL_LEN..NL_LEN + 4].copy_from_slice(&self.len.to_ne_bytes());
        b[NL_TYPE..NL_TYPE + 2].copy_from_slice(&self.ty.to_ne_bytes());
        b[NL_FLAGS..NL_FLAGS + 2].copy_from_slice(&self.flags.to_ne_bytes());
        b[NL_SEQ..NL_SEQ + 4].copy_from_slice(&self.seq.to_ne_bytes());
        b[NL_PID..NL_PID + 4].copy_from_slice(&self.pid.to_ne_bytes());
        b
    }

    /// The header fields at the start of `b`, without checking `len`;
    /// `None` if `b` is shorter than a header.
    pub fn parse(b: &[u8]) -> Option<NlMsgHdr> {
        Some(NlMsgHdr {
            len: ne_u32(b, NL_LEN)?,
            ty: ne_u16(b, NL_TYPE)?,
            flags: ne_u16(b, NL_FLAGS)?,
            seq: ne_u32(b, NL_SEQ)?,
            pid: ne_u32(b, NL_PID)?,
        })
    }
}

/// Why bytes are not a netlink message; offsets are into the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HdrError {
    /// Fewer than 16 bytes (`have`) left at `offset`.
    Short { offset: usize, have: usize },
    /// `nlmsg_len` smaller than the header or beyond the `have` bytes left.
    BadLength {
        offset: usize,
        len: u32,
        have: usize,
    },
    /// An NLMSG_ERROR or NLMSG_DONE whose `len`-byte body is too short for
    /// its error code.
    ShortControl { offset: usize, ty: u16, len: usize },
}

impl fmt::Display for HdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HdrError::Short { offset, have } => write!(
                f,
                "netlink: {have} bytes at offset {offset}, less than a 16-byte nlmsghdr"
            ),
            HdrError::BadLength { offset, len, have } => write!(
                f,
                "netlink: nlmsg_len {len} at offset {offset} with {have} bytes left"
            ),
            HdrError::ShortControl { offset, ty, len } => write!(
                f,
                "netlink: message type {ty} at offset {offset} has a {len}-byte body, \
                 too short for its error code"
            ),
        }
    }
}

impl std::error::Error for HdrError {}

/// One message of a datagram: its header and body, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<'a> {
    pub hdr: NlMsgHdr,
    /// The `nlmsg_len − 16` bytes after the header (padding excluded).
    pub body: &'a [u8],
    /// Where the message starts in its datagram.
    pub offset: usize,
}

/// What a message means at the netlink level (netlink.h): one of the
/// control messages, or a family message left to the family.
///
/// For request/reply families (rtnetlink, NETLINK_ISCSI). The connector
/// sends every `cn_msg` as type NLMSG_DONE without an error code
/// (drivers/connector/connector.c `cn_netlink_send_mult`), so it reads
/// [`NlMsg::body`] directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Noop,
    /// NLMSG_ERROR: `errno` is positive, 0 is an ACK. `request` is the
    /// echoed header of the request, when the body carries it.
    Error {
        errno: i32,
        request: Option<NlMsgHdr>,
    },
    /// NLMSG_DONE: the end of a dump; `errno` ≠ 0 if the dump was cut short.
    Done {
        errno: i32,
    },
    Overrun,
    /// Any other type (a family message, or a reserved control type a
    /// newer kernel may send): the body, unchanged.
    Family(&'a [u8]),
}

/// The `int error` leading NLMSG_ERROR and NLMSG_DONE bodies is −errno;
/// give it positive. i32::MIN has no negation and becomes i32::MAX.
fn errno_of(body: &[u8]) -> Option<i32> {
    let e = ne_u32(body, ERR_ERROR)? as i32;
    Some(e.checked_neg().unwrap_or(i32::MAX))
}

impl<'a> NlMsg<'a> {
    /// Classify the message: control types are decoded, the rest is
    /// [`Payload::Family`].
    pub fn payload(&self) -> Result<Payload<'a>, HdrError> {
        let short = || HdrError::ShortControl {
            offset: self.offset,
            ty: self.hdr.ty,
            len: self.body.len(),
        };
        Ok(match self.hdr.ty {
            NLMSG_NOOP => Payload::Noop,
            NLMSG_ERROR => Payload::Error {
                errno: errno_of(self.body).ok_or_else(short)?,
                request: self.body.get(ERR_MSG..).and_then(NlMsgHdr::parse),
            },
            NLMSG_DONE => Payload::Done {
                errno: errno_of(self.body).ok_or_else(short)?,
            },
            NLMSG_OVERRUN => Payload::Overrun,
            _ => Payload::Family(self.body),
        })
    }
}

/// Decode the message at `offset` of `datagram`, checking `nlmsg_len`
/// against the bytes there (`NLMSG_OK`).
pub fn message_at(datagram: &[u8], offset: usize) -> Result<NlMsg<'_>, HdrError> {
    let rest = datagram.get(offset..).unwrap_or_default();
    let have = rest.len();
    let hdr = NlMsgHdr::parse(rest).ok_or(HdrError::Short { offset, have })?;
    let len = hdr.len as usize;
    if len < NLMSG_HDRLEN {
        return Err(HdrError::BadLength {
            offset,
            len: hdr.len,
            have,
        });
    }
    let body = rest.get(NLMSG_HDRLEN..len).ok_or(HdrError::BadLength {
        offset,
        len: hdr.len,
        have,
    })?;
    Ok(NlMsg { hdr, body, offset })
}

/// Every message of one datagram, in order (`NLMSG_NEXT`). The walk ends
/// after the first error, which it yields; the last message may lack its
/// padding.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        datagram,
        offset: 0,
    }
}

/// Iterator returned by [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    datagram: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<'a>, HdrError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.datagram.len() {
            return None;
        }
        match message_at(self.datagram, self.offset) {
            Ok(m) => {
                // `len` ≤ the bytes left, so this never passes the end by
                // more than the missing padding; clamp that away.
                self.offset = self
                    .offset
                    .saturating_add(align(m.hdr.len as usize))
                    .min(self.datagram.len());
                Some(Ok(m))
            }
            Err(e) => {
                self.offset = self.datagram.len();
                Some(Err(e))
            }
        }
    }
}

/// One `struct rtattr`, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtAttr<'a> {
    /// `rta_type` as sent, NLA_F_* bits included.
    pub raw_type: u16,
    /// `rta_len − 4` bytes (padding excluded).
    pub data: &'a [u8],
}

impl RtAttr<'_> {
    /// The attribute type without the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits.
    pub fn kind(&self) -> u16 {
        self.raw_type & NLA_TYPE_MASK
    }
}

/// The attributes in `b` (a message body after its fixed header), in
/// order. Ends at the first malformed one (`rta_len` below 4 or past the
/// end), as `RTA_OK` does: what came before is still returned.
pub fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs { rest: b }
}

/// Iterator returned by [`attrs`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = RtAttr<'a>;

    fn next(&mut self) -> Option<RtAttr<'a>> {
        let b = self.rest;
        self.rest = &[];
        let len = usize::from(ne_u16(b, RTA_LEN)?);
        let raw_type = ne_u16(b, RTA_TYPE)?;
        if len < RTA_HDRLEN {
            return None;
        }
        let data = b.get(RTA_HDRLEN..len)?;
        self.rest = b.get(align(len)..).unwrap_or_default();
        Some(RtAttr { raw_type, data })
    }
}

/// One outgoing message under construction: the header first, then body
/// bytes and attributes; [`finish`](NlMsgBuilder::finish) writes
/// `nlmsg_len` and pads to 4.
#[derive(Debug, Clone)]
pub struct NlMsgBuilder {
    buf: Vec<u8>,
}

impl NlMsgBuilder {
    /// `flags` are sent as given (requests add NLM_F_REQUEST themselves).
    pub fn new(ty: u16, flags: u16, seq: u32, pid: u32) -> NlMsgBuilder {
        let mut buf = Vec::with_capacity(64);
        let hdr = NlMsgHdr {
            len: 0,
            ty,
            flags,
            seq,
            pid,
        };
        buf.extend_from_slice(&hdr.encode());
        NlMsgBuilder { buf }
    }

    /// Append body bytes as they are (no padding).
    pub fn bytes(&mut self, b: &[u8]) -> &mut NlMsgBuilder {
        self.buf.extend_from_slice(b);
        self
    }

    /// Append one attribute and pad it to 4. `rta_len` is a u16: data past
    /// 65531 bytes is cut off (our attributes are addresses and names).
    pub fn attr(&mut self, ty: u16, data: &[u8]) -> &mut NlMsgBuilder {
        let data = data
            .get(..usize::from(u16::MAX) - RTA_HDRLEN)
            .unwrap_or(data);
        let len = (RTA_HDRLEN + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    /// The message: `nlmsg_len` is the length so far (unpadded), then the
    /// buffer is padded to 4, as the kernel's `nlmsg_put`/`nlmsg_end` do.
    pub fn finish(&mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        if let Some(h) = self.buf.get_mut(NL_LEN..NL_LEN + 4) {
            h.copy_from_slice(&len.to_ne_bytes());
        }
        self.buf.resize(align(self.buf.len()), 0);
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> NlMsgHdr {
        NlMsgHdr {
            len: 21,
            ty: 0x0102,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            seq: 0x0a0b_0c0d,
            pid: 0x1234,
        }
    }

    /// `hdr()` + 5 body bytes + 3 padding, annotated (x86_64: little endian).
    #[cfg(target_endian = "little")]
    const MSG: [u8; 24] = [
        0x15, 0x00, 0x00, 0x00, // nlmsg_len 21
        0x02, 0x01, // nlmsg_type 0x0102
        0x05, 0x00, // nlmsg_flags REQUEST | ACK
        0x0d, 0x0c, 0x0b, 0x0a, // nlmsg_seq
        0x34, 0x12, 0x00, 0x00, // nlmsg_pid
        b'h', b'e', b'l', b'l', b'o', // body
        0, 0, 0, // NLMSG_ALIGN padding
    ];

    #[cfg(target_endian = "little")]
    #[test]
    fn header_bytes_both_ways() {
        assert_eq!(hdr().encode(), MSG[..16]);
        assert_eq!(NlMsgHdr::parse(&MSG), Some(hdr()));
        let built = NlMsgBuilder::new(0x0102, NLM_F_REQUEST | NLM_F_ACK, 0x0a0b_0c0d, 0x1234)
            .bytes(b"hello")
            .finish();
        assert_eq!(built, MSG);
        let m = message_at(&MSG, 0).unwrap();
        assert_eq!(
            m,
            NlMsg {
                hdr: hdr(),
                body: b"hello",
                offset: 0
            }
        );
        assert_eq!(m.payload(), Ok(Payload::Family(b"hello")));
    }

    #[test]
    fn alignment() {
        assert_eq!([0, 1, 3, 4, 5, 8, 21].map(align), [0, 4, 4, 4, 8, 8, 24]);
        assert_eq!(align(usize::MAX), usize::MAX & !3);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn every_truncated_prefix_is_an_error() {
        for n in 0..MSG.len() {
            let r = message_at(&MSG[..n], 0);
            let want = if n < NLMSG_HDRLEN {
                HdrError::Short { offset: 0, have: n }
            } else if n < 21 {
                HdrError::BadLength {
                    offset: 0,
                    len: 21,
                    have: n,
                }
            } else {
                // 21..24: only the padding is missing, which is fine.
                assert_eq!(r.map(|m| m.body), Ok(&b"hello"[..]), "prefix {n}");
                continue;
            };
            assert_eq!(r, Err(want.clone()), "prefix {n}");
            let all: Vec<_> = messages(&MSG[..n]).collect();
            if n == 0 {
                assert!(all.is_empty());
            } else {
                assert_eq!(all, [Err(want)], "prefix {n}");
            }
        }
        assert_eq!(
            HdrError::BadLength {
                offset: 0,
                len: 21,
                have: 20
            }
            .to_string(),
            "netlink: nlmsg_len 21 at offset 0 with 20 bytes left"
        );
        assert_eq!(
            HdrError::Short {
                offset: 24,
                have: 3
            }
            .to_string(),
            "netlink: 3 bytes at offset 24, less than a 16-byte nlmsghdr"
        );
    }

    #[test]
    fn nlmsg_len_below_the_header_is_refused() {
        for len in [0u32, 1, 15] {
            let mut b = hdr().encode();
            b[..4].copy_from_slice(&len.to_ne_bytes());
            assert_eq!(
                message_at(&b, 0),
                Err(HdrError::BadLength {
                    offset: 0,
                    len,
                    have: 16
                })
            );
        }
        // Exactly a header: an empty body.
        let mut b = hdr().encode();
        b[..4].copy_from_slice(&16u32.to_ne_bytes());
        assert_eq!(message_at(&b, 0).map(|m| m.body.len()), Ok(0));
        assert!(matches!(
            message_at(&b, 99),
            Err(HdrError::Short {
                offset: 99,
                have: 0
            })
        ));
    }

    /// ACK, error, DONE and a family message in one datagram, then junk.
    #[cfg(target_endian = "little")]
    #[test]
    fn several_messages_and_control_types() {
        let mut d = vec![
            0x24, 0, 0, 0, // nlmsg_len 36 = 16 + nlmsgerr
            0x02, 0x00, // NLMSG_ERROR
            0x00, 0x00, // flags
            0x06, 0, 0, 0, // seq 6
            0x00, 0, 0, 0, // pid 0 (kernel)
            0x00, 0, 0, 0, // error 0: ACK
            0x10, 0, 0, 0, // echoed request: len 16
            0x12, 0x00, 0x05, 0x00, // type 18, flags REQUEST|ACK
            0x06, 0, 0, 0, // seq 6
            0x99, 0, 0, 0, // pid 0x99
        ];
        let err = NlMsgBuilder::new(NLMSG_ERROR, 0, 7, 0)
            .bytes(&(-17i32).to_ne_bytes())
            .finish();
        assert_eq!(
            err,
            [20, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0xef, 0xff, 0xff, 0xff]
        );
        d.extend(err);
        d.extend(
            NlMsgBuilder::new(NLMSG_DONE, NLM_F_MULTI, 5, 0)
                .bytes(&0i32.to_ne_bytes())
                .finish(),
        );
        d.extend(
            NlMsgBuilder::new(NLMSG_MIN_TYPE, 0, 8, 0)
                .bytes(&[9])
                .finish(),
        );
        let msgs: Vec<_> = messages(&d).map(|m| m.unwrap()).collect();
        let seen: Vec<_> = msgs.iter().map(|m| (m.offset, m.hdr.seq)).collect();
        assert_eq!(seen, [(0, 6), (36, 7), (56, 5), (76, 8)]);
        assert_eq!(
            msgs[0].payload(),
            Ok(Payload::Error {
                errno: 0,
                request: Some(NlMsgHdr {
                    len: 16,
                    ty: 18,
                    flags: NLM_F_REQUEST | NLM_F_ACK,
                    seq: 6,
                    pid: 0x99
                })
            })
        );
        assert_eq!(
            msgs[1].payload(),
            Ok(Payload::Error {
                errno: 17,
                request: None
            })
        );
        assert_eq!(msgs[2].payload(), Ok(Payload::Done { errno: 0 }));
        assert_eq!(msgs[3].payload(), Ok(Payload::Family(&[9])));
        // Trailing junk ends the walk with an error at its offset.
        d.extend_from_slice(&[1, 2, 3]);
        let last = messages(&d).last();
        assert_eq!(
            last,
            Some(Err(HdrError::Short {
                offset: 96,
                have: 3
            }))
        );
        assert_eq!(messages(&d).count(), 5);
    }

    #[test]
    fn control_messages_need_their_error_code() {
        for ty in [NLMSG_ERROR, NLMSG_DONE] {
            let m = NlMsgBuilder::new(ty, 0, 1, 0).bytes(&[0, 0]).finish();
            let m = message_at(&m, 0).unwrap();
            assert_eq!(
                m.payload(),
                Err(HdrError::ShortControl {
                    offset: 0,
                    ty,
                    len: 2
                })
            );
        }
        let m = NlMsgBuilder::new(NLMSG_ERROR, 0, 1, 0)
            .bytes(&i32::MIN.to_ne_bytes())
            .finish();
        assert_eq!(
            message_at(&m, 0).unwrap().payload(),
            Ok(Payload::Error {
                errno: i32::MAX,
                request: None
            })
        );
        let noop = NlMsgBuilder::new(NLMSG_NOOP, 0, 1, 0).finish();
        assert_eq!(message_at(&noop, 0).unwrap().payload(), Ok(Payload::Noop));
        let over = NlMsgBuilder::new(NLMSG_OVERRUN, 0, 1, 0).finish();
        assert_eq!(
            message_at(&over, 0).unwrap().payload(),
            Ok(Payload::Overrun)
        );
        assert_eq!(
            HdrError::ShortControl {
                offset: 0,
                ty: 2,
                len: 2
            }
            .to_string(),
            "netlink: message type 2 at offset 0 has a 2-byte body, too short for its error code"
        );
    }

    /// Three attributes as rtnetlink lays them out: a 5-byte name padded to
    /// 8, a u32, and a nested one with NLA_F_NESTED set.
    #[cfg(target_endian = "little")]
    const ATTRS: [u8; 24] = [
        0x09, 0x00, 0x03, 0x00, b'e', b't', b'h', b'0', 0x00, 0, 0, 0, // IFLA_IFNAME "eth0\0"
        0x08, 0x00, 0x04, 0x00, 0xdc, 0x05, 0x00, 0x00, // IFLA_MTU 1500
        0x04, 0x00, 0x12, 0x80, // type 0x12 | NLA_F_NESTED, empty
    ];

    #[cfg(target_endian = "little")]
    #[test]
    fn attributes_both_ways() {
        let got: Vec<_> = attrs(&ATTRS).collect();
        assert_eq!(
            got,
            [
                RtAttr {
                    raw_type: 3,
                    data: b"eth0\0"
                },
                RtAttr {
                    raw_type: 4,
                    data: &1500u32.to_ne_bytes()
                },
                RtAttr {
                    raw_type: 0x8012,
                    data: &[]
                },
            ]
        );
        assert_eq!(got[2].kind(), 0x12);
        let mut b = NlMsgBuilder::new(0, 0, 0, 0);
        for a in &got {
            b.attr(a.raw_type, a.data);
        }
        let built = b.finish();
        assert_eq!(&built[NLMSG_HDRLEN..], ATTRS);
        assert_eq!(built[..4], 40u32.to_ne_bytes());
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn attributes_stop_at_the_first_malformed_one() {
        // Every prefix gives the whole attributes it holds, never a panic.
        for n in 0..ATTRS.len() {
            let count = attrs(&ATTRS[..n]).count();
            let want = match n {
                0..=8 => 0,
                9..=19 => 1,
                _ => 2,
            };
            assert_eq!(count, want, "prefix {n}");
        }
        // rta_len below the header, and beyond the buffer.
        for bad in [[0x03, 0x00, 0x01, 0x00], [0x09, 0x00, 0x01, 0x00]] {
            let mut b = ATTRS[..20].to_vec();
            b.extend_from_slice(&bad);
            assert_eq!(attrs(&b).count(), 2);
        }
        // The last attribute may lack its padding.
        assert_eq!(
            attrs(&ATTRS[..9]).next().map(|a| a.data),
            Some(&b"eth0\0"[..])
        );
    }

    #[test]
    fn oversized_attribute_is_cut_to_fit() {
        let big = vec![7u8; 70_000];
        let m = NlMsgBuilder::new(0, 0, 0, 0).attr(1, &big).finish();
        let a: Vec<_> = attrs(&m[NLMSG_HDRLEN..]).collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].data.len(), usize::from(u16::MAX) - RTA_HDRLEN);
    }
}
