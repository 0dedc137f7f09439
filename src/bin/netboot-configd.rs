//! `netboot-configd`: serves netboot configs over RxRPC (userspace, UDP).
//!
//! usage: netboot-configd [serve] --dir DIR [--listen ADDR:PORT]... [--max-calls N]
//!        [--max-calls-per-source N] [--user NAME] [--rxkad-keys FILE] [--min-level L]
//!        netboot-configd key new|openafs …, netboot-configd token … (rxkad files,
//!        src/bin/netboot-configd/rxkad.rs)
//!
//! Service 20034, opcode 1 `GetConfig` (src/config/proto.rs); file naming in
//! src/config/store.rs. Default listeners: `0.0.0.0:7260` and `[::]:7260`
//! (the IPv6 one with IPV6_V6ONLY so both can bind). One log line per call
//! on stderr; the bound addresses are printed first (`listening on A`).

#[path = "netboot-configd/rxkad.rs"]
mod rxkad_cmds;

use netboot::cli::common::{self, quote, unexpected, Arg, ArgError, Opt, Spec};
use netboot::cli::{Exit, VERSION};
use netboot::config::policy::{self, Caller};
use netboot::config::proto::{self, Request};
use netboot::config::store::{describe, Lookup, Store};
use netboot::config::user;
use netboot::rxkad::Level;
use netboot::rxrpc::server::{AppReply, CallInfo, Server, ServerConfig, ServerSecurity};
use netboot::rxrpc::udp;
use std::ffi::OsString;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Calls in progress at once: each holds up to its reply (≤ 64 KiB) until
/// the client's final ACK, so 256 bound that memory to 16 MiB. With fewer
/// slots than clients calling back to back, calls are displaced before their
/// final ACK arrives: at 64 slots and 100 clients that cost half of
/// configd's time (bench/configd-fleet.sh: 0.6× vlserver's calls/s; 256:
/// 0.99×). A burst larger than that waits in the backlog.
const DEFAULT_MAX_CALLS: usize = 256;
const MAX_CALLS_MAX: usize = 100_000;
/// New calls waiting for a slot: each holds its first datagram (a GetConfig
/// request, ≤ 812 bytes), so 4096 waiting are ≤ 4 MiB (`BACKLOG_ENTRY_BYTES`
/// each); a fleet of thousands booting at once waits instead of BUSY.
const DEFAULT_BACKLOG: usize = 4096;
const BACKLOG_ENTRY_BYTES: usize = 1024;
/// Kernel receive buffer asked for per socket: a burst of requests arriving
/// at once (≈ 1 KiB of buffer each on loopback) queues there before configd
/// reads it; the default (net.core.rmem_default, 208 KiB) drops a burst of a
/// few hundred.
const RECV_BUFFER: usize = 4 << 20;
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
Also: `netboot-configd serve OPTIONS` (the same as without \"serve\"),
`netboot-configd key new|openafs …` (rxkad server keys; key --help) and
`netboot-configd token …` (rxkad tokens for the agent; token --help).

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
--max-calls-per-source (in progress and waiting), BUSY; with every slot
taken, a source holding more than its share loses its oldest call to a
newcomer, else the newcomer waits in the --backlog (one source at most an
eighth of it) and is served in turn, BUSY only when that is full; a
request not complete 1 s after its first packet, or waiting 1 s, is
aborted.

Security (rxkad, RxRPC security index 2): with --rxkad-keys FILE (made by
`netboot-configd key new`) configd also takes calls secured with tokens
minted from those keys (`netboot-configd token`): the client proves the
token, and at level encrypt every packet is encrypted. Policy:
  - a document with CHAP secrets (a chap object, or a node/login
    parameter named *password* or *secret*) is sent only on encrypted
    calls; plain (index 0) and auth calls get abort 6
    NBCONF_SECRETS_REFUSED, unless the file has the top-level field
    \"serve_secrets_insecure\": true (configd removes it before sending);
    auth proves the token and binds packets to their call, but seals only
    the first 8 bytes of each packet: the rest is readable and alterable;
  - a machine token (netboot.mac-…) gets only the config of its own MAC
    (else abort 7 NBCONF_WRONG_MACHINE); a fleet token any machine's;
  - a valid ticket that is no netboot token: abort 8 NBCONF_NOT_NETBOOT_TOKEN;
  - a bad, expired or unknown-kvno token, or a level below --min-level:
    the rxkad abort (RXKADEXPIRED, RXKADUNKNOWNKEY, RXKADLEVELFAIL, …).
Every refusal is one log line with its reason. Without --rxkad-keys the
exchange is neither authenticated nor encrypted (security index 0):
whoever can send a MAC gets that machine's config (secret-free configs,
or those that allow it). Serve such configs on a trusted network only.

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
            help: "calls in progress at once, 1..100000 (default 256); more wait in\n\
                   the --backlog",
        },
        Opt {
            name: "--backlog",
            value: Some("N"),
            help: "new calls that wait for a slot when all --max-calls are taken (served\n\
                   first come, first served; each waits at most 1 s), 0..100000\n\
                   (default 4096); BUSY only beyond it",
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
            name: "--rxkad-keys",
            value: Some("FILE"),
            help: "rxkad server key file (netboot-configd key new): take calls\n\
                   secured with tokens of its keys (several kvnos for rolling keys)",
        },
        Opt {
            name: "--min-level",
            value: Some("LEVEL"),
            help: "lowest security taken: none (plain calls too; the default),\n\
                   auth or encrypt (rxkad only; needs --rxkad-keys)",
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
    backlog: usize,
    user: Option<String>,
    rxkad_keys: Option<PathBuf>,
    min_level: Level,
}

/// `Ok(None)`: `--version` was printed.
fn parse(args: &[OsString]) -> Result<Option<Opts>, ArgError> {
    let mut dir = None;
    let mut listen = Vec::new();
    let mut max_calls = DEFAULT_MAX_CALLS;
    let mut max_calls_per_source = DEFAULT_MAX_CALLS_PER_SOURCE;
    let mut backlog = DEFAULT_BACKLOG;
    let mut user = None;
    let mut rxkad_keys = None;
    let mut min_level = Level::Clear;
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
            Arg::Value("--backlog", v) => {
                backlog = common::number("--backlog", v, 0, MAX_CALLS_MAX)?;
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
            Arg::Value("--rxkad-keys", v) => rxkad_keys = Some(PathBuf::from(v)),
            Arg::Value("--min-level", v) => {
                let t = common::text("--min-level", v)?;
                min_level = Level::from_name(t).ok_or_else(|| {
                    format!("--min-level {}: expected none, auth or encrypt", quote(t))
                })?;
            }
            a => return Err(unexpected(a)),
        }
    }
    let dir = dir.ok_or("--dir is required")?;
    if min_level > Level::Clear && rxkad_keys.is_none() {
        return Err("--min-level auth|encrypt needs --rxkad-keys FILE".into());
    }
    if listen.is_empty() {
        listen.push(SocketAddr::from(([0, 0, 0, 0], proto::DEFAULT_PORT)));
        listen.push(SocketAddr::from(([0u16; 8], proto::DEFAULT_PORT)));
    }
    Ok(Some(Opts {
        dir,
        listen,
        max_calls,
        max_calls_per_source,
        backlog,
        user,
        rxkad_keys,
        min_level,
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
    // Beyond net.core.rmem_max only with CAP_NET_ADMIN (configd started as
    // root, before --user); otherwise as much as the limit allows.
    if sockopt::set_socket_recv_buffer_size_force(&fd, RECV_BUFFER).is_err() {
        sockopt::set_socket_recv_buffer_size(&fd, RECV_BUFFER)?;
    }
    Ok(UdpSocket::from(fd))
}

/// Unix time for the ticket checks (0 before 1970, saturating in 2106).
fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    std::process::exit(run(args.get(1..).unwrap_or(&[])));
}

/// `args` without the program name: a subcommand, or serve's options.
fn run(args: &[OsString]) -> i32 {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().and_then(|a| a.to_str()) {
        Some("key") => rxkad_cmds::key(rest),
        Some("token") => rxkad_cmds::token(rest),
        Some("serve") => serve(rest),
        _ => serve(args),
    }
}

/// `netboot-configd [serve] OPTIONS`.
fn serve(args: &[OsString]) -> i32 {
    let Opts {
        dir,
        listen,
        max_calls,
        max_calls_per_source,
        backlog,
        user,
        rxkad_keys,
        min_level,
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
    // The server keys too are read before the privilege drop: the key file
    // is the most secret file here and need not be readable by --user.
    let keys = match rxkad_keys.as_deref().map(rxkad_cmds::read_keys).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("netboot-configd: --rxkad-keys: {e}");
            return Exit::Failure as i32;
        }
    };
    if let Some(w) = rxkad_keys.as_deref().and_then(rxkad_cmds::mode_warning) {
        eprintln!("netboot-configd: warning: --rxkad-keys {w}");
    }
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
                // The kernel reports twice what it grants (socket(7)).
                let got = rustix::net::sockopt::socket_recv_buffer_size(&s).unwrap_or(0) / 2;
                if got < RECV_BUFFER {
                    eprintln!(
                        "netboot-configd: warning: receive buffer of {shown} is {got} bytes, \
                         not {RECV_BUFFER} (net.core.rmem_max): a burst of more than about {} \
                         requests at once is dropped and retransmitted",
                        got / 1024
                    );
                }
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
    match &keys {
        Some(k) => {
            let kvnos: Vec<String> = k.iter().map(|k| k.kvno.to_string()).collect();
            eprintln!(
                "netboot-configd: rxkad: server keys kvno {}; lowest level taken: {min_level}",
                kvnos.join(", ")
            );
        }
        None => eprintln!(
            "netboot-configd: rxkad: no --rxkad-keys: plain calls only, and no config with \
             CHAP secrets is served unless it sets \"serve_secrets_insecure\": true"
        ),
    }
    let version = format!("netboot-configd {}", env!("CARGO_PKG_VERSION"));
    let mut server = Server::new(ServerConfig {
        service_id: proto::SERVICE_ID,
        max_calls,
        max_calls_per_source,
        backlog,
        backlog_bytes: backlog * BACKLOG_ENTRY_BYTES,
        request_deadline: REQUEST_DEADLINE,
        max_request: proto::MAX_REQUEST,
        too_large_abort: proto::NBCONF_TOO_LARGE,
        abort_name: proto::abort_name,
        version,
        security: keys.map(|keys| ServerSecurity {
            keys,
            min_level,
            service: netboot::rxkad::files::SERVICE.to_string(),
            now: unix_now,
            nonce: udp::random_u32,
        }),
    });
    // The policy's view of each served document, worked out once per text.
    let mut prepared = policy::PreparedCache::default();
    let mut app = |req: &[u8], call: &CallInfo| -> AppReply {
        let caller = match &call.principal {
            None => Caller::Plain,
            Some(p) => Caller::Token {
                name: p.name.clone(),
                instance: p.instance.clone(),
                level: call.level,
            },
        };
        if caller == Caller::Plain && min_level > Level::Clear {
            return AppReply::Abort {
                code: proto::NBCONF_SECURITY_REQUIRED,
                note: format!("plain call refused: --min-level {min_level} takes only rxkad calls"),
            };
        }
        match proto::decode_request(req) {
            Err(e) => AppReply::Abort {
                code: e.abort_code(),
                note: e.to_string(),
            },
            Ok(Request::GetConfig(id)) => {
                let who = format!(
                    "GetConfig mac={:?} iqn={:?} host={:?} [{}]",
                    id.mac,
                    id.iqn,
                    id.hostname,
                    caller.describe()
                );
                if let Err(r) = policy::check_identity(&caller, &id) {
                    return AppReply::Abort {
                        code: r.abort_code(),
                        note: format!("{who} -> {r}"),
                    };
                }
                let found = store.lookup(&id);
                let note = format!("{who} -> {}", describe(&found));
                match (found.abort_code(), found) {
                    (None, Lookup::Found { json, .. }) => {
                        match policy::decide(&caller, prepared.get(&json)) {
                            Ok(doc) => AppReply::Data {
                                data: proto::encode_reply(doc),
                                note,
                            },
                            Err(r) => AppReply::Abort {
                                code: r.abort_code(),
                                note: format!("{note}: {r}"),
                            },
                        }
                    }
                    (code, _) => AppReply::Abort {
                        code: code.unwrap_or(proto::NBCONF_NOT_FOUND),
                        note,
                    },
                }
            }
        }
    };
    // One write per line: stderr is unbuffered and `eprintln!` writes each
    // piece of its format on its own (three system calls per served call,
    // a third of configd's system calls; bench/configd-fleet.sh).
    let mut log = |l: &str| {
        use std::io::Write;
        let line = format!("netboot-configd: {l}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    };
    let stop = AtomicBool::new(false);
    match udp::serve(&sockets, &mut server, &mut app, &mut log, &stop) {
        Ok(()) => Exit::Ok as i32,
        Err(e) => {
            eprintln!("netboot-configd: socket error: {e}");
            Exit::Failure as i32
        }
    }
}
