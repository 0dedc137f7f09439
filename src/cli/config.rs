//! `netboot config-fetch rxrpc:HOST[:PORT] [--mac M] [--iqn I] [--hostname H]
//! [--timeout S] [--retries N] [--transport udp|kernel]`: fetch this
//! machine's config from netboot-configd with the userspace RxRPC client
//! (default) or the kernel's AF_RXRPC, and print the boot plan
//! it yields (defaults + config) as JSON, secrets as `***`. Exit 0 with the
//! plan, 1 when no server gave a valid config (one line on stderr, with the
//! abort code of each attempt), 2 on bad usage.

use super::common::{self, quote, unexpected, Arg, ArgError, Opt, Spec};
use super::{fail, Exit};
use crate::config::proto::MAX_IDENTITY_LEN;
use crate::config::{apply, fetch_config, Identity};
use crate::plan::{BootPlan, ConfigServer};
use crate::rxrpc::kernel::KernelTransport;
use crate::rxrpc::{udp::UdpTransport, RxTransport};
use std::ffi::{OsStr, OsString};
use std::time::Duration;

const CMD: &str = "config-fetch";
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES_MAX: u32 = 100;

pub static SPEC: Spec = Spec {
    prog: "netboot config-fetch",
    synopsis: "rxrpc:HOST[:PORT]... [--mac M] [--iqn I] [--hostname H] [--timeout S] [--retries N] [--transport udp|kernel]",
    summary: "fetch this machine's config from netboot-configd, print the plan",
    about: "\
Asks each server in turn (rxrpc:HOST[:PORT], port default 7260, the same
syntax as netboot.config= on the kernel command line) for the config of
the identity given, and prints the boot plan it yields (defaults + config)
as JSON, secrets as \"***\". Each identity value is at most 255 bytes.

exit codes: 0 the plan was printed, 1 no server gave a valid config (one
line on stderr, with the abort code of each attempt), 2 bad usage.
",
    opts: &[
        Opt {
            name: "--mac",
            value: Some("M"),
            help: "MAC address to ask for, e.g. 52:54:00:12:34:56 (default empty)",
        },
        Opt {
            name: "--iqn",
            value: Some("I"),
            help: "initiator name to ask for (default empty)",
        },
        Opt {
            name: "--hostname",
            value: Some("H"),
            help: "host name to ask for (default empty)",
        },
        Opt {
            name: "--timeout",
            value: Some("S"),
            help: "per attempt, in seconds, 0.001..86400, fractions allowed (default 5)",
        },
        Opt {
            name: "--retries",
            value: Some("N"),
            help: "further rounds over all servers after the first, 0..100 (default 0)",
        },
        Opt {
            name: "--transport",
            value: Some("udp|kernel"),
            help: "udp: our userspace RxRPC client (default); kernel: AF_RXRPC",
        },
    ],
};

pub(super) struct Opts {
    servers: Vec<ConfigServer>,
    id: Identity,
    timeout: Duration,
    retries: u32,
    kernel: bool,
}

/// An identity value: text of at most [`MAX_IDENTITY_LEN`] bytes, which is
/// what the server accepts.
fn identity(name: &str, v: &OsStr) -> Result<String, String> {
    let t = common::text(name, v)?;
    if t.len() > MAX_IDENTITY_LEN {
        return Err(format!(
            "{name} {}: longer than {MAX_IDENTITY_LEN} bytes",
            quote(t)
        ));
    }
    Ok(t.to_string())
}

pub(super) fn parse(args: &[OsString]) -> Result<Opts, ArgError> {
    let mut o = Opts {
        servers: Vec::new(),
        id: Identity::default(),
        timeout: DEFAULT_TIMEOUT,
        retries: 0,
        kernel: false,
    };
    for a in SPEC.parse(args) {
        match a? {
            Arg::Value("--mac", v) => o.id.mac = identity("--mac", v)?,
            Arg::Value("--iqn", v) => o.id.iqn = identity("--iqn", v)?,
            Arg::Value("--hostname", v) => o.id.hostname = identity("--hostname", v)?,
            Arg::Value("--timeout", v) => o.timeout = common::seconds("--timeout", v)?,
            Arg::Value("--retries", v) => {
                o.retries = common::number("--retries", v, 0, RETRIES_MAX)?;
            }
            Arg::Value("--transport", v) => {
                o.kernel = match common::text("--transport", v)? {
                    "udp" => false,
                    "kernel" => true,
                    t => {
                        return Err(
                            format!("--transport {}: expected udp or kernel", quote(t)).into()
                        )
                    }
                };
            }
            Arg::Pos(p) if p.as_encoded_bytes().starts_with(b"rxrpc:") => {
                let s = common::text("server", p)?;
                // The same parser as netboot.config= on the kernel cmdline.
                let plan = crate::cmdline::parse_plan(&format!("netboot.config={s}"))
                    .map_err(|e| e.to_string())?;
                o.servers.extend(plan.config.servers);
            }
            a => return Err(unexpected(a)),
        }
    }
    if o.servers.is_empty() {
        return Err("give at least one rxrpc:HOST[:PORT]".into());
    }
    Ok(o)
}

pub fn run(args: &[OsString]) -> i32 {
    let Opts {
        servers,
        id,
        timeout,
        retries,
        kernel,
    } = match parse(args) {
        Ok(o) => o,
        Err(e) => return SPEC.exit(e),
    };
    let max = crate::config::proto::MAX_REPLY + 8;
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
            apply(&c, &mut plan, &Default::default());
            // The boot's own gate: a config the boot would refuse (ip
            // dhcp6, a login key of the wrong type) is refused here too.
            if let Err(e) = crate::cmdline::supported::check(&plan) {
                return fail(CMD, Exit::Failure, format!("the config's plan: {e}"));
            }
            match serde_json::to_string_pretty(&plan) {
                Ok(j) => common::print_stdout(&format!("{j}\n")),
                Err(e) => fail(CMD, Exit::Failure, e),
            }
        }
        Err(e) => fail(CMD, Exit::Failure, e),
    }
}
