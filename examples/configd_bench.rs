//! Benchmark (not a test): netboot-configd calls/s and latency percentiles
//! with 1, 100 and 1000 concurrent userspace clients on loopback.
//!
//!   cargo build --release --bin netboot-configd
//!   cargo run --release --example configd_bench [-- PATH-TO-CONFIGD [SECONDS]]
//!
//! Each level runs for SECONDS (default 3) wall time; every client is a
//! thread doing back-to-back GetConfig calls (one fresh Rx connection per
//! call). Prints one table row per level.
#![allow(clippy::panic)] // a benchmark, not shipped: a failed set-up step ends the run

use netboot::config::proto::{self, Identity};
use netboot::rxrpc::udp::UdpTransport;
use netboot::rxrpc::RxTransport;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/x86_64-unknown-linux-musl/release/netboot-configd".into());
    let secs: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 30);
    let dir = std::env::temp_dir().join(format!("configd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("default.json"),
        r#"{"version":1,"initiator":"iqn.2024-01.org.example:bench","paths":[{"server":"198.18.0.1","target":"iqn.2024-01.org.example:root"}],"tuning":{"queue_depth":64}}"#,
    )
    .expect("write");
    let mut child = Command::new(&bin)
        .args([
            "--dir",
            &dir.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--max-calls",
            "4096",
        ])
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
    // Discard the per-call log lines.
    std::thread::spawn(move || lines.for_each(drop));

    println!("| clients | calls | errors | calls/s | p50 ms | p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in &[1usize, 100, 1000] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        let mut t = UdpTransport::new(proto::MAX_REPLY + 8);
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
        all.sort();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "| {n} | {} | {errors} | {:.0} | {:.3} | {:.3} |",
            all.len(),
            all.len() as f64 / wall,
            pct(0.50),
            pct(0.99)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
