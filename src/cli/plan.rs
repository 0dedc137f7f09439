//! `netboot plan [--cmdline STRING | --cmdline-file FILE] [--ibft DIR]`:
//! parse a kernel command line (default /proc/cmdline) and print the
//! BootPlan as pretty JSON; with `--ibft DIR`, the plan with the iBFT in
//! DIR (a copy of /sys/firmware/ibft) merged in, as the boot merges it. Exit 0 with the plan, 1 on an invalid value or unreadable file
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
    synopsis: "[--cmdline STRING | --cmdline-file FILE] [--ibft DIR]",
    summary: "print the boot plan a kernel command line yields, as JSON",
    about: "\
The plan is what netboot as PID 1 would do with that command line: root
paths in failover order, network, initiator, timeouts, failure policy.
Secrets (CHAP passwords) print as \"***\". The line is read as bytes, like
/proc/cmdline: bytes that are not UTF-8 become U+FFFD.
With --ibft DIR the iSCSI Boot Firmware Table in DIR (a copy of
/sys/firmware/ibft, e.g. `cp -r /sys/firmware/ibft DIR` as root) is merged
in as rd.iscsi.firmware=1 merges it at boot: its targets, NIC and initiator,
unless the command line gives them.

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
        Opt {
            name: "--ibft",
            value: Some("DIR"),
            help: "merge the iBFT saved in DIR (a copy of /sys/firmware/ibft)",
        },
    ],
};

#[derive(Debug)]
pub(super) enum Source<'a> {
    Line(&'a OsStr),
    File(&'a OsStr),
}

/// `netboot plan`'s arguments.
#[derive(Debug)]
pub(super) struct PlanArgs<'a> {
    pub source: Option<Source<'a>>,
    pub ibft: Option<&'a OsStr>,
}

pub(super) fn parse(args: &[OsString]) -> Result<PlanArgs<'_>, ArgError> {
    let mut src = None;
    let mut ibft = None;
    for a in SPEC.parse(args) {
        let next = match a? {
            Arg::Value("--cmdline", v) => Source::Line(v),
            Arg::Value("--cmdline-file", v) => Source::File(v),
            Arg::Value("--ibft", v) => {
                if ibft.replace(v).is_some() {
                    return Err("--ibft given twice".into());
                }
                continue;
            }
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
    Ok(PlanArgs { source: src, ibft })
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
    let a = match parse(args) {
        Ok(s) => s,
        Err(e) => return SPEC.exit(e),
    };
    let text = match read_source(a.source.as_ref()) {
        Ok(t) => t,
        Err(msg) => return fail(CMD, Exit::Failure, msg),
    };
    let mut plan = match crate::cmdline::parse_plan(&text) {
        Ok(p) => p,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    if let Some(dir) = a.ibft {
        if let Err(msg) = merge_ibft(&mut plan, &text, Path::new(dir)) {
            return fail(CMD, Exit::Failure, msg);
        }
    }
    match serde_json::to_string_pretty(&plan) {
        Ok(json) => super::common::print_stdout(&format!("{json}\n")),
        Err(e) => fail(CMD, Exit::Failure, format!("cannot encode the plan: {e}")),
    }
}

/// The saved table in `dir` merged into `plan` as the boot merges it
/// (`boot::firmware`), and the plan checked again by the boot's gate.
fn merge_ibft(plan: &mut crate::plan::BootPlan, cmdline: &str, dir: &Path) -> Result<(), String> {
    let tree = crate::ibft::sysfs::read_tree(dir).map_err(|e| format!("--ibft: {e}"))?;
    let table = crate::ibft::parse(&tree).map_err(|e| e.to_string())?;
    let explicit = crate::cmdline::keys::explicit_fields(cmdline);
    // VLAN links are named after this machine's link with the NIC's MAC,
    // as at boot; a table from elsewhere names `ibft<N>` (dracut's name).
    let nics = table.nics.clone();
    let link = move |mac: &str| {
        crate::ibft::sysfs::link_of_mac(mac).or_else(|| {
            nics.iter()
                .find(|n| n.mac == mac)
                .map(|n| format!("ibft{}", n.index))
        })
    };
    crate::ibft::plan::merge(&table, plan, &explicit, &link).map_err(|e| e.to_string())?;
    crate::cmdline::supported::check(plan).map_err(|e| e.to_string())?;
    Ok(())
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
