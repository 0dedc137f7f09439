//! The NETLINK_CONNECTOR socket: the only code here that makes syscalls.
//! Message bytes come from the pure codec in `netlink/connector.rs`.

use crate::sys::poll::{deadline_after, poll_fds_until};
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{
    bind, getsockname, recvfrom, sendto, socket_with, AddressFamily, RecvFlags, SendFlags,
    SocketFlags, SocketType,
};
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// A failed socket operation, naming the operation and the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockError {
    Socket(Errno),
    Bind(Errno),
    /// The group is not in 1..=32.
    GroupRange(u32),
    Join {
        group: u32,
        errno: Errno,
    },
    Recv(Errno),
}

impl fmt::Display for SockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockError::Socket(e) => {
                write!(f, "socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR): {e}")
            }
            SockError::Bind(e) => write!(f, "bind(AF_NETLINK connector socket): {e}"),
            SockError::GroupRange(g) => write!(f, "connector group {g} is outside 1..=32"),
            SockError::Join { group, errno } => write!(
                f,
                "joining connector group {group}: {errno}{}",
                if *errno == Errno::PERM || *errno == Errno::ACCESS {
                    " (hint: needs CAP_NET_ADMIN, run as root)"
                } else {
                    ""
                }
            ),
            SockError::Recv(e) => write!(f, "recvfrom(connector socket): {e}"),
        }
    }
}

impl std::error::Error for SockError {}

/// Group mask bit for `nl_groups` (group g ⇒ bit g−1).
pub fn group_mask(group: u32) -> Result<u32, SockError> {
    if (1..=32).contains(&group) {
        Ok(1u32 << (group - 1))
    } else {
        Err(SockError::GroupRange(group))
    }
}

/// One connector socket, bound with a kernel-chosen port id.
#[derive(Debug)]
pub struct CnSocket {
    fd: OwnedFd,
    portid: u32,
    /// The groups joined so far, as the `nl_groups` mask last bound.
    groups: Cell<u32>,
}

impl CnSocket {
    /// `socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR)` + `bind` (portid 0:
    /// the kernel assigns one, no groups yet).
    pub fn open() -> Result<CnSocket, SockError> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::CONNECTOR),
        )
        .map_err(SockError::Socket)?;
        bind(&fd, &SocketAddrNetlink::new(0, 0)).map_err(SockError::Bind)?;
        let portid = getsockname(&fd)
            .ok()
            .and_then(|a| SocketAddrNetlink::try_from(a).ok())
            .map_or(0, |a| a.pid());
        Ok(CnSocket {
            fd,
            portid,
            groups: Cell::new(0),
        })
    }

    /// Our port id (the `nl_pid` receivers see).
    pub fn portid(&self) -> u32 {
        self.portid
    }

    /// Subscribe to `group`; needs CAP_NET_ADMIN (connector sets no
    /// NL_CFG_F_NONROOT_RECV, so the kernel answers EPERM otherwise).
    ///
    /// Done by binding again with an `nl_groups` mask rather than with
    /// `setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP)`, which rustix has
    /// no setter for; groups are 1..=32 here, so the mask covers them all.
    /// af_netlink.c `netlink_bind`: a bound socket may bind again only with
    /// its own port id, and the new mask *replaces* the first 32 groups, so
    /// the groups joined before are kept in the mask.
    pub fn join(&self, group: u32) -> Result<(), SockError> {
        let mask = self.groups.get() | group_mask(group)?;
        bind(&self.fd, &SocketAddrNetlink::new(self.portid, mask))
            .map_err(|errno| SockError::Join { group, errno })?;
        self.groups.set(mask);
        Ok(())
    }

    /// Ask for a bigger receive queue, so a burst does not overflow it.
    /// Best effort: the kernel caps it at `net.core.rmem_max`.
    pub fn grow_recv_buffer(&self, bytes: usize) {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&self.fd, bytes);
    }

    /// Multicast one datagram to `group` without blocking (MSG_DONTWAIT).
    /// Note the kernel also gets a unicast copy; in a non-initial netns that
    /// copy fails with ECONNREFUSED after the multicast was delivered.
    pub fn send_group(&self, group: u32, datagram: &[u8]) -> Result<usize, Errno> {
        let mask = group_mask(group).map_err(|_| Errno::INVAL)?;
        sendto(
            &self.fd,
            datagram,
            SendFlags::DONTWAIT,
            &SocketAddrNetlink::new(0, mask),
        )
    }

    /// Wait up to `timeout` (None: forever) for one datagram; returns its
    /// length and the sender's port id, or None on timeout. ENOBUFS (our
    /// queue overflowed, messages were dropped) comes back as an error.
    pub fn recv(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<(usize, u32)>, Errno> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        if poll_fds_until(&mut fds, timeout.map(deadline_after))? == 0 {
            return Ok(None);
        }
        match recvfrom(self.fd.as_fd(), &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _, addr)) => {
                let pid = addr
                    .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                    .map_or(0, |a| a.pid());
                Ok(Some((n, pid)))
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
