//! `netboot status`: the iSCSI sessions the kernel has, and what the
//! resident recovery process has done since switch_root.

use super::common::{print_stdout, unexpected, Arg, Spec};
use super::{fail, Exit};
use crate::recovery::history::History;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

pub static SPEC: Spec = Spec {
    prog: "netboot status",
    synopsis: "[FILE]",
    summary: "show the iSCSI sessions and the recovery history after switch_root",
    about: "\
Prints each iSCSI session the kernel has (its state as the kernel sees it:
LOGGED_IN, FAILED, FREE) and then the resident recovery process's history
(FILE, default /run/netboot/recovery.json): every connection error, every
reconnect attempt and how long each recovery took. Without the file (no
resident: netboot.recovery=iscsid or off, or a boot by `netboot attach`)
only the sessions are shown.

exit codes: 0 printed, 1 FILE exists but is not a recovery history,
2 bad usage.
",
    opts: &[],
};

const CMD: &str = "status";
const CAP: u64 = 4 << 20;

pub fn run(args: &[OsString]) -> i32 {
    let mut file = None;
    for a in SPEC.parse(args) {
        match a {
            Ok(Arg::Pos(p)) if file.is_none() => file = Some(Path::new(p).to_path_buf()),
            Ok(other) => return SPEC.exit(unexpected(other)),
            Err(e) => return SPEC.exit(e),
        }
    }
    let sys = Path::new("/sys");
    let mut out = String::new();
    let sessions = crate::iscsi::sysfs::sessions(sys);
    if sessions.is_empty() {
        out.push_str("no iSCSI session\n");
    }
    for s in &sessions {
        let state = crate::bounded::read_file(
            &sys.join(format!("class/iscsi_session/session{}/state", s.sid)),
            256,
        )
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
        let _ = writeln!(
            out,
            "session{} {} {}: {}",
            s.sid,
            crate::escape::escape_controls(s.target.as_deref().unwrap_or("?")),
            s.block.join(","),
            crate::escape::escape_controls(&state)
        );
    }
    let path = file.unwrap_or_else(|| crate::recovery::HISTORY.into());
    match crate::bounded::read_file(&path, CAP) {
        Ok(bytes) => match serde_json::from_slice::<History>(&bytes) {
            Ok(h) => out.push_str(&h.render()),
            Err(e) => {
                return fail(
                    CMD,
                    Exit::Failure,
                    format!("{}: not a recovery history: {e}", path.display()),
                )
            }
        },
        Err(_) => {
            let _ = writeln!(out, "no recovery history ({})", path.display());
        }
    }
    print_stdout(&out)
}
