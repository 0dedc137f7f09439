//! `netboot config-fetch rxrpc:HOST[:PORT] [--mac M] [--iqn I] [--hostname H]
//! [--timeout S] [--retries N] [--transport udp|kernel] [--token FILE
//! [--security auth|encrypt]]`: fetch this
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
    synopsis: "rxrpc:HOST[:PORT]... [--mac M] [--iqn I] [--hostname H] [--timeout S] [--retries N] [--transport udp|kernel] [--token FILE [--security auth|encrypt]]",
    summary: "fetch this machine's config from netboot-configd, print the plan",
    about: "\
Asks each server in turn (rxrpc:HOST[:PORT], port default 7260, the same
syntax as netboot.config= on the kernel command line) for the config of
the identity given, and prints the boot plan it yields (defaults + config)
as JSON, secrets as \"***\". Each identity value is at most 255 bytes.
With --token FILE (an rxkad token from `netboot-configd token`) the call
is secured with rxkad at --security (default encrypt), by either
transport, as the boot's config.fetch does with netboot.config.token=.

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
        Opt {
            name: "--token",
            value: Some("FILE"),
            help: "secure the call with this rxkad token (netboot-configd token)",
        },
        Opt {
            name: "--security",
            value: Some("auth|encrypt"),
            help: "rxkad level with --token (default encrypt)",
        },
    ],
};

pub(super) struct Opts {
    servers: Vec<ConfigServer>,
    id: Identity,
    timeout: Duration,
    retries: u32,
    kernel: bool,
    token: Option<std::path::PathBuf>,
    level: Option<crate::rxkad::Level>,
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
        token: None,
        level: None,
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
            Arg::Value("--token", v) => o.token = Some(std::path::PathBuf::from(v)),
            Arg::Value("--security", v) => {
                o.level = match common::text("--security", v)? {
                    "auth" => Some(crate::rxkad::Level::Auth),
                    "encrypt" => Some(crate::rxkad::Level::Encrypt),
                    t => {
                        return Err(
                            format!("--security {}: expected auth or encrypt", quote(t)).into()
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
    if o.level.is_some() && o.token.is_none() {
        return Err("--security needs --token FILE".into());
    }
    Ok(o)
}

/// A token file, read with a cap and parsed (errors name the file).
fn read_token(path: &std::path::Path) -> Result<crate::rxkad::files::Token, String> {
    let name = path.to_string_lossy();
    let cap = crate::rxkad::files::MAX_FILE as u64;
    let b = crate::bounded::read_file(path, cap)
        .map_err(|e| format!("--token {}: {e}", quote(&name)))?;
    let text =
        String::from_utf8(b).map_err(|_| format!("--token {}: not UTF-8 text", quote(&name)))?;
    crate::rxkad::files::Token::parse(&text, &name).map_err(|e| format!("--token {e}"))
}

pub fn run(args: &[OsString]) -> i32 {
    let Opts {
        servers,
        id,
        timeout,
        retries,
        kernel,
        token,
        level,
    } = match parse(args) {
        Ok(o) => o,
        Err(e) => return SPEC.exit(e),
    };
    let secured = match token.as_deref().map(read_token).transpose() {
        Ok(t) => t.map(|t| (t, level.unwrap_or(crate::rxkad::Level::Encrypt))),
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    let max = crate::config::proto::MAX_REPLY + 8;
    let mut t: Box<dyn RxTransport> = match (kernel, &secured) {
        (true, None) => match KernelTransport::open(max) {
            Ok(k) => Box::new(k),
            Err(e) => return fail(CMD, Exit::Failure, e),
        },
        (true, Some((tok, l))) => match KernelTransport::open_secured(max, tok, *l) {
            Ok(k) => Box::new(k),
            Err(e) => return fail(CMD, Exit::Failure, e),
        },
        (false, None) => Box::new(UdpTransport::new(max)),
        (false, Some((tok, l))) => Box::new(UdpTransport::new(max).secured(tok.clone(), *l)),
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
