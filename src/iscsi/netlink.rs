//! NETLINK_ISCSI wire format: `nlmsghdr` + `struct iscsi_uevent` + payload.
//!
//! Pure encode/decode, no I/O (the socket and the session lifecycle live in
//! `kernel.rs`). Layout from Linux `include/scsi/iscsi_if.h` (identical in
//! 6.1 and open-iscsi's copy); reference: shared/reference
//! iscsi-kernel-and-login.md §1. Everything here is host byte order; the
//! iSCSI PDU carried in SEND_PDU / KEVENT_RECV_PDU is big-endian and is
//! handled by `pdu.rs`. The `nlmsghdr` framing is [`crate::netlink::hdr`]'s.

use std::fmt;
use std::mem::size_of;

pub use crate::netlink::hdr::NLMSG_HDRLEN;
use crate::netlink::hdr::{self, HdrError, NlMsgBuilder, Payload};

/// `NETLINK_ISCSI` protocol number (include/uapi/linux/netlink.h).
pub const NETLINK_ISCSI: i32 = 8;
/// Multicast group `ISCSI_NL_GRP_ISCSID`: RECV_PDU, CONN_ERROR and session
/// events only reach sockets bound to it.
pub const GROUP_ISCSID: u32 = 1;

/// `sizeof(struct iscsi_uevent)`.
pub const UEVENT_LEN: usize = 56;
/// Offset of the payload (SET_PARAM value, PDU) in a whole message.
pub const PAYLOAD_OFF: usize = NLMSG_HDRLEN + UEVENT_LEN;

/// The C layout, kept only to prove the offsets below at compile time:
/// `type`, `iferror`, `transport_handle`, then the 24-byte request union `u`
/// (its largest members, `msg_bind_conn` and `msg_stop_conn`, hold a u64 and
/// pad to 24) and the 16-byte reply union `r`.
#[repr(C)]
#[allow(dead_code)]
struct IscsiUevent {
    kind: u32,
    iferror: u32,
    transport_handle: u64,
    u: [u64; 3],
    r: [u32; 4],
}
const _: () = assert!(size_of::<IscsiUevent>() == UEVENT_LEN);
const _: () = assert!(std::mem::offset_of!(IscsiUevent, u) == U_OFF);
const _: () = assert!(std::mem::offset_of!(IscsiUevent, r) == R_OFF);

const U_OFF: usize = 16;
const R_OFF: usize = 40;

// enum iscsi_uevent_e (UEVENT_BASE 10, KEVENT_BASE 100).
pub const CREATE_SESSION: u32 = 11;
pub const DESTROY_SESSION: u32 = 12;
pub const CREATE_CONN: u32 = 13;
pub const DESTROY_CONN: u32 = 14;
pub const BIND_CONN: u32 = 15;
pub const SET_PARAM: u32 = 16;
pub const START_CONN: u32 = 17;
pub const STOP_CONN: u32 = 18;
pub const SEND_PDU: u32 = 19;
pub const UNBIND_SESSION: u32 = 27;

pub const KEVENT_RECV_PDU: u32 = 101;
pub const KEVENT_CONN_ERROR: u32 = 102;
pub const KEVENT_IF_ERROR: u32 = 103;
pub const KEVENT_DESTROY_SESSION: u32 = 104;
pub const KEVENT_UNBIND_SESSION: u32 = 105;
pub const KEVENT_CREATE_SESSION: u32 = 106;
pub const KEVENT_CONN_LOGIN_STATE: u32 = 109;

/// `STOP_CONN` flag: terminate (the connection will be destroyed).
pub const STOP_CONN_TERM: u32 = 1;
/// `STOP_CONN` flag: stop for recovery (the connection is bound again).
pub const STOP_CONN_RECOVER: u32 = 3;

/// `enum iscsi_param` values we set (iscsi_if.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Param {
    MaxRecvDlength = 0,
    MaxXmitDlength = 1,
    HdrDgstEn = 2,
    DataDgstEn = 3,
    InitialR2tEn = 4,
    MaxR2t = 5,
    ImmDataEn = 6,
    FirstBurst = 7,
    MaxBurst = 8,
    PduInorderEn = 9,
    DataseqInorderEn = 10,
    Erl = 11,
    IfMarkerEn = 12,
    OfMarkerEn = 13,
    ExpStatsn = 14,
    TargetName = 15,
    Tpgt = 16,
    PersistentAddress = 17,
    PersistentPort = 18,
    SessRecoveryTmo = 19,
    Username = 22,
    UsernameIn = 23,
    Password = 24,
    PasswordIn = 25,
    FastAbort = 26,
    AbortTmo = 27,
    LuResetTmo = 28,
    PingTmo = 30,
    RecvTmo = 31,
    IfaceName = 32,
    InitiatorName = 34,
    TgtResetTmo = 35,
    TargetAlias = 36,
    DefTime2wait = 49,
    DefTime2retain = 50,
}

impl Param {
    /// Name as in iscsi_if.h, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Param::MaxRecvDlength => "MAX_RECV_DLENGTH",
            Param::MaxXmitDlength => "MAX_XMIT_DLENGTH",
            Param::HdrDgstEn => "HDRDGST_EN",
            Param::DataDgstEn => "DATADGST_EN",
            Param::InitialR2tEn => "INITIAL_R2T_EN",
            Param::MaxR2t => "MAX_R2T",
            Param::ImmDataEn => "IMM_DATA_EN",
            Param::FirstBurst => "FIRST_BURST",
            Param::MaxBurst => "MAX_BURST",
            Param::PduInorderEn => "PDU_INORDER_EN",
            Param::DataseqInorderEn => "DATASEQ_INORDER_EN",
            Param::Erl => "ERL",
            Param::IfMarkerEn => "IFMARKER_EN",
            Param::OfMarkerEn => "OFMARKER_EN",
            Param::ExpStatsn => "EXP_STATSN",
            Param::TargetName => "TARGET_NAME",
            Param::Tpgt => "TPGT",
            Param::PersistentAddress => "PERSISTENT_ADDRESS",
            Param::PersistentPort => "PERSISTENT_PORT",
            Param::SessRecoveryTmo => "SESS_RECOVERY_TMO",
            Param::Username => "USERNAME",
            Param::UsernameIn => "USERNAME_IN",
            Param::Password => "PASSWORD",
            Param::PasswordIn => "PASSWORD_IN",
            Param::FastAbort => "FAST_ABORT",
            Param::AbortTmo => "ABORT_TMO",
            Param::LuResetTmo => "LU_RESET_TMO",
            Param::PingTmo => "PING_TMO",
            Param::RecvTmo => "RECV_TMO",
            Param::IfaceName => "IFACE_NAME",
            Param::InitiatorName => "INITIATOR_NAME",
            Param::TgtResetTmo => "TGT_RESET_TMO",
            Param::TargetAlias => "TARGET_ALIAS",
            Param::DefTime2wait => "DEF_TIME2WAIT",
            Param::DefTime2retain => "DEF_TIME2RETAIN",
        }
    }

    /// Credentials: their values never appear in logs or errors.
    pub fn is_secret(self) -> bool {
        matches!(self, Param::Password | Param::PasswordIn)
    }
}

/// One request to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    CreateSession {
        initial_cmdsn: u32,
        cmds_max: u16,
        queue_depth: u16,
    },
    DestroySession {
        sid: u32,
    },
    /// Remove the session's SCSI target (its disks) while the connection
    /// still runs, so their caches are flushed before a logout.
    UnbindSession {
        sid: u32,
    },
    CreateConn {
        sid: u32,
        cid: u32,
    },
    DestroyConn {
        sid: u32,
        cid: u32,
    },
    BindConn {
        sid: u32,
        cid: u32,
        /// For iscsi_tcp: the connected TCP socket's fd in our fd table.
        transport_eph: u64,
        is_leading: bool,
    },
    SetParam {
        sid: u32,
        cid: u32,
        param: Param,
        value: &'a str,
    },
    StartConn {
        sid: u32,
        cid: u32,
    },
    StopConn {
        sid: u32,
        cid: u32,
        conn_handle: u64,
        flag: u32,
    },
    SendPdu {
        sid: u32,
        cid: u32,
        /// BHS (+ AHS), exactly as on the wire.
        hdr: &'a [u8],
        data: &'a [u8],
    },
}

impl Request<'_> {
    pub fn kind(&self) -> u32 {
        match self {
            Request::CreateSession { .. } => CREATE_SESSION,
            Request::DestroySession { .. } => DESTROY_SESSION,
            Request::UnbindSession { .. } => UNBIND_SESSION,
            Request::CreateConn { .. } => CREATE_CONN,
            Request::DestroyConn { .. } => DESTROY_CONN,
            Request::BindConn { .. } => BIND_CONN,
            Request::SetParam { .. } => SET_PARAM,
            Request::StartConn { .. } => START_CONN,
            Request::StopConn { .. } => STOP_CONN,
            Request::SendPdu { .. } => SEND_PDU,
        }
    }

    /// Name for messages ("CREATE_SESSION").
    pub fn name(&self) -> &'static str {
        kind_name(self.kind())
    }
}

pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        CREATE_SESSION => "CREATE_SESSION",
        DESTROY_SESSION => "DESTROY_SESSION",
        CREATE_CONN => "CREATE_CONN",
        DESTROY_CONN => "DESTROY_CONN",
        BIND_CONN => "BIND_CONN",
        SET_PARAM => "SET_PARAM",
        START_CONN => "START_CONN",
        STOP_CONN => "STOP_CONN",
        SEND_PDU => "SEND_PDU",
        UNBIND_SESSION => "UNBIND_SESSION",
        KEVENT_RECV_PDU => "KEVENT_RECV_PDU",
        KEVENT_CONN_ERROR => "KEVENT_CONN_ERROR",
        KEVENT_IF_ERROR => "KEVENT_IF_ERROR",
        KEVENT_DESTROY_SESSION => "KEVENT_DESTROY_SESSION",
        KEVENT_UNBIND_SESSION => "KEVENT_UNBIND_SESSION",
        KEVENT_CREATE_SESSION => "KEVENT_CREATE_SESSION",
        KEVENT_CONN_LOGIN_STATE => "KEVENT_CONN_LOGIN_STATE",
        _ => "unknown",
    }
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_ne_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Encode one request as a whole netlink message. `nlmsg_type` and the
/// uevent `type` are both the request type (the kernel dispatches on the
/// former); flags 0 as open-iscsi sends them.
pub fn encode(req: &Request<'_>, transport_handle: u64, seq: u32, portid: u32) -> Vec<u8> {
    // The iscsi_uevent; offsets below are into it.
    let mut b = [0u8; UEVENT_LEN];
    put32(&mut b, 0, req.kind());
    put64(&mut b, 8, transport_handle);
    let u = U_OFF;
    match *req {
        Request::CreateSession {
            initial_cmdsn,
            cmds_max,
            queue_depth,
        } => {
            put32(&mut b, u, initial_cmdsn);
            put16(&mut b, u + 4, cmds_max);
            put16(&mut b, u + 6, queue_depth);
        }
        Request::DestroySession { sid } | Request::UnbindSession { sid } => put32(&mut b, u, sid),
        Request::CreateConn { sid, cid }
        | Request::DestroyConn { sid, cid }
        | Request::StartConn { sid, cid } => {
            put32(&mut b, u, sid);
            put32(&mut b, u + 4, cid);
        }
        Request::BindConn {
            sid,
            cid,
            transport_eph,
            is_leading,
        } => {
            put32(&mut b, u, sid);
            put32(&mut b, u + 4, cid);
            put64(&mut b, u + 8, transport_eph);
            put32(&mut b, u + 16, is_leading as u32);
        }
        Request::SetParam {
            sid,
            cid,
            param,
            value,
        } => {
            put32(&mut b, u, sid);
            put32(&mut b, u + 4, cid);
            put32(&mut b, u + 8, param as u32);
            // NUL-terminated, `len` counts the NUL.
            put32(&mut b, u + 12, (value.len() + 1) as u32);
        }
        Request::StopConn {
            sid,
            cid,
            conn_handle,
            flag,
        } => {
            put32(&mut b, u, sid);
            put32(&mut b, u + 4, cid);
            put64(&mut b, u + 8, conn_handle);
            put32(&mut b, u + 16, flag);
        }
        Request::SendPdu {
            sid,
            cid,
            hdr,
            data,
        } => {
            put32(&mut b, u, sid);
            put32(&mut b, u + 4, cid);
            put32(&mut b, u + 8, hdr.len() as u32);
            put32(&mut b, u + 12, data.len() as u32);
        }
    }
    let mut m = NlMsgBuilder::new(req.kind() as u16, 0, seq, portid);
    m.bytes(&b);
    match req {
        Request::SetParam { value, .. } => {
            m.bytes(value.as_bytes()).bytes(&[0]);
        }
        Request::SendPdu { hdr, data, .. } => {
            m.bytes(hdr).bytes(data);
        }
        _ => {}
    }
    m.finish()
}

/// One message from the kernel, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The unicast echo of a request: `kind` is the request type; `r` holds
    /// the reply union (sid/host_no, sid/cid or retcode).
    Reply {
        kind: u32,
        r: [u32; 4],
    },
    /// KEVENT_IF_ERROR: the request of type `request` failed with `-errno`.
    IfError {
        request: u32,
        errno: i32,
    },
    /// A PDU the target sent on a connection still in login (or any PDU
    /// libiscsi hands to userspace): BHS then data, as on the wire.
    RecvPdu {
        sid: u32,
        cid: u32,
        pdu: Vec<u8>,
    },
    /// The connection failed (`enum iscsi_err`, 1000 + n).
    ConnError {
        sid: u32,
        cid: u32,
        error: u32,
    },
    DestroySession {
        host_no: u32,
        sid: u32,
    },
    CreateSession {
        sid: u32,
        host_no: u32,
    },
    UnbindSession {
        sid: u32,
        host_no: u32,
    },
    ConnLoginState {
        sid: u32,
        cid: u32,
        state: u32,
    },
    /// Anything else (kept, not rejected: a newer kernel may send more).
    Other {
        kind: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than nlmsghdr + iscsi_uevent.
    Short { len: usize },
    /// nlmsg_len inconsistent with the datagram.
    BadLength { nlmsg_len: usize, available: usize },
    /// A netlink-level error (NLMSG_ERROR) from the socket layer: positive
    /// errno, 0 for an ACK.
    Netlink { errno: i32 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { len } => write!(
                f,
                "NETLINK_ISCSI message of {len} bytes is shorter than nlmsghdr + iscsi_uevent ({PAYLOAD_OFF})"
            ),
            DecodeError::BadLength {
                nlmsg_len,
                available,
            } => write!(
                f,
                "NETLINK_ISCSI nlmsg_len {nlmsg_len} does not fit the {available} bytes received"
            ),
            DecodeError::Netlink { errno: 0 } => {
                write!(f, "NETLINK_ISCSI: a netlink ACK where a reply was due")
            }
            DecodeError::Netlink { errno } => write!(
                f,
                "NETLINK_ISCSI: netlink error: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl From<HdrError> for DecodeError {
    fn from(e: HdrError) -> DecodeError {
        match e {
            HdrError::Short { have, .. } => DecodeError::Short { len: have },
            HdrError::BadLength { len, have, .. } => DecodeError::BadLength {
                nlmsg_len: len as usize,
                available: have,
            },
            HdrError::ShortControl { len, .. } => DecodeError::Short {
                len: NLMSG_HDRLEN + len,
            },
        }
    }
}

fn get32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// Header fields of one message (for matching replies to requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub nlmsg_type: u16,
    pub seq: u32,
    pub pid: u32,
}

/// Decode every message in one datagram. Truncated trailing bytes end the
/// walk with an error for that message only; earlier ones are returned.
pub fn decode(datagram: &[u8]) -> Vec<Result<(Header, Message), DecodeError>> {
    let mut out: Vec<_> = hdr::messages(datagram).map(|m| decode_one(&m?)).collect();
    if out.is_empty() {
        out.push(Err(DecodeError::Short {
            len: datagram.len(),
        }));
    }
    out
}

fn decode_one(m: &hdr::NlMsg<'_>) -> Result<(Header, Message), DecodeError> {
    let nlmsg_type = m.hdr.ty;
    let hdr = Header {
        nlmsg_type,
        seq: m.hdr.seq,
        pid: m.hdr.pid,
    };
    // NLMSG_ERROR comes from the netlink core rather than the iSCSI
    // transport (errno 0 is an ACK). Everything else carries an
    // iscsi_uevent: replies echo the request type in nlmsg_type, kernel
    // events use type 0 (scsi_transport_iscsi.c `iscsi_if_send_reply`,
    // `iscsi_multicast_skb` callers).
    if let Payload::Error { errno, .. } = m.payload()? {
        return Err(DecodeError::Netlink { errno });
    }
    let e = m.body;
    if e.len() < UEVENT_LEN {
        return Err(DecodeError::Short {
            len: NLMSG_HDRLEN + e.len(),
        });
    }
    let kind = get32(e, 0);
    let iferror = get32(e, 4) as i32;
    let r = [
        get32(e, R_OFF),
        get32(e, R_OFF + 4),
        get32(e, R_OFF + 8),
        get32(e, R_OFF + 12),
    ];
    let msg = match kind {
        KEVENT_IF_ERROR => Message::IfError {
            // The echo keeps the request type in nlmsg_type.
            request: u32::from(nlmsg_type),
            errno: -iferror,
        },
        KEVENT_RECV_PDU => Message::RecvPdu {
            sid: r[0],
            cid: r[1],
            pdu: e.get(UEVENT_LEN..).unwrap_or_default().to_vec(),
        },
        KEVENT_CONN_ERROR => Message::ConnError {
            sid: r[0],
            cid: r[1],
            error: r[2],
        },
        // Field order reversed against the other replies (iscsi_if.h
        // `d_session`: host_no first).
        KEVENT_DESTROY_SESSION => Message::DestroySession {
            host_no: r[0],
            sid: r[1],
        },
        KEVENT_CREATE_SESSION => Message::CreateSession {
            sid: r[0],
            host_no: r[1],
        },
        KEVENT_UNBIND_SESSION => Message::UnbindSession {
            sid: r[0],
            host_no: r[1],
        },
        KEVENT_CONN_LOGIN_STATE => Message::ConnLoginState {
            sid: r[0],
            cid: r[1],
            state: r[2],
        },
        CREATE_SESSION..=SEND_PDU | UNBIND_SESSION => Message::Reply { kind, r },
        _ => Message::Other { kind },
    };
    Ok((hdr, msg))
}

/// `enum iscsi_err` names (iscsi_if.h, ISCSI_ERR_BASE 1000).
pub fn conn_error_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1001 => "DATASN",
        1002 => "DATA_OFFSET",
        1003 => "MAX_CMDSN",
        1004 => "EXP_CMDSN",
        1005 => "BAD_OPCODE",
        1006 => "DATALEN",
        1007 => "AHSLEN",
        1008 => "PROTO",
        1009 => "LUN",
        1010 => "BAD_ITT",
        1011 => "CONN_FAILED",
        1012 => "R2TSN",
        1013 => "SESSION_FAILED",
        1014 => "HDR_DGST",
        1015 => "DATA_DGST",
        1016 => "PARAM_NOT_FOUND",
        1017 => "NO_SCSI_CMD",
        1018 => "INVALID_HOST",
        1019 => "XMIT_FAILED",
        1020 => "TCP_CONN_CLOSE",
        1021 => "SCSI_EH_SESSION_RST",
        1022 => "NOP_TIMEDOUT",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn create_session_layout() {
        let b = encode(
            &Request::CreateSession {
                initial_cmdsn: 7,
                cmds_max: 128,
                queue_depth: 32,
            },
            0x1122_3344_5566_7788,
            9,
            42,
        );
        assert_eq!(b.len(), 72);
        assert_eq!(u32_at(&b, 0), 72); // nlmsg_len
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 11); // nlmsg_type
        assert_eq!(u32_at(&b, 8), 9); // seq
        assert_eq!(u32_at(&b, 12), 42); // pid
        assert_eq!(u32_at(&b, 16), 11); // uevent type
        assert_eq!(
            u64::from_ne_bytes(b[24..32].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        assert_eq!(u32_at(&b, 32), 7); // initial_cmdsn @16
        assert_eq!(u16::from_ne_bytes([b[36], b[37]]), 128); // cmds_max @20
        assert_eq!(u16::from_ne_bytes([b[38], b[39]]), 32); // queue_depth @22
    }

    #[test]
    fn set_param_counts_the_nul_and_pads() {
        let b = encode(
            &Request::SetParam {
                sid: 1,
                cid: 0,
                param: Param::TargetName,
                value: "iqn.x",
            },
            5,
            1,
            0,
        );
        assert_eq!(u32_at(&b, 0) as usize, PAYLOAD_OFF + 6);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u32_at(&b, 16 + 16), 1); // sid
        assert_eq!(u32_at(&b, 16 + 24), 15); // param @24
        assert_eq!(u32_at(&b, 16 + 28), 6); // len @28 incl. NUL
        assert_eq!(&b[PAYLOAD_OFF..PAYLOAD_OFF + 6], b"iqn.x\0");
    }

    #[test]
    fn bind_and_send_pdu_layout() {
        let b = encode(
            &Request::BindConn {
                sid: 3,
                cid: 0,
                transport_eph: 17,
                is_leading: true,
            },
            1,
            1,
            0,
        );
        assert_eq!(u64::from_ne_bytes(b[40..48].try_into().unwrap()), 17); // @24
        assert_eq!(u32_at(&b, 48), 1); // is_leading @32
        let hdr = [0x43u8; 48];
        let b = encode(
            &Request::SendPdu {
                sid: 3,
                cid: 0,
                hdr: &hdr,
                data: b"ab",
            },
            1,
            2,
            0,
        );
        assert_eq!(u32_at(&b, 40), 48); // hdr_size @24
        assert_eq!(u32_at(&b, 44), 2); // data_size @28
        assert_eq!(&b[PAYLOAD_OFF + 48..PAYLOAD_OFF + 50], b"ab");
    }

    fn kernel_msg(nl_type: u16, kind: u32, iferror: i32, r: [u32; 4], payload: &[u8]) -> Vec<u8> {
        let len = PAYLOAD_OFF + payload.len();
        let mut b = vec![0u8; len];
        b[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        b[4..6].copy_from_slice(&nl_type.to_ne_bytes());
        b[16..20].copy_from_slice(&kind.to_ne_bytes());
        b[20..24].copy_from_slice(&iferror.to_ne_bytes());
        for (i, v) in r.iter().enumerate() {
            let o = NLMSG_HDRLEN + R_OFF + 4 * i;
            b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b[PAYLOAD_OFF..].copy_from_slice(payload);
        b
    }

    #[test]
    fn decodes_replies_and_events() {
        let m = kernel_msg(11, 11, 0, [4, 2, 0, 0], &[]);
        let (_, msg) = decode(&m).remove(0).unwrap();
        assert_eq!(
            msg,
            Message::Reply {
                kind: 11,
                r: [4, 2, 0, 0]
            }
        );
        let m = kernel_msg(15, 103, -22, [0; 4], &[]);
        let (_, msg) = decode(&m).remove(0).unwrap();
        assert_eq!(
            msg,
            Message::IfError {
                request: 15,
                errno: 22
            }
        );
        let m = kernel_msg(0, 104, 0, [3, 9, 0, 0], &[]);
        let (_, msg) = decode(&m).remove(0).unwrap();
        assert_eq!(msg, Message::DestroySession { host_no: 3, sid: 9 });
        // UNBIND_SESSION (27) lies outside 11..=19: its echo is a reply too.
        let m = kernel_msg(27, 27, 0, [0; 4], &[]);
        let (_, msg) = decode(&m).remove(0).unwrap();
        assert_eq!(
            msg,
            Message::Reply {
                kind: 27,
                r: [0; 4]
            }
        );
        let req = encode(&Request::UnbindSession { sid: 5 }, 7, 1, 0);
        assert_eq!(&req[16..20], &27u32.to_ne_bytes());
        assert_eq!(
            &req[NLMSG_HDRLEN + U_OFF..NLMSG_HDRLEN + U_OFF + 4],
            &5u32.to_ne_bytes()
        );
        let pdu = [0x23u8; 52];
        let m = kernel_msg(0, 101, 0, [1, 0, 0, 0], &pdu);
        let (_, msg) = decode(&m).remove(0).unwrap();
        assert_eq!(
            msg,
            Message::RecvPdu {
                sid: 1,
                cid: 0,
                pdu: pdu.to_vec()
            }
        );
        let m = kernel_msg(0, 102, 0, [1, 0, 1020, 0], &[]);
        let (_, msg) = decode(&m).remove(0).unwrap();
        assert_eq!(
            msg,
            Message::ConnError {
                sid: 1,
                cid: 0,
                error: 1020
            }
        );
        assert_eq!(conn_error_name(1020), "TCP_CONN_CLOSE");
    }

    #[test]
    fn two_messages_in_one_datagram() {
        let mut d = kernel_msg(0, 106, 0, [1, 0, 0, 0], &[0, 0, 1]);
        while d.len() % 4 != 0 {
            d.push(0);
        }
        d.extend(kernel_msg(0, 109, 0, [1, 0, 3, 0], &[]));
        let all = decode(&d);
        assert_eq!(all.len(), 2);
        assert!(matches!(
            all[1],
            Ok((_, Message::ConnLoginState { state: 3, .. }))
        ));
    }

    #[test]
    fn netlink_errors_and_trailing_bytes() {
        // nlmsgerr: error −EPERM, then the echoed request header.
        let mut m = vec![0u8; 36];
        m[0..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&2u16.to_ne_bytes());
        m[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        let got = decode(&m);
        assert_eq!(got, [Err(DecodeError::Netlink { errno: 1 })]);
        assert_eq!(
            DecodeError::Netlink { errno: 1 }.to_string(),
            format!(
                "NETLINK_ISCSI: netlink error: {}",
                std::io::Error::from_raw_os_error(1)
            )
        );
        // A reply, then 3 stray bytes: the reply is kept, the rest reported.
        let mut d = kernel_msg(11, 11, 0, [4, 2, 0, 0], &[]);
        d.extend_from_slice(&[1, 2, 3]);
        let all = decode(&d);
        assert!(matches!(all[0], Ok((_, Message::Reply { kind: 11, .. }))));
        assert_eq!(all[1], Err(DecodeError::Short { len: 3 }));
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode(&junk);
        }
        // nlmsg_len larger than the datagram.
        let mut m = kernel_msg(0, 101, 0, [0; 4], &[]);
        m[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(decode(&m)[0], Err(DecodeError::BadLength { .. })));
        // Valid header, too short for iscsi_uevent.
        let mut m = vec![0u8; 20];
        m[0..4].copy_from_slice(&20u32.to_ne_bytes());
        assert!(matches!(decode(&m)[0], Err(DecodeError::Short { .. })));
    }
}
