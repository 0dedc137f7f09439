//! Command dispatch. Each command declares its interface as a
//! [`common::Spec`] (which also answers `-h`/`--help`), parses its own
//! arguments with it and returns an exit code from [`Exit`]; errors are
//! printed as `netboot CMD: message`, one line.

pub mod attach;
pub mod common;
pub mod config;
pub mod detach;
pub mod discover;
pub mod events;
pub mod plan;
pub mod probe;
pub mod report;
pub mod status;

use common::{print_stdout, quote_os, Spec};
use std::ffi::OsString;
use std::fmt::Write as _;

/// Enumerated exit codes, so scripts can tell a usage error from a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    Ok = 0,
    /// The operation was attempted and failed (login refused, invalid value…).
    Failure = 1,
    /// The command line of the tool itself was wrong.
    Usage = 2,
}

/// What `--version` prints, for both binaries.
pub const VERSION: &str = concat!("netboot ", env!("CARGO_PKG_VERSION"));

/// One command: its name, interface and entry point.
pub struct Command {
    pub name: &'static str,
    pub spec: &'static Spec,
    pub run: fn(&[OsString]) -> i32,
}

/// Every command, in the order `netboot --help` lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "attach",
        spec: &attach::SPEC,
        run: attach::run,
    },
    Command {
        name: "detach",
        spec: &detach::SPEC,
        run: detach::run,
    },
    Command {
        name: "plan",
        spec: &plan::SPEC,
        run: plan::run,
    },
    Command {
        name: "discover",
        spec: &discover::SPEC,
        run: discover::run,
    },
    Command {
        name: "probe",
        spec: &probe::SPEC,
        run: probe::run,
    },
    Command {
        name: "events",
        spec: &events::SPEC,
        run: events::run,
    },
    Command {
        name: "report",
        spec: &report::SPEC,
        run: report::run,
    },
    Command {
        name: "status",
        spec: &status::SPEC,
        run: status::run,
    },
    Command {
        name: "config-fetch",
        spec: &config::SPEC,
        run: config::run,
    },
];

const SYNOPSIS: &str = "\
usage: netboot COMMAND [OPTIONS] [ARGS]
       netboot COMMAND --help    (or: netboot help COMMAND)
       netboot --version";

const ABOUT: &str = "\
Run as /init (PID 1) of an initramfs, netboot ignores its arguments and
boots: it reads the kernel command line (see `netboot plan`), brings up the
network, logs in to the iSCSI target and switches to the root on it.

environment:
  NETBOOT_LOG=error|warn|info|debug|trace|off   how much the commands log
                                                to stderr (default warn)

exit codes: 0 success, 1 the operation failed, 2 bad usage.
";

/// `netboot --help`: the commands with their one-line summaries.
pub fn help() -> String {
    let width = COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut s = format!(
        "netboot: boot a machine whose root file system is on iSCSI; tools to check\n\
         a target, a config server and a boot\n\n{SYNOPSIS}\n\ncommands:\n"
    );
    for c in COMMANDS {
        let _ = writeln!(s, "  {:<width$}  {}", c.name, c.spec.summary);
    }
    let _ = write!(
        s,
        "\noptions:\n  -h, --help     print this help and exit\n  \
         -V, --version  print the version and exit\n\n{ABOUT}"
    );
    s
}

/// Print `netboot CMD: message` to stderr and return the exit code. The
/// message is one line: control characters in it are escaped.
pub fn fail(cmd: &str, code: Exit, msg: impl std::fmt::Display) -> i32 {
    eprintln!(
        "netboot {cmd}: {}",
        common::escape_controls(&msg.to_string())
    );
    code as i32
}

fn find(name: &std::ffi::OsStr) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| name == c.name)
}

fn unknown_command(name: &std::ffi::OsStr) -> i32 {
    eprintln!(
        "netboot: unknown command {}\nusage: netboot COMMAND [ARGS]; netboot --help lists the commands",
        quote_os(name)
    );
    Exit::Usage as i32
}

/// `args` as from `std::env::args_os()`, program name first.
pub fn main(args: &[OsString]) -> i32 {
    // Tools log warnings (retries, redirects, fallbacks) to stderr;
    // NETBOOT_LOG=info|debug|trace shows more. Errors are printed by `fail`.
    let level = std::env::var("NETBOOT_LOG")
        .ok()
        .and_then(|v| crate::klog::parse_log_level(&v).ok())
        .unwrap_or(log::LevelFilter::Warn);
    // `attach` logs to /dev/kmsg at the plan's level (it runs at boot,
    // inside another init; stdout carries its answer): it installs its own.
    if !matches!(args.get(1), Some(a) if a == "attach") {
        crate::klog::init(crate::klog::LogTarget::Stderr, level, Vec::new());
    }
    let rest = args.get(2..).unwrap_or(&[]);
    let Some(first) = args.get(1) else {
        eprintln!("{SYNOPSIS}\nnetboot --help lists the commands");
        return Exit::Usage as i32;
    };
    match first.to_str() {
        Some("-h" | "--help") => print_stdout(&help()),
        Some("-V" | "--version") => print_stdout(&format!("{VERSION}\n")),
        Some("help") => match rest {
            [] => print_stdout(&help()),
            [name] => match find(name) {
                Some(c) => print_stdout(&c.spec.help()),
                None => unknown_command(name),
            },
            [_, extra, ..] => {
                eprintln!(
                    "netboot help: unexpected argument {}\nusage: netboot help [COMMAND]",
                    quote_os(extra)
                );
                Exit::Usage as i32
            }
        },
        _ => match find(first) {
            Some(c) => (c.run)(rest),
            None => unknown_command(first),
        },
    }
}
