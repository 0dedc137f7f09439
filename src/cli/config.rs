//! `netboot config-fetch rxrpc:HOST[:PORT] [--mac M] [--iqn I] [--hostname H]
//! [--timeout S] [--retries N] [--transport udp|kernel]`: fetch this
//! machine's config from netboot-configd with the userspace RxRPC client
//! (default) or the kernel's AF_RXRPC, and print the boot plan
//! it yields (defaults + config) as JSON, secrets as `***`. Exit 0 with the
//! plan, 1 when no server gave a valid config (one line on stderr, with the
//! abort code of each attempt), 2 on bad usage.

use super::{fail, Exit};
use crate::plan::BootPlan;
use crate::rxrpc::kernel::KernelTransport;
use crate::rxrpc::{apply, fetch_config, udp::UdpTransport, Identity, RxTransport};
use std::time::Duration;

const CMD: &str = "config-fetch";
const USAGE: &str = "usage: netboot config-fetch rxrpc:HOST[:PORT] [--mac M] [--iqn I] [--hostname H] [--timeout S] [--retries N] [--transport udp|kernel]";

pub fn run(args: &[String]) -> i32 {
    let mut servers = Vec::new();
    let mut id = Identity::default();
    let mut timeout = Duration::from_secs(5);
    let mut retries = 0u32;
    let mut kernel = false;
    let mut it = args.iter();
    let usage = |m: &str| fail(CMD, Exit::Usage, format!("{m}\n{USAGE}"));
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let r = match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Exit::Ok as i32;
            }
            "--mac" => val("--mac").map(|v| id.mac = v),
            "--iqn" => val("--iqn").map(|v| id.iqn = v),
            "--hostname" => val("--hostname").map(|v| id.hostname = v),
            "--timeout" => val("--timeout").and_then(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| (0.001..=3600.0).contains(s))
                    .map(|s| timeout = Duration::from_secs_f64(s))
                    .ok_or(format!("--timeout {v:?} is not 0.001..3600 seconds"))
            }),
            "--retries" => val("--retries").and_then(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|&n| n <= 100)
                    .map(|n| retries = n)
                    .ok_or(format!("--retries {v:?} is not 0..100"))
            }),
            "--transport" => val("--transport").and_then(|v| {
                kernel = match v.as_str() {
                    "udp" => false,
                    "kernel" => true,
                    _ => return Err(format!("--transport {v:?} is not udp or kernel")),
                };
                Ok(())
            }),
            s if s.starts_with("rxrpc:") => {
                // The same parser as netboot.config= on the kernel cmdline.
                match crate::cmdline::parse_plan(&format!("netboot.config={s}")) {
                    Ok(p) => {
                        servers.extend(p.config.servers);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            other => Err(format!("unexpected argument {other:?}")),
        };
        if let Err(m) = r {
            return usage(&m);
        }
    }
    if servers.is_empty() {
        return usage("give at least one rxrpc:HOST[:PORT]");
    }
    let max = crate::rxrpc::proto::MAX_REPLY + 8;
    let mut t: Box<dyn RxTransport> = if kernel {
        match KernelTransport::open(max) {
            Ok(k) => Box::new(k),
            Err(e) => return fail(CMD, Exit::Failure, e),
        }
    } else {
        Box::new(UdpTransport::new(max))
    };
    match fetch_config(t.as_mut(), &servers, &id, timeout, retries) {
        Ok(c) => {
            let mut plan = BootPlan::default();
            apply(&c, &mut plan, &[]);
            match serde_json::to_string_pretty(&plan) {
                Ok(j) => {
                    println!("{j}");
                    Exit::Ok as i32
                }
                Err(e) => fail(CMD, Exit::Failure, e),
            }
        }
        Err(e) => fail(CMD, Exit::Failure, e),
    }
}
