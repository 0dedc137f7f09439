//! Benchmark (not a test) of netboot-configd on loopback, four modes.
//!
//!   cargo build --release --bin netboot-configd --example configd_bench
//!   B=target/x86_64-unknown-linux-musl/release
//!   $B/examples/configd_bench [PATH-TO-CONFIGD [SECONDS]]
//!   $B/examples/configd_bench --flood [PATH-TO-CONFIGD [CLIENTS [RATE]]]
//!   $B/examples/configd_bench --fleet [PATH-TO-CONFIGD [CLIENTS [RUNS]]]
//!   $B/examples/configd_bench --compare VL-ADDR CONFIGD-ADDR [SECONDS [LEVELS [BURST [VL-PID CONFIGD-PID]]]]
//!
//! Fleet (`--fleet`, issue 15): configd with its default limits; CLIENTS
//! (default 1000) machines, each from its own loopback address, fetch
//! their config with the agent's code and schedule (`fetch_config_from`,
//! 3 s per call, 3 rounds with 0.5 s and 1 s pauses). Two rows per run: the
//! starts spread evenly over one second, and all at once (a barrier).
//! Time-to-config is from each machine's own start to its config. Prints
//! p50/p90/p99/max, machines without a config, the failed attempts (BUSY
//! among them) and the UDP receive-buffer drops of the host during the
//! row (`RcvbufErrors` of /proc/net/snmp: datagrams the kernel dropped
//! because a socket's buffer was full).
//!
//! Peer comparison (`--compare`, run by bench/configd-fleet.sh inside a
//! private network namespace): the same closed-loop load against OpenAFS
//! `vlserver` (VL_ProbeServer: service 52, opcode 514, empty reply) at
//! VL-ADDR and configd (GetConfig) at CONFIGD-ADDR, both already running:
//! for each level N of LEVELS (default 1,10,100) N client threads, each
//! from its own loopback address, call back to back for SECONDS (default
//! 5), alternating vlserver, configd, vlserver, configd; calls/s of each
//! (the better of two) and the ratio, and with the two PIDs each server's
//! CPU time per call (user + system, from /proc; steadier than calls/s on a
//! loaded host). Then BURST (default 1000) clients
//! starting within one second, each making one call with the agent's
//! schedule, against each server.
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
    if args.first().map(String::as_str) == Some("--fleet") {
        let bin = args.get(1).cloned().unwrap_or_else(|| DEFAULT_BIN.into());
        let clients = args
            .get(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000usize);
        let runs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1usize);
        fleet(&bin, clients.clamp(1, 60_000), runs.clamp(1, 20));
    } else if args.first().map(String::as_str) == Some("--compare") {
        let addr = |i: usize| -> SocketAddr {
            args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                panic!("--compare VL-ADDR CONFIGD-ADDR [SECONDS [LEVELS [BURST]]]")
            })
        };
        let (vl, cd) = (addr(1), addr(2));
        let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5u64);
        let levels: Vec<usize> = args
            .get(4)
            .map_or("1,10,100", String::as_str)
            .split(',')
            .filter_map(|n| n.parse().ok())
            .map(|n: usize| n.clamp(1, 10_000))
            .collect();
        let burst = args
            .get(5)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000usize);
        let pid = |i: usize| args.get(i).and_then(|s| s.parse::<u32>().ok());
        let pids = pid(6).zip(pid(7));
        compare(
            vl,
            cd,
            secs.clamp(1, 60),
            &levels,
            burst.clamp(1, 60_000),
            pids,
        );
    } else if args.first().map(String::as_str) == Some("--flood") {
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

/// `RcvbufErrors` of the host's UDP counters (proc(5) /proc/net/snmp).
fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// How the clients of one row start.
#[derive(Clone, Copy)]
enum Start {
    /// Evenly over this long, client i at i/n of it.
    Spread(Duration),
    /// All released by one barrier.
    AtOnce,
}

/// One row's outcome: time-to-config of the served, the failed attempts
/// by kind, the machines left without.
struct Row {
    lat: Vec<Duration>,
    failed: BTreeMap<String, u64>,
    busy: u64,
    unserved: usize,
    drops: u64,
}

fn print_row(what: &str, n: usize, r: &Row) {
    let failed = if r.failed.is_empty() {
        "none".to_string()
    } else {
        r.failed
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    println!(
        "| {what} | {}/{n} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {failed} |",
        r.lat.len(),
        pct(&r.lat, 0.50),
        pct(&r.lat, 0.90),
        pct(&r.lat, 0.99),
        r.lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        r.unserved,
        r.busy,
        r.drops,
    );
}

/// `n` clients, client i from `client_ip(i)`, each running `job` once
/// from its start (per `start`); `job` returns Ok or the failed attempts
/// and whether it got its answer in the end.
fn storm<F>(n: usize, start: Start, job: F) -> Row
where
    F: Fn(usize) -> (bool, Vec<String>, u64) + Send + Sync + 'static,
{
    let job = Arc::new(job);
    let barrier = Arc::new(Barrier::new(n + 1));
    let drops0 = rcvbuf_errors();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (job, barrier) = (job.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    if let Start::Spread(over) = start {
                        std::thread::sleep(over * i as u32 / n as u32);
                    }
                    let mine = Instant::now();
                    let (ok, failed, busy) = job(i);
                    let took = mine.elapsed();
                    (ok.then_some(took), failed, busy)
                })
                .expect("spawn")
        })
        .collect();
    barrier.wait();
    let mut row = Row {
        lat: Vec::new(),
        failed: BTreeMap::new(),
        busy: 0,
        unserved: 0,
        drops: 0,
    };
    for h in handles {
        let (took, failed, busy) = h.join().expect("join");
        match took {
            Some(t) => row.lat.push(t),
            None => row.unserved += 1,
        }
        for f in failed {
            *row.failed.entry(f).or_default() += 1;
        }
        row.busy += busy;
    }
    row.drops = rcvbuf_errors().saturating_sub(drops0);
    row.lat.sort();
    row
}

/// The agent's fetch (its code and schedule) of machine `i` from `addr`.
fn agent_fetch(addr: SocketAddr, i: usize) -> (bool, Vec<String>, u64) {
    let servers = vec![ConfigServer {
        host: addr.ip().to_string(),
        port: Some(addr.port()),
    }];
    let mut t = UdpTransport::new(proto::MAX_REPLY + 8).from_source(client_ip(i));
    let id = Identity {
        mac: format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256),
        ..Identity::default()
    };
    let (ok, errs) = match fetch_config_from(&mut t, &servers, &id, CALL_TIMEOUT, RETRIES) {
        Ok(f) => (true, f.failed.into_iter().map(|e| e.1).collect::<Vec<_>>()),
        Err(netboot::config::FetchError::AllFailed(v)) => {
            (false, v.into_iter().map(|e| e.1).collect())
        }
        Err(e) => panic!("{e}"),
    };
    let busy = errs
        .iter()
        .filter(|e| matches!(e, AttemptError::Call(netboot::rxrpc::CallError::Busy)))
        .count() as u64;
    (ok, errs.iter().map(ToString::to_string).collect(), busy)
}

fn fleet(bin: &str, clients: usize, runs: usize) {
    let configd = start(bin, &[]);
    let addr = configd.addr;
    println!(
        "{clients} machines, each from its own loopback address, the agent's fetch ({} s per \
         call, {} rounds, 0.5 s and 1 s pauses); {bin} with its default limits",
        CALL_TIMEOUT.as_secs(),
        RETRIES + 1
    );
    println!(
        "| start | served | p50 ms | p90 ms | p99 ms | max ms | without config | BUSY | \
         rcvbuf drops | failed attempts |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for _ in 0..runs {
        let r = storm(clients, Start::Spread(Duration::from_secs(1)), move |i| {
            agent_fetch(addr, i)
        });
        print_row("spread over 1 s", clients, &r);
        std::thread::sleep(Duration::from_millis(500));
        let r = storm(clients, Start::AtOnce, move |i| agent_fetch(addr, i));
        print_row("all at once", clients, &r);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One call of `request` with the agent's schedule (3 s per call, up to 3
/// attempts with 0.5 s and 1 s pauses), for servers that do not speak
/// GetConfig.
fn scheduled_call(
    addr: SocketAddr,
    service: u16,
    request: &[u8],
    i: usize,
) -> (bool, Vec<String>, u64) {
    let mut t = UdpTransport::new(proto::MAX_REPLY + 8).from_source(client_ip(i));
    let mut failed = Vec::new();
    let mut busy = 0;
    for (round, pause) in [0u64, 500, 1000].into_iter().enumerate() {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(pause));
        }
        match t.call(addr, service, request, CALL_TIMEOUT) {
            Ok(_) => return (true, failed, busy),
            Err(e) => {
                busy += u64::from(e == netboot::rxrpc::CallError::Busy);
                failed.push(e.to_string());
            }
        }
    }
    (false, failed, busy)
}

/// `n` clients calling back to back for `secs`: calls/s, errors, p99 ms,
/// and the server's CPU µs per call if its `pid` is given.
fn closed_loop(
    addr: SocketAddr,
    service: u16,
    request: &[u8],
    n: usize,
    secs: u64,
    pid: Option<u32>,
) -> (f64, u64, f64, Option<f64>) {
    let cpu0 = pid.map(cpu_time);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let request = request.to_vec();
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut t = UdpTransport::new(proto::MAX_REPLY + 8).from_source(client_ip(i));
                    let mut lat = Vec::new();
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        match t.call(addr, service, &request, Duration::from_secs(5)) {
                            Ok(_) => lat.push(t0.elapsed()),
                            Err(_) => errors += 1,
                        }
                    }
                    (lat, errors)
                })
                .expect("spawn")
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().expect("join");
        all.extend(l);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = pid.zip(cpu0).map(|(p, c0)| {
        cpu_time(p).saturating_sub(c0).as_secs_f64() * 1e6 / all.len().max(1) as f64
    });
    all.sort();
    (all.len() as f64 / wall, errors, pct(&all, 0.99), cpu)
}

/// VL_ProbeServer (rxrpc.md §3.2): opcode 514, no arguments.
const VL_SERVICE: u16 = 52;
const VL_PROBE: u32 = 514;

fn compare(
    vl: SocketAddr,
    cd: SocketAddr,
    secs: u64,
    levels: &[usize],
    burst: usize,
    pids: Option<(u32, u32)>,
) {
    let probe = VL_PROBE.to_be_bytes().to_vec();
    let get = proto::encode_get_config(&Identity::default());
    // Both answer before the load starts.
    for (addr, svc, req) in [(vl, VL_SERVICE, &probe), (cd, proto::SERVICE_ID, &get)] {
        let mut t = UdpTransport::new(proto::MAX_REPLY + 8);
        let until = Instant::now() + Duration::from_secs(20);
        while let Err(e) = t.call(addr, svc, req, Duration::from_secs(1)) {
            assert!(Instant::now() < until, "{addr} does not answer: {e}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!(
        "closed loop, N client threads each from its own loopback address, back-to-back calls, \
         {secs} s per run, runs alternating vlserver/configd twice, the better run of each"
    );
    println!(
        "| clients | vlserver VL_ProbeServer calls/s | p99 ms | CPU µs/call | configd GetConfig \
         calls/s | p99 ms | CPU µs/call | configd / vlserver calls/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let servers = [
        (vl, VL_SERVICE, &probe, pids.map(|p| p.0)),
        (cd, proto::SERVICE_ID, &get, pids.map(|p| p.1)),
    ];
    for &n in levels {
        let mut best = [(0.0f64, 0u64, 0.0f64, None); 2];
        for _ in 0..2 {
            for (k, (addr, svc, req, pid)) in servers.into_iter().enumerate() {
                let r = closed_loop(addr, svc, req, n, secs, pid);
                if r.0 > best[k].0 {
                    best[k] = r;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        let [v, c] = best;
        let errs = if v.1 + c.1 > 0 {
            format!(" (errors: vlserver {}, configd {})", v.1, c.1)
        } else {
            String::new()
        };
        let us = |c: Option<f64>| c.map_or("–".to_string(), |c| format!("{c:.1}"));
        println!(
            "| {n} | {:.0} | {:.2} | {} | {:.0} | {:.2} | {} | {:.2}×{errs} |",
            v.0,
            v.2,
            us(v.3),
            c.0,
            c.2,
            us(c.3),
            c.0 / v.0.max(1.0)
        );
    }
    println!();
    println!(
        "{burst} clients starting evenly within one second, one call each with the agent's \
         schedule (3 s per call, 3 attempts, 0.5 s and 1 s pauses)"
    );
    println!(
        "| server | served | p50 ms | p90 ms | p99 ms | max ms | without answer | BUSY | \
         rcvbuf drops | failed attempts |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for start in [Start::Spread(Duration::from_secs(1)), Start::AtOnce] {
        let how = match start {
            Start::Spread(_) => "spread over 1 s",
            Start::AtOnce => "all at once",
        };
        let p = probe.clone();
        let r = storm(burst, start, move |i| scheduled_call(vl, VL_SERVICE, &p, i));
        print_row(&format!("vlserver, {how}"), burst, &r);
        std::thread::sleep(Duration::from_millis(500));
        let g = get.clone();
        let r = storm(burst, start, move |i| {
            scheduled_call(cd, proto::SERVICE_ID, &g, i)
        });
        print_row(&format!("configd, {how}"), burst, &r);
        std::thread::sleep(Duration::from_millis(500));
    }
}
