//! `netboot events [--json] [--group G] [--id IDX.VAL] [--count N] [--timeout S]`:
//! subscribe to the connector group and print boot events live. Output
//! formats, the "listening" line and exit codes: [`SPEC`] (`--help`).

use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::time::{Duration, Instant};

use super::common::{self, quote, unexpected, Arg, ArgError, Opt, Spec};
use super::{fail, Exit};
use crate::events::listen::{human_line, json_line, lost_json, lost_text, Item, Listener};
use crate::events::sock::CnSocket;
use crate::events::{DEFAULT_GROUP, DEFAULT_ID};
use crate::netlink::connector::CbId;

const CMD: &str = "events";
/// `--count` bound: a billion events is days of a busy boot; the cap only
/// keeps the number an honest one.
const COUNT_MAX: u64 = 1_000_000_000;

pub static SPEC: Spec = Spec {
    prog: "netboot events",
    synopsis: "[--json] [--group G] [--id IDX.VAL] [--count N] [--timeout S]",
    summary: "print boot events live, as the agent emits them (kernel connector)",
    about: "\
Text mode prints one line per event on stdout; losses and skipped garbage
go to stderr. With --json, losses are JSON lines on stdout too:
{\"event\":\"lost\",\"reason\":\"gap\",\"count\":N,\"first_seq\":A,\"last_seq\":B}
for a gap in a sender's seq, {\"event\":\"lost\",\"reason\":\"overflow\"} for a
full receive queue (ENOBUFS).

Once subscribed it prints \"netboot events: listening on group G, id I.V\"
on stderr, so a script can wait for that before starting an emitter.
Joining a connector group needs CAP_NET_ADMIN.

exit codes: 0 after N events, at the timeout, or when stdout closes; 1 the
socket failed, or the timeout came before --count events; 2 bad usage.
",
    opts: &[
        Opt {
            name: "--json",
            value: None,
            help: "one JSON object per line: the event and its seq (default text)",
        },
        Opt {
            name: "--group",
            value: Some("G"),
            help: "connector multicast group, 1..32, decimal or 0x hex (default 26)",
        },
        Opt {
            name: "--id",
            value: Some("IDX.VAL"),
            help: "connector id of the sender, two u32, decimal or 0x hex\n\
                   (default 0x4e42.1)",
        },
        Opt {
            name: "--count",
            value: Some("N"),
            help: "exit 0 after N events, 0..1000000000 (default: no limit)",
        },
        Opt {
            name: "--timeout",
            value: Some("S"),
            help: "total wall time (not idle time), in seconds, 0.001..86400,\n\
                   fractions allowed (default: no limit)",
        },
    ],
};

pub(super) struct Opts {
    json: bool,
    group: u32,
    id: CbId,
    count: Option<u64>,
    timeout: Option<Duration>,
}

/// A u32 in decimal or `0x` hex.
fn num(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => text.parse().ok(),
    }
}

pub(super) fn parse(args: &[OsString]) -> Result<Opts, ArgError> {
    let mut o = Opts {
        json: false,
        group: DEFAULT_GROUP,
        id: DEFAULT_ID,
        count: None,
        timeout: None,
    };
    let text = |name: &str, v: &OsStr| common::text(name, v).map(str::to_string);
    for a in SPEC.parse(args) {
        match a? {
            Arg::Flag("--json") => o.json = true,
            Arg::Value("--group", v) => {
                let v = text("--group", v)?;
                o.group = num(&v).filter(|g| (1..=32).contains(g)).ok_or(format!(
                    "--group {}: expected a group number 1..32",
                    quote(&v)
                ))?;
            }
            Arg::Value("--id", v) => {
                let v = text("--id", v)?;
                let (idx, val) = v
                    .split_once('.')
                    .and_then(|(i, l)| Some((num(i)?, num(l)?)))
                    .ok_or(format!(
                        "--id {}: expected IDX.VAL, two numbers 0..4294967295, e.g. 0x4e42.1",
                        quote(&v)
                    ))?;
                o.id = CbId { idx, val };
            }
            Arg::Value("--count", v) => o.count = Some(common::number("--count", v, 0, COUNT_MAX)?),
            Arg::Value("--timeout", v) => o.timeout = Some(common::seconds("--timeout", v)?),
            a => return Err(unexpected(a)),
        }
    }
    Ok(o)
}

pub fn run(args: &[OsString]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => return SPEC.exit(e),
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
                    // The reason quotes the sender's bytes (serde names
                    // an unknown variant as sent): one line whatever it is.
                    eprintln!(
                        "netboot {CMD}: skipped malformed message {}",
                        common::escape_controls(&why)
                    );
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
