//! Connect and log in: runs the login machine over any channel, follows
//! redirects (status 0x0101/0x0102) and retries target-side transient
//! failures (0x03xx) with bounded exponential backoff.

use super::channel::{ChannelError, PduChannel};
use super::login::{
    parse_target_address, Login, LoginConfig, LoginError, LoginOutcome, Portal, Step,
};
use crate::backoff::Backoff;
use std::fmt;
use std::time::Duration;

/// Opens a channel to a portal: a TCP stream in userspace, or a TCP socket
/// bound to a new kernel connection on the NETLINK_ISCSI path.
pub trait Connector {
    type Channel: PduChannel;
    fn connect(&mut self, portal: &Portal) -> Result<Self::Channel, ChannelError>;
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total login attempts on transient failures (≥ 1).
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Also retry when the TCP connect itself fails (at boot the target may
    /// still be coming up); a tool run by hand should fail fast instead.
    pub retry_connect: bool,
    pub max_redirects: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            retry_connect: false,
            max_redirects: 4,
        }
    }
}

#[derive(Debug)]
pub enum EstablishError {
    Channel {
        target: String,
        portal: Portal,
        error: ChannelError,
    },
    Login {
        target: String,
        portal: Portal,
        error: LoginError,
    },
    TooManyRedirects {
        target: String,
        portal: Portal,
        count: u32,
    },
}

impl EstablishError {
    fn transient(&self, policy: &RetryPolicy) -> bool {
        match self {
            EstablishError::Login { error, .. } => error.is_transient(),
            EstablishError::Channel { error, .. } => {
                policy.retry_connect
                    && matches!(
                        error,
                        ChannelError::Connect { .. } | ChannelError::ConnectTimeout { .. }
                    )
            }
            EstablishError::TooManyRedirects { .. } => false,
        }
    }

    pub fn login_error(&self) -> Option<&LoginError> {
        match self {
            EstablishError::Login { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for EstablishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // These already name the portal.
            EstablishError::Channel {
                error:
                    e @ (ChannelError::Connect { .. }
                    | ChannelError::ConnectTimeout { .. }
                    | ChannelError::Resolve { .. }),
                ..
            } => write!(f, "{e}"),
            EstablishError::Channel {
                target,
                portal,
                error,
            } => {
                write!(f, "login to {target} at {portal} failed: {error}")
            }
            EstablishError::Login {
                target,
                portal,
                error,
            } => {
                write!(f, "login to {target} at {portal} failed: {error}")
            }
            EstablishError::TooManyRedirects {
                target,
                portal,
                count,
            } => {
                write!(
                    f,
                    "login to {target}: gave up after {count} redirects (last to {portal})"
                )
            }
        }
    }
}

impl std::error::Error for EstablishError {}

/// A logged-in channel and what the login settled.
pub struct Established<C> {
    pub channel: C,
    pub outcome: LoginOutcome,
    /// The portal the session is on (after redirects).
    pub portal: Portal,
    pub redirects: u32,
    pub attempts: u32,
}

/// Run one login over an open channel.
pub fn drive<C: PduChannel + ?Sized>(
    ch: &mut C,
    cfg: LoginConfig,
) -> Result<LoginOutcome, DriveError> {
    let (mut login, first) = Login::start(cfg).map_err(DriveError::Login)?;
    ch.send(&first).map_err(DriveError::Channel)?;
    loop {
        let pdu = ch.recv().map_err(DriveError::Channel)?;
        match login.receive(&pdu).map_err(DriveError::Login)? {
            Step::Send(next) => ch.send(&next).map_err(DriveError::Channel)?,
            Step::Done(outcome) => return Ok(outcome),
        }
    }
}

#[derive(Debug)]
pub enum DriveError {
    Channel(ChannelError),
    Login(LoginError),
}

/// Connect to `portal` and log in, following redirects and retrying
/// transient failures per `policy`. `sleep` is injected so tests run fast.
pub fn establish<K: Connector>(
    connector: &mut K,
    portal: &Portal,
    cfg: &LoginConfig,
    policy: &RetryPolicy,
    sleep: &mut dyn FnMut(Duration),
) -> Result<Established<K::Channel>, EstablishError> {
    let target = cfg
        .target_name
        .clone()
        .unwrap_or_else(|| "the discovery session".into());
    let mut backoff = Backoff::new(policy.initial_backoff, policy.max_backoff);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match establish_once(connector, portal, cfg, policy, &target) {
            Ok(mut est) => {
                est.attempts = attempt;
                return Ok(est);
            }
            Err(e) if attempt < policy.attempts.max(1) && e.transient(policy) => {
                let pause = backoff.next();
                log::warn!("{e}; retrying in {}", super::channel::secs(pause));
                sleep(pause);
            }
            Err(e) => return Err(e),
        }
    }
}

fn establish_once<K: Connector>(
    connector: &mut K,
    first: &Portal,
    cfg: &LoginConfig,
    policy: &RetryPolicy,
    target: &str,
) -> Result<Established<K::Channel>, EstablishError> {
    let mut portal = first.clone();
    let mut redirects = 0;
    loop {
        let mut ch = connector
            .connect(&portal)
            .map_err(|error| EstablishError::Channel {
                target: target.to_string(),
                portal: portal.clone(),
                error,
            })?;
        match drive(&mut ch, cfg.clone()) {
            Ok(outcome) => {
                return Ok(Established {
                    channel: ch,
                    outcome,
                    portal,
                    redirects,
                    attempts: 1,
                });
            }
            Err(DriveError::Login(LoginError::Redirect { address, permanent })) => {
                redirects += 1;
                if redirects > policy.max_redirects {
                    return Err(EstablishError::TooManyRedirects {
                        target: target.to_string(),
                        portal,
                        count: redirects - 1,
                    });
                }
                let (next, _tpgt) =
                    parse_target_address(&address, portal.port).ok_or_else(|| {
                        EstablishError::Login {
                            target: target.to_string(),
                            portal: portal.clone(),
                            error: LoginError::BadRedirect {
                                value: address.clone(),
                            },
                        }
                    })?;
                log::info!(
                    "target {target} at {portal} redirects {} to {next}",
                    if permanent {
                        "permanently"
                    } else {
                        "temporarily"
                    }
                );
                portal = next;
            }
            Err(DriveError::Login(error)) => {
                return Err(EstablishError::Login {
                    target: target.to_string(),
                    portal,
                    error,
                })
            }
            Err(DriveError::Channel(error)) => {
                return Err(EstablishError::Channel {
                    target: target.to_string(),
                    portal,
                    error,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::login::SessionType;
    use crate::iscsi::pdu::{LoginRequest, LoginResponse, Pdu, Stage, TargetSn};
    use crate::iscsi::text;
    use std::collections::VecDeque;

    type Reply = dyn Fn(&LoginRequest) -> (u16, Vec<(String, String)>);

    /// A scripted target: answers every Login Request with the status and
    /// keys the script gives for this portal and attempt.
    struct Scripted {
        answers: VecDeque<Pdu>,
        reply: Box<Reply>,
    }

    impl PduChannel for Scripted {
        fn send(&mut self, pdu: &Pdu) -> Result<(), ChannelError> {
            let req = LoginRequest::from_pdu(pdu).map_err(ChannelError::Pdu)?;
            let (status, kv) = (self.reply)(&req);
            self.answers.push_back(
                LoginResponse {
                    transit: true,
                    cont: false,
                    csg: req.csg,
                    nsg: Stage::FullFeature,
                    version_max: 0,
                    version_active: 0,
                    isid: req.isid,
                    tsih: 1,
                    itt: req.itt,
                    sn: TargetSn::default(),
                    status_class: (status >> 8) as u8,
                    status_detail: status as u8,
                    data: text::encode(&kv),
                }
                .to_pdu(),
            );
            Ok(())
        }
        fn recv(&mut self) -> Result<Pdu, ChannelError> {
            self.answers.pop_front().ok_or(ChannelError::Closed)
        }
    }

    type Plan = dyn Fn(&Portal, usize) -> Result<u16, ()>;

    /// Connector whose behaviour depends on the portal and a call counter.
    struct Script {
        calls: Vec<Portal>,
        plan: Box<Plan>,
    }

    impl Connector for Script {
        type Channel = Scripted;
        fn connect(&mut self, portal: &Portal) -> Result<Scripted, ChannelError> {
            self.calls.push(portal.clone());
            let n = self.calls.len();
            let status = (self.plan)(portal, n).map_err(|_| ChannelError::Connect {
                portal: portal.to_string(),
                error: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            })?;
            Ok(Scripted {
                answers: VecDeque::new(),
                reply: Box::new(move |_| {
                    let kv = if status >> 8 == 1 {
                        vec![("TargetAddress".to_string(), "10.9.9.9:3270,2".to_string())]
                    } else {
                        vec![]
                    };
                    (status, kv)
                }),
            })
        }
    }

    fn cfg() -> LoginConfig {
        LoginConfig::new("iqn.i", Some("iqn.t"), SessionType::Normal)
    }

    fn portal() -> Portal {
        Portal {
            host: "10.0.0.1".into(),
            port: 3260,
        }
    }

    #[test]
    fn follows_redirect_to_target_address() {
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|p, _| Ok(if p.host == "10.0.0.1" { 0x0101 } else { 0 })),
        };
        let est = establish(
            &mut c,
            &portal(),
            &cfg(),
            &RetryPolicy::default(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            est.portal,
            Portal {
                host: "10.9.9.9".into(),
                port: 3270
            }
        );
        assert_eq!(est.redirects, 1);
        assert_eq!(c.calls.len(), 2);
    }

    #[test]
    fn redirect_loop_is_bounded() {
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|_, _| Ok(0x0102)),
        };
        let e = establish(
            &mut c,
            &portal(),
            &cfg(),
            &RetryPolicy::default(),
            &mut |_| {},
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, EstablishError::TooManyRedirects { count: 4, .. }),
            "{e}"
        );
        assert_eq!(c.calls.len(), 5);
    }

    #[test]
    fn transient_target_errors_retry_with_backoff() {
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|_, n| Ok(if n < 3 { 0x0301 } else { 0 })),
        };
        let mut slept = vec![];
        let est = establish(
            &mut c,
            &portal(),
            &cfg(),
            &RetryPolicy::default(),
            &mut |d| slept.push(d),
        )
        .unwrap();
        assert_eq!(est.attempts, 3);
        assert_eq!(
            slept,
            vec![Duration::from_millis(500), Duration::from_millis(1000)]
        );
    }

    #[test]
    fn transient_retries_are_bounded() {
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|_, _| Ok(0x0302)),
        };
        let mut slept = 0;
        let e = establish(
            &mut c,
            &portal(),
            &cfg(),
            &RetryPolicy::default(),
            &mut |_| slept += 1,
        )
        .err()
        .unwrap();
        assert_eq!(c.calls.len(), 3);
        assert_eq!(slept, 2);
        assert!(e.to_string().contains("out of resources"), "{e}");
    }

    #[test]
    fn permanent_errors_do_not_retry() {
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|_, _| Ok(0x0203)),
        };
        let e = establish(
            &mut c,
            &portal(),
            &cfg(),
            &RetryPolicy::default(),
            &mut |_| panic!("slept"),
        )
        .err()
        .unwrap();
        assert_eq!(c.calls.len(), 1);
        assert_eq!(e.to_string(), "login to iqn.t at 10.0.0.1:3260 failed: target iqn.t not found on this portal (status 0x0203)");
    }

    #[test]
    fn connect_errors_retry_only_when_asked() {
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|_, n| if n < 2 { Err(()) } else { Ok(0) }),
        };
        let e = establish(
            &mut c,
            &portal(),
            &cfg(),
            &RetryPolicy::default(),
            &mut |_| {},
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().starts_with("connect to 10.0.0.1:3260 failed"),
            "{e}"
        );
        let policy = RetryPolicy {
            retry_connect: true,
            ..RetryPolicy::default()
        };
        let mut c = Script {
            calls: vec![],
            plan: Box::new(|_, n| if n < 2 { Err(()) } else { Ok(0) }),
        };
        assert!(establish(&mut c, &portal(), &cfg(), &policy, &mut |_| {}).is_ok());
    }
}
