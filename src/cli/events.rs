//! `netboot events [--json] [--group G] [--id IDX.VAL] [--count N] [--timeout S]`:
//! subscribe to the connector group and print boot events live.
//!
//! - human mode (default): one line per event on stdout; losses and skipped
//!   garbage on stderr.
//! - `--json`: one JSON object per line on stdout — the event payload plus
//!   `seq`; a gap in a sender's seq prints
//!   `{"event":"lost","reason":"gap","count":N,"first_seq":A,"last_seq":B}`, a
//!   receive-queue overflow (ENOBUFS) `{"event":"lost","reason":"overflow"}`.
//! - `--count N`: exit 0 after N events. `--timeout S`: total wall time
//!   (not idle time), fractional seconds allowed; when it runs out the exit
//!   code is 0, or 1 if `--count` was given and not reached.
//!
//! Once subscribed it prints `netboot events: listening on group G, id I.V`
//! on stderr, so a script can wait for that before starting an emitter.

use rustix::io::Errno;
use std::io::Write;
use std::time::{Duration, Instant};

use super::{fail, Exit};
use crate::connector::CbId;
use crate::events::listen::{human_line, json_line, lost_json, lost_text, Item, Listener};
use crate::events::sock::CnSocket;
use crate::events::{DEFAULT_GROUP, DEFAULT_ID};

const CMD: &str = "events";

struct Opts {
    json: bool,
    group: u32,
    id: CbId,
    count: Option<u64>,
    timeout: Option<Duration>,
}

fn num(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        json: false,
        group: DEFAULT_GROUP,
        id: DEFAULT_ID,
        count: None,
        timeout: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--json" => o.json = true,
            "--group" => {
                let v = val("--group")?;
                o.group = num(&v)
                    .filter(|g| (1..=32).contains(g))
                    .ok_or(format!("--group {v:?}: expected a group number 1..=32"))?;
            }
            "--id" => {
                let v = val("--id")?;
                let (i, l) = v
                    .split_once('.')
                    .and_then(|(i, l)| Some((num(i)?, num(l)?)))
                    .ok_or(format!("--id {v:?}: expected IDX.VAL, e.g. 0x4e42.1"))?;
                o.id = CbId { idx: i, val: l };
            }
            "--count" => {
                let v = val("--count")?;
                o.count = Some(
                    v.parse()
                        .map_err(|_| format!("--count {v:?}: expected a number"))?,
                );
            }
            "--timeout" => {
                let v = val("--timeout")?;
                let s: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or(format!("--timeout {v:?}: expected seconds"))?;
                o.timeout = Some(Duration::from_secs_f64(s));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            return fail(
                CMD,
                Exit::Usage,
                format!("{e}\nusage: netboot events [--json] [--group G] [--id IDX.VAL] [--count N] [--timeout S]"),
            )
        }
    };
    let sock = match CnSocket::open() {
        Ok(s) => s,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    // A listener that falls behind loses events (ENOBUFS); a bigger queue
    // makes that rarer. Best effort, capped by net.core.rmem_max.
    sock.grow_recv_buffer(1 << 20);
    if let Err(e) = sock.join(o.group) {
        return fail(CMD, Exit::Failure, e);
    }
    eprintln!(
        "netboot {CMD}: listening on group {}, id {:#x}.{}",
        o.group, o.id.idx, o.id.val
    );
    let mut l = Listener::new(o.id);
    let deadline = o.timeout.map(|t| Instant::now() + t);
    let mut out = std::io::stdout().lock();
    // Largest connector message plus headers, with room for oversized garbage.
    let mut buf = vec![0u8; 65536];
    let mut printed: u64 = 0;
    let code = loop {
        if o.count.is_some_and(|n| printed >= n) {
            break Exit::Ok as i32;
        }
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(w) if !w.is_zero() => Some(w),
                _ => {
                    break match o.count {
                        Some(n) => fail(
                            CMD,
                            Exit::Failure,
                            format!("timed out with {printed} of {n} events"),
                        ),
                        None => Exit::Ok as i32,
                    }
                }
            },
            None => None,
        };
        let items = match sock.recv(&mut buf, wait) {
            Ok(None) => continue,
            Ok(Some((n, sender))) => l.feed(&buf[..n.min(buf.len())], sender),
            Err(Errno::NOBUFS) => {
                l.overflow();
                let r = if o.json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"event": "lost", "reason": "overflow"})
                    )
                } else {
                    eprintln!("lost events: receive queue overflowed (ENOBUFS)");
                    Ok(())
                };
                if r.is_err() {
                    break Exit::Ok as i32;
                }
                continue;
            }
            Err(e) => {
                break fail(
                    CMD,
                    Exit::Failure,
                    format!("receiving on group {}: {e}", o.group),
                )
            }
        };
        let mut closed = false;
        for item in items {
            let r = match item {
                Item::Event { seq, payload, .. } => {
                    if o.count.is_some_and(|n| printed >= n) {
                        break; // several messages in one datagram: stop at N
                    }
                    printed += 1;
                    if o.json {
                        writeln!(out, "{}", json_line(seq, &payload))
                    } else {
                        writeln!(out, "{}", human_line(&payload))
                    }
                }
                Item::Lost {
                    count, first, last, ..
                } => {
                    if o.json {
                        writeln!(out, "{}", lost_json(count, first, last))
                    } else {
                        eprintln!("{}", lost_text(count, first, last));
                        Ok(())
                    }
                }
                Item::Malformed(why) => {
                    eprintln!("netboot {CMD}: skipped malformed message {why}");
                    Ok(())
                }
                Item::Foreign => Ok(()),
            };
            // stdout closed (e.g. `| head`): stop quietly.
            if r.is_err() {
                closed = true;
                break;
            }
        }
        if closed {
            break Exit::Ok as i32;
        }
    };
    let s = l.stats;
    if s.lost + s.overflows + s.malformed > 0 {
        eprintln!(
            "netboot {CMD}: {} events, {} lost, {} overflows, {} malformed skipped",
            s.events, s.lost, s.overflows, s.malformed
        );
    }
    code
}
