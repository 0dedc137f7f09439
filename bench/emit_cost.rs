//! Benchmark (not a test): the cost of one boot event on the connector, as
//! PID 1 pays it — `Emitter::step_end` with a few facts, redaction of one
//! secret and a non-blocking multicast — without and with a subscriber.
//!
//!   sudo cargo run --release --example emit_cost [-- COUNT]
//!
//! Needs root (CAP_NET_ADMIN) in the initial network namespace: sending to
//! and joining a connector group both do (connector sets neither
//! NL_CFG_F_NONROOT_SEND nor _RECV). The subscriber never reads, so once
//! its queue is full the kernel drops for it, as it would for a stalled
//! `netboot events`; the emitter must not notice. COUNT defaults to 10000.
//! Prints one line per case: median, mean and p99 of the per-call time, and
//! the emitter's counters.

use netboot::events::sock::CnSocket;
use netboot::events::{step, Emitter, EventsTarget, Facts};
use std::process::ExitCode;
use std::time::Instant;

/// A group the tests leave alone (tests/connector.rs takes 11..=32).
const GROUP: u32 = 10;

fn main() -> ExitCode {
    let n: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("emit_cost: COUNT must be a positive integer");
            return ExitCode::from(2);
        }
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("emit_cost: needs root (CAP_NET_ADMIN) to send to a connector group");
        return ExitCode::from(2);
    }
    let target = EventsTarget {
        group: GROUP,
        idx: 0x4e42_f000 | (std::process::id() & 0xfff),
        val: 0,
    };
    for with_listener in [false, true] {
        let _listener = if with_listener {
            match CnSocket::open().and_then(|s| s.join(GROUP).map(|()| s)) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("emit_cost: subscribing to group {GROUP}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let mut e = Emitter::new(Some(target), vec!["some-secret".into()]);
        let facts = Facts::new()
            .str("portal", "198.18.0.1:3260")
            .str("target", "iqn.2026-01.test:root")
            .u64("lun", 0);
        let mut ns = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            e.step_end(step::ISCSI_LOGIN, 812_000, Ok(()), &facts);
            ns.push(t.elapsed().as_nanos() as u64);
        }
        ns.sort_unstable();
        let us = |v: u64| v as f64 / 1000.0;
        let mean = ns.iter().sum::<u64>() as f64 / n as f64 / 1000.0;
        println!(
            "emit step_end x{n} (listener: {with_listener}): median {:.2} us, mean {mean:.2} us, \
             p99 {:.2} us; stats {:?}",
            us(ns[n / 2]),
            us(ns[n * 99 / 100]),
            e.stats()
        );
    }
    ExitCode::SUCCESS
}
