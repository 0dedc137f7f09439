//! `netboot plan [--cmdline STRING | --cmdline-file FILE]`: parse a kernel
//! command line (default /proc/cmdline) and print the BootPlan as pretty
//! JSON. Exit 0 with the plan, 1 on an invalid value or unreadable file
//! (one line on stderr), 2 on bad usage. Secrets print as `***`.

use super::common::{unexpected, Arg, ArgError, Opt, Spec};
use super::{fail, Exit};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const CMD: &str = "plan";
const DEFAULT_CMDLINE: &str = "/proc/cmdline";

pub static SPEC: Spec = Spec {
    prog: "netboot plan",
    synopsis: "[--cmdline STRING | --cmdline-file FILE]",
    summary: "print the boot plan a kernel command line yields, as JSON",
    about: "\
The plan is what netboot as PID 1 would do with that command line: root
paths in failover order, network, initiator, timeouts, failure policy.
Secrets (CHAP passwords) print as \"***\". The line is read as bytes, like
/proc/cmdline: bytes that are not UTF-8 become U+FFFD.

exit codes: 0 the plan was printed, 1 an invalid value or an unreadable
file (one line on stderr), 2 bad usage.
",
    opts: &[
        Opt {
            name: "--cmdline",
            value: Some("STRING"),
            help: "parse this command line",
        },
        Opt {
            name: "--cmdline-file",
            value: Some("FILE"),
            help: "parse the command line in FILE (default /proc/cmdline),\n\
                   at most 1048576 bytes",
        },
    ],
};

#[derive(Debug)]
pub(super) enum Source<'a> {
    Line(&'a OsStr),
    File(&'a OsStr),
}

pub(super) fn parse(args: &[OsString]) -> Result<Option<Source<'_>>, ArgError> {
    let mut src = None;
    for a in SPEC.parse(args) {
        let next = match a? {
            Arg::Value("--cmdline", v) => Source::Line(v),
            Arg::Value("--cmdline-file", v) => Source::File(v),
            // Never echo a positional: it may be a command line with a CHAP
            // secret given without --cmdline.
            Arg::Pos(_) => {
                return Err("unexpected argument (not shown: it may hold a secret; \
                            give a command line with --cmdline)"
                    .into())
            }
            a => return Err(unexpected(a)),
        };
        if src.replace(next).is_some() {
            return Err("give one of --cmdline, --cmdline-file".into());
        }
    }
    Ok(src)
}

/// The command line from `--cmdline`, `--cmdline-file` or /proc/cmdline.
/// /proc/cmdline is bytes, not promised UTF-8; the parser only cares about
/// ASCII delimiters. --cmdline is taken the same way. The file read is
/// capped: `--cmdline-file /dev/zero` is an error, not all memory.
pub(super) fn read_source(src: Option<&Source<'_>>) -> Result<String, String> {
    if let Some(Source::Line(l)) = src {
        return Ok(String::from_utf8_lossy(l.as_bytes()).into_owned());
    }
    let path = match src {
        Some(Source::File(f)) => Path::new(f),
        _ => Path::new(DEFAULT_CMDLINE),
    };
    crate::cmdline::read_cmdline(path).map_err(|e| {
        let shown = super::common::quote_os(path.as_os_str());
        crate::cmdline::read_cmdline_error(&shown, &e)
    })
}

pub fn run(args: &[OsString]) -> i32 {
    let src = match parse(args) {
        Ok(s) => s,
        Err(e) => return SPEC.exit(e),
    };
    let text = match read_source(src.as_ref()) {
        Ok(t) => t,
        Err(msg) => return fail(CMD, Exit::Failure, msg),
    };
    let plan = match crate::cmdline::parse_plan(&text) {
        Ok(p) => p,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    match serde_json::to_string_pretty(&plan) {
        Ok(json) => super::common::print_stdout(&format!("{json}\n")),
        Err(e) => fail(CMD, Exit::Failure, format!("cannot encode the plan: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_states_the_file_cap() {
        let help = super::SPEC.help().replace('\n', " ");
        assert!(
            help.contains(&format!(
                "at most {} bytes",
                crate::cmdline::MAX_CMDLINE_LEN
            )),
            "{help}"
        );
    }
}
