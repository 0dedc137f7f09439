//! The kernel's AF_RXRPC as an [`RxTransport`] (rxrpc.md §2.6).
//!
//! One socket per call, of the peer's family: `sendmsg` of the whole
//! request to the peer's `sockaddr_rxrpc` with `RXRPC_USER_CALL_ID` and
//! `RXRPC_SET_CALL_TIMEOUT` and no `MSG_MORE` (so the kernel marks the last
//! DATA packet), then `recvmsg` until `MSG_EOR`. A terminal `RXRPC_ABORT`,
//! `RXRPC_NET_ERROR` or `RXRPC_LOCAL_ERROR` control message ends the call
//! with that code. The kernel does the retransmission, ACKs and RTT; we only
//! bound the wait (poll) and abort the call ourselves past the deadline or
//! when the reply grows beyond our bound. Closing the socket releases the
//! call (af_rxrpc.c `rxrpc_release`).
//!
//! Secured calls (rxkad, rxkad.md §6): [`KernelTransport::open_secured`]
//! adds the token as an `rxrpc` key (v1 payload,
//! `rxkad::files::Token::kernel_key_v1`) to this process's keyring
//! (`add_key(…, KEY_SPEC_PROCESS_KEYRING)`: created on demand, private to
//! the process, not inherited by a fork and dropped at `execve`, so the
//! booted system's init never holds it); every call's socket then gets
//! `RXRPC_SECURITY_KEY` (the key's description) and
//! `RXRPC_MIN_SECURITY_LEVEL` before its first `sendmsg` (which binds it).
//! The kernel answers the CHALLENGE and seals every packet itself.
//!
//! The byte layouts (`sockaddr_rxrpc`, control messages) are built and
//! parsed by pure functions, unit-tested without AF_RXRPC (the host kernel
//! has none); the socket half is exercised in the VM.

use super::call::CallError;
use super::RxTransport;
use crate::sys::errno::{errno_text, last_errno};
use crate::sys::poll::poll_until;
use rustix::event::PollFlags;
use rustix::net::{socket_with, AddressFamily, Protocol, SocketFlags, SocketType};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `SOL_RXRPC` (include/linux/socket.h). libc defines it for glibc only,
/// not for the musl target we ship.
pub const SOL_RXRPC: i32 = 272;

/// Socket options (include/uapi/linux/rxrpc.h, rxrpc.md §2.3).
pub mod sockopt {
    pub const SECURITY_KEY: i32 = 1;
    pub const MIN_SECURITY_LEVEL: i32 = 4;
}

/// Special keyring ids (include/uapi/linux/keyctl.h, rxkad.md §6).
pub const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
/// `keyctl` operations used.
pub const KEYCTL_INVALIDATE: libc::c_long = 21;

/// Control message types (include/uapi/linux/rxrpc.h, rxrpc.md §2.4).
pub mod cmsg {
    pub const USER_CALL_ID: i32 = 1;
    pub const ABORT: i32 = 2;
    pub const ACK: i32 = 3;
    pub const NET_ERROR: i32 = 5;
    pub const BUSY: i32 = 6;
    pub const LOCAL_ERROR: i32 = 7;
    pub const SET_CALL_TIMEOUT: i32 = 13;
}

/// `sizeof(struct sockaddr_rxrpc)` (rxrpc.md §2.2).
pub const SOCKADDR_RXRPC_LEN: usize = 36;
/// x86_64 `struct cmsghdr`: `size_t cmsg_len; int level; int type` (musl
/// has `u32 len; u32 pad` in the place of the size_t: same bytes on LE).
const CMSG_HDR: usize = 16;
const _: () = assert!(std::mem::size_of::<libc::cmsghdr>() == CMSG_HDR);
const _: () = assert!(std::mem::size_of::<libc::c_ulong>() == 8);

/// Our one call per socket carries this user call ID.
const CALL_ID: u64 = 1;
/// Abort code we send when our deadline passes (rxrpc.md §1.9).
const RX_CALL_TIMEOUT: i32 = -3;
/// Abort code when the reply outgrows our bound: the caller's local abort.
const RX_USER_ABORT: i32 = -6;

/// `struct sockaddr_rxrpc` for `peer` and `service` as bytes: family and
/// service in host order, the transport `sockaddr_in`/`sockaddr_in6` in
/// network order inside (rxrpc.md §2.2).
pub fn sockaddr(peer: SocketAddr, service: u16) -> [u8; SOCKADDR_RXRPC_LEN] {
    let mut b = [0u8; SOCKADDR_RXRPC_LEN];
    b[0..2].copy_from_slice(&(libc::AF_RXRPC as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&service.to_ne_bytes());
    b[4..6].copy_from_slice(&(libc::SOCK_DGRAM as u16).to_ne_bytes());
    let t = &mut b[8..];
    let len: u16 = match peer {
        SocketAddr::V4(a) => {
            t[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            t[2..4].copy_from_slice(&a.port().to_be_bytes());
            t[4..8].copy_from_slice(&a.ip().octets());
            16
        }
        SocketAddr::V6(a) => {
            t[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            t[2..4].copy_from_slice(&a.port().to_be_bytes());
            t[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            t[8..24].copy_from_slice(&a.ip().octets());
            t[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            28
        }
    };
    b[6..8].copy_from_slice(&len.to_ne_bytes());
    b
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Append one control message (`CMSG_SPACE` bytes, zero padded).
pub fn push_cmsg(buf: &mut Vec<u8>, ty: i32, data: &[u8]) {
    let len = CMSG_HDR + data.len();
    buf.extend_from_slice(&(len as u64).to_ne_bytes());
    buf.extend_from_slice(&SOL_RXRPC.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + align8(len) - len, 0);
}

/// The control block of the request's `sendmsg`: the user call ID and, if
/// given, the call timeout as hard limit (whole seconds, rounded up, at
/// least 1) plus idle and normal-reply limits in ms (≤ 3,600,000, rxrpc.md
/// §2.4).
pub fn request_control(call_id: u64, timeout: Option<Duration>) -> Vec<u8> {
    let mut c = Vec::with_capacity(2 * 32);
    push_cmsg(&mut c, cmsg::USER_CALL_ID, &call_id.to_ne_bytes());
    let Some(timeout) = timeout else {
        return c;
    };
    let ms = timeout.as_millis().clamp(1, 3_600_000) as u32;
    let hard_s = ms.div_ceil(1000);
    let mut t = Vec::with_capacity(12);
    for v in [hard_s, ms, ms] {
        t.extend_from_slice(&v.to_ne_bytes());
    }
    push_cmsg(&mut c, cmsg::SET_CALL_TIMEOUT, &t);
    c
}

/// The control block that aborts call `call_id` with `code`.
pub fn abort_control(call_id: u64, code: i32) -> Vec<u8> {
    let mut c = Vec::with_capacity(48);
    push_cmsg(&mut c, cmsg::USER_CALL_ID, &call_id.to_ne_bytes());
    push_cmsg(&mut c, cmsg::ABORT, &code.to_ne_bytes());
    c
}

/// What the control messages of one `recvmsg` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecvControl {
    pub call_id: Option<u64>,
    /// Remote or local abort code.
    pub abort: Option<i32>,
    /// `RXRPC_NET_ERROR`: errno from the network (ICMP, …).
    pub net_error: Option<i32>,
    /// `RXRPC_LOCAL_ERROR`: errno from our side.
    pub local_error: Option<i32>,
    /// `RXRPC_ACK` (service calls only) or `RXRPC_BUSY`.
    pub ack: bool,
    pub busy: bool,
}

/// Parse a received control block. Never panics: a truncated or
/// inconsistent header ends the walk; foreign levels are skipped.
pub fn parse_control(buf: &[u8]) -> RecvControl {
    let mut r = RecvControl::default();
    let mut off = 0usize;
    while let Some(hdr) = buf.get(off..off + CMSG_HDR) {
        let len = u64::from_ne_bytes(arr(&hdr[0..8])) as usize;
        let level = i32::from_ne_bytes(arr(&hdr[8..12]));
        let ty = i32::from_ne_bytes(arr(&hdr[12..16]));
        let Some(end) = off
            .checked_add(len)
            .filter(|&e| len >= CMSG_HDR && e <= buf.len())
        else {
            break;
        };
        let data = &buf[off + CMSG_HDR..end];
        if level == SOL_RXRPC {
            let u32v = || data.get(0..4).map(|d| i32::from_ne_bytes(arr(d)));
            match ty {
                cmsg::USER_CALL_ID => {
                    r.call_id = data.get(0..8).map(|d| u64::from_ne_bytes(arr(d)))
                }
                cmsg::ABORT => r.abort = u32v(),
                cmsg::NET_ERROR => r.net_error = u32v(),
                cmsg::LOCAL_ERROR => r.local_error = u32v(),
                cmsg::ACK => r.ack = true,
                cmsg::BUSY => r.busy = true,
                _ => {}
            }
        }
        off = off.saturating_add(align8(len));
    }
    r
}

/// A fixed-size array from a slice whose length the caller checked.
fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s[..n]);
    a
}

/// Why the kernel transport cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// `socket(AF_RXRPC, SOCK_DGRAM, PF_INET)` failed: no AF_RXRPC in this
    /// kernel (EAFNOSUPPORT), or rxrpc.ko failed to initialise.
    Socket(i32),
    /// A key-management system call failed: `call` names it with its
    /// arguments (never the payload), `errno` why.
    Key { call: String, errno: i32 },
}

/// Hints for the key calls' errnos (keyrings(7), add_key(2)).
const KEY_HINTS: &[(rustix::io::Errno, &str)] = &[
    (
        rustix::io::Errno::NOSYS,
        "the kernel has no key retention service (CONFIG_KEYS)",
    ),
    (
        rustix::io::Errno::PERM,
        "a seccomp filter (e.g. a container's) forbids add_key/keyctl",
    ),
    (
        rustix::io::Errno::NODEV,
        "no key type \"rxrpc\": rxrpc.ko is not loaded",
    ),
    (
        rustix::io::Errno::KEYEXPIRED,
        "the token has expired: mint a new one with netboot-configd token",
    ),
    (
        rustix::io::Errno::KEYREJECTED,
        "the kernel refused the token's payload",
    ),
    (
        rustix::io::Errno::NOKEY,
        "the key is not in this process's keyrings",
    ),
];

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Socket(e) => write!(
                f,
                "socket(AF_RXRPC, SOCK_DGRAM, PF_INET): {}",
                std::io::Error::from_raw_os_error(*e)
            ),
            KernelError::Key { call, errno } => {
                write!(f, "{call}: {}", errno_text(*errno, KEY_HINTS))
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// `socket(AF_RXRPC, SOCK_DGRAM, family)`: the protocol argument is the
/// transport family, PF_INET or PF_INET6 (net/rxrpc/af_rxrpc.c
/// `rxrpc_create`). Both are non-zero; were one not, the kernel would get
/// protocol 0 and refuse it with EPROTONOSUPPORT.
fn open_socket(family: i32) -> Result<OwnedFd, i32> {
    let protocol = NonZeroU32::new(family as u32).map(Protocol::from_raw);
    socket_with(
        AddressFamily::RXRPC,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        protocol,
    )
    .map_err(|e| e.raw_os_error())
}

/// An all-zero `msghdr` (no name, no iovec, no control) for the caller to
/// fill in. Made with `zeroed` because musl's `msghdr` has private padding
/// fields, which a struct literal cannot name. Neither rustix nor nix can
/// send or receive SOL_RXRPC control messages, hence raw sendmsg/recvmsg.
fn empty_msghdr() -> libc::msghdr {
    // SAFETY: libc::msghdr is a repr(C) struct of raw pointers and integers
    // (musl's padding fields are integers too); all-zero is a valid value
    // for every one of them: null pointers with zero lengths.
    unsafe { std::mem::zeroed() }
}

/// The kernel AF_RXRPC client.
pub struct KernelTransport {
    /// Reply bound per call.
    pub max_reply: usize,
    /// Whether to pass our deadline down with `RXRPC_SET_CALL_TIMEOUT`.
    /// Debian's 6.12.117 misreads the values (its timers take them as
    /// nanoseconds since the ktime rework of rxrpc's call timers) and aborts
    /// the call locally with RX_CALL_TIMEOUT within milliseconds; 6.1 honours
    /// them. Such a premature abort switches this off and the call is made
    /// again, bounded by our own poll deadline alone.
    pub call_timeout_cmsg: bool,
    /// rxkad: the key's description and the level to ask for.
    security: Option<KernelSecurity>,
}

/// What a secured socket is given before its first `sendmsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSecurity {
    /// The `rxrpc` key's description ([`KERNEL_KEY_DESCRIPTION`]).
    pub description: String,
    /// `RXRPC_MIN_SECURITY_LEVEL`: 1 auth, 2 encrypt; the level the kernel
    /// puts in its RESPONSE and uses for DATA (rxkad.md §6).
    pub level: u32,
    /// The key's serial, invalidated when the transport is dropped.
    pub serial: i32,
}

/// The description of the agent's kernel key.
pub use crate::rxkad::files::KERNEL_KEY_DESCRIPTION;

/// `add_key(type, description, payload, keyring)`: the new key's serial.
/// The payload is secret: it is never part of an error.
fn add_key(ty: &str, description: &str, payload: &[u8], keyring: i32) -> Result<i32, KernelError> {
    let call = || {
        format!(
            "add_key(\"{ty}\", \"{description}\", {} bytes, {keyring})",
            payload.len()
        )
    };
    let (Ok(t), Ok(d)) = (
        std::ffi::CString::new(ty),
        std::ffi::CString::new(description),
    ) else {
        return Err(KernelError::Key {
            call: call(),
            errno: libc::EINVAL,
        });
    };
    // SAFETY: add_key(2) reads the two NUL-terminated strings `t` and `d`
    // and `payload.len()` bytes at `payload`, all alive across the call;
    // it writes nothing through them. The keyring id is a plain integer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            t.as_ptr(),
            d.as_ptr(),
            payload.as_ptr() as *const libc::c_void,
            payload.len(),
            keyring as libc::c_long,
        )
    };
    if r < 0 {
        return Err(KernelError::Key {
            call: call(),
            errno: last_errno(),
        });
    }
    Ok(r as i32)
}

/// `keyctl(KEYCTL_INVALIDATE, serial)`: the key is gone at once.
fn invalidate_key(serial: i32) -> Result<(), KernelError> {
    // SAFETY: keyctl(KEYCTL_INVALIDATE, id) takes two integers and touches
    // no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, serial as libc::c_long) };
    if r < 0 {
        return Err(KernelError::Key {
            call: format!("keyctl(KEYCTL_INVALIDATE, {serial})"),
            errno: last_errno(),
        });
    }
    Ok(())
}

/// `setsockopt(fd, SOL_RXRPC, opt, value)`; `what` names it for errors.
fn set_rxrpc_opt(fd: &OwnedFd, opt: i32, value: &[u8], what: &str) -> Result<(), KernelError> {
    // SAFETY: `fd` is an open socket; setsockopt(2) reads `value.len()`
    // bytes at `value`, which lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_RXRPC,
            opt,
            value.as_ptr() as *const libc::c_void,
            value.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(KernelError::Key {
            call: format!("setsockopt(SOL_RXRPC, {what})"),
            errno: last_errno(),
        });
    }
    Ok(())
}

/// Give an unbound socket the key and the level (rxkad.md §6: both
/// refused with EISCONN once bound).
fn secure_socket(fd: &OwnedFd, s: &KernelSecurity) -> Result<(), KernelError> {
    set_rxrpc_opt(
        fd,
        sockopt::SECURITY_KEY,
        s.description.as_bytes(),
        &format!("RXRPC_SECURITY_KEY, \"{}\"", s.description),
    )?;
    set_rxrpc_opt(
        fd,
        sockopt::MIN_SECURITY_LEVEL,
        &s.level.to_ne_bytes(),
        &format!("RXRPC_MIN_SECURITY_LEVEL, {}", s.level),
    )
}

impl Drop for KernelTransport {
    fn drop(&mut self) {
        if let Some(s) = &self.security {
            // Best effort: the process keyring goes at exit/execve anyway.
            let _ = invalidate_key(s.serial);
        }
    }
}

/// An RX_CALL_TIMEOUT abort sooner than this fraction of the timeout we set
/// cannot be our timeout: the kernel misread it.
fn premature(elapsed: Duration, timeout: Duration) -> bool {
    elapsed < timeout / 4
}

impl KernelTransport {
    /// Check that AF_RXRPC sockets can be made (module loaded, family
    /// present) before committing to this transport.
    pub fn open(max_reply: usize) -> Result<KernelTransport, KernelError> {
        open_socket(libc::AF_INET).map_err(KernelError::Socket)?;
        Ok(KernelTransport {
            max_reply,
            call_timeout_cmsg: true,
            security: None,
        })
    }

    /// [`KernelTransport::open`] whose calls are secured with rxkad at
    /// `level` with `token` (added to the process keyring as an `rxrpc`
    /// key named [`KERNEL_KEY_DESCRIPTION`]). A key the kernel refuses is
    /// an error here, before any call; a test socket checks that the key
    /// and level are accepted.
    pub fn open_secured(
        max_reply: usize,
        token: &crate::rxkad::files::Token,
        level: crate::rxkad::Level,
    ) -> Result<KernelTransport, KernelError> {
        let mut t = Self::open(max_reply)?;
        let serial = add_key(
            "rxrpc",
            KERNEL_KEY_DESCRIPTION,
            &token.kernel_key_v1(),
            KEY_SPEC_PROCESS_KEYRING,
        )?;
        let sec = KernelSecurity {
            description: KERNEL_KEY_DESCRIPTION.to_string(),
            level: level as u32,
            serial,
        };
        // The socket's request_key finds the key (or says EKEYEXPIRED)
        // now rather than at the first call.
        let probe = open_socket(libc::AF_INET).map_err(KernelError::Socket);
        let checked = probe.and_then(|fd| secure_socket(&fd, &sec));
        t.security = Some(sec);
        checked?;
        Ok(t)
    }

    /// The rxkad level the calls ask for (0: unsecured).
    pub fn level(&self) -> u32 {
        self.security.as_ref().map_or(0, |s| s.level)
    }

    fn send(fd: &OwnedFd, name: Option<&[u8]>, data: &[u8], control: &mut [u8]) -> isize {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut msg = empty_msghdr();
        if let Some(n) = name {
            msg.msg_name = n.as_ptr() as *mut libc::c_void;
            msg.msg_namelen = n.len() as libc::socklen_t;
        }
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len() as _;
        // SAFETY: `fd` is an open socket (borrowed from the OwnedFd). Every
        // pointer in `msg` refers to a buffer that outlives the call, with
        // its true length: `name` (msg_namelen bytes), `iov` → `data`
        // (iov_len bytes) and `control` (msg_controllen bytes). sendmsg(2)
        // only reads through them, so the `*mut` casts of `data` and `name`
        // are never written through.
        unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, 0) }
    }

    fn abort(fd: &OwnedFd, code: i32) {
        let mut c = abort_control(CALL_ID, code);
        let _ = Self::send(fd, None, &[], &mut c);
    }
}

impl RxTransport for KernelTransport {
    fn call(
        &mut self,
        peer: SocketAddr,
        service_id: u16,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let with = self.call_timeout_cmsg;
        let r = self.attempt(peer, service_id, request, timeout, deadline, with);
        if with && r == Err(CallError::Aborted(RX_CALL_TIMEOUT)) {
            let took = started.elapsed();
            if premature(took, timeout) {
                log::warn!(
                    "AF_RXRPC: the kernel timed the call to {peer} out after {} ms although \
                     RXRPC_SET_CALL_TIMEOUT asked for {} ms; calling again without it",
                    took.as_millis(),
                    timeout.as_millis()
                );
                self.call_timeout_cmsg = false;
                return self.attempt(peer, service_id, request, timeout, deadline, false);
            }
        }
        r
    }
}

impl KernelTransport {
    fn attempt(
        &mut self,
        peer: SocketAddr,
        service_id: u16,
        request: &[u8],
        timeout: Duration,
        deadline: Instant,
        with_timeout: bool,
    ) -> Result<Vec<u8>, CallError> {
        let family = if peer.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = open_socket(family).map_err(|e| {
            CallError::Io(format!(
                "socket(AF_RXRPC): {}",
                std::io::Error::from_raw_os_error(e)
            ))
        })?;
        if let Some(s) = &self.security {
            secure_socket(&fd, s).map_err(|e| CallError::Io(e.to_string()))?;
        }
        let name = sockaddr(peer, service_id);
        let mut control = request_control(CALL_ID, with_timeout.then_some(timeout));
        if Self::send(&fd, Some(&name), request, &mut control) < 0 {
            // The caller names the server; the message names the operation.
            let e = errno_text(last_errno(), &[]);
            return Err(CallError::Io(format!("AF_RXRPC sendmsg: {e}")));
        }
        let mut reply = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut cbuf = [0u8; 256];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Self::abort(&fd, RX_CALL_TIMEOUT);
                return Err(CallError::Timeout);
            }
            match poll_until(&fd, PollFlags::IN, deadline) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => return Err(CallError::Io(format!("AF_RXRPC poll: {e}"))),
            }
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let mut msg = empty_msghdr();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = cbuf.len() as _;
            // SAFETY: `fd` is an open socket (borrowed from the OwnedFd).
            // `msg` has no name; `iov` points into `buf` (iov_len =
            // buf.len()) and msg_control into `cbuf` (msg_controllen =
            // cbuf.len()), both exclusively borrowed here and alive across
            // the call. recvmsg(2) writes at most those lengths into them
            // and updates only `msg`'s own fields.
            let got = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if got < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(CallError::Io(format!("AF_RXRPC recvmsg: {e}")));
            }
            let clen = (msg.msg_controllen as usize).min(cbuf.len());
            let ctl = parse_control(&cbuf[..clen]);
            if let Some(code) = ctl.abort {
                return Err(CallError::Aborted(code));
            }
            if let Some(e) = ctl.net_error {
                return Err(CallError::Io(format!(
                    "network error: {}",
                    std::io::Error::from_raw_os_error(e)
                )));
            }
            if let Some(e) = ctl.local_error {
                return Err(CallError::Io(format!(
                    "local error: {}",
                    std::io::Error::from_raw_os_error(e)
                )));
            }
            if ctl.busy {
                return Err(CallError::Busy);
            }
            let got = (got as usize).min(buf.len());
            if reply.len() + got > self.max_reply {
                Self::abort(&fd, RX_USER_ABORT);
                return Err(CallError::ReplyTooLarge {
                    max: self.max_reply,
                });
            }
            reply.extend_from_slice(&buf[..got]);
            if msg.msg_flags & libc::MSG_EOR != 0 {
                return Ok(reply);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_layout_v4_and_v6() {
        let b = sockaddr("198.18.0.1:7260".parse().unwrap(), 0x4E42);
        assert_eq!(&b[0..8], &[33, 0, 0x42, 0x4E, 2, 0, 16, 0]);
        // sockaddr_in: AF_INET host order, port 7260 = 0x1C5C big-endian.
        assert_eq!(&b[8..16], &[2, 0, 0x1C, 0x5C, 198, 18, 0, 1]);
        assert!(b[16..].iter().all(|&x| x == 0));

        let b = sockaddr("[fd00::2%3]:7003".parse().unwrap(), 52);
        assert_eq!(&b[0..8], &[33, 0, 52, 0, 2, 0, 28, 0]);
        assert_eq!(&b[8..12], &[10, 0, 0x1B, 0x5B]);
        assert_eq!(&b[12..16], &[0, 0, 0, 0]);
        assert_eq!(b[16], 0xfd);
        assert_eq!(b[31], 2);
        assert_eq!(&b[32..36], &3u32.to_ne_bytes());
    }

    #[test]
    fn request_control_is_two_aligned_cmsgs() {
        let c = request_control(7, Some(Duration::from_millis(2500)));
        // CMSG_SPACE(8) = 24, CMSG_SPACE(12) = 32 (rxrpc.md §2.4).
        assert_eq!(c.len(), 24 + 32);
        assert_eq!(u64::from_ne_bytes(arr(&c[0..8])), 24);
        assert_eq!(i32::from_ne_bytes(arr(&c[8..12])), SOL_RXRPC);
        assert_eq!(i32::from_ne_bytes(arr(&c[12..16])), 1);
        assert_eq!(u64::from_ne_bytes(arr(&c[16..24])), 7);
        assert_eq!(u64::from_ne_bytes(arr(&c[24..32])), 28);
        assert_eq!(i32::from_ne_bytes(arr(&c[36..40])), 13);
        let t: Vec<u32> = c[40..52]
            .chunks(4)
            .map(|x| u32::from_ne_bytes(arr(x)))
            .collect();
        assert_eq!(t, vec![3, 2500, 2500]);
        assert!(c[52..].iter().all(|&x| x == 0));
    }

    #[test]
    fn timeouts_are_clamped_to_the_kernel_bounds() {
        let c = request_control(1, Some(Duration::from_secs(7200)));
        let t: Vec<u32> = c[40..52]
            .chunks(4)
            .map(|x| u32::from_ne_bytes(arr(x)))
            .collect();
        assert_eq!(t, vec![3600, 3_600_000, 3_600_000]);
        let c = request_control(1, Some(Duration::ZERO));
        assert_eq!(u32::from_ne_bytes(arr(&c[40..44])), 1);
        // Without a timeout only the call ID goes down.
        assert_eq!(request_control(1, None).len(), 24);
    }

    #[test]
    fn only_an_early_timeout_abort_counts_as_misread() {
        let t = Duration::from_secs(3);
        assert!(premature(Duration::from_millis(14), t));
        assert!(!premature(Duration::from_millis(2900), t));
    }

    #[test]
    fn control_round_trip_and_terminal_messages() {
        let c = abort_control(9, -455);
        let r = parse_control(&c);
        assert_eq!(r.call_id, Some(9));
        assert_eq!(r.abort, Some(-455));

        let mut c = Vec::new();
        push_cmsg(&mut c, cmsg::USER_CALL_ID, &1u64.to_ne_bytes());
        push_cmsg(&mut c, cmsg::NET_ERROR, &111i32.to_ne_bytes());
        push_cmsg(&mut c, cmsg::LOCAL_ERROR, &62i32.to_ne_bytes());
        push_cmsg(&mut c, cmsg::ACK, &[]);
        let r = parse_control(&c);
        assert_eq!(r.net_error, Some(111));
        assert_eq!(r.local_error, Some(62));
        assert!(r.ack && !r.busy && r.abort.is_none());
    }

    #[test]
    fn control_parser_survives_garbage() {
        let mut c = abort_control(1, -1);
        // Foreign level is skipped, not misread.
        c[8..12].copy_from_slice(&1i32.to_ne_bytes());
        assert_eq!(parse_control(&c).call_id, None);
        // Truncations and absurd lengths end the walk.
        let c = abort_control(1, -1);
        for n in 0..c.len() {
            let _ = parse_control(&c[..n]);
        }
        let mut bad = c.clone();
        bad[0..8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(parse_control(&bad), RecvControl::default());
        bad[0..8].copy_from_slice(&3u64.to_ne_bytes());
        assert_eq!(parse_control(&bad), RecvControl::default());
    }

    #[test]
    fn key_syscall_failures_name_the_call_and_errno() {
        // A 4-byte payload is never a valid rxrpc key: the host answers
        // ENODEV (no rxrpc.ko), EINVAL (rxrpc loaded), or EPERM/ENOSYS (a
        // seccomp filter, no CONFIG_KEYS); each is a typed error naming
        // the call without the payload.
        let e = add_key(
            "rxrpc",
            KERNEL_KEY_DESCRIPTION,
            &[1, 0, 0, 0],
            KEY_SPEC_PROCESS_KEYRING,
        )
        .unwrap_err();
        let t = e.to_string();
        assert!(
            t.starts_with(r#"add_key("rxrpc", "netboot@config", 4 bytes, -2): "#),
            "{t}"
        );
        assert!(matches!(e, KernelError::Key { errno, .. } if errno > 0));
        let e = KernelError::Key {
            call: "setsockopt(SOL_RXRPC, RXRPC_SECURITY_KEY, \"netboot@config\")".into(),
            errno: libc::EKEYEXPIRED,
        };
        assert!(e
            .to_string()
            .ends_with("(hint: the token has expired: mint a new one with netboot-configd token)"));
        assert!(invalidate_key(-12345).is_err());
    }

    #[test]
    fn no_af_rxrpc_is_a_clear_error_or_works() {
        // The host kernel has no AF_RXRPC (EAFNOSUPPORT); the VM has it.
        match KernelTransport::open(1024) {
            Ok(_) => {}
            Err(e) => assert!(e
                .to_string()
                .starts_with("socket(AF_RXRPC, SOCK_DGRAM, PF_INET): ")),
        }
    }
}
