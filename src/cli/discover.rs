//! `netboot discover PORTAL`: SendTargets=All over a discovery session.

use super::common::{self, Spec};
use super::{fail, Exit};
use crate::cmdline::mask::Masker;
use crate::cmdline::rootpath;
use crate::iscsi::client::Session;
use crate::iscsi::login::{parse_portal, Portal};
use crate::plan::{Chap, DEFAULT_PORT};
use std::ffi::{OsStr, OsString};

const CMD: &str = "discover";

pub static SPEC: Spec = Spec {
    prog: "netboot discover",
    synopsis: "[--timeout S] [--initiator IQN] [--json] [USER:SECRET[:TUSER:TSECRET]@]HOST[:PORT]",
    summary: "list the targets a portal offers (SendTargets discovery)",
    about: "\
HOST[:PORT] is the portal: a name, an IPv4 address or [IPv6], port 1..65535
(default 3260). Discovery CHAP credentials go before '@' in the root-path
spelling: USER:SECRET, or USER:SECRET:TUSER:TSECRET for mutual CHAP.

Text output: one line per target portal, as iscsiadm prints them:
HOST:PORT,TPGT TARGET (TPGT -1 when the target gave none).

exit codes: 0 the targets were listed, 1 connect, login or discovery failed
(one line on stderr), 2 bad usage.
",
    opts: common::TOOL_OPTS,
};

/// The portal argument: discovery CHAP rides on it in the root-path
/// spelling, `USER:SECRET[:TUSER:TSECRET]@HOST[:PORT]`. Host names never
/// hold '@', so the last one separates. The error is masked by the
/// argument's own `Masker`: a secret never shows, even in a value with
/// its `@HOST` forgotten.
pub fn portal_of(arg: &OsStr) -> Result<(Option<Chap>, Portal), String> {
    let arg = common::text_secret("portal", arg, Masker::for_portal)?;
    let (chap, host_port) = match arg.rsplit_once('@') {
        Some((creds, rest)) => match rootpath::parse_auth(creds) {
            Some(c) => (Some(c), rest),
            None => {
                return Err("invalid credentials before '@' (expected USER:SECRET or \
                     USER:SECRET:TUSER:TSECRET)"
                    .to_string())
            }
        },
        None => (None, arg),
    };
    // parse_portal checks the port and an [IPv6] literal; a name must also
    // be one (RFC 1123), so a typo fails here rather than in the resolver.
    parse_portal(host_port, DEFAULT_PORT)
        .filter(|p| p.host.contains(':') || rootpath::valid_host(&p.host))
        .map(|p| (chap, p))
        .ok_or_else(|| {
            Masker::for_portal(arg).mask(&format!(
                "invalid portal {} (expected HOST[:PORT] or [IPv6][:PORT])",
                common::quote(host_port)
            ))
        })
}

pub fn run(args: &[OsString]) -> i32 {
    let a = match common::parse(&SPEC, args) {
        Ok(a) => a,
        Err(e) => return SPEC.exit(e),
    };
    let [portal_arg] = a.positional.as_slice() else {
        return SPEC.usage_error("give one portal, [USER:SECRET@]HOST[:PORT]");
    };
    let (chap, portal) = match portal_of(portal_arg) {
        Ok(p) => p,
        Err(e) => return SPEC.usage_error(e),
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
        return match serde_json::to_string_pretty(&targets) {
            Ok(j) => common::print_stdout(&format!("{j}\n")),
            Err(e) => fail(CMD, Exit::Failure, e),
        };
    }
    let mut out = String::new();
    for t in &targets {
        for p in &t.portals {
            let portal = crate::hostport::host_port(&p.address, p.port);
            let tag = p.tpgt.map_or_else(|| "-1".to_string(), |t| t.to_string());
            // Names come from the target: one line each, whatever it sent.
            let line = format!("{portal},{tag} {}", t.target);
            out.push_str(&common::escape_controls(&line));
            out.push('\n');
        }
    }
    common::print_stdout(&out)
}
