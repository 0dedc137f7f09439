//! The iSCSI attach step: one kernel session per root path, in failover
//! order, logged in with the same state machine as the userspace tools.

use super::error::{Classify, ErrorKind};
use crate::events::Facts;
use crate::iscsi::channel::ChannelError;
use crate::iscsi::connect::{establish, EstablishError, RetryPolicy};
use crate::iscsi::kernel::{CommittedSession, IscsiNl, KernelConnector, KernelError, SessionSetup};
use crate::iscsi::login::{AuthUsed, LoginConfig, LoginError, LoginOutcome, Portal, SessionType};
use crate::iscsi::node::NodeSettings;
use crate::plan::{BootPlan, Chap, RootPath};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// TCP connect timeout of one attempt. A portal on the boot LAN answers a
/// SYN in milliseconds; one that has not answered in 5 s is black-holed
/// (or down behind a switch), and the next path deserves its turn: a dead
/// first path delays the boot by at most this per round.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum AttachError {
    /// The ISID or a login override could not be prepared.
    Config { target: String, error: String },
    /// Connect, login or redirect failure (names target, portal, user).
    Login(EstablishError),
    /// Pushing the negotiated values or START_CONN failed.
    Start {
        target: String,
        portal: Portal,
        error: KernelError,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Config { target, error } => {
                write!(f, "preparing the login to {target}: {error}")
            }
            AttachError::Login(e) => write!(f, "{e}"),
            AttachError::Start {
                target,
                portal,
                error,
            } => write!(f, "starting the session with {target} at {portal}: {error}"),
        }
    }
}

impl std::error::Error for AttachError {}

/// A logged-in, running kernel session.
#[derive(Debug, Clone)]
pub struct Attached {
    pub session: CommittedSession,
    pub portal: Portal,
    pub outcome: LoginOutcome,
    pub redirects: u32,
    pub attempts: u32,
}

/// The credentials for a path: its own, else the global `rd.iscsi.*` ones.
pub fn chap_for<'a>(plan: &'a BootPlan, path: &'a RootPath) -> Option<&'a Chap> {
    path.chap.as_ref().or(plan.iscsi.chap.as_ref())
}

/// `rd.iscsi.initiator=` / `netboot.initiator=`, else a generated name
/// (host name, or the boot NIC's MAC in an initramfs without one).
pub fn initiator_name(plan: &BootPlan, mac: Option<&str>) -> String {
    match &plan.initiator {
        Some(i) => i.clone(),
        None => {
            let host = crate::iscsi::default_initiator_name();
            let host = host.rsplit(':').next().unwrap_or_default();
            crate::iscsi::initiator_for(host, mac)
        }
    }
}

/// Log in to one path through the kernel and start the session: one
/// attempt (redirects followed), bounded by `timeout`; the caller retries
/// under the boot's deadline ([`super::failover`]).
pub fn attach(
    nl: &Rc<IscsiNl>,
    plan: &BootPlan,
    node: &NodeSettings,
    initiator: &str,
    path: &RootPath,
    timeout: Duration,
) -> Result<Attached, AttachError> {
    let initiator = initiator.to_string();
    let chap = chap_for(plan, path).cloned();
    let mut cfg = LoginConfig::new(&initiator, Some(&path.target), SessionType::Normal);
    cfg.chap = chap.clone();
    let cfg_err = |error: String| AttachError::Config {
        target: path.target.clone(),
        error,
    };
    cfg.random_isid().map_err(|e| cfg_err(e.to_string()))?;
    // rd.iscsi.param's login keys first, netboot.param.KEY on top: the
    // list the plan's gate checked (cmdline::supported).
    let overrides = crate::cmdline::supported::login_overrides(node, plan);
    cfg.apply_overrides(&overrides)
        .map_err(|e| cfg_err(e.to_string()))?;
    let mut connector = KernelConnector {
        nl: nl.clone(),
        setup: SessionSetup {
            target: path.target.clone(),
            initiator,
            chap,
            cmds_max: clamp_u16(plan.tuning.cmds_max),
            queue_depth: clamp_u16(plan.tuning.queue_depth),
            node: node.clone(),
            timeout: node.pdu_timeout(timeout),
            connect_timeout: CONNECT_TIMEOUT.min(timeout),
            until: std::time::Instant::now() + timeout,
        },
    };
    let policy = RetryPolicy {
        attempts: 1,
        retry_connect: false,
        ..RetryPolicy::default()
    };
    let portal = Portal {
        host: path.server.clone(),
        port: path.port,
    };
    let est = establish(&mut connector, &portal, &cfg, &policy, &mut |_| {})
        .map_err(AttachError::Login)?;
    let session = est
        .channel
        .commit(&est.outcome, path.tpgt)
        .map_err(|error| AttachError::Start {
            target: path.target.clone(),
            portal: est.portal.clone(),
            error,
        })?;
    Ok(Attached {
        session,
        portal: est.portal,
        outcome: est.outcome,
        redirects: est.redirects,
        attempts: est.attempts,
    })
}

/// Transient: the portal is not reachable or not answering yet, or the
/// target says "try later" (0x03xx). Fatal: the target answered and said
/// no (authentication, authorization, unknown target), or what it said
/// cannot be negotiated — trying again changes nothing.
impl Classify for AttachError {
    fn kind(&self) -> ErrorKind {
        match self {
            AttachError::Config { .. } | AttachError::Start { .. } => ErrorKind::Fatal,
            AttachError::Login(e) => establish_kind(e),
        }
    }
}

fn establish_kind(e: &EstablishError) -> ErrorKind {
    match e {
        EstablishError::Channel { error, .. } => match error {
            ChannelError::Resolve { .. }
            | ChannelError::Connect { .. }
            | ChannelError::ConnectTimeout { .. }
            | ChannelError::Send { .. }
            | ChannelError::Recv { .. }
            | ChannelError::RecvTimeout { .. }
            | ChannelError::Deadline { .. }
            | ChannelError::Closed => ErrorKind::Transient,
            ChannelError::TooLarge { .. } | ChannelError::Pdu(_) | ChannelError::Other(_) => {
                ErrorKind::Fatal
            }
        },
        EstablishError::Login { error, .. } => login_kind(error),
        EstablishError::TooManyRedirects { .. } => ErrorKind::Fatal,
    }
}

fn login_kind(e: &LoginError) -> ErrorKind {
    if e.is_transient() {
        ErrorKind::Transient
    } else {
        ErrorKind::Fatal
    }
}

fn clamp_u16(v: u32) -> u16 {
    v.min(u32::from(u16::MAX)) as u16
}

/// Facts for the `iscsi.login` step (no secret: only the user name).
pub fn login_facts(path: &RootPath, chap: Option<&Chap>) -> Facts {
    let mut f = Facts::new()
        .str("portal", path.portal())
        .str("target", path.target.clone())
        .u64("lun", path.lun);
    if let Some(c) = chap {
        f = f.str("user", c.username.clone());
    }
    f
}

pub fn attached_facts(a: &Attached) -> Facts {
    let n = &a.outcome.negotiated;
    Facts::new()
        .u64("sid", a.session.sid.into())
        .u64("host", a.session.host_no.into())
        .str("portal", a.portal.to_string())
        .u64("tsih", a.outcome.tsih.into())
        .str(
            "auth",
            match a.outcome.auth {
                AuthUsed::None => "none",
                AuthUsed::Chap => "chap",
                AuthUsed::MutualChap => "mutual_chap",
            },
        )
        .u64(
            "MaxRecvDataSegmentLength",
            n.max_recv_data_segment_length.into(),
        )
        .u64(
            "MaxXmitDataSegmentLength",
            n.max_xmit_data_segment_length.into(),
        )
        .u64("FirstBurstLength", n.first_burst_length.into())
        .u64("MaxBurstLength", n.max_burst_length.into())
        .bool("ImmediateData", n.immediate_data)
        .bool("InitialR2T", n.initial_r2t)
        .bool("HeaderDigest", n.header_digest)
        .bool("DataDigest", n.data_digest)
        .u64("redirects", a.redirects.into())
        .u64("attempts", a.attempts.into())
}
