//! `netboot report [FILE]`: print the boot report (default
//! /run/netboot/boot.json) like `systemd-analyze blame`, then in order,
//! then as a text timeline (one row per step, a bar on a common time axis:
//! steps that ran at the same time overlap).

use std::ffi::OsString;
use std::path::Path;

use super::common::{print_stdout, unexpected, Arg, ArgError, Spec};
use super::{fail, Exit};
use crate::events::{BootReport, DEFAULT_REPORT_PATH};

pub static SPEC: Spec = Spec {
    prog: "netboot report",
    synopsis: "[FILE]",
    summary: "print the boot report: steps slowest first, in order, and as a timeline",
    about: "\
FILE is the boot report the agent writes (default /run/netboot/boot.json);
`--` before a FILE that starts with `-`.

The timeline has one row per step in start order: start, end and duration
in ms since the agent started, and a bar on a common axis (# ok, x error,
~ still running). The helper thread's steps (modules.storage, modules.fs)
overlap the network, login and disk steps they ran beside.

exit codes: 0 the report was printed, 1 FILE is unreadable or not a boot
report, 2 bad usage.
",
    opts: &[],
};

pub(super) fn parse(args: &[OsString]) -> Result<&Path, ArgError> {
    let mut file = None;
    for a in SPEC.parse(args) {
        match a? {
            Arg::Pos(p) if file.is_none() => file = Some(Path::new(p)),
            a => return Err(unexpected(a)),
        }
    }
    Ok(file.unwrap_or(Path::new(DEFAULT_REPORT_PATH)))
}

pub fn run(args: &[OsString]) -> i32 {
    let path = match parse(args) {
        Ok(p) => p,
        Err(e) => return SPEC.exit(e),
    };
    match BootReport::read(path) {
        Ok(r) => print_stdout(&r.render()),
        Err(e) => fail("report", Exit::Failure, e),
    }
}
