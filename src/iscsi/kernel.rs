//! The kernel data path: a NETLINK_ISCSI socket, the kernel PDU channel and
//! the session lifecycle (what `iscsistart` + its private iscsid do).
//!
//! Order of operations (open-iscsi usr/initiator.c, reference §3): TCP
//! connect in userspace → CREATE_SESSION → CREATE_CONN → BIND_CONN (the
//! socket fd) → SET_PARAM of the names, addresses, credentials and timeouts
//! → login over SEND_PDU / KEVENT_RECV_PDU with the same state machine as the
//! userspace tools → SET_PARAM of every negotiated value → START_CONN.
//! Anything that fails tears down what was created (STOP_CONN TERM →
//! DESTROY_CONN → DESTROY_SESSION): a failed login leaves no session.

use super::channel::{connect_stream, ChannelError, PduChannel};
use super::connect::Connector;
use super::login::{LoginOutcome, Portal};
use super::netlink::{self, Message, Param, Request};
use super::node::NodeSettings;
use super::pdu::{self, Pdu, BHS_LEN};
use crate::plan::Chap;
use crate::sys::errno::errno_text;
use crate::sys::poll::poll_until;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{
    bind, getsockname, recvfrom, sendto, socket_with, AddressFamily, RecvFlags, SendFlags,
    SocketFlags, SocketType,
};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long one request/reply round trip with the kernel may take. Replies
/// are synchronous in the kernel (iscsi_if_rx); seconds mean it is wedged.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum KernelError {
    /// `/sys/class/iscsi_transport/tcp/handle` unreadable or not a number.
    TransportHandle {
        path: PathBuf,
        error: String,
    },
    Socket(Errno),
    Bind(Errno),
    Send {
        request: &'static str,
        errno: Errno,
    },
    Recv {
        request: &'static str,
        errno: Errno,
    },
    /// No reply from the kernel in time.
    NoReply {
        request: &'static str,
    },
    /// KEVENT_IF_ERROR: the kernel refused the request with this errno.
    Refused {
        request: &'static str,
        errno: i32,
    },
    /// The transport's result (`r.retcode`) was not zero.
    RetCode {
        request: &'static str,
        code: i32,
    },
    /// SET_PARAM failed; the value is shown unless it is a credential.
    SetParam {
        param: &'static str,
        value: String,
        errno: i32,
    },
    /// A PDU we built could not be encoded.
    Pdu(String),
    /// KEVENT_CONN_ERROR for our connection.
    ConnError {
        sid: u32,
        cid: u32,
        code: u32,
    },
    /// The kernel answered with something we cannot read.
    Decode(netlink::DecodeError),
}

/// What the iSCSI transport's errnos usually mean (replies carry them as
/// plain numbers).
const HINTS: &[(Errno, &str)] = &[
    (
        Errno::PERM,
        "NETLINK_ISCSI needs CAP_SYS_ADMIN in the initial user namespace",
    ),
    (
        Errno::INVAL,
        "unknown transport handle or malformed request",
    ),
    (Errno::NOTCONN, "connection not bound yet"),
];

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::TransportHandle { path, error } => write!(
                f,
                "reading the iscsi_tcp transport handle {}: {error} (hint: is the iscsi_tcp module loaded?)",
                path.display()
            ),
            KernelError::Socket(e) => write!(f, "socket(AF_NETLINK, NETLINK_ISCSI): {e} (hint: scsi_transport_iscsi not loaded?)"),
            KernelError::Bind(e) => write!(f, "bind(NETLINK_ISCSI, group 1): {e}"),
            KernelError::Send { request, errno } => {
                write!(f, "sending {request} to the kernel: {errno}")
            }
            KernelError::Recv { request, errno } => {
                write!(f, "receiving the kernel's answer to {request}: {errno}")
            }
            KernelError::NoReply { request } => write!(
                f,
                "the kernel did not answer {request} within {}s",
                REPLY_TIMEOUT.as_secs()
            ),
            KernelError::Refused { request, errno } => {
                write!(f, "kernel refused {request}: {}", errno_text(*errno, HINTS))
            }
            KernelError::RetCode { request, code } => {
                let errno = code.wrapping_neg();
                write!(f, "{request} failed in the iSCSI transport: {}", errno_text(errno, HINTS))
            }
            KernelError::SetParam {
                param,
                value,
                errno,
            } => write!(
                f,
                "SET_PARAM {param}={value:?} failed: {}",
                errno_text(*errno, HINTS)
            ),
            KernelError::ConnError { sid, cid, code } => write!(
                f,
                "connection {sid}:{cid} failed: kernel reported ISCSI_ERR_{} ({code})",
                netlink::conn_error_name(*code)
            ),
            KernelError::Decode(e) => write!(f, "{e}"),
            KernelError::Pdu(e) => write!(f, "cannot encode the PDU: {e}"),
        }
    }
}

impl std::error::Error for KernelError {}

impl From<KernelError> for ChannelError {
    fn from(e: KernelError) -> ChannelError {
        ChannelError::Other(e.to_string())
    }
}

/// Read the transport handle the kernel gave iscsi_tcp.
pub fn transport_handle(sys: &Path) -> Result<u64, KernelError> {
    let path = sys.join("class/iscsi_transport/tcp/handle");
    let text = std::fs::read_to_string(&path).map_err(|e| KernelError::TransportHandle {
        path: path.clone(),
        error: e.to_string(),
    })?;
    text.trim()
        .parse()
        .map_err(|_| KernelError::TransportHandle {
            path,
            error: format!("{:?} is not a number", text.trim()),
        })
}

/// One NETLINK_ISCSI socket bound to group 1. Messages that arrive while we
/// wait for something else (events, PDUs) are queued, not lost.
pub struct IscsiNl {
    fd: OwnedFd,
    portid: u32,
    seq: Cell<u32>,
    handle: u64,
    pending: RefCell<VecDeque<Message>>,
}

impl IscsiNl {
    pub fn open(sys: &Path) -> Result<IscsiNl, KernelError> {
        let handle = transport_handle(sys)?;
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(rustix::net::netlink::ISCSI),
        )
        .map_err(KernelError::Socket)?;
        bind(&fd, &SocketAddrNetlink::new(0, netlink::GROUP_ISCSID)).map_err(KernelError::Bind)?;
        // Login responses can carry 8 KiB; a burst of events must not
        // overflow the default queue. Best effort (capped by rmem_max).
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        let portid = getsockname(&fd)
            .ok()
            .and_then(|a| SocketAddrNetlink::try_from(a).ok())
            .map_or(0, |a| a.pid());
        Ok(IscsiNl {
            fd,
            portid,
            seq: Cell::new(0),
            handle,
            pending: RefCell::new(VecDeque::new()),
        })
    }

    fn send(&self, req: &Request<'_>) -> Result<(), KernelError> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let bytes = netlink::encode(req, self.handle, seq, self.portid);
        sendto(
            &self.fd,
            &bytes,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(|errno| KernelError::Send {
            request: req.name(),
            errno,
        })?;
        Ok(())
    }

    /// Receive one datagram (waiting until `deadline`) and decode it.
    fn recv_some(
        &self,
        request: &'static str,
        deadline: Instant,
    ) -> Result<Option<Vec<Message>>, KernelError> {
        match poll_until(&self.fd, PollFlags::IN, deadline) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(errno) => return Err(KernelError::Recv { request, errno }),
        }
        let mut buf = vec![0u8; 64 * 1024];
        let n = match recvfrom(self.fd.as_fd(), &mut buf, RecvFlags::DONTWAIT) {
            Ok((n, _, _)) => n,
            Err(Errno::AGAIN) | Err(Errno::INTR) => return Ok(None),
            Err(errno) => return Err(KernelError::Recv { request, errno }),
        };
        let mut out = Vec::new();
        for m in netlink::decode(&buf[..n]) {
            match m {
                Ok((_, msg)) => out.push(msg),
                Err(e) => log::debug!("NETLINK_ISCSI: ignoring undecodable message: {e}"),
            }
        }
        Ok(Some(out))
    }

    /// Send a request and wait for its reply; returns the reply union `r`.
    pub fn request(&self, req: &Request<'_>) -> Result<[u32; 4], KernelError> {
        let kind = req.kind();
        let name = req.name();
        self.send(req)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if Instant::now() >= deadline {
                return Err(KernelError::NoReply { request: name });
            }
            let Some(msgs) = self.recv_some(name, deadline)? else {
                continue;
            };
            let mut result = None;
            for m in msgs {
                match m {
                    Message::Reply { kind: k, r } if k == kind && result.is_none() => {
                        result = Some(Ok(r))
                    }
                    Message::IfError { request, errno } if request == kind && result.is_none() => {
                        result = Some(Err(errno))
                    }
                    other => self.pending.borrow_mut().push_back(other),
                }
            }
            match result {
                Some(Ok(r)) => return Ok(r),
                Some(Err(errno)) => {
                    return Err(KernelError::Refused {
                        request: name,
                        errno,
                    })
                }
                None => {}
            }
        }
    }

    /// A request whose reply carries the transport's `retcode`.
    fn request_rc(&self, req: &Request<'_>) -> Result<(), KernelError> {
        let r = self.request(req)?;
        let code = r[0] as i32;
        if code != 0 {
            return Err(KernelError::RetCode {
                request: req.name(),
                code,
            });
        }
        Ok(())
    }

    pub fn set_param(
        &self,
        sid: u32,
        cid: u32,
        param: Param,
        value: &str,
    ) -> Result<(), KernelError> {
        let shown = |v: &str| {
            if param.is_secret() {
                "***".to_string()
            } else {
                v.to_string()
            }
        };
        match self.request(&Request::SetParam {
            sid,
            cid,
            param,
            value,
        }) {
            Ok(r) if r[0] as i32 == 0 => Ok(()),
            Ok(r) => Err(KernelError::SetParam {
                param: param.name(),
                value: shown(value),
                errno: -(r[0] as i32),
            }),
            Err(KernelError::Refused { errno, .. }) => Err(KernelError::SetParam {
                param: param.name(),
                value: shown(value),
                errno,
            }),
            Err(e) => Err(e),
        }
    }

    /// STOP_CONN with `flag` (STOP_CONN_RECOVER, STOP_CONN_TERM).
    pub fn stop_conn(&self, sid: u32, cid: u32, flag: u32) -> Result<(), KernelError> {
        self.request(&Request::StopConn {
            sid,
            cid,
            conn_handle: 0,
            flag,
        })
        .map(|_| ())
    }

    /// The next kernel event (connection errors, session events) until
    /// `deadline`; `None` when nothing came. Replies and PDUs queued by
    /// other calls are left alone.
    pub fn next_event(&self, deadline: Instant) -> Result<Option<Message>, KernelError> {
        loop {
            {
                let mut q = self.pending.borrow_mut();
                if let Some(i) = q
                    .iter()
                    .position(|m| !matches!(m, Message::Reply { .. } | Message::RecvPdu { .. }))
                {
                    return Ok(q.remove(i));
                }
                // PDUs nobody waits for (a late login response) must not
                // pile up in a process that lives as long as the machine.
                q.retain(|m| matches!(m, Message::Reply { .. }));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if let Some(msgs) = self.recv_some("kernel events", deadline)? {
                self.pending.borrow_mut().extend(msgs);
            }
        }
    }

    /// Ask the kernel to remove the session's SCSI target (asynchronous:
    /// the caller watches sysfs for the disks to go). The connection keeps
    /// running, so the disks' caches are flushed to the target first.
    pub fn unbind_session(&self, sid: u32) -> Result<(), KernelError> {
        self.request(&Request::UnbindSession { sid }).map(|_| ())
    }

    /// Send a Logout Request (close the session, immediate) on the running
    /// connection `sid:cid` and wait until `deadline` for the target's
    /// Logout Response. libiscsi fills in the task tag, CmdSN and
    /// ExpStatSN (`__iscsi_conn_send_pdu`) and hands the response up as
    /// KEVENT_RECV_PDU. Returns the response code (0 = closed), or `None`
    /// when nothing came in time.
    pub fn logout(&self, sid: u32, cid: u32, deadline: Instant) -> Result<Option<u8>, KernelError> {
        let req = pdu::LogoutRequest {
            immediate: true,
            reason: pdu::LOGOUT_CLOSE_SESSION,
            itt: 0,
            cid: u16::try_from(cid).unwrap_or(u16::MAX),
            cmd_sn: 0,
            exp_stat_sn: 0,
        }
        .to_pdu();
        let bytes = req.encode().map_err(|e| KernelError::Pdu(e.to_string()))?;
        let hdr = bytes.get(..BHS_LEN).unwrap_or(&[]);
        self.request_rc(&Request::SendPdu {
            sid,
            cid,
            hdr,
            data: &[],
        })?;
        loop {
            match self.next_pdu(sid, cid, deadline) {
                Ok(Some(raw)) => {
                    if raw.first().map(|b| b & 0x3f) == Some(OP_LOGOUT_RSP) {
                        return Ok(Some(raw.get(2).copied().unwrap_or(0xff)));
                    }
                    // NOP-In, async messages: not ours to answer here.
                }
                Ok(None) => return Ok(None),
                // The target closed the connection (some do right after
                // the response, racing it): nothing more will come.
                Err(KernelError::ConnError { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Stop the connection for good and destroy it and the session, as
    /// iscsid does after a logout. Every step is tried; the first error is
    /// returned.
    pub fn terminate(&self, sid: u32, cids: &[u32]) -> Result<(), KernelError> {
        let mut first = None;
        for &cid in cids {
            let stop = self.request(&Request::StopConn {
                sid,
                cid,
                conn_handle: 0,
                flag: netlink::STOP_CONN_TERM,
            });
            let destroy = self.request(&Request::DestroyConn { sid, cid });
            for r in [stop.map(|_| ()), destroy.map(|_| ())] {
                if let Err(e) = r {
                    first.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.request(&Request::DestroySession { sid }) {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// The next PDU for connection `sid:cid`, or its connection error.
    fn next_pdu(
        &self,
        sid: u32,
        cid: u32,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, KernelError> {
        loop {
            {
                let mut q = self.pending.borrow_mut();
                if let Some(i) = q.iter().position(|m| match m {
                    Message::RecvPdu { sid: s, cid: c, .. }
                    | Message::ConnError { sid: s, cid: c, .. } => *s == sid && *c == cid,
                    _ => false,
                }) {
                    match q.remove(i) {
                        Some(Message::RecvPdu { pdu, .. }) => return Ok(Some(pdu)),
                        Some(Message::ConnError { error, .. }) => {
                            return Err(KernelError::ConnError {
                                sid,
                                cid,
                                code: error,
                            })
                        }
                        _ => {}
                    }
                }
                // Unrelated events (other sessions, login state) are not
                // needed by anyone after this: keep the queue bounded.
                q.retain(|m| matches!(m, Message::RecvPdu { .. } | Message::ConnError { .. }));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if let Some(msgs) = self.recv_some("KEVENT_RECV_PDU", deadline)? {
                self.pending.borrow_mut().extend(msgs);
            }
        }
    }
}

/// What the kernel session needs besides the login itself.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    pub target: String,
    pub initiator: String,
    pub chap: Option<Chap>,
    pub cmds_max: u16,
    pub queue_depth: u16,
    /// `rd.iscsi.param=` node settings (replacement and error-handling
    /// timeouts, NOP-Out interval) with open-iscsi's defaults.
    pub node: NodeSettings,
    /// Per-PDU receive timeout during login.
    pub timeout: Duration,
    /// The TCP connect timeout of this attempt.
    pub connect_timeout: Duration,
    /// The end of this attempt: no PDU wait runs past it, however many
    /// PDUs the login takes (the boot's deadline, or less).
    pub until: Instant,
}

/// Creates a kernel session + connection per login attempt (a redirect or a
/// retry gets a fresh one; the failed one is torn down when dropped).
pub struct KernelConnector {
    pub nl: Rc<IscsiNl>,
    pub setup: SessionSetup,
}

impl Connector for KernelConnector {
    type Channel = KernelChannel;
    fn connect(&mut self, portal: &Portal) -> Result<KernelChannel, ChannelError> {
        let t = Instant::now();
        let tcp = connect_stream(portal, self.setup.connect_timeout)?;
        let peer = tcp.peer_addr().ok();
        log::debug!(
            "TCP connect to {portal} took {} ms",
            t.elapsed().as_millis()
        );
        let r = self.nl.request(&Request::CreateSession {
            initial_cmdsn: 1,
            cmds_max: self.setup.cmds_max,
            queue_depth: self.setup.queue_depth,
        })?;
        let mut ch = KernelChannel {
            nl: self.nl.clone(),
            sid: r[0],
            host_no: r[1],
            cid: 0,
            conn_created: false,
            bound: false,
            committed: false,
            reopen: false,
            timeout: self.setup.timeout,
            until: self.setup.until,
            last_itt: 0,
            portal: portal.clone(),
            peer,
        };
        let r = self.nl.request(&Request::CreateConn {
            sid: ch.sid,
            cid: 0,
        })?;
        ch.cid = r[1];
        ch.conn_created = true;
        self.nl.request_rc(&Request::BindConn {
            sid: ch.sid,
            cid: ch.cid,
            transport_eph: tcp.as_raw_fd() as u64,
            is_leading: true,
        })?;
        ch.bound = true;
        // iscsi_sw_tcp_conn_bind keeps its own reference to the socket
        // (sockfd_lookup without sockfd_put on success): our fd can go.
        drop(tcp);
        ch.set_prelogin(&self.setup)?;
        log::debug!(
            "kernel session {} (host {}) bound and set up after {} ms",
            ch.sid,
            ch.host_no,
            t.elapsed().as_millis()
        );
        Ok(ch)
    }
}

/// Reconnects the connection of an existing kernel session, as iscsid's
/// session reopen does (ERL 0): the caller stopped the connection with
/// STOP_CONN_RECOVER; each attempt binds a new TCP socket to the same
/// connection and logs in again on it (same ISID; the session's TSIH asks
/// for reinstatement). The SCSI devices stay; I/O waits until START_CONN.
pub struct ReopenConnector {
    pub nl: Rc<IscsiNl>,
    pub sid: u32,
    pub cid: u32,
    pub host_no: u32,
    pub setup: SessionSetup,
}

impl Connector for ReopenConnector {
    type Channel = KernelChannel;
    fn connect(&mut self, portal: &Portal) -> Result<KernelChannel, ChannelError> {
        let tcp = connect_stream(portal, self.setup.connect_timeout)?;
        let peer = tcp.peer_addr().ok();
        let mut ch = KernelChannel {
            nl: self.nl.clone(),
            sid: self.sid,
            host_no: self.host_no,
            cid: self.cid,
            conn_created: true,
            bound: false,
            committed: false,
            reopen: true,
            timeout: self.setup.timeout,
            until: self.setup.until,
            last_itt: 0,
            portal: portal.clone(),
            peer,
        };
        self.nl.request_rc(&Request::BindConn {
            sid: self.sid,
            cid: self.cid,
            transport_eph: tcp.as_raw_fd() as u64,
            is_leading: true,
        })?;
        ch.bound = true;
        drop(tcp);
        // The session keeps its other parameters; the portal may be
        // another one of the same target (failover).
        ch.set(Param::PersistentAddress, &portal.host)?;
        ch.set(Param::PersistentPort, &portal.port.to_string())?;
        Ok(ch)
    }
}

/// A kernel connection in login phase; carries login PDUs over SEND_PDU /
/// KEVENT_RECV_PDU. Dropped without [`KernelChannel::commit`], it tears the
/// connection and the session down.
pub struct KernelChannel {
    nl: Rc<IscsiNl>,
    pub sid: u32,
    pub host_no: u32,
    pub cid: u32,
    conn_created: bool,
    bound: bool,
    committed: bool,
    /// A reconnect of an existing session ([`ReopenConnector`]): a failed
    /// attempt only unbinds the socket, the session stays.
    reopen: bool,
    timeout: Duration,
    until: Instant,
    last_itt: u32,
    pub portal: Portal,
    pub peer: Option<SocketAddr>,
}

impl KernelChannel {
    fn set(&self, param: Param, value: &str) -> Result<(), KernelError> {
        self.nl.set_param(self.sid, self.cid, param, value)
    }

    /// What iscsid needs to adopt the session after switch_root (reference
    /// §3.1) and the timeouts, set before login as open-iscsi does.
    fn set_prelogin(&self, s: &SessionSetup) -> Result<(), KernelError> {
        self.set(
            Param::SessRecoveryTmo,
            &s.node.replacement_timeout.to_string(),
        )?;
        self.set(Param::TargetName, &s.target)?;
        self.set(Param::InitiatorName, &s.initiator)?;
        // The portal as configured (host name or literal), as iscsid's node
        // record has it.
        self.set(Param::PersistentAddress, &self.portal.host)?;
        self.set(Param::PersistentPort, &self.portal.port.to_string())?;
        if let Some(chap) = &s.chap {
            self.set(Param::Username, &chap.username)?;
            self.set(Param::Password, chap.secret.expose())?;
            if let Some(m) = &chap.mutual {
                self.set(Param::UsernameIn, &m.username)?;
                self.set(Param::PasswordIn, m.secret.expose())?;
            }
        }
        self.set(Param::AbortTmo, &s.node.abort_timeout.to_string())?;
        self.set(Param::LuResetTmo, &s.node.lu_reset_timeout.to_string())?;
        self.set(Param::TgtResetTmo, &s.node.tgt_reset_timeout.to_string())?;
        self.set(Param::PingTmo, &s.node.noop_out_timeout.to_string())?;
        self.set(Param::RecvTmo, &s.node.noop_out_interval.to_string())?;
        self.set(Param::FastAbort, "1")?;
        self.set(Param::IfaceName, "default")?;
        Ok(())
    }

    /// Push the negotiated values (reference §3 step 7) and start the
    /// connection: from here the kernel owns the full-feature phase.
    pub fn commit(
        mut self,
        outcome: &LoginOutcome,
        tpgt: u16,
    ) -> Result<CommittedSession, KernelError> {
        let n = &outcome.negotiated;
        let b = |v: bool| if v { "1" } else { "0" };
        let values: [(Param, String); 14] = [
            (
                Param::MaxRecvDlength,
                n.max_recv_data_segment_length.to_string(),
            ),
            (
                Param::MaxXmitDlength,
                n.max_xmit_data_segment_length.to_string(),
            ),
            (Param::HdrDgstEn, b(n.header_digest).into()),
            (Param::DataDgstEn, b(n.data_digest).into()),
            (Param::InitialR2tEn, b(n.initial_r2t).into()),
            (Param::MaxR2t, n.max_outstanding_r2t.to_string()),
            (Param::ImmDataEn, b(n.immediate_data).into()),
            (Param::FirstBurst, n.first_burst_length.to_string()),
            (Param::MaxBurst, n.max_burst_length.to_string()),
            (Param::PduInorderEn, b(n.data_pdu_in_order).into()),
            (Param::DataseqInorderEn, b(n.data_sequence_in_order).into()),
            (Param::Erl, n.error_recovery_level.to_string()),
            (Param::ExpStatsn, outcome.exp_stat_sn.to_string()),
            (Param::Tpgt, outcome.tpgt.unwrap_or(tpgt).to_string()),
        ];
        for (p, v) in &values {
            self.set(*p, v)?;
        }
        // Informational: libiscsi keeps no markers (RFC 7143 dropped them;
        // 6.1 answers ENOSYS) and only shows Time2Wait/Retain in sysfs.
        for (p, v) in [
            (Param::IfMarkerEn, "0".to_string()),
            (Param::OfMarkerEn, "0".to_string()),
            (Param::DefTime2wait, n.default_time2wait.to_string()),
            (Param::DefTime2retain, n.default_time2retain.to_string()),
        ] {
            if let Err(e) = self.set(p, &v) {
                log::debug!("{e}");
            }
        }
        if let Some(alias) = &outcome.target_alias {
            if let Err(e) = self.set(Param::TargetAlias, alias) {
                log::debug!("{e}");
            }
        }
        self.nl.request_rc(&Request::StartConn {
            sid: self.sid,
            cid: self.cid,
        })?;
        self.committed = true;
        Ok(CommittedSession {
            sid: self.sid,
            host_no: self.host_no,
            cid: self.cid,
        })
    }

    fn teardown(&mut self) {
        let nl = &self.nl;
        if self.reopen {
            // Give the socket back; the session and its SCSI devices stay
            // for the next attempt.
            if self.bound {
                if let Err(e) = nl.stop_conn(self.sid, self.cid, netlink::STOP_CONN_RECOVER) {
                    log::warn!("session {}: unbinding a failed reconnect: {e}", self.sid);
                }
            }
            return;
        }
        if self.bound {
            if let Err(e) = nl.request(&Request::StopConn {
                sid: self.sid,
                cid: self.cid,
                conn_handle: 0,
                flag: netlink::STOP_CONN_TERM,
            }) {
                log::warn!("teardown of session {}: {e}", self.sid);
            }
        }
        if self.conn_created {
            if let Err(e) = nl.request(&Request::DestroyConn {
                sid: self.sid,
                cid: self.cid,
            }) {
                log::warn!("teardown of session {}: {e}", self.sid);
            }
        }
        if let Err(e) = nl.request(&Request::DestroySession { sid: self.sid }) {
            log::warn!("teardown of session {}: {e}", self.sid);
        }
    }
}

impl Drop for KernelChannel {
    fn drop(&mut self) {
        if !self.committed {
            self.teardown();
        }
    }
}

/// A session running in the kernel (it outlives us and switch_root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedSession {
    pub sid: u32,
    pub host_no: u32,
    pub cid: u32,
}

/// AHS and data lengths from a PDU's BHS; (0, 0) when shorter than a BHS
/// (the decoder then reports the short PDU).
fn bhs_lengths(bytes: &[u8]) -> (usize, usize) {
    bytes
        .get(..BHS_LEN)
        .and_then(|b| <&[u8; BHS_LEN]>::try_from(b).ok())
        .map_or((0, 0), pdu::segment_lengths)
}

const OP_LOGIN_RSP: u8 = 0x23;
const OP_TEXT_RSP: u8 = 0x24;
const OP_LOGOUT_RSP: u8 = 0x26;

impl PduChannel for KernelChannel {
    fn send(&mut self, pdu: &Pdu) -> Result<(), ChannelError> {
        let bytes = pdu.encode().map_err(ChannelError::Pdu)?;
        let (ahs, data_len) = bhs_lengths(&bytes);
        let hdr_len = BHS_LEN + ahs;
        let hdr = bytes.get(..hdr_len).ok_or(ChannelError::Other(
            "encoded PDU shorter than its header".into(),
        ))?;
        // The data segment without its wire padding: the kernel pads.
        let data = bytes
            .get(hdr_len..hdr_len + data_len)
            .ok_or(ChannelError::Other(
                "encoded PDU shorter than its data".into(),
            ))?;
        self.last_itt = u32::from_be_bytes([hdr[16], hdr[17], hdr[18], hdr[19]]);
        self.nl.request_rc(&Request::SendPdu {
            sid: self.sid,
            cid: self.cid,
            hdr,
            data,
        })?;
        Ok(())
    }

    fn recv(&mut self) -> Result<Pdu, ChannelError> {
        let t = Instant::now();
        let deadline = (t + self.timeout).min(self.until);
        let mut raw =
            self.nl
                .next_pdu(self.sid, self.cid, deadline)?
                .ok_or(ChannelError::RecvTimeout {
                    after: deadline.saturating_duration_since(t),
                })?;
        // SEND_PDU replaced our task tag with the kernel's own (libiscsi
        // __iscsi_conn_send_pdu, build_itt); the login machine checks that
        // responses echo the tag it sent, so give it back.
        if let Some(op) = raw.first().map(|b| b & 0x3f) {
            if (op == OP_LOGIN_RSP || op == OP_TEXT_RSP) && raw.len() >= BHS_LEN {
                raw[16..20].copy_from_slice(&self.last_itt.to_be_bytes());
            }
        }
        // iscsi_tcp hands up the data segment without padding; re-pad so
        // the wire decoder sees a well-formed PDU.
        let (ahs, data) = bhs_lengths(&raw);
        let want = BHS_LEN + pdu::wire_tail_len(ahs, data);
        if raw.len() < want {
            raw.resize(want, 0);
        }
        log::debug!("login PDU answered in {} ms", t.elapsed().as_millis());
        Pdu::decode(&raw).map(|(p, _)| p).map_err(ChannelError::Pdu)
    }
}
