//! `netboot-configd`: serves netboot configs over RxRPC (userspace, UDP).
//!
//! usage: netboot-configd --dir DIR [--listen ADDR:PORT]... [--max-calls N]
//!        [--max-calls-per-source N] [--user NAME]
//!
//! Service 20034, opcode 1 `GetConfig` (src/config/proto.rs); file naming in
//! src/config/store.rs. Default listeners: `0.0.0.0:7260` and `[::]:7260`
//! (the IPv6 one with IPV6_V6ONLY so both can bind). One log line per call
//! on stderr; the bound addresses are printed first (`listening on A`).

use netboot::cli::common::{self, quote, unexpected, Arg, ArgError, Opt, Spec};
use netboot::cli::{Exit, VERSION};
use netboot::config::proto::{self, Request};
use netboot::config::store::{describe, Lookup, Store};
use netboot::config::user;
use netboot::rxrpc::server::{AppReply, Server, ServerConfig};
use netboot::rxrpc::udp;
use std::ffi::OsString;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const DEFAULT_MAX_CALLS: usize = 64;
const MAX_CALLS_MAX: usize = 100_000;
/// A booting machine makes one call at a time; 8 leaves room for a few
/// behind one address (README "Configuration over RxRPC", issue 12).
const DEFAULT_MAX_CALLS_PER_SOURCE: usize = 8;
/// A GetConfig request is one packet (≤ 784 bytes): 1 s covers its
/// retransmissions (100, 200, 400 ms) and bounds how long a request that
/// never completes holds a slot.
const REQUEST_DEADLINE: Duration = Duration::from_secs(1);

static SPEC: Spec = Spec {
    prog: "netboot-configd",
    synopsis: "--dir DIR [--listen ADDR:PORT]... [--max-calls N]",
    summary: "serve netboot configs over RxRPC (service 20034, GetConfig)",
    about: "\
Each GetConfig call names a MAC, an initiator name and a host name; the
reply is the first of these files in DIR that exists:
  mac-52-54-00-12-34-56.json   the MAC, lowercase, '-' separated
  iqn-IQN.json                 the initiator name, lowercased
  host-NAME.json               the host name, lowercased
  default.json
Every file is checked against the config schema at start (problems are
warnings on stderr) and again when it changes; an invalid file is an
error to the caller, never a fall-through to default.json. Only regular
files are served: a symlink, FIFO, directory or device with a config's
name is refused (abort 5, NBCONF_UNREADABLE) and logged. Each bound
address is printed as \"listening on ADDR\", then one line per call.

Calls are limited per source (IPv4 address or IPv6 /64): beyond
--max-calls-per-source, BUSY; with every slot taken, a source holding
more than its share loses its oldest call to a newcomer; a request not
complete 1 s after its first packet is aborted.

The exchange is neither authenticated nor encrypted (security index 0):
whoever can send a MAC gets that machine's config, CHAP secrets included.
Serve it on a trusted boot network only.

exit codes: 1 DIR unreadable, an address cannot be bound, --user cannot be
found or switched to, or a socket error; 2 bad usage.
",
    opts: &[
        Opt {
            name: "--dir",
            value: Some("DIR"),
            help: "directory of config files (required)",
        },
        Opt {
            name: "--listen",
            value: Some("ADDR:PORT"),
            help: "UDP address to serve on, repeatable, e.g. 0.0.0.0:7260 or [::1]:7260\n\
                   (default 0.0.0.0:7260 and [::]:7260)",
        },
        Opt {
            name: "--max-calls",
            value: Some("N"),
            help: "calls in progress at once before BUSY, 1..100000 (default 64)",
        },
        Opt {
            name: "--max-calls-per-source",
            value: Some("N"),
            help: "calls in progress at once from one IPv4 address or IPv6 /64,\n\
                   1..100000 (default 8)",
        },
        Opt {
            name: "--user",
            value: Some("NAME"),
            help: "after binding, drop root for this /etc/passwd account (its uid\n\
                   and gid, no supplementary groups); the files must be readable by it",
        },
        Opt {
            name: "--version",
            value: None,
            help: "print the version and exit",
        },
    ],
};

struct Opts {
    dir: PathBuf,
    listen: Vec<SocketAddr>,
    max_calls: usize,
    max_calls_per_source: usize,
    user: Option<String>,
}

/// `Ok(None)`: `--version` was printed.
fn parse(args: &[OsString]) -> Result<Option<Opts>, ArgError> {
    let mut dir = None;
    let mut listen = Vec::new();
    let mut max_calls = DEFAULT_MAX_CALLS;
    let mut max_calls_per_source = DEFAULT_MAX_CALLS_PER_SOURCE;
    let mut user = None;
    for a in SPEC.parse(args) {
        match a? {
            Arg::Flag("--version") => return Ok(None),
            Arg::Value("--dir", d) => dir = Some(PathBuf::from(d)),
            Arg::Value("--listen", v) => {
                let t = common::text("--listen", v)?;
                let a = t.parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "--listen {}: expected ADDR:PORT, e.g. 0.0.0.0:7260 or [::1]:7260",
                        quote(t)
                    )
                })?;
                listen.push(a);
            }
            Arg::Value("--max-calls", v) => {
                max_calls = common::number("--max-calls", v, 1, MAX_CALLS_MAX)?;
            }
            Arg::Value("--max-calls-per-source", v) => {
                max_calls_per_source =
                    common::number("--max-calls-per-source", v, 1, MAX_CALLS_MAX)?;
            }
            Arg::Value("--user", v) => {
                let t = common::text("--user", v)?;
                if t.is_empty() || t.contains([':', '\n']) {
                    return Err(format!(
                        "--user {}: expected an account name from /etc/passwd",
                        quote(t)
                    )
                    .into());
                }
                user = Some(t.to_string());
            }
            a => return Err(unexpected(a)),
        }
    }
    let dir = dir.ok_or("--dir is required")?;
    if listen.is_empty() {
        listen.push(SocketAddr::from(([0, 0, 0, 0], proto::DEFAULT_PORT)));
        listen.push(SocketAddr::from(([0u16; 8], proto::DEFAULT_PORT)));
    }
    Ok(Some(Opts {
        dir,
        listen,
        max_calls,
        max_calls_per_source,
        user,
    }))
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use rustix::net::{bind, socket, sockopt, AddressFamily, SocketType};
    let fam = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = socket(fam, SocketType::DGRAM, None)?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    bind(&fd, &addr)?;
    Ok(UdpSocket::from(fd))
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    std::process::exit(run(args.get(1..).unwrap_or(&[])));
}

/// `args` without the program name.
fn run(args: &[OsString]) -> i32 {
    let Opts {
        dir,
        listen,
        max_calls,
        max_calls_per_source,
        user,
    } = match parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => return common::print_stdout(&format!("{VERSION}\n")),
        Err(e) => return SPEC.exit(e),
    };
    let cannot_read = |e: &dyn std::fmt::Display| {
        eprintln!(
            "netboot-configd: cannot read --dir {}: {e}",
            common::quote_os(dir.as_os_str())
        );
        Exit::Failure as i32
    };
    // The directory is opened first (a wrong --dir fails before any bind);
    // its files are read only after the privilege drop, as the account
    // that will serve them.
    let mut store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => return cannot_read(&e),
    };
    let account = match user.as_deref().map(user::lookup).transpose() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netboot-configd: --user: {e}");
            return Exit::Failure as i32;
        }
    };
    let mut sockets = Vec::new();
    for a in &listen {
        match bind(*a) {
            Ok(s) => {
                let shown = s.local_addr().map_or(a.to_string(), |l| l.to_string());
                eprintln!("netboot-configd: listening on {shown}");
                sockets.push(s);
            }
            Err(e) => {
                eprintln!(
                    "netboot-configd: cannot listen on {a}: {e}; hint: another configd running?"
                );
                return Exit::Failure as i32;
            }
        }
    }
    if let Some(a) = &account {
        if let Err(e) = user::drop_to(a) {
            eprintln!("netboot-configd: --user {}: {e}", quote(&a.name));
            return Exit::Failure as i32;
        }
        eprintln!(
            "netboot-configd: running as {} (uid {}, gid {})",
            quote(&a.name),
            a.uid,
            a.gid
        );
    }
    match store.check_all() {
        Ok(msgs) => {
            for m in msgs {
                eprintln!("netboot-configd: warning: {}", common::escape_controls(&m));
            }
        }
        Err(e) => return cannot_read(&e),
    }
    let version = format!("netboot-configd {}", env!("CARGO_PKG_VERSION"));
    let mut server = Server::new(ServerConfig {
        service_id: proto::SERVICE_ID,
        max_calls,
        max_calls_per_source,
        request_deadline: REQUEST_DEADLINE,
        max_request: proto::MAX_REQUEST,
        too_large_abort: proto::NBCONF_TOO_LARGE,
        abort_name: proto::abort_name,
        version,
    });
    let mut app = |req: &[u8], _from: SocketAddr| -> AppReply {
        match proto::decode_request(req) {
            Err(e) => AppReply::Abort {
                code: e.abort_code(),
                note: e.to_string(),
            },
            Ok(Request::GetConfig(id)) => {
                let who = format!(
                    "GetConfig mac={:?} iqn={:?} host={:?}",
                    id.mac, id.iqn, id.hostname
                );
                let found = store.lookup(&id);
                let note = format!("{who} -> {}", describe(&found));
                match (found.abort_code(), found) {
                    (None, Lookup::Found { json, .. }) => AppReply::Data {
                        data: proto::encode_reply(&json),
                        note,
                    },
                    (code, _) => AppReply::Abort {
                        code: code.unwrap_or(proto::NBCONF_NOT_FOUND),
                        note,
                    },
                }
            }
        }
    };
    let mut log = |l: &str| eprintln!("netboot-configd: {l}");
    let stop = AtomicBool::new(false);
    match udp::serve(&sockets, &mut server, &mut app, &mut log, &stop) {
        Ok(()) => Exit::Ok as i32,
        Err(e) => {
            eprintln!("netboot-configd: socket error: {e}");
            Exit::Failure as i32
        }
    }
}
