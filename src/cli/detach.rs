//! `netboot detach`: log an iSCSI session out and destroy it — the clean
//! end of what `netboot attach` (or PID 1) left in the kernel. For tests,
//! and for shutdown integration.

use super::common::{print_stdout, quote_os, seconds, unexpected, Arg, ArgError, Opt, Spec};
use super::{fail, Exit};
use crate::iscsi::kernel::IscsiNl;
use crate::iscsi::sysfs::{self, SessionInfo};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::{Duration, Instant};

pub static SPEC: Spec = Spec {
    prog: "netboot detach",
    synopsis: "[--timeout S] [--force] (--all | SESSION...)",
    summary: "log an iSCSI session out and destroy it",
    about: "\
SESSION is a session number (1 or session1, as in /sys/class/iscsi_session)
or a target name (every session to that target). --all takes every
session the kernel has.

For each session: its disks are removed while the connection still runs
(the kernel flushes their caches to the target), a Logout Request is sent
and its response awaited, then the connection and the session are
destroyed. A target that does not answer the logout within the timeout
is left behind: the session is destroyed anyway and that is said.

A session whose disk (or a partition of it) is mounted is refused, naming
the mount point, unless --force is given: removing the disk under a
mounted file system loses what is not written yet.

exit codes: 0 every named session is gone, 1 a session is unknown, in use
or could not be destroyed (one line each on stderr), 2 bad usage.
",
    opts: &[
        Opt {
            name: "--timeout",
            value: Some("S"),
            help: "per session: how long to wait for the disks to go and for\n\
                   the logout response, 0.001..86400 s (default 5)",
        },
        Opt {
            name: "--force",
            value: None,
            help: "detach even when a disk of the session is mounted",
        },
        Opt {
            name: "--all",
            value: None,
            help: "every iSCSI session",
        },
    ],
};

const CMD: &str = "detach";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// /proc/self/mountinfo read cap (a machine with thousands of mounts fits).
const MOUNTINFO_CAP: u64 = 8 << 20;

#[derive(Debug)]
pub(super) struct Args<'a> {
    pub timeout: Duration,
    pub force: bool,
    pub all: bool,
    pub sessions: Vec<&'a OsStr>,
}

pub(super) fn parse(args: &[OsString]) -> Result<Args<'_>, ArgError> {
    let mut a = Args {
        timeout: DEFAULT_TIMEOUT,
        force: false,
        all: false,
        sessions: Vec::new(),
    };
    for arg in SPEC.parse(args) {
        match arg? {
            Arg::Value("--timeout", v) => a.timeout = seconds("--timeout", v)?,
            Arg::Flag("--force") => a.force = true,
            Arg::Flag("--all") => a.all = true,
            Arg::Pos(p) => a.sessions.push(p),
            other => return Err(unexpected(other)),
        }
    }
    match (a.all, a.sessions.is_empty()) {
        (true, false) => Err("give --all or sessions, not both".into()),
        (false, true) => Err("name a session (or --all)".into()),
        _ => Ok(a),
    }
}

/// The sessions `wanted` names, in sid order, or the first name that
/// matches none (pure).
pub fn select<'s>(
    have: &'s [SessionInfo],
    wanted: &[&OsStr],
) -> Result<Vec<&'s SessionInfo>, String> {
    let mut out: Vec<&SessionInfo> = Vec::new();
    for w in wanted {
        let text = w.to_string_lossy();
        let sid = text
            .strip_prefix("session")
            .unwrap_or(&text)
            .parse::<u32>()
            .ok();
        let hits: Vec<&SessionInfo> = have
            .iter()
            .filter(|s| Some(s.sid) == sid || s.target.as_deref() == Some(&*text))
            .collect();
        if hits.is_empty() {
            let known: Vec<String> = have.iter().map(describe).collect();
            return Err(format!(
                "no iSCSI session {} (the kernel has {})",
                quote_os(w),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        for h in hits {
            if !out.iter().any(|o| o.sid == h.sid) {
                out.push(h);
            }
        }
    }
    out.sort_by_key(|s| s.sid);
    Ok(out)
}

fn describe(s: &SessionInfo) -> String {
    format!(
        "session{} ({})",
        s.sid,
        crate::escape::escape_controls(s.target.as_deref().unwrap_or("target unknown"))
    )
}

pub fn run(args: &[OsString]) -> i32 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => return SPEC.exit(e),
    };
    let sys = Path::new("/sys");
    let have = sysfs::sessions(sys);
    let chosen: Vec<&SessionInfo> = if a.all {
        have.iter().collect()
    } else {
        match select(&have, &a.sessions) {
            Ok(c) => c,
            Err(e) => return fail(CMD, Exit::Failure, e),
        }
    };
    if chosen.is_empty() {
        return print_stdout("no iSCSI session\n");
    }
    let mountinfo = crate::bounded::read_file(Path::new("/proc/self/mountinfo"), MOUNTINFO_CAP)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let nl = match IscsiNl::open(sys) {
        Ok(n) => n,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    let mut code = Exit::Ok;
    for s in chosen {
        match detach_one(&nl, sys, s, &mountinfo, &a) {
            Ok(line) => {
                print_stdout(&format!("{line}\n"));
            }
            Err(e) => {
                fail(CMD, Exit::Failure, format!("{}: {e}", describe(s)));
                code = Exit::Failure;
            }
        }
    }
    code as i32
}

fn detach_one(
    nl: &IscsiNl,
    sys: &Path,
    s: &SessionInfo,
    mountinfo: &str,
    a: &Args<'_>,
) -> Result<String, String> {
    let in_use = sysfs::mounted(mountinfo, &sysfs::dev_numbers(sys, &s.block));
    if !in_use.is_empty() && !a.force {
        let list: Vec<String> = in_use
            .iter()
            .map(|(d, m)| format!("{d} is mounted on {}", crate::escape::escape_controls(m)))
            .collect();
        return Err(format!("{}; unmount first (or --force)", list.join(", ")));
    }
    let mut notes = Vec::new();
    if !s.block.is_empty() {
        nl.unbind_session(s.sid).map_err(|e| e.to_string())?;
        let until = Instant::now() + a.timeout;
        let gone = wait(until, || {
            sysfs::sessions(sys)
                .iter()
                .find(|x| x.sid == s.sid)
                .is_none_or(|x| x.block.is_empty())
        });
        if !gone {
            notes.push(format!(
                "its disks were still there after {} s",
                a.timeout.as_secs_f64()
            ));
        }
    }
    let logout = match s.cids.first() {
        Some(&cid) => nl
            .logout(s.sid, cid, Instant::now() + a.timeout)
            .map_err(|e| e.to_string())?,
        None => None,
    };
    match logout {
        Some(0) => notes.insert(0, "logged out".to_string()),
        Some(code) => notes.insert(0, format!("logout answered with response {code}")),
        None => notes.insert(
            0,
            format!("no logout response within {} s", a.timeout.as_secs_f64()),
        ),
    }
    nl.terminate(s.sid, &s.cids).map_err(|e| e.to_string())?;
    let until = Instant::now() + a.timeout;
    let dir = sys.join(format!("class/iscsi_session/session{}", s.sid));
    if !wait(until, || !dir.exists()) {
        return Err(format!(
            "destroyed, but {} is still there after {} s",
            dir.display(),
            a.timeout.as_secs_f64()
        ));
    }
    notes.push("destroyed".into());
    Ok(format!("{}: {}", describe(s), notes.join(", ")))
}

/// Poll `done` every 20 ms until it holds or `until` passes.
fn wait(until: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(sid: u32, target: &str) -> SessionInfo {
        SessionInfo {
            sid,
            target: Some(target.into()),
            cids: vec![0],
            host_no: Some(sid + 1),
            block: vec![],
        }
    }

    #[test]
    fn sessions_are_chosen_by_number_name_or_target() {
        let have = [
            info(1, "iqn.a:root"),
            info(2, "iqn.b:data"),
            info(3, "iqn.a:root"),
        ];
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let pick = |v: &[&str]| {
            let w = os(v);
            let r: Vec<&OsStr> = w.iter().map(|s| s.as_os_str()).collect();
            select(&have, &r).map(|v| v.iter().map(|s| s.sid).collect::<Vec<_>>())
        };
        assert_eq!(pick(&["2"]).unwrap(), [2]);
        assert_eq!(pick(&["session3", "1"]).unwrap(), [1, 3]);
        assert_eq!(pick(&["iqn.a:root"]).unwrap(), [1, 3]);
        let e = pick(&["7"]).unwrap_err();
        assert!(
            e.starts_with("no iSCSI session \"7\" (the kernel has session1 (iqn.a:root)"),
            "{e}"
        );
        assert!(matches!(parse(&os(&[])), Err(ArgError::Usage(m)) if m.contains("--all")));
        assert!(matches!(
            parse(&os(&["--all", "1"])),
            Err(ArgError::Usage(_))
        ));
        assert!(matches!(
            parse(&os(&["--timeout", "1e99", "1"])),
            Err(ArgError::Usage(m)) if m.contains("--timeout")
        ));
    }
}
