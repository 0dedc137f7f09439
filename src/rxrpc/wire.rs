//! RxRPC wire format: pure encode/decode, no I/O (STYLE.md item 1).
//!
//! Source of every offset and constant: `/work/shared/reference/rxrpc.md` §1
//! (Linux 6.1 `net/rxrpc/protocol.h`, OpenAFS 1.8.9 `src/rx/rx_packet.h`,
//! `doc/txt/rx-spec.txt`). Everything on the wire is big-endian.
//!
//! Decoders are total: any input yields a value or a [`WireError`], never a
//! panic (fuzzed by `fuzz/fuzz_targets/rxrpc_wire.rs`). Unknown packet types,
//! flags and ACK reasons are kept as numbers, not rejected (STYLE.md item 5),
//! and every decoded packet re-encodes to the same bytes.

use std::fmt;

/// Header size (rxrpc.md §1.1).
pub const HEADER_LEN: usize = 28;
/// Jumbo sub-header (rxrpc.md §1.4): `u8 flags; u8 pad; be16 cksum`.
pub const JUMBO_HEADER_LEN: usize = 4;
/// Payload of every non-terminal jumbo sub-packet (`RXRPC_JUMBO_DATALEN`).
pub const JUMBO_DATALEN: usize = 1412;
/// `RXRPC_MAX_NR_JUMBO`.
pub const MAX_JUMBO: usize = 47;
/// Fixed part of an ACK body before `acks[]` (rxrpc.md §1.5).
pub const ACK_FIXED_LEN: usize = 18;
/// The optional trailer after `acks[]`: 3 pad bytes + 4 × u32.
pub const ACK_PAD_LEN: usize = 3;
pub const ACK_TRAILER_LEN: usize = 16;
/// VERSION reply string length (rxrpc.md §1.10).
pub const VERSION_STRING_LEN: usize = 65;

const _: () = assert!(HEADER_LEN == 4 * 5 + 4 + 2 + 2);
const _: () = assert!(ACK_FIXED_LEN == 2 + 2 + 4 + 4 + 4 + 1 + 1);
const _: () = assert!(ACK_TRAILER_LEN == 4 * 4);
// Linux RXRPC_JUMBO_SUBPKTLEN: a sub-packet plus its jumbo header, 8-aligned.
const _: () = assert!((JUMBO_DATALEN + JUMBO_HEADER_LEN) % 8 == 0);

/// Packet types (rxrpc.md §1.2).
pub mod ptype {
    pub const DATA: u8 = 1;
    pub const ACK: u8 = 2;
    pub const BUSY: u8 = 3;
    pub const ABORT: u8 = 4;
    pub const ACKALL: u8 = 5;
    pub const CHALLENGE: u8 = 6;
    pub const RESPONSE: u8 = 7;
    pub const DEBUG: u8 = 8;
    pub const PARAMS: u8 = 9;
    pub const VERSION: u8 = 13;
}

/// Header flags (rxrpc.md §1.3).
pub mod flags {
    pub const CLIENT_INITIATED: u8 = 0x01;
    pub const REQUEST_ACK: u8 = 0x02;
    pub const LAST_PACKET: u8 = 0x04;
    pub const MORE_PACKETS: u8 = 0x08;
    /// DATA: a jumbogram follows; ACK: SLOW_START_OK.
    pub const JUMBO_PACKET: u8 = 0x20;
    pub const SLOW_START_OK: u8 = 0x20;
}

/// ACK reasons (rxrpc.md §1.6).
pub mod ack_reason {
    pub const REQUESTED: u8 = 1;
    pub const DUPLICATE: u8 = 2;
    pub const OUT_OF_SEQUENCE: u8 = 3;
    pub const EXCEEDS_WINDOW: u8 = 4;
    pub const NOSPACE: u8 = 5;
    pub const PING: u8 = 6;
    pub const PING_RESPONSE: u8 = 7;
    pub const DELAY: u8 = 8;
    pub const IDLE: u8 = 9;
}

/// Abort codes (rxrpc.md §1.9; Linux uapi rxrpc.h = OpenAFS rx.h).
pub mod abort {
    pub const RX_CALL_DEAD: i32 = -1;
    pub const RX_INVALID_OPERATION: i32 = -2;
    pub const RX_CALL_TIMEOUT: i32 = -3;
    pub const RX_EOF: i32 = -4;
    pub const RX_PROTOCOL_ERROR: i32 = -5;
    pub const RX_USER_ABORT: i32 = -6;
    pub const RXGEN_CC_MARSHAL: i32 = -450;
    pub const RXGEN_CC_UNMARSHAL: i32 = -451;
    pub const RXGEN_SS_MARSHAL: i32 = -452;
    pub const RXGEN_SS_UNMARSHAL: i32 = -453;
    pub const RXGEN_DECODE: i32 = -454;
    pub const RXGEN_OPCODE: i32 = -455;

    /// A name for messages, `None` for codes without one (application codes).
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            RX_CALL_DEAD => "RX_CALL_DEAD",
            RX_INVALID_OPERATION => "RX_INVALID_OPERATION",
            RX_CALL_TIMEOUT => "RX_CALL_TIMEOUT",
            RX_EOF => "RX_EOF",
            RX_PROTOCOL_ERROR => "RX_PROTOCOL_ERROR",
            RX_USER_ABORT => "RX_USER_ABORT",
            RXGEN_CC_MARSHAL => "RXGEN_CC_MARSHAL",
            RXGEN_CC_UNMARSHAL => "RXGEN_CC_UNMARSHAL",
            RXGEN_SS_MARSHAL => "RXGEN_SS_MARSHAL",
            RXGEN_SS_UNMARSHAL => "RXGEN_SS_UNMARSHAL",
            RXGEN_DECODE => "RXGEN_DECODE",
            RXGEN_OPCODE => "RXGEN_OPCODE",
            _ => return None,
        })
    }
}

/// `RXRPC_RANDOM_EPOCH`: the connection is identified by {epoch, cid} only.
pub const RANDOM_EPOCH: u32 = 0x8000_0000;
/// Low two bits of the cid are the channel (rxrpc.md §1.7).
pub const CHANNEL_MASK: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    /// A jumbogram whose sub-packet layout does not add up.
    BadJumbo { why: &'static str },
    /// A VERSION reply string longer than the 65 bytes on the wire.
    VersionTooLong { len: usize },
    /// More soft-ACK entries than the one-byte count can say.
    TooManyAcks { n: usize },
    /// Building a jumbogram from chunks that break the layout rules.
    JumboLayout { why: &'static str },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Short { what, need, got } => {
                write!(f, "{what} truncated: need {need} bytes, got {got}")
            }
            WireError::BadJumbo { why } => write!(f, "malformed jumbogram: {why}"),
            WireError::VersionTooLong { len } => write!(
                f,
                "version string of {len} bytes does not fit the {VERSION_STRING_LEN}-byte field"
            ),
            WireError::TooManyAcks { n } => write!(f, "{n} soft-ACK entries exceed 255"),
            WireError::JumboLayout { why } => write!(f, "cannot build jumbogram: {why}"),
        }
    }
}

impl std::error::Error for WireError {}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// The 28-byte header (rxrpc.md §1.1). `ptype` stays a number: unknown types
/// are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub epoch: u32,
    pub cid: u32,
    pub call: u32,
    pub seq: u32,
    pub serial: u32,
    pub ptype: u8,
    pub flags: u8,
    pub user_status: u8,
    pub security_index: u8,
    /// Linux `_rsvd`, OpenAFS `spare`; OpenAFS raw aborts put the service
    /// id here (rxrpc.md §1.11).
    pub cksum: u16,
    pub service_id: u16,
}

// Named offsets inside the header.
const OFF_EPOCH: usize = 0;
const OFF_CID: usize = 4;
const OFF_CALL: usize = 8;
const OFF_SEQ: usize = 12;
const OFF_SERIAL: usize = 16;
const OFF_TYPE: usize = 20;
const OFF_FLAGS: usize = 21;
const OFF_USER_STATUS: usize = 22;
const OFF_SECURITY: usize = 23;
const OFF_CKSUM: usize = 24;
const OFF_SERVICE: usize = 26;
const _: () = assert!(OFF_SERVICE + 2 == HEADER_LEN);

impl Header {
    pub fn decode(b: &[u8]) -> Result<Header, WireError> {
        let short = WireError::Short {
            what: "rx header",
            need: HEADER_LEN,
            got: b.len(),
        };
        if b.len() < HEADER_LEN {
            return Err(short);
        }
        let get32 = |o| be32(b, o).ok_or(short.clone());
        let get16 = |o| be16(b, o).ok_or(short.clone());
        Ok(Header {
            epoch: get32(OFF_EPOCH)?,
            cid: get32(OFF_CID)?,
            call: get32(OFF_CALL)?,
            seq: get32(OFF_SEQ)?,
            serial: get32(OFF_SERIAL)?,
            ptype: b[OFF_TYPE],
            flags: b[OFF_FLAGS],
            user_status: b[OFF_USER_STATUS],
            security_index: b[OFF_SECURITY],
            cksum: get16(OFF_CKSUM)?,
            service_id: get16(OFF_SERVICE)?,
        })
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.cid.to_be_bytes());
        out.extend_from_slice(&self.call.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.push(self.ptype);
        out.push(self.flags);
        out.push(self.user_status);
        out.push(self.security_index);
        out.extend_from_slice(&self.cksum.to_be_bytes());
        out.extend_from_slice(&self.service_id.to_be_bytes());
    }

    pub fn channel(&self) -> u32 {
        self.cid & CHANNEL_MASK
    }

    pub fn is_client_initiated(&self) -> bool {
        self.flags & flags::CLIENT_INITIATED != 0
    }
}

/// The optional ACK trailer (rxrpc.md §1.5), names as in Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckTrailer {
    /// Largest packet the sender accepts (OpenAFS maxMTU).
    pub rx_mtu: u32,
    /// Recommended packet size (OpenAFS ifMTU).
    pub max_mtu: u32,
    /// Receive window.
    pub rwind: u32,
    /// Max packets per jumbogram (OpenAFS ifDgramPackets).
    pub jumbo_max: u32,
}

/// Trailer values we advertise: 1444 = 1500 − IP − UDP − 28 (what OpenAFS
/// 1.8.9 sends, rxrpc.md §1.5), window 32, no jumbograms.
pub const OUR_TRAILER: AckTrailer = AckTrailer {
    rx_mtu: 1444,
    max_mtu: 1444,
    rwind: 32,
    jumbo_max: 1,
};

/// ACK body (rxrpc.md §1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub buffer_space: u16,
    pub max_skew: u16,
    pub first_packet: u32,
    pub previous_packet: u32,
    pub serial: u32,
    pub reason: u8,
    /// Per seq `first_packet + i`: 0 NACK, 1 soft ACK (other values kept).
    pub acks: Vec<u8>,
    /// The 3 pad bytes before the trailer, kept for exact re-encoding.
    pub pad: [u8; ACK_PAD_LEN],
    /// Parsed like Linux: only if pad + 16 bytes are present.
    pub trailer: Option<AckTrailer>,
    /// Bytes after the trailer, or all bytes after `acks[]` when the
    /// trailer is incomplete. Kept, not interpreted.
    pub extra: Vec<u8>,
}

impl Ack {
    pub fn new(first_packet: u32, previous_packet: u32, serial: u32, reason: u8) -> Ack {
        Ack {
            buffer_space: 0,
            max_skew: 0,
            first_packet,
            previous_packet,
            serial,
            reason,
            acks: Vec::new(),
            pad: [0; ACK_PAD_LEN],
            trailer: Some(OUR_TRAILER),
            extra: Vec::new(),
        }
    }

    pub fn decode(b: &[u8]) -> Result<Ack, WireError> {
        let short = |need| WireError::Short {
            what: "ack body",
            need,
            got: b.len(),
        };
        if b.len() < ACK_FIXED_LEN {
            return Err(short(ACK_FIXED_LEN));
        }
        let n = usize::from(b[17]);
        let acks = b
            .get(ACK_FIXED_LEN..ACK_FIXED_LEN + n)
            .ok_or(short(ACK_FIXED_LEN + n))?
            .to_vec();
        let rest = b.get(ACK_FIXED_LEN + n..).unwrap_or(&[]);
        let (pad, trailer, extra) = if rest.len() >= ACK_PAD_LEN + ACK_TRAILER_LEN {
            let t = &rest[ACK_PAD_LEN..];
            let g = |o| be32(t, o).unwrap_or(0);
            (
                [rest[0], rest[1], rest[2]],
                Some(AckTrailer {
                    rx_mtu: g(0),
                    max_mtu: g(4),
                    rwind: g(8),
                    jumbo_max: g(12),
                }),
                rest[ACK_PAD_LEN + ACK_TRAILER_LEN..].to_vec(),
            )
        } else {
            ([0; ACK_PAD_LEN], None, rest.to_vec())
        };
        Ok(Ack {
            buffer_space: be16(b, 0).unwrap_or(0),
            max_skew: be16(b, 2).unwrap_or(0),
            first_packet: be32(b, 4).unwrap_or(0),
            previous_packet: be32(b, 8).unwrap_or(0),
            serial: be32(b, 12).unwrap_or(0),
            reason: b[16],
            acks,
            pad,
            trailer,
            extra,
        })
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let n = u8::try_from(self.acks.len())
            .map_err(|_| WireError::TooManyAcks { n: self.acks.len() })?;
        out.extend_from_slice(&self.buffer_space.to_be_bytes());
        out.extend_from_slice(&self.max_skew.to_be_bytes());
        out.extend_from_slice(&self.first_packet.to_be_bytes());
        out.extend_from_slice(&self.previous_packet.to_be_bytes());
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.push(self.reason);
        out.push(n);
        out.extend_from_slice(&self.acks);
        if let Some(t) = &self.trailer {
            out.extend_from_slice(&self.pad);
            for v in [t.rx_mtu, t.max_mtu, t.rwind, t.jumbo_max] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.extra);
        Ok(())
    }

    /// Is `seq` acknowledged (hard below `first_packet`, or soft)?
    pub fn acks_seq(&self, seq: u32) -> bool {
        if seq < self.first_packet {
            return true;
        }
        let i = (seq - self.first_packet) as usize;
        self.acks.get(i) == Some(&1)
    }
}

/// A decoded packet: the header plus a typed body. Bodies of types we do not
/// interpret are kept raw in [`Body::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub header: Header,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// DATA payload; a jumbogram stays one packet here (see [`split_jumbo`]).
    Data(Vec<u8>),
    Ack(Ack),
    Busy(Vec<u8>),
    /// ABORT code, and any bytes after it (kept).
    Abort {
        code: i32,
        extra: Vec<u8>,
    },
    AckAll(Vec<u8>),
    /// VERSION payload: a 1-byte request or a 65-byte reply.
    Version(Vec<u8>),
    Other(Vec<u8>),
}

impl Packet {
    /// Decode one UDP payload. Never panics.
    pub fn decode(b: &[u8]) -> Result<Packet, WireError> {
        let header = Header::decode(b)?;
        let rest = b.get(HEADER_LEN..).unwrap_or(&[]).to_vec();
        let body = match header.ptype {
            ptype::DATA => Body::Data(rest),
            ptype::ACK => Body::Ack(Ack::decode(&rest)?),
            ptype::BUSY => Body::Busy(rest),
            ptype::ABORT => {
                let code = be32(&rest, 0).ok_or(WireError::Short {
                    what: "abort body",
                    need: 4,
                    got: rest.len(),
                })? as i32;
                Body::Abort {
                    code,
                    extra: rest.get(4..).unwrap_or(&[]).to_vec(),
                }
            }
            ptype::ACKALL => Body::AckAll(rest),
            ptype::VERSION => Body::Version(rest),
            _ => Body::Other(rest),
        };
        Ok(Packet { header, body })
    }

    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        self.header.encode_into(&mut out);
        match &self.body {
            Body::Data(d) | Body::Busy(d) | Body::AckAll(d) | Body::Version(d) | Body::Other(d) => {
                out.extend_from_slice(d)
            }
            Body::Ack(a) => a.encode_into(&mut out)?,
            Body::Abort { code, extra } => {
                out.extend_from_slice(&code.to_be_bytes());
                out.extend_from_slice(extra);
            }
        }
        Ok(out)
    }
}

/// Build a VERSION reply body: the string NUL-padded to 65 bytes
/// (rxrpc.md §1.10). The last byte always stays NUL.
pub fn version_reply_body(version: &str) -> Result<Vec<u8>, WireError> {
    let b = version.as_bytes();
    if b.len() >= VERSION_STRING_LEN {
        return Err(WireError::VersionTooLong { len: b.len() });
    }
    let mut out = vec![0u8; VERSION_STRING_LEN];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// The text of a VERSION reply body: bytes up to the first NUL.
pub fn version_string(body: &[u8]) -> String {
    let end = body.iter().position(|&c| c == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// One DATA sub-packet of a (possibly jumbo) DATA datagram: its own header
/// (seq, serial and flags adjusted as the receiver must see them) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubPacket<'a> {
    pub header: Header,
    pub data: &'a [u8],
}

/// Split a DATA datagram into sub-packets (rxrpc.md §1.4). A datagram
/// without the JUMBO flag is one sub-packet. For each jumbo piece: the
/// payload is exactly 1412 bytes, followed by a 4-byte jumbo header whose
/// flags and cksum apply to the *next* sub-packet; seq and serial go up by
/// one per sub-packet (Linux `rxrpc_input_data()`).
pub fn split_jumbo<'a>(header: &Header, body: &'a [u8]) -> Result<Vec<SubPacket<'a>>, WireError> {
    let mut out = Vec::new();
    let mut h = *header;
    let mut rest = body;
    while h.flags & flags::JUMBO_PACKET != 0 {
        if out.len() + 1 >= MAX_JUMBO {
            return Err(WireError::BadJumbo {
                why: "more than 47 sub-packets",
            });
        }
        if h.flags & flags::LAST_PACKET != 0 {
            return Err(WireError::BadJumbo {
                why: "LAST_PACKET on a non-terminal sub-packet",
            });
        }
        if rest.len() < JUMBO_DATALEN + JUMBO_HEADER_LEN {
            return Err(WireError::BadJumbo {
                why: "non-terminal sub-packet shorter than 1412 + 4 bytes",
            });
        }
        let (data, tail) = rest.split_at(JUMBO_DATALEN);
        let mut sub = h;
        sub.flags &= !flags::JUMBO_PACKET;
        out.push(SubPacket { header: sub, data });
        // The jumbo header describes the next sub-packet.
        h.flags = tail[0];
        h.cksum = u16::from_be_bytes([tail[2], tail[3]]);
        h.seq = h.seq.wrapping_add(1);
        h.serial = h.serial.wrapping_add(1);
        rest = &tail[JUMBO_HEADER_LEN..];
    }
    out.push(SubPacket {
        header: h,
        data: rest,
    });
    Ok(out)
}

/// Build one jumbogram from consecutive sub-packets (the inverse of
/// [`split_jumbo`]). Sub-packets must have consecutive seq and serial,
/// every one but the last exactly 1412 bytes, at most 47 of them; the
/// jumbo headers carry the pad byte 0.
pub fn build_jumbo(subs: &[SubPacket<'_>]) -> Result<Vec<u8>, WireError> {
    let bad = |why| Err(WireError::JumboLayout { why });
    let Some(first) = subs.first() else {
        return bad("no sub-packets");
    };
    if subs.len() > MAX_JUMBO {
        return bad("more than 47 sub-packets");
    }
    let mut out = Vec::with_capacity(HEADER_LEN + subs.len() * (JUMBO_DATALEN + 4));
    let mut h0 = first.header;
    if subs.len() > 1 {
        h0.flags |= flags::JUMBO_PACKET;
    }
    h0.ptype = ptype::DATA;
    h0.encode_into(&mut out);
    for (i, s) in subs.iter().enumerate() {
        let last = i + 1 == subs.len();
        if !last && s.data.len() != JUMBO_DATALEN {
            return bad("non-terminal sub-packet is not 1412 bytes");
        }
        if !last && s.header.flags & flags::LAST_PACKET != 0 {
            return bad("LAST_PACKET on a non-terminal sub-packet");
        }
        if i > 0 {
            let p = &subs[i - 1].header;
            if s.header.seq != p.seq.wrapping_add(1) || s.header.serial != p.serial.wrapping_add(1)
            {
                return bad("seq/serial not consecutive");
            }
        }
        out.extend_from_slice(s.data);
        if let Some(next) = subs.get(i + 1) {
            let mut f = next.header.flags;
            if i + 2 < subs.len() {
                f |= flags::JUMBO_PACKET;
            } else {
                f &= !flags::JUMBO_PACKET;
            }
            out.push(f);
            out.push(0);
            out.extend_from_slice(&next.header.cksum.to_be_bytes());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(ptype: u8, fl: u8) -> Header {
        Header {
            epoch: 0x8123_4567,
            cid: 0x0000_0104,
            call: 1,
            seq: 1,
            serial: 1,
            ptype,
            flags: fl,
            user_status: 0,
            security_index: 0,
            cksum: 0,
            service_id: 52,
        }
    }

    #[test]
    fn header_bytes() {
        let h = hdr(ptype::DATA, 0x07);
        let mut b = Vec::new();
        h.encode_into(&mut b);
        assert_eq!(
            b,
            [
                0x81, 0x23, 0x45, 0x67, 0, 0, 1, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 7, 0, 0,
                0, 0, 0, 52
            ]
        );
        assert_eq!(Header::decode(&b), Ok(h));
        assert_eq!(h.channel(), 0);
    }

    #[test]
    fn short_inputs_are_errors() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::decode(&vec![0; n]).map(|_| ()),
                Err(WireError::Short {
                    what: "rx header",
                    need: HEADER_LEN,
                    got: n
                })
            );
        }
        let mut abort = Vec::new();
        hdr(ptype::ABORT, 0).encode_into(&mut abort);
        abort.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(
            Packet::decode(&abort).map(|_| ()),
            Err(WireError::Short {
                what: "abort body",
                need: 4,
                got: 2
            })
        );
        // nAcks says 5, only 2 present.
        let mut ack = Vec::new();
        hdr(ptype::ACK, 0).encode_into(&mut ack);
        ack.extend_from_slice(&[0; 17]);
        ack.push(5);
        ack.extend_from_slice(&[1, 1]);
        // 20 bytes of ACK body, where 18 + nAcks = 23 are needed.
        assert_eq!(
            Packet::decode(&ack).map(|_| ()),
            Err(WireError::Short {
                what: "ack body",
                need: 23,
                got: 20
            })
        );
    }

    /// The vlserver ACK from rxrpc.md §1.8, byte for byte.
    #[test]
    fn ack_with_trailer_bytes() {
        let body = [
            0, 0, 0, 0, // bufferSpace, maxSkew
            0, 0, 0, 1, // firstPacket
            0, 0, 0, 1, // previousPacket
            0, 0, 0, 1, // serial
            1, 1, 1, // reason REQUESTED, nAcks 1, acks [1]
            0, 0, 0, // pad
            0, 0, 0x05, 0xa4, 0, 0, 0x05, 0xa4, 0, 0, 0, 16, 0, 0, 0, 1,
        ];
        let a = Ack::decode(&body).expect("ack");
        assert_eq!(a.first_packet, 1);
        assert_eq!(a.reason, ack_reason::REQUESTED);
        assert_eq!(a.acks, [1]);
        assert_eq!(
            a.trailer,
            Some(AckTrailer {
                rx_mtu: 1444,
                max_mtu: 1444,
                rwind: 16,
                jumbo_max: 1
            })
        );
        assert!(a.acks_seq(1) && !a.acks_seq(2) && a.acks_seq(0));
        let mut again = Vec::new();
        a.encode_into(&mut again).expect("encode");
        assert_eq!(again, body);
    }

    #[test]
    fn ack_without_or_with_partial_trailer_round_trips() {
        let mut base = vec![0u8; ACK_FIXED_LEN];
        base[16] = ack_reason::IDLE;
        for extra in [0usize, 3, 10, 18] {
            let mut b = base.clone();
            b.extend((0..extra).map(|i| i as u8));
            let a = Ack::decode(&b).expect("ack");
            assert_eq!(a.trailer.is_some(), extra >= 19);
            let mut again = Vec::new();
            a.encode_into(&mut again).expect("encode");
            assert_eq!(again, b);
        }
    }

    #[test]
    fn abort_and_version() {
        let p = Packet {
            header: hdr(ptype::ABORT, 0),
            body: Body::Abort {
                code: abort::RXGEN_OPCODE,
                extra: vec![],
            },
        };
        let b = p.encode().expect("encode");
        assert_eq!(&b[HEADER_LEN..], [0xff, 0xff, 0xfe, 0x39]);
        assert_eq!(Packet::decode(&b), Ok(p));

        let body = version_reply_body("netboot-configd 0.1.0").expect("fits");
        assert_eq!(body.len(), 65);
        assert_eq!(version_string(&body), "netboot-configd 0.1.0");
        assert_eq!(
            version_reply_body(&"x".repeat(65)).map_err(|e| e.to_string()),
            Err("version string of 65 bytes does not fit the 65-byte field".into())
        );
        assert!(version_reply_body(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn jumbo_split_and_build() {
        let a = vec![0xaa; JUMBO_DATALEN];
        let b = vec![0xbb; JUMBO_DATALEN];
        let c = vec![0xcc; 7];
        let mut h = hdr(ptype::DATA, flags::CLIENT_INITIATED);
        h.seq = 5;
        h.serial = 9;
        let mk = |seq, serial, fl| {
            let mut x = h;
            x.seq = seq;
            x.serial = serial;
            x.flags = fl;
            x
        };
        let subs = [
            SubPacket {
                header: mk(5, 9, flags::CLIENT_INITIATED),
                data: &a,
            },
            SubPacket {
                header: mk(6, 10, flags::CLIENT_INITIATED),
                data: &b,
            },
            SubPacket {
                header: mk(7, 11, flags::CLIENT_INITIATED | flags::LAST_PACKET),
                data: &c,
            },
        ];
        let wire = build_jumbo(&subs).expect("build");
        assert_eq!(
            wire.len(),
            HEADER_LEN + 2 * (JUMBO_DATALEN + JUMBO_HEADER_LEN) + 7
        );
        assert_eq!(wire[21], flags::CLIENT_INITIATED | flags::JUMBO_PACKET);
        // First jumbo header: next sub-packet is itself jumbo.
        let j = HEADER_LEN + JUMBO_DATALEN;
        assert_eq!(
            &wire[j..j + 4],
            [flags::CLIENT_INITIATED | flags::JUMBO_PACKET, 0, 0, 0]
        );
        let p = Packet::decode(&wire).expect("decode");
        let Body::Data(body) = &p.body else {
            panic!("not data")
        };
        let split = split_jumbo(&p.header, body).expect("split");
        assert_eq!(split, subs);
        assert_eq!(build_jumbo(&split).expect("rebuild"), wire);
    }

    #[test]
    fn bad_jumbo_rejected() {
        let h = hdr(ptype::DATA, flags::JUMBO_PACKET);
        let err =
            |h: &Header, body: &[u8]| split_jumbo(h, body).map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            err(&h, &[0; 100]),
            format!("malformed jumbogram: non-terminal sub-packet shorter than {JUMBO_DATALEN} + 4 bytes")
        );
        let h2 = hdr(ptype::DATA, flags::JUMBO_PACKET | flags::LAST_PACKET);
        assert_eq!(
            err(&h2, &[0; 2000]),
            "malformed jumbogram: LAST_PACKET on a non-terminal sub-packet"
        );
        let plain = hdr(ptype::DATA, 0);
        assert_eq!(split_jumbo(&plain, &[1, 2]).map(|v| v.len()), Ok(1));
        // 48 sub-packets is one too many.
        let mut body = Vec::new();
        for _ in 0..47 {
            body.extend_from_slice(&[0; JUMBO_DATALEN]);
            body.extend_from_slice(&[flags::JUMBO_PACKET, 0, 0, 0]);
        }
        assert_eq!(
            err(&h, &body),
            "malformed jumbogram: more than 47 sub-packets"
        );
    }
}
