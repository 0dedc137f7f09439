//! Benchmark (not a test) of netboot-configd on loopback, two modes.
//!
//!   cargo build --release --bin netboot-configd --example configd_bench
//!   B=target/x86_64-unknown-linux-musl/release
//!   $B/examples/configd_bench [PATH-TO-CONFIGD [SECONDS]]
//!   $B/examples/configd_bench --flood [PATH-TO-CONFIGD [CLIENTS [RATE]]]
//!
//! Throughput (default): calls/s and latency percentiles with 1, 100 and
//! 1000 concurrent userspace clients, each level SECONDS (default 3) of wall
//! time; every client is a thread doing back-to-back GetConfig calls on its
//! own Rx connection, each from its own loopback address (127.0.1.1, …), so
//! that configd's per-source limit (one call at a time each) does not bind;
//! configd runs with `--max-calls 4096`. One table row per level.
//!
//! Lock-out (`--flood`, issue 12): configd with its default limits; CLIENTS
//! (default 200) machines, each from its own loopback address
//! (127.0.1.1, 127.0.1.2, …), start at once and fetch their config the way
//! the agent does (src/boot/config.rs: 3 s per call, 3 rounds with 0.5 s
//! and 1 s pauses). Once alone, once while 127.0.0.2 floods configd with
//! RATE (default 1000) packets/s, each the first packet of a request that
//! never completes, on a fresh connection. Prints clients served, latency
//! p50/p99/max of a whole fetch, the failed attempts on the way, and what
//! the flooder got back.
#![allow(clippy::panic)] // a benchmark, not shipped: a failed set-up step ends the run

use netboot::config::proto::{self, Identity};
use netboot::config::{fetch_config_from, AttemptError};
use netboot::plan::ConfigServer;
use netboot::rxrpc::udp::UdpTransport;
use netboot::rxrpc::wire::{flags, ptype, Body, Header, Packet};
use netboot::rxrpc::RxTransport;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const DEFAULT_BIN: &str = "target/x86_64-unknown-linux-musl/release/netboot-configd";
/// The agent's schedule (src/boot/config.rs `CALL_TIMEOUT`, `RETRIES`).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const RETRIES: u32 = 2;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--flood") {
        let bin = args.get(1).cloned().unwrap_or_else(|| DEFAULT_BIN.into());
        let clients = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200usize);
        let rate = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000u32);
        lockout(&bin, clients.clamp(1, 60_000), rate.clamp(1, 100_000));
    } else {
        let bin = args.first().cloned().unwrap_or_else(|| DEFAULT_BIN.into());
        let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3u64);
        throughput(&bin, secs.clamp(1, 30));
    }
}

struct Configd {
    child: Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for Configd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Start configd on 127.0.0.1 with a default.json and `extra` options; its
/// per-call log lines are read and dropped.
fn start(bin: &str, extra: &[&str]) -> Configd {
    let dir = std::env::temp_dir().join(format!("configd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("default.json"),
        r#"{"version":1,"initiator":"iqn.2024-01.org.example:bench","paths":[{"server":"198.18.0.1","target":"iqn.2024-01.org.example:root"}],"tuning":{"queue_depth":64}}"#,
    )
    .expect("write");
    let mut child = Command::new(bin)
        .arg("--dir")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin}: {e} (build it with cargo build --release --bin netboot-configd)")
        });
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr: SocketAddr = loop {
        let l = lines.next().expect("configd exited").expect("read");
        if let Some(a) = l.strip_prefix("netboot-configd: listening on ") {
            break a.parse().expect("addr");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Configd { child, addr, dir }
}

/// User + system CPU time of process `pid` (proc(5) `stat` fields 14, 15,
/// in clock ticks of 1/100 s, the Linux USER_HZ).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Duration::from_millis(10 * f.iter().sum::<u64>())
}

/// Value at fraction `p` of sorted `v`, in ms.
fn pct(v: &[Duration], p: f64) -> f64 {
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn throughput(bin: &str, secs: u64) {
    let configd = start(bin, &["--max-calls", "4096"]);
    let addr = configd.addr;
    println!("| clients | calls | errors | calls/s | p50 ms | p99 ms | configd CPU µs/call |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &[1usize, 100, 1000] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let cpu0 = cpu_time(configd.child.id());
        let handles: Vec<_> = (0..n)
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        let mut t =
                            UdpTransport::new(proto::MAX_REPLY + 8).from_source(client_ip(i));
                        let req = proto::encode_get_config(&Identity::default());
                        let mut lat = Vec::new();
                        let mut errors = 0u64;
                        let mut first_err = None;
                        while Instant::now() < deadline {
                            let t0 = Instant::now();
                            match t.call(addr, proto::SERVICE_ID, &req, Duration::from_secs(5)) {
                                Ok(_) => lat.push(t0.elapsed()),
                                Err(e) => {
                                    errors += 1;
                                    first_err.get_or_insert(e.to_string());
                                }
                            }
                        }
                        (lat, errors, first_err)
                    })
                    .expect("spawn")
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        let mut kinds = std::collections::BTreeSet::new();
        for h in handles {
            let (l, e, k) = h.join().expect("join");
            all.extend(l);
            errors += e;
            kinds.extend(k);
        }
        if !kinds.is_empty() {
            eprintln!("{n} clients: errors like {kinds:?}");
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_time(configd.child.id()).saturating_sub(cpu0);
        all.sort();
        println!(
            "| {n} | {} | {errors} | {:.0} | {:.3} | {:.3} | {:.1} |",
            all.len(),
            all.len() as f64 / wall,
            pct(&all, 0.50),
            pct(&all, 0.99),
            cpu.as_secs_f64() * 1e6 / all.len().max(1) as f64
        );
    }
}

/// What the flooder sent and got back.
#[derive(Default, Debug)]
struct FloodTally {
    sent: u64,
    busy: u64,
    aborts: BTreeMap<i32, u64>,
    other: u64,
}

/// The first DATA packet of a GetConfig request, without LAST_PACKET: the
/// call never completes.
fn incomplete(cid: u32) -> Vec<u8> {
    let req = proto::encode_get_config(&Identity::default());
    let header = Header {
        epoch: 0x8000_4242,
        cid,
        call: 1,
        seq: 1,
        serial: 1,
        ptype: ptype::DATA,
        flags: flags::CLIENT_INITIATED,
        service_id: proto::SERVICE_ID,
        ..Header::default()
    };
    Packet {
        header,
        body: Body::Data(req[..8].to_vec()),
    }
    .encode()
    .expect("encode")
}

/// Send `rate` incomplete calls a second from 127.0.0.2 until `stop`.
fn flood(to: SocketAddr, rate: u32, stop: Arc<AtomicBool>) -> FloodTally {
    let sock = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    sock.set_nonblocking(true).expect("nonblocking");
    let period = Duration::from_secs(1) / rate;
    let mut tally = FloodTally::default();
    let mut cid = 4u32;
    let mut next = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let _ = sock.send_to(&incomplete(cid), to);
        tally.sent += 1;
        cid = cid.wrapping_add(4) & 0x3fff_fffc;
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            match Packet::decode(&buf[..n]).map(|p| p.body) {
                Ok(Body::Busy(_)) => tally.busy += 1,
                Ok(Body::Abort { code, .. }) => *tally.aborts.entry(code).or_default() += 1,
                _ => tally.other += 1,
            }
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    tally
}

/// Client `i`'s loopback address: 127.0.1.1, …, 127.0.1.250, 127.0.2.1, …
fn client_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        (1 + i / 250) as u8,
        (1 + i % 250) as u8,
    ))
}

/// One round of `n` machines booting at once; the flood, if any, runs
/// throughout.
fn boot_storm(addr: SocketAddr, n: usize, flood_rate: Option<u32>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood_rate.map(|rate| {
        let stop = stop.clone();
        let h = std::thread::spawn(move || flood(addr, rate, stop));
        // Let the flood reach its steady state (every slot it can get).
        std::thread::sleep(Duration::from_secs(2));
        h
    });
    let servers = vec![ConfigServer {
        host: addr.ip().to_string(),
        port: Some(addr.port()),
    }];
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (servers, barrier) = (servers.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut t = UdpTransport::new(proto::MAX_REPLY + 8).from_source(client_ip(i));
                    let id = Identity {
                        mac: format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256),
                        ..Identity::default()
                    };
                    barrier.wait();
                    let t0 = Instant::now();
                    let r = fetch_config_from(&mut t, &servers, &id, CALL_TIMEOUT, RETRIES);
                    let took = t0.elapsed();
                    match r {
                        Ok(f) => (Some(took), f.failed.into_iter().map(|e| e.1).collect()),
                        Err(netboot::config::FetchError::AllFailed(v)) => {
                            (None, v.into_iter().map(|e| e.1).collect())
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
                .expect("spawn")
        })
        .collect();
    let mut lat = Vec::new();
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    for h in handles {
        let (took, errs): (Option<Duration>, Vec<AttemptError>) = h.join().expect("join");
        lat.extend(took);
        for e in errs {
            *failed.entry(e.to_string()).or_default() += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let tally = flooder.map(|h| h.join().expect("flooder"));
    lat.sort();
    let failed = if failed.is_empty() {
        "none".to_string()
    } else {
        failed
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let flood = match (&tally, flood_rate) {
        (Some(t), Some(rate)) => format!(
            "{rate}/s from 127.0.0.2: {} sent, {} BUSY, aborts {:?}, {} other",
            t.sent, t.busy, t.aborts, t.other
        ),
        _ => "none".to_string(),
    };
    println!(
        "| {flood} | {}/{n} | {:.1} | {:.1} | {:.1} | {failed} |",
        lat.len(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}

fn lockout(bin: &str, clients: usize, rate: u32) {
    let configd = start(bin, &[]);
    println!(
        "{clients} machines booting at once, each from its own address, agent schedule \
         ({} s per call, {} rounds); configd with its default limits",
        CALL_TIMEOUT.as_secs(),
        RETRIES + 1
    );
    println!("| flood | served | p50 ms | p99 ms | max ms | failed attempts on the way |");
    println!("|---|---:|---:|---:|---:|---|");
    boot_storm(configd.addr, clients, None);
    boot_storm(configd.addr, clients, Some(rate));
}
