//! `netboot-configd`: serves netboot configs over RxRPC (userspace, UDP).
//!
//! usage: netboot-configd --dir DIR [--listen ADDR:PORT]... [--max-calls N]
//!
//! Service 20034, opcode 1 `GetConfig` (src/rxrpc/proto.rs); file naming in
//! src/rxrpc/store.rs. Default listeners: `0.0.0.0:7260` and `[::]:7260`
//! (the IPv6 one with IPV6_V6ONLY so both can bind). One log line per call
//! on stderr; the bound addresses are printed first (`listening on A`).

use netboot::rxrpc::proto::{self, Request};
use netboot::rxrpc::server::{AppReply, Server, ServerConfig};
use netboot::rxrpc::store::{describe, Lookup, Store};
use netboot::rxrpc::udp;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

const USAGE: &str = "usage: netboot-configd --dir DIR [--listen ADDR:PORT]... [--max-calls N]";
const DEFAULT_MAX_CALLS: usize = 64;

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
    std::process::exit(run(&std::env::args().collect::<Vec<_>>()));
}

fn run(args: &[String]) -> i32 {
    let mut dir: Option<PathBuf> = None;
    let mut listen: Vec<SocketAddr> = Vec::new();
    let mut max_calls = DEFAULT_MAX_CALLS;
    let mut it = args.iter().skip(1);
    let usage = |m: String| {
        eprintln!("netboot-configd: {m}\n{USAGE}");
        2
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => match it.next() {
                Some(d) => dir = Some(PathBuf::from(d)),
                None => return usage("--dir needs a directory".into()),
            },
            "--listen" => match it.next().map(|s| s.parse::<SocketAddr>()) {
                Some(Ok(a)) => listen.push(a),
                Some(Err(_)) | None => {
                    return usage(
                        "--listen needs ADDR:PORT, e.g. 0.0.0.0:7260 or [::1]:7260".into(),
                    )
                }
            },
            "--max-calls" => match it.next().and_then(|s| s.parse::<usize>().ok()) {
                Some(n) if (1..=100_000).contains(&n) => max_calls = n,
                _ => return usage("--max-calls needs a number 1..100000".into()),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            other => return usage(format!("unknown argument {other:?}")),
        }
    }
    let Some(dir) = dir else {
        return usage("--dir is required".into());
    };
    if listen.is_empty() {
        listen.push(SocketAddr::from(([0, 0, 0, 0], proto::DEFAULT_PORT)));
        listen.push(SocketAddr::from(([0u16; 8], proto::DEFAULT_PORT)));
    }
    let mut store = Store::new(&dir);
    match store.check_all() {
        Ok(msgs) => {
            for m in msgs {
                eprintln!("netboot-configd: warning: {m}");
            }
        }
        Err(e) => {
            eprintln!("netboot-configd: cannot read --dir {}: {e}", dir.display());
            return 1;
        }
    }
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
                return 1;
            }
        }
    }
    let version = format!("netboot-configd {}", env!("CARGO_PKG_VERSION"));
    let mut server = Server::new(ServerConfig {
        service_id: proto::SERVICE_ID,
        max_calls,
        max_request: proto::MAX_REQUEST,
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
        Ok(()) => 0,
        Err(e) => {
            eprintln!("netboot-configd: socket error: {e}");
            1
        }
    }
}
