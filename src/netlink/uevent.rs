//! NETLINK_KOBJECT_UEVENT: the kernel's device announcements.
//!
//! Wire format (lib/kobject_uevent.c `kobject_uevent_env`, `uevent_net_broadcast`):
//! one datagram per event, `ACTION@DEVPATH\0` followed by `KEY=VALUE\0` pairs
//! (ACTION, DEVPATH, SUBSYSTEM, SEQNUM, and per device MAJOR, MINOR, DEVNAME,
//! DEVTYPE, PARTN, …). udevd re-broadcasts processed events on group 2 with a
//! binary header starting `libudev\0` (systemd src/libsystemd/sd-device/
//! device-monitor.c); a kernel-group listener must skip those.
//!
//! [`parse`] is pure and total: any byte string gives an event, `None` (a
//! libudev message) or a [`UeventError`], never a panic. [`UeventSocket`] is
//! the only code here that makes syscalls.

use crate::sys::poll::{deadline_after, poll_until};
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{bind, recvfrom, socket_with, AddressFamily, RecvFlags, SocketFlags, SocketType};
use std::fmt;
use std::time::{Duration, Instant};

/// Multicast group the kernel sends uevents to (kobject_uevent.c: `1` in
/// `netlink_broadcast_filtered(..., 0, 1, ...)`); udevd uses group 2.
pub const KERNEL_GROUP: u32 = 1;
/// Largest uevent the kernel builds: `UEVENT_BUFFER_SIZE` (include/linux/kobject.h)
/// plus the `ACTION@DEVPATH` header; one page covers both.
pub const MAX_MESSAGE: usize = 8192;
/// Prefix of udevd's re-broadcast messages (device-monitor.c `"libudev"`).
const LIBUDEV_PREFIX: &[u8] = b"libudev\0";

/// What a parse or socket step failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UeventError {
    /// The datagram was empty.
    Empty,
    /// The first string has no `@` (it must be `ACTION@DEVPATH`).
    Header(String),
    /// A field is not UTF-8; `index` counts NUL-separated fields from 0.
    NotUtf8 {
        index: usize,
    },
    /// MAJOR, MINOR, PARTN or SEQNUM is not a decimal number.
    Number {
        key: &'static str,
        value: String,
    },
    Socket(Errno),
    Bind(Errno),
    Recv(Errno),
}

impl fmt::Display for UeventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UeventError::Empty => write!(f, "uevent: empty datagram"),
            UeventError::Header(h) => {
                write!(f, "uevent: header {h:?} is not ACTION@DEVPATH")
            }
            UeventError::NotUtf8 { index } => write!(f, "uevent: field {index} is not UTF-8"),
            UeventError::Number { key, value } => {
                write!(f, "uevent: {key}={value:?} is not a decimal number")
            }
            UeventError::Socket(e) => write!(
                f,
                "socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT): {e}"
            ),
            UeventError::Bind(e) => {
                write!(f, "bind(NETLINK_KOBJECT_UEVENT, group {KERNEL_GROUP}): {e}")
            }
            UeventError::Recv(e) => write!(f, "recvfrom(uevent socket): {e}"),
        }
    }
}

impl std::error::Error for UeventError {}

/// `ACTION` values (include/linux/kobject.h `enum kobject_action`); unknown
/// ones are kept (STYLE.md item 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Change,
    Move,
    Online,
    Offline,
    Bind,
    Unbind,
    Other(String),
}

impl Action {
    fn from_str(s: &str) -> Action {
        match s {
            "add" => Action::Add,
            "remove" => Action::Remove,
            "change" => Action::Change,
            "move" => Action::Move,
            "online" => Action::Online,
            "offline" => Action::Offline,
            "bind" => Action::Bind,
            "unbind" => Action::Unbind,
            other => Action::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Change => "change",
            Action::Move => "move",
            Action::Online => "online",
            Action::Offline => "offline",
            Action::Bind => "bind",
            Action::Unbind => "unbind",
            Action::Other(s) => s,
        }
    }
}

/// One kernel uevent. The well-known keys are typed; every pair, known or
/// not, stays in `env` in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: Action,
    /// Below /sys, e.g. `/devices/platform/host0/session1/target0:0:0/0:0:0:1/block/sda`.
    pub devpath: String,
    pub subsystem: Option<String>,
    /// `disk` or `partition` for block devices.
    pub devtype: Option<String>,
    /// Name below /dev, e.g. `sda1`.
    pub devname: Option<String>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub partn: Option<u32>,
    pub seqnum: Option<u64>,
    pub env: Vec<(String, String)>,
}

impl Uevent {
    /// The value of `key`, known or not.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The wire form: `ACTION@DEVPATH\0` then `KEY=VALUE\0` for every pair.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.action.as_str().as_bytes());
        out.push(b'@');
        out.extend_from_slice(self.devpath.as_bytes());
        out.push(0);
        for (k, v) in &self.env {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }
}

fn number<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, UeventError> {
    value.parse().map_err(|_| UeventError::Number {
        key,
        value: value.to_string(),
    })
}

/// Parse one datagram. `Ok(None)`: a udevd (`libudev`) message, not ours.
/// Fields without `=` after the header are skipped (the kernel never sends
/// them); a trailing field without its NUL is accepted.
pub fn parse(buf: &[u8]) -> Result<Option<Uevent>, UeventError> {
    if buf.is_empty() {
        return Err(UeventError::Empty);
    }
    if buf.starts_with(LIBUDEV_PREFIX) {
        return Ok(None);
    }
    let mut fields = buf.split(|&b| b == 0);
    let header = fields.next().unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|_| UeventError::NotUtf8 { index: 0 })?;
    let (action, devpath) = header
        .split_once('@')
        .ok_or_else(|| UeventError::Header(header.to_string()))?;
    let mut ev = Uevent {
        action: Action::from_str(action),
        devpath: devpath.to_string(),
        subsystem: None,
        devtype: None,
        devname: None,
        major: None,
        minor: None,
        partn: None,
        seqnum: None,
        env: Vec::new(),
    };
    for (i, field) in fields.enumerate() {
        if field.is_empty() {
            continue;
        }
        let s = std::str::from_utf8(field).map_err(|_| UeventError::NotUtf8 { index: i + 1 })?;
        let Some((k, v)) = s.split_once('=') else {
            continue;
        };
        match k {
            "SUBSYSTEM" => ev.subsystem = Some(v.to_string()),
            "DEVTYPE" => ev.devtype = Some(v.to_string()),
            "DEVNAME" => ev.devname = Some(v.to_string()),
            "MAJOR" => ev.major = Some(number("MAJOR", v)?),
            "MINOR" => ev.minor = Some(number("MINOR", v)?),
            "PARTN" => ev.partn = Some(number("PARTN", v)?),
            "SEQNUM" => ev.seqnum = Some(number("SEQNUM", v)?),
            _ => {}
        }
        ev.env.push((k.to_string(), v.to_string()));
    }
    Ok(Some(ev))
}

/// What one wait on the socket produced.
#[derive(Debug)]
pub enum Received {
    Event(Uevent),
    /// Nothing within the timeout.
    Timeout,
    /// The receive queue overflowed (ENOBUFS): events were lost, so the
    /// caller must re-read its state from sysfs.
    Lost,
}

/// A socket subscribed to the kernel's uevent group.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
}

/// Receive queue we ask for: a LUN with many partitions plus unrelated
/// devices can burst hundreds of events while we are busy; udevd asks for
/// 128 MiB, 4 MiB is plenty for an initramfs.
const RCVBUF: usize = 4 << 20;

impl UeventSocket {
    /// `socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)` bound to the
    /// kernel group. Receiving needs no privilege (the kernel sets
    /// NL_CFG_F_NONROOT_RECV for this family).
    pub fn open() -> Result<UeventSocket, UeventError> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )
        .map_err(UeventError::Socket)?;
        bind(&fd, &SocketAddrNetlink::new(0, 1 << (KERNEL_GROUP - 1)))
            .map_err(UeventError::Bind)?;
        let sock = UeventSocket { fd };
        sock.grow_recv_buffer();
        Ok(sock)
    }

    /// SO_RCVBUFFORCE (root may exceed `net.core.rmem_max`), else SO_RCVBUF.
    /// Best effort: a smaller queue only means we may see `Lost` and rescan.
    fn grow_recv_buffer(&self) {
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&self.fd, RCVBUF).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&self.fd, RCVBUF);
        }
    }

    /// Wait up to `timeout` for one kernel uevent. Messages not sent by the
    /// kernel (sender port id ≠ 0, e.g. a forged one), libudev messages and
    /// unparsable datagrams are dropped (logged at debug) and the wait goes
    /// on until the timeout, which is measured from the call.
    pub fn recv(&mut self, timeout: Duration) -> Result<Received, UeventError> {
        let end = deadline_after(timeout);
        let mut buf = [0u8; MAX_MESSAGE];
        loop {
            if !poll_until(&self.fd, PollFlags::IN, end).map_err(UeventError::Recv)? {
                return Ok(Received::Timeout);
            }
            let (n, sender) = match recvfrom(self.fd.as_fd(), &mut buf, RecvFlags::DONTWAIT) {
                Ok((n, _, addr)) => (
                    n,
                    addr.and_then(|a| SocketAddrNetlink::try_from(a).ok())
                        .map_or(u32::MAX, |a| a.pid()),
                ),
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                Err(Errno::NOBUFS) => return Ok(Received::Lost),
                Err(e) => return Err(UeventError::Recv(e)),
            };
            if sender != 0 {
                log::debug!("uevent from port {sender} ignored (not the kernel)");
                continue;
            }
            match parse(buf.get(..n).unwrap_or_default()) {
                Ok(Some(ev)) => return Ok(Received::Event(ev)),
                Ok(None) => {}
                Err(e) => log::debug!("{e}"),
            }
            if Instant::now() >= end {
                return Ok(Received::Timeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk add in the order kobject_uevent_env builds it: ACTION,
    /// DEVPATH, SUBSYSTEM, the device's own vars (drivers/base/core.c
    /// `dev_uevent`, block/genhd.c `block_uevent`), SEQNUM last. Hand-made
    /// from that code, not captured.
    const SDA_ADD: &[u8] = b"add@/devices/platform/host0/session1/target0:0:0/0:0:0:1/block/sda\0\
ACTION=add\0DEVPATH=/devices/platform/host0/session1/target0:0:0/0:0:0:1/block/sda\0\
SUBSYSTEM=block\0MAJOR=8\0MINOR=0\0DEVNAME=sda\0DEVTYPE=disk\0DISKSEQ=9\0SEQNUM=1841\0";

    #[test]
    fn parses_a_disk_add() {
        let ev = parse(SDA_ADD).unwrap().unwrap();
        assert_eq!(ev.action, Action::Add);
        assert_eq!(
            ev.devpath,
            "/devices/platform/host0/session1/target0:0:0/0:0:0:1/block/sda"
        );
        assert_eq!(ev.subsystem.as_deref(), Some("block"));
        assert_eq!(ev.devtype.as_deref(), Some("disk"));
        assert_eq!(ev.devname.as_deref(), Some("sda"));
        assert_eq!((ev.major, ev.minor, ev.partn), (Some(8), Some(0), None));
        assert_eq!(ev.seqnum, Some(1841));
        assert_eq!(ev.get("DISKSEQ"), Some("9"));
        assert_eq!(ev.encode(), SDA_ADD);
    }

    #[test]
    fn partition_and_unknown_action() {
        let ev = parse(b"frob@/x/sda1\0DEVTYPE=partition\0PARTN=1\0DEVNAME=sda1")
            .unwrap()
            .unwrap();
        assert_eq!(ev.action, Action::Other("frob".into()));
        assert_eq!(ev.partn, Some(1));
        assert_eq!(ev.devname.as_deref(), Some("sda1"));
    }

    #[test]
    fn errors_and_libudev() {
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe").unwrap(), None);
        let cases: &[(&[u8], &str)] = &[
            (b"", "uevent: empty datagram"),
            (
                b"add\0A=b\0",
                "uevent: header \"add\" is not ACTION@DEVPATH",
            ),
            (
                b"add@/x\0MAJOR=8x\0",
                "uevent: MAJOR=\"8x\" is not a decimal number",
            ),
            (b"add@/x\0A=\xff\0", "uevent: field 1 is not UTF-8"),
            (b"\xffadd@/x\0", "uevent: field 0 is not UTF-8"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap_err().to_string(), *want, "{input:?}");
        }
    }
}
