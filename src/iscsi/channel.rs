//! Channels that carry PDUs: the trait the login machine runs over, and the
//! userspace TCP channel (discover, probe, host tests). The kernel channel
//! (SEND_PDU / KEVENT_RECV_PDU) implements the same trait.

use super::login::Portal;
use super::pdu::{self, Pdu, PduError, BHS_LEN};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum ChannelError {
    /// Name resolution of the portal host failed.
    Resolve {
        portal: String,
        error: String,
    },
    /// connect() failed on every address of the portal.
    Connect {
        portal: String,
        error: io::Error,
    },
    ConnectTimeout {
        portal: String,
        after: Duration,
    },
    Send {
        error: io::Error,
    },
    Recv {
        error: io::Error,
    },
    /// No PDU arrived in time.
    RecvTimeout {
        after: Duration,
    },
    /// The deadline of the whole run passed (see [`Deadline`]), however
    /// busy the target kept the connection.
    Deadline {
        total: Duration,
    },
    /// The peer closed the connection.
    Closed,
    /// The peer announced a data segment larger than we accept.
    TooLarge {
        len: usize,
        limit: usize,
    },
    Pdu(PduError),
    /// Anything the kernel channel reports (netlink errors carry their step).
    Other(String),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Resolve { portal, error } => {
                write!(f, "cannot resolve {portal}: {error}")
            }
            ChannelError::Connect { portal, error } => {
                write!(f, "connect to {portal} failed: {error}")
            }
            ChannelError::ConnectTimeout { portal, after } => {
                write!(f, "connect to {portal} timed out after {}", secs(*after))
            }
            ChannelError::Send { error } => write!(f, "send failed: {error}"),
            ChannelError::Recv { error } => write!(f, "receive failed: {error}"),
            ChannelError::RecvTimeout { after } => {
                write!(
                    f,
                    "no answer from the target: timed out after {}",
                    secs(*after)
                )
            }
            ChannelError::Deadline { total } => write!(
                f,
                "timed out after {}, the deadline for the whole command",
                secs(*total)
            ),
            ChannelError::Closed => write!(f, "target closed the connection"),
            ChannelError::TooLarge { len, limit } => {
                write!(f, "target sent a {len}-byte data segment (limit {limit})")
            }
            ChannelError::Pdu(e) => write!(f, "{e}"),
            ChannelError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ChannelError {}

pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Resolve `portal` and connect within `timeout` overall: every resolved
/// address is tried in turn with the time that is left. Shared by the
/// userspace channel and the kernel channel (which hands the socket to
/// iscsi_tcp).
pub fn connect_stream(portal: &Portal, timeout: Duration) -> Result<TcpStream, ChannelError> {
    let name = portal.to_string();
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = (portal.host.as_str(), portal.port)
        .to_socket_addrs()
        .map_err(|e| ChannelError::Resolve {
            portal: name.clone(),
            error: e.to_string(),
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                // Login and SCSI PDUs are small and latency-bound.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                last = Some(ChannelError::ConnectTimeout {
                    portal: name.clone(),
                    after: timeout,
                });
            }
            Err(error) => {
                last = Some(ChannelError::Connect {
                    portal: name.clone(),
                    error,
                })
            }
        }
    }
    Err(last.unwrap_or(ChannelError::ConnectTimeout {
        portal: name,
        after: timeout,
    }))
}

/// The end of a whole run (`--timeout` of `netboot probe` and `discover`):
/// a per-receive timeout alone lets a target that keeps sending something
/// (NOP-Ins, Data-In without status, empty text continuations) hold the
/// run forever; with a deadline no connect, send or receive waits past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    /// Its length, for the error.
    pub total: Duration,
}

impl Deadline {
    /// `total` from now.
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The error once it has passed.
    pub fn passed(&self) -> ChannelError {
        ChannelError::Deadline { total: self.total }
    }
}

/// Something that carries whole PDUs both ways.
pub trait PduChannel {
    fn send(&mut self, pdu: &Pdu) -> Result<(), ChannelError>;
    /// Next PDU, waiting at most the channel's receive timeout.
    fn recv(&mut self) -> Result<Pdu, ChannelError>;
}

/// The end of one wait, and whether it is the run's deadline.
struct Wait {
    end: Instant,
    deadline: Option<Deadline>,
}

/// iSCSI over a userspace TCP stream.
pub struct TcpChannel {
    stream: TcpStream,
    timeout: Duration,
    /// Largest data segment accepted (our MaxRecvDataSegmentLength, with room
    /// for targets that send a text response up to the 24-bit limit).
    pub max_data: usize,
    pub peer: SocketAddr,
    /// Bounds every wait together with `timeout`, if set.
    deadline: Option<Deadline>,
}

impl TcpChannel {
    /// Resolve and connect within `timeout` overall (see [`connect_stream`]).
    pub fn connect(portal: &Portal, timeout: Duration) -> Result<TcpChannel, ChannelError> {
        let stream = connect_stream(portal, timeout)?;
        let peer = stream.peer_addr().map_err(|error| ChannelError::Connect {
            portal: portal.to_string(),
            error,
        })?;
        Ok(TcpChannel {
            stream,
            timeout,
            max_data: pdu::MAX_DATA_SEGMENT,
            peer,
            deadline: None,
        })
    }

    /// Connect within `timeout` and what is left of `deadline`, which then
    /// bounds every send and receive on the channel too.
    pub fn connect_by(
        portal: &Portal,
        timeout: Duration,
        deadline: Deadline,
    ) -> Result<TcpChannel, ChannelError> {
        let left = deadline.left();
        if left.is_zero() {
            return Err(deadline.passed());
        }
        let mut ch = TcpChannel::connect(portal, timeout.min(left))?;
        ch.timeout = timeout;
        ch.deadline = Some(deadline);
        Ok(ch)
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// When the wait that starts now must end: after the per-PDU timeout,
    /// or at the run's deadline if that comes first.
    fn wait_end(&self) -> Wait {
        let by = Instant::now() + self.timeout;
        match self.deadline {
            Some(d) if d.at <= by => Wait {
                end: d.at,
                deadline: Some(d),
            },
            _ => Wait {
                end: by,
                deadline: None,
            },
        }
    }

    /// The error when `wait` ran out.
    fn late(&self, wait: &Wait) -> ChannelError {
        match wait.deadline {
            Some(d) => d.passed(),
            None => ChannelError::RecvTimeout {
                after: self.timeout,
            },
        }
    }

    fn read_exact_by(&mut self, buf: &mut [u8], wait: &Wait) -> Result<(), ChannelError> {
        let deadline = wait.end;
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.late(wait));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|error| ChannelError::Recv { error })?;
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return Err(ChannelError::Closed),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.late(wait))
                }
                Err(error) => return Err(ChannelError::Recv { error }),
            }
        }
        Ok(())
    }
}

impl PduChannel for TcpChannel {
    fn send(&mut self, pdu: &Pdu) -> Result<(), ChannelError> {
        let bytes = pdu.encode().map_err(ChannelError::Pdu)?;
        let wait = self.wait_end();
        let left = wait.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.late(&wait));
        }
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|error| ChannelError::Send { error })?;
        self.stream
            .write_all(&bytes)
            .map_err(|error| match wait.deadline {
                Some(d)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    d.passed()
                }
                _ => ChannelError::Send { error },
            })
    }

    fn recv(&mut self) -> Result<Pdu, ChannelError> {
        let wait = self.wait_end();
        let mut bhs = [0u8; BHS_LEN];
        self.read_exact_by(&mut bhs, &wait)?;
        let (ahs, data) = pdu::segment_lengths(&bhs);
        if data > self.max_data {
            return Err(ChannelError::TooLarge {
                len: data,
                limit: self.max_data,
            });
        }
        let mut tail = vec![0u8; pdu::wire_tail_len(ahs, data)];
        self.read_exact_by(&mut tail, &wait)?;
        let mut whole = Vec::with_capacity(BHS_LEN + tail.len());
        whole.extend_from_slice(&bhs);
        whole.extend_from_slice(&tail);
        Pdu::decode(&whole)
            .map(|(p, _)| p)
            .map_err(ChannelError::Pdu)
    }
}
