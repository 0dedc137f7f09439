//! The `config.fetch` step: ask netboot-configd for this machine's config
//! over RxRPC (`netboot.config=rxrpc:HOST[:PORT]`, servers in order) and
//! merge it into the plan (explicit command-line keys win).
//!
//! Transport: the kernel's AF_RXRPC (modules fcrypt → pcbc → udp_tunnel →
//! ip6_udp_tunnel → rxrpc loaded first, rxrpc.md §2.7), else the userspace
//! client over UDP: a missing or blacklisted rxrpc.ko, or a kernel without
//! AF_RXRPC (Debian's cloud kernels), is not an error.
//!
//! Security (rxkad, `netboot.config.security=`, `netboot.config.token=`):
//! both transports are secured alike — the kernel with the token added as
//! an `rxrpc` key (`KernelTransport::open_secured`), the userspace client
//! answering the CHALLENGE itself. By default the fetch is `encrypt` when
//! the token file exists (`/etc/netboot/config.token` unless
//! `netboot.config.token=` says otherwise) and plain otherwise; `auth` or
//! `encrypt` without a readable token fails the step naming the path, and
//! then `netboot.config.required` decides, as for a server that does not
//! answer (never a fallback to a plain fetch).

use super::{Exec, StepError};
use crate::config::{fetch_config_until, proto, Fetched, Identity};
use crate::events::{step, Facts};
use crate::kmod::{self, KernelLoader, ModuleIndex};
use crate::plan::{BootPlan, ConfigSecurity, ConfigSource, DEFAULT_CONFIG_TOKEN};
use crate::rxkad::files::Token;
use crate::rxkad::Level;
use crate::rxrpc::kernel::KernelTransport;
use crate::rxrpc::udp::UdpTransport;
use crate::rxrpc::RxTransport;
use std::path::Path;
use std::time::{Duration, Instant};

/// AF_RXRPC and what its init needs (rxkad allocates `pcbc(fcrypt)` at
/// module init even for unsecured calls; udp_tunnel and ip6_udp_tunnel come
/// in through modules.dep).
const RXRPC_MODULES: [&str; 3] = ["fcrypt", "pcbc", "rxrpc"];
/// One call's bound: configd answers in milliseconds; a lost request is
/// retransmitted by Rx within this time.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Rounds over the server list after the first (backoff 0.5 s, 1 s).
const RETRIES: u32 = 2;
/// Reply bound: the largest config plus its XDR length word.
const MAX_REPLY: usize = proto::MAX_REPLY + 8;

/// Largest token file read (a token is about 2.2 KB).
const MAX_TOKEN_FILE: u64 = crate::rxkad::files::MAX_FILE as u64;

/// Pick the transport: AF_RXRPC if the modules load and the family exists
/// (and, secured, the kernel takes the token as a key). Returns it with
/// its name and, for the fallback, why.
fn transport(
    index: &ModuleIndex,
    secured: Option<&(Token, Level)>,
) -> (Box<dyn RxTransport>, &'static str, Option<String>) {
    let mut loader = KernelLoader::new(Path::new("/sys"));
    let loaded = kmod::load_by_name(index, &mut loader, &RXRPC_MODULES);
    let kernel = match secured {
        None => KernelTransport::open(MAX_REPLY),
        Some((token, level)) => KernelTransport::open_secured(MAX_REPLY, token, *level),
    };
    let why = match (loaded, kernel) {
        (_, Ok(t)) => return (Box::new(t), "af_rxrpc", None),
        (Err(m), Err(s)) => format!("{m}; {s}"),
        (Ok(_), Err(s)) => s.to_string(),
    };
    log::warn!("config: kernel AF_RXRPC unavailable ({why}); using the userspace RxRPC client");
    let udp = UdpTransport::new(MAX_REPLY);
    let udp = match secured {
        None => udp,
        Some((token, level)) => udp.secured(token.clone(), *level),
    };
    (Box::new(udp), "udp", Some(why))
}

/// Why the fetch cannot be secured as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(pub String);

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenError {}

/// A missing or bad token file stays so for this boot.
impl super::Classify for TokenError {}

/// The fetch's security from the plan: `None` plain, or the token and
/// level. `read(path)` gives the file's text, `Ok(None)` if it does not
/// exist (the I/O is the caller's, so this is tested without files).
pub fn resolve_security(
    cfg: &ConfigSource,
    read: impl FnOnce(&str) -> Result<Option<String>, String>,
) -> Result<Option<(Token, Level)>, TokenError> {
    let explicit = cfg.token.is_some();
    let path = cfg.token.as_deref().unwrap_or(DEFAULT_CONFIG_TOKEN);
    let level = match cfg.security {
        ConfigSecurity::None => return Ok(None),
        ConfigSecurity::Auth => Level::Auth,
        ConfigSecurity::Encrypt | ConfigSecurity::Default => Level::Encrypt,
    };
    let asked = || match cfg.security {
        ConfigSecurity::Default => format!("netboot.config.token={}", crate::cmdline::quote(path)),
        s => format!(
            "netboot.config.security={} needs the token netboot.config.token={}",
            s.name(),
            crate::cmdline::quote(path)
        ),
    };
    let text = match read(path) {
        Ok(Some(t)) => t,
        Ok(None) if cfg.security == ConfigSecurity::Default && !explicit => return Ok(None),
        Ok(None) => return Err(TokenError(format!("{}: no such file", asked()))),
        Err(e) => return Err(TokenError(format!("{}: {e}", asked()))),
    };
    let token = Token::parse(&text, path).map_err(|e| TokenError(format!("token {e}")))?;
    Ok(Some((token, level)))
}

/// The token file's text, `None` if it does not exist; read with a cap.
fn read_token(path: &str) -> Result<Option<String>, String> {
    match crate::bounded::read_file(Path::new(path), MAX_TOKEN_FILE) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| "not UTF-8 text".to_string()),
        Err(crate::bounded::BoundedReadError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Unix time now (for the token's expiry hint).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who we are, for the server's file lookup: boot NIC MAC, the initiator
/// name the command line gives or we generate, and the `ip=` host name.
pub fn identity(plan: &BootPlan, mac: Option<&str>, hostname: Option<&str>) -> Identity {
    Identity {
        mac: mac.unwrap_or_default().to_string(),
        iqn: super::attach::initiator_name(plan, mac),
        hostname: hostname
            .map(str::to_string)
            .or_else(|| plan.network.ip.iter().find_map(|ip| ip.hostname.clone()))
            .unwrap_or_default(),
    }
}

/// Run the step if servers are configured. `Ok(None)`: no servers, or none
/// answered and `netboot.config.required=0` (the failure is recorded and
/// logged; the boot goes on with the command line).
pub fn fetch(
    exec: &mut Exec,
    plan: &BootPlan,
    index: &ModuleIndex,
    id: &Identity,
    deadline: Instant,
) -> Result<Option<Fetched>, StepError> {
    let servers = &plan.config.servers;
    if servers.is_empty() {
        return Ok(None);
    }
    let list = servers
        .iter()
        .map(crate::config::server_label)
        .collect::<Vec<_>>()
        .join(",");
    let facts = Facts::new()
        .str("servers", list)
        .bool("required", plan.config.required)
        .str("mac", id.mac.clone())
        .str("iqn", id.iqn.clone())
        .str("hostname", id.hostname.clone());
    let res = exec.step(step::CONFIG_FETCH, facts, || {
        let t = Instant::now();
        let secured = resolve_security(&plan.config, read_token).map_err(FetchStepError::Token)?;
        if let Some((token, level)) = &secured {
            log::info!(
                "config: rxkad {level} with token {} (kvno {}, expires {})",
                token.principal(),
                token.kvno,
                crate::rxkad::files::utc(token.expiry)
            );
            if token.expired_at(unix_now()) {
                log::warn!(
                    "config: the token expired at {} by this machine's clock; the server decides",
                    crate::rxkad::files::utc(token.expiry)
                );
            }
        }
        let (mut tr, name, why) = transport(index, secured.as_ref());
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = CALL_TIMEOUT.min(left).max(Duration::from_millis(100));
        let f = fetch_config_until(tr.as_mut(), servers, id, timeout, RETRIES, Some(deadline))
            .map_err(FetchStepError::Fetch)?;
        let mut facts = Facts::new()
            .str("server", f.server.clone())
            .str("transport", name)
            .str(
                "security",
                secured.as_ref().map_or("none", |(_, l)| l.name()),
            )
            .u64("bytes", f.bytes as u64)
            .u64("failed_attempts", f.failed.len() as u64)
            .u64("took_ms", t.elapsed().as_millis() as u64);
        if let Some((token, _)) = &secured {
            facts = facts
                .str("token", token.principal())
                .u64("token_kvno", u64::from(token.kvno))
                .u64("token_expiry", u64::from(token.expiry));
        }
        if let Some(w) = why {
            facts = facts.str("af_rxrpc_unavailable", w);
        }
        Ok::<_, FetchStepError>((f, facts))
    });
    match res {
        Ok(f) => {
            log::info!(
                "config: {} bytes from {} after {} failed attempt(s)",
                f.bytes,
                f.server,
                f.failed.len()
            );
            Ok(Some(f))
        }
        Err(e) if !plan.config.required => {
            log::warn!(
                "{}; netboot.config.required=0: booting from the command line alone",
                e.chain()
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// No server answered within the fetch's bounds: the network or the
/// servers may come back, but the fetch already used its rounds.
impl super::Classify for crate::config::FetchError {}

/// The step's failure: no usable token, or no server answered.
#[derive(Debug)]
pub enum FetchStepError {
    Token(TokenError),
    Fetch(crate::config::FetchError),
}

impl std::fmt::Display for FetchStepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchStepError::Token(e) => e.fmt(f),
            FetchStepError::Fetch(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FetchStepError {}

impl super::Classify for FetchStepError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rxkad::files::Holder;
    use crate::rxkad::ticket::ServerKey;

    fn token_text() -> String {
        let k = ServerKey {
            kvno: 4,
            key: crate::rxkad::ticket::fix_parity([0x31, 0x75, 0xb9, 0xfd, 0x20, 0x64, 0xa8, 0xec]),
        };
        Token::mint(&k, &Holder::Fleet("lab".into()), 1_000, 3_600, [7; 8])
            .unwrap()
            .encode()
    }

    fn cfg(security: ConfigSecurity, token: Option<&str>) -> ConfigSource {
        ConfigSource {
            security,
            token: token.map(str::to_string),
            ..ConfigSource::default()
        }
    }

    #[test]
    fn default_is_encrypt_with_a_token_and_plain_without() {
        let t = token_text();
        let got = resolve_security(&cfg(ConfigSecurity::Default, None), |p| {
            assert_eq!(p, DEFAULT_CONFIG_TOKEN);
            Ok(Some(t.clone()))
        })
        .unwrap()
        .unwrap();
        assert_eq!(got.1, Level::Encrypt);
        assert_eq!(got.0.principal(), "netboot.fleet-lab");
        assert_eq!(
            resolve_security(&cfg(ConfigSecurity::Default, None), |_| Ok(None)),
            Ok(None)
        );
        // `none` never reads the file.
        assert_eq!(
            resolve_security(&cfg(ConfigSecurity::None, Some("/t")), |_| panic!("read")),
            Ok(None)
        );
        let auth = resolve_security(&cfg(ConfigSecurity::Auth, Some("/t")), |_| {
            Ok(Some(t.clone()))
        });
        assert_eq!(auth.unwrap().unwrap().1, Level::Auth);
    }

    #[test]
    fn a_missing_or_bad_token_names_the_path() {
        let e = |c: ConfigSource, r: Result<Option<String>, String>| {
            resolve_security(&c, |_| r).unwrap_err().to_string()
        };
        assert_eq!(
            e(cfg(ConfigSecurity::Encrypt, None), Ok(None)),
            "netboot.config.security=encrypt needs the token netboot.config.token=\"/etc/netboot/config.token\": no such file"
        );
        assert_eq!(
            e(cfg(ConfigSecurity::Auth, Some("/x/t")), Err("cannot read: Permission denied (os error 13)".into())),
            "netboot.config.security=auth needs the token netboot.config.token=\"/x/t\": cannot read: Permission denied (os error 13)"
        );
        // An explicit token path that does not exist is an error even by default.
        assert_eq!(
            e(cfg(ConfigSecurity::Default, Some("/x/t")), Ok(None)),
            "netboot.config.token=\"/x/t\": no such file"
        );
        assert_eq!(
            e(
                cfg(ConfigSecurity::Default, None),
                Ok(Some("version = 1\n".into()))
            ),
            "token \"/etc/netboot/config.token\": service: missing"
        );
    }
}
