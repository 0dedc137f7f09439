//! The `config.fetch` client: ask netboot-configd servers in turn for this
//! machine's config over any [`RxTransport`] (the kernel's
//! `rxrpc::kernel::KernelTransport`, or the userspace
//! `rxrpc::udp::UdpTransport` where AF_RXRPC is missing, rxrpc.md §2.7),
//! with rounds and backoff, and validate the answer.

use super::proto::{self, Identity};
use super::schema::{Config, ConfigError};
use crate::backoff::Backoff;
use crate::cmdline::mask::Masker;
use crate::hostport::host_port;
use crate::plan::ConfigServer;
use crate::rxrpc::{CallError, RxTransport};
use std::fmt;
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

/// The pause before the second round over the servers; it doubles each
/// round up to [`ROUND_BACKOFF_CAP`].
const ROUND_BACKOFF: Duration = Duration::from_millis(500);
const ROUND_BACKOFF_CAP: Duration = Duration::from_secs(8);

/// Why no config was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// `netboot.config=` listed no server.
    NoServers,
    /// Every attempt at every server failed; one entry per attempt, in
    /// order: `host:port` and what happened.
    AllFailed(Vec<(String, AttemptError)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// The host name did not resolve (text of the resolver error).
    Resolve(String),
    Call(CallError),
    /// The reply was not an XDR opaque.
    Reply(proto::XdrError),
    /// The reply was no valid config.
    Config(ConfigError),
    /// `netboot.timeout` passed before this server's turn.
    Deadline,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Resolve(e) => write!(f, "cannot resolve: {e}"),
            // Positive codes are ours (proto.rs): name them here, where
            // the service is known.
            AttemptError::Call(CallError::Aborted(c)) => {
                write!(f, "call aborted with code {c} ({})", proto::abort_name(*c))?;
                match proto::abort_hint(*c) {
                    Some(h) => write!(f, ": {h}"),
                    None => Ok(()),
                }
            }
            AttemptError::Call(e) => e.fmt(f),
            AttemptError::Reply(e) => write!(f, "bad GetConfig reply: {e}"),
            AttemptError::Config(e) => e.fmt(f),
            AttemptError::Deadline => write!(f, "not tried: netboot.timeout passed"),
        }
    }
}

impl AttemptError {
    /// An answer another attempt at the same server cannot change during
    /// this boot: rxkad refused the token (expired, not yet valid, unknown
    /// key, a ticket that does not open, level too low) or configd's policy
    /// refused the caller. Damaged packets (RXKADSEALEDINCON and the like)
    /// are not among them: a retry may get through.
    pub fn is_refusal(&self) -> bool {
        use crate::rxkad::code;
        let AttemptError::Call(CallError::Aborted(c)) = self else {
            return false;
        };
        matches!(
            *c,
            proto::NBCONF_SECRETS_REFUSED
                | proto::NBCONF_WRONG_MACHINE
                | proto::NBCONF_NOT_NETBOOT_TOKEN
                | proto::NBCONF_SECURITY_REQUIRED
                | code::RXKADLEVELFAIL
                | code::RXKADTICKETLEN
                | code::RXKADNOAUTH
                | code::RXKADBADTICKET
                | code::RXKADUNKNOWNKEY
                | code::RXKADEXPIRED
        )
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NoServers => write!(
                f,
                "no config server given (netboot.config=rxrpc:HOST[:PORT])"
            ),
            FetchError::AllFailed(v) => {
                write!(f, "no config server answered:")?;
                // Retries usually fail the same way: one entry per run of
                // equal attempts, with its count.
                let mut i = 0;
                while let Some((s, e)) = v.get(i) {
                    let n = v[i..].iter().take_while(|x| x.0 == *s && x.1 == *e).count();
                    if n > 1 {
                        write!(f, " {s}: {e} ({n} attempts);")?;
                    } else {
                        write!(f, " {s}: {e};")?;
                    }
                    i += n;
                }
                if v.iter().any(|(_, e)| e.is_refusal()) {
                    write!(
                        f,
                        " hint: a refusal is not retried; configd's log line for the call says why"
                    )
                } else {
                    write!(
                        f,
                        " hint: check netboot-configd runs and has a file for this machine"
                    )
                }
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// `host:port` for messages, IPv6 bracketed, the default port filled in.
pub fn server_label(s: &ConfigServer) -> String {
    host_port(&s.host, s.port.unwrap_or(proto::DEFAULT_PORT))
}

/// A config and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub config: Config,
    /// `host:port` of the server that answered.
    pub server: String,
    /// Size of the JSON document.
    pub bytes: usize,
    /// The attempts that failed before, in order.
    pub failed: Vec<(String, AttemptError)>,
}

/// Fetch our config: try each server in order, each call bounded by
/// `timeout`; repeat the round `retries` more times with a backoff of
/// 0.5 s, 1 s, 2 s … (capped at 8 s). The first valid config wins. An abort
/// from a server (e.g. `NBCONF_NOT_FOUND`) counts as that server failing:
/// the next one may know us.
pub fn fetch_config(
    transport: &mut dyn RxTransport,
    servers: &[ConfigServer],
    identity: &Identity,
    timeout: Duration,
    retries: u32,
) -> Result<Config, FetchError> {
    fetch_config_from(transport, servers, identity, timeout, retries).map(|f| f.config)
}

/// [`fetch_config`], also saying which server answered.
pub fn fetch_config_from(
    transport: &mut dyn RxTransport,
    servers: &[ConfigServer],
    identity: &Identity,
    timeout: Duration,
    retries: u32,
) -> Result<Fetched, FetchError> {
    fetch_config_until(transport, servers, identity, timeout, retries, None)
}

/// [`fetch_config_from`] that never runs past `until` (the boot's
/// deadline): each call's timeout and each pause are cut to what is left,
/// and no call starts once it has passed.
pub fn fetch_config_until(
    transport: &mut dyn RxTransport,
    servers: &[ConfigServer],
    identity: &Identity,
    timeout: Duration,
    retries: u32,
    until: Option<Instant>,
) -> Result<Fetched, FetchError> {
    if servers.is_empty() {
        return Err(FetchError::NoServers);
    }
    let left = || until.map(|u| u.saturating_duration_since(Instant::now()));
    let request = proto::encode_get_config(identity);
    let mut errors = Vec::new();
    let mut backoff = Backoff::new(ROUND_BACKOFF, ROUND_BACKOFF_CAP);
    // Servers that refused us for good (AttemptError::is_refusal): not
    // asked again.
    let mut refused = vec![false; servers.len()];
    for round in 0..=retries {
        if refused.iter().all(|r| *r) {
            break;
        }
        if round > 0 {
            let pause = backoff.next();
            std::thread::sleep(left().map_or(pause, |l| pause.min(l)));
        }
        for (i, s) in servers.iter().enumerate() {
            if refused.get(i).copied().unwrap_or(false) {
                continue;
            }
            let label = server_label(s);
            let timeout = match left() {
                None => timeout,
                Some(l) if l.is_zero() => {
                    errors.push((label, AttemptError::Deadline));
                    return Err(FetchError::AllFailed(errors));
                }
                Some(l) => timeout.min(l),
            };
            let port = s.port.unwrap_or(proto::DEFAULT_PORT);
            let addr = match (s.host.as_str(), port).to_socket_addrs() {
                Ok(mut it) => match it.next() {
                    Some(a) => a,
                    None => {
                        errors.push((label, AttemptError::Resolve("no address".into())));
                        continue;
                    }
                },
                Err(e) => {
                    errors.push((label, AttemptError::Resolve(e.to_string())));
                    continue;
                }
            };
            let reply = match transport.call(addr, proto::SERVICE_ID, &request, timeout) {
                Ok(r) => r,
                Err(e) => {
                    let e = AttemptError::Call(e);
                    if e.is_refusal() {
                        if let Some(r) = refused.get_mut(i) {
                            *r = true;
                        }
                    }
                    errors.push((label, e));
                    continue;
                }
            };
            let json = match proto::decode_reply(&reply) {
                Ok(j) => j,
                Err(e) => {
                    errors.push((label, AttemptError::Reply(e)));
                    continue;
                }
            };
            match parse_config(json) {
                Ok(config) => {
                    return Ok(Fetched {
                        config,
                        server: label,
                        bytes: json.len(),
                        failed: errors,
                    })
                }
                Err(e) => errors.push((label, AttemptError::Config(e))),
            }
        }
    }
    Err(FetchError::AllFailed(errors))
}

/// Validate a document ([`Config::from_json`]) with every credential the
/// document holds masked in the error (its passwords and sensitive
/// parameter values, and root-path credentials pasted into any string),
/// by the one masker of `cmdline::mask`: a server's document is echoed
/// in logs and by `netboot config-fetch`.
pub fn parse_config(json: &[u8]) -> Result<Config, ConfigError> {
    Config::from_json(json).map_err(|e| {
        let m = Masker::for_config(json);
        match e {
            ConfigError::Json(s) => ConfigError::Json(m.mask(&s)),
            ConfigError::Field { path, msg } => ConfigError::Field {
                path: m.mask(&path),
                msg: m.mask(&msg),
            },
            other => other,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_are_counted_not_repeated() {
        let refused = || AttemptError::Call(CallError::Io("network error: refused".into()));
        let e = FetchError::AllFailed(vec![
            ("a:7260".into(), refused()),
            ("a:7260".into(), refused()),
            ("b:7260".into(), AttemptError::Call(CallError::Aborted(1))),
            ("a:7260".into(), refused()),
        ]);
        assert_eq!(
            e.to_string(),
            "no config server answered: a:7260: network error: refused (2 attempts); \
             b:7260: call aborted with code 1 (NBCONF_NOT_FOUND); \
             a:7260: network error: refused; \
             hint: check netboot-configd runs and has a file for this machine"
        );
    }

    /// Answers every call with `answer(peer)` and counts calls per port.
    struct Fake {
        calls: Vec<u16>,
        answer: fn(std::net::SocketAddr) -> CallError,
    }

    impl RxTransport for Fake {
        fn call(
            &mut self,
            peer: std::net::SocketAddr,
            _service_id: u16,
            _request: &[u8],
            _timeout: Duration,
        ) -> Result<Vec<u8>, CallError> {
            self.calls.push(peer.port());
            Err((self.answer)(peer))
        }
    }

    fn server(port: u16) -> ConfigServer {
        ConfigServer {
            host: "127.0.0.1".into(),
            port: Some(port),
        }
    }

    #[test]
    fn a_refusal_is_not_retried_other_failures_are() {
        let mut t = Fake {
            calls: vec![],
            answer: |p| match p.port() {
                1 => CallError::Aborted(crate::rxkad::code::RXKADEXPIRED),
                _ => CallError::Io("network error: refused".into()),
            },
        };
        let until = Some(Instant::now() + Duration::from_secs(30));
        let servers = [server(1), server(2)];
        let r = fetch_config_until(
            &mut t,
            &servers,
            &Identity::default(),
            Duration::from_secs(1),
            1,
            until,
        );
        assert_eq!(t.calls, vec![1, 2, 2]);
        let text = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("127.0.0.1:1: call aborted with code 19270409 (RXKADEXPIRED)"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "hint: a refusal is not retried; configd's log line for the call says why"
            ),
            "{text}"
        );
        // Every server refused: no second round.
        let mut t = Fake {
            calls: vec![],
            answer: |_| CallError::Aborted(proto::NBCONF_SECRETS_REFUSED),
        };
        let _ = fetch_config_until(
            &mut t,
            &servers[..1],
            &Identity::default(),
            Duration::from_secs(1),
            2,
            until,
        );
        assert_eq!(t.calls, vec![1]);
    }
}
