//! The `config.fetch` step: ask netboot-configd for this machine's config
//! over RxRPC (`netboot.config=rxrpc:HOST[:PORT]`, servers in order) and
//! merge it into the plan (explicit command-line keys win).
//!
//! Transport: the kernel's AF_RXRPC (modules fcrypt → pcbc → udp_tunnel →
//! ip6_udp_tunnel → rxrpc loaded first, rxrpc.md §2.7), else the userspace
//! client over UDP: a missing or blacklisted rxrpc.ko, or a kernel without
//! AF_RXRPC (Debian's cloud kernels), is not an error.

use super::{Exec, StepError};
use crate::config::{fetch_config_until, proto, Fetched, Identity};
use crate::events::{step, Facts};
use crate::kmod::{self, KernelLoader, ModuleIndex};
use crate::plan::BootPlan;
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

/// Pick the transport: AF_RXRPC if the modules load and the family exists.
/// Returns it with its name and, for the fallback, why.
fn transport(index: &ModuleIndex) -> (Box<dyn RxTransport>, &'static str, Option<String>) {
    let mut loader = KernelLoader::new(Path::new("/sys"));
    let loaded = kmod::load_by_name(index, &mut loader, &RXRPC_MODULES);
    let why = match (loaded, KernelTransport::open(MAX_REPLY)) {
        (_, Ok(t)) => return (Box::new(t), "af_rxrpc", None),
        (Err(m), Err(s)) => format!("{m}; {s}"),
        (Ok(_), Err(s)) => s.to_string(),
    };
    log::warn!("config: kernel AF_RXRPC unavailable ({why}); using the userspace RxRPC client");
    (Box::new(UdpTransport::new(MAX_REPLY)), "udp", Some(why))
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
        let (mut tr, name, why) = transport(index);
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = CALL_TIMEOUT.min(left).max(Duration::from_millis(100));
        let f = fetch_config_until(tr.as_mut(), servers, id, timeout, RETRIES, Some(deadline))?;
        let mut facts = Facts::new()
            .str("server", f.server.clone())
            .str("transport", name)
            .u64("bytes", f.bytes as u64)
            .u64("failed_attempts", f.failed.len() as u64)
            .u64("took_ms", t.elapsed().as_millis() as u64);
        if let Some(w) = why {
            facts = facts.str("af_rxrpc_unavailable", w);
        }
        Ok::<_, crate::config::FetchError>((f, facts))
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
