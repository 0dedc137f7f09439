//! Configuration over RxRPC (DESIGN.md §1 "[config fetch]").
//!
//! - [`wire`]: packet codec, pure (rxrpc.md §1).
//! - [`call`]: sans-IO client call (retransmission, reassembly).
//! - [`server`]: sans-IO server endpoint (connections, BUSY, VERSION).
//! - [`udp`]: userspace transport and server loop over UDP sockets.
//! - [`kernel`]: the kernel's AF_RXRPC as a transport (the agent's first
//!   choice; rxrpc.md §2.6).
//! - [`proto`]: our service (id, port, GetConfig marshalling, abort codes).
//! - [`config`]: the JSON schema and its merge into the BootPlan.
//!
//! The agent fetches through [`fetch_config`] over any [`RxTransport`]: the
//! kernel's [`kernel::KernelTransport`], or the userspace
//! [`udp::UdpTransport`] where AF_RXRPC is missing (rxrpc.md §2.7).

pub mod call;
pub mod config;
pub mod kernel;
pub mod proto;
pub mod server;
pub mod store;
pub mod udp;
pub mod wire;

pub use call::CallError;
pub use config::{apply, Config, ConfigError};
pub use proto::Identity;

use crate::plan::ConfigServer;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// One Rx call to a peer: send `request` (opcode + XDR args) to
/// `service_id`, return the reply bytes or why there are none. Both the
/// userspace client and the kernel AF_RXRPC client implement it.
pub trait RxTransport {
    fn call(
        &mut self,
        peer: SocketAddr,
        service_id: u16,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError>;
}

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
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Resolve(e) => write!(f, "cannot resolve: {e}"),
            AttemptError::Call(e) => e.fmt(f),
            AttemptError::Reply(e) => write!(f, "bad GetConfig reply: {e}"),
            AttemptError::Config(e) => e.fmt(f),
        }
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
                write!(
                    f,
                    " hint: check netboot-configd runs and has a file for this machine"
                )
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// `host:port` for messages, IPv6 bracketed, the default port filled in.
pub fn server_label(s: &ConfigServer) -> String {
    let port = s.port.unwrap_or(proto::DEFAULT_PORT);
    if s.host.contains(':') {
        format!("[{}]:{port}", s.host)
    } else {
        format!("{}:{port}", s.host)
    }
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
    if servers.is_empty() {
        return Err(FetchError::NoServers);
    }
    let request = proto::encode_get_config(identity);
    let mut errors = Vec::new();
    for round in 0..=retries {
        if round > 0 {
            let ms = 500u64.saturating_mul(1 << (round - 1).min(4)).min(8000);
            std::thread::sleep(Duration::from_millis(ms));
        }
        for s in servers {
            let label = server_label(s);
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
                    errors.push((label, AttemptError::Call(e)));
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
            match Config::from_json(json) {
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
}
