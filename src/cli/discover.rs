//! `netboot discover PORTAL`: SendTargets=All over a discovery session.

use super::common;
use super::{fail, Exit};
use crate::cmdline::rootpath;
use crate::iscsi::client::Session;
use crate::iscsi::login::parse_portal;
use crate::plan::DEFAULT_PORT;

const CMD: &str = "discover";

pub fn run(args: &[String]) -> i32 {
    let a = match common::parse(args) {
        Ok(a) => a,
        Err(e) => return fail(CMD, Exit::Usage, e),
    };
    let [portal_arg] = a.positional.as_slice() else {
        return fail(
            CMD,
            Exit::Usage,
            "usage: netboot discover [--timeout S] [--initiator IQN] [--json] [USER:SECRET[:TUSER:TSECRET]@]HOST[:PORT]",
        );
    };
    // Discovery CHAP rides on the portal argument, in the root-path
    // spelling: USER:SECRET[:TUSER:TSECRET]@HOST[:PORT]. Host names never
    // hold '@', so the last one separates.
    let (chap, host_port) = match portal_arg.rsplit_once('@') {
        Some((creds, rest)) => match rootpath::parse_auth(creds) {
            Some(c) => (Some(c), rest),
            None => {
                return fail(
                    CMD,
                    Exit::Usage,
                    "invalid credentials before '@' (expected USER:SECRET or USER:SECRET:TUSER:TSECRET)",
                )
            }
        },
        None => (None, portal_arg.as_str()),
    };
    let Some(portal) = parse_portal(host_port, DEFAULT_PORT) else {
        return fail(
            CMD,
            Exit::Usage,
            format!("invalid portal {host_port:?} (expected HOST[:PORT] or [IPv6][:PORT])"),
        );
    };
    let est = match common::login(&a, &common::initiator(&a), &portal, None, chap) {
        Ok(e) => e,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    let asked = est.portal.clone();
    let mut s = Session::new(est.channel, est.outcome);
    let mut targets = match s.send_targets(asked.port) {
        Ok(t) => t,
        Err(e) => return fail(CMD, Exit::Failure, format!("discovery at {asked}: {e}")),
    };
    if let Err(e) = s.logout() {
        log::warn!("discovery at {asked}: {e}");
    }
    // RFC 7143 Appendix C: a target listed without TargetAddress is reachable
    // through the portal the discovery session used.
    for t in &mut targets {
        if t.portals.is_empty() {
            t.portals.push(crate::iscsi::client::DiscoveredPortal {
                address: asked.host.clone(),
                port: asked.port,
                tpgt: None,
            });
        }
    }
    if a.json {
        match serde_json::to_string_pretty(&targets) {
            Ok(j) => println!("{j}"),
            Err(e) => return fail(CMD, Exit::Failure, e),
        }
    } else {
        for t in &targets {
            for p in &t.portals {
                let host = if p.address.contains(':') {
                    format!("[{}]", p.address)
                } else {
                    p.address.clone()
                };
                let tag = p.tpgt.map_or_else(|| "-1".to_string(), |t| t.to_string());
                println!("{host}:{},{tag} {}", p.port, t.target);
            }
        }
    }
    Exit::Ok as i32
}
