//! Command dispatch. Each command parses its own arguments and returns an
//! exit code from [`Exit`]; errors are printed as `netboot CMD: message`.

pub mod common;
pub mod config;
pub mod discover;
pub mod events;
pub mod plan;
pub mod probe;
pub mod report;

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

const USAGE: &str = "\
usage: netboot COMMAND [ARGS]

commands:
  plan          [--cmdline STRING | --cmdline-file FILE]       print the boot plan as JSON
  discover      [--timeout S] [--initiator IQN] [--json] [USER:SECRET@]HOST[:PORT]
                                                               SendTargets discovery
  probe         [--timeout S] [--initiator IQN] [--json] ROOT-PATH
                                                               log in, list LUNs, log out
  events        [--json] [--group G] [--id IDX.VAL] [--count N] [--timeout S]
                                                               print boot events live
  report        [FILE]                                         print the boot report
  config-fetch  rxrpc:HOST[:PORT]... [--mac M] [--iqn I] [--hostname H] [--timeout S] [--retries N]
                                                               fetch the boot configuration
";

/// Print `netboot CMD: message` to stderr and return the exit code.
pub fn fail(cmd: &str, code: Exit, msg: impl std::fmt::Display) -> i32 {
    eprintln!("netboot {cmd}: {msg}");
    code as i32
}

pub fn main(args: &[String]) -> i32 {
    // Tools log warnings (retries, redirects, fallbacks) to stderr;
    // NETBOOT_LOG=info|debug|trace shows more. Errors are printed by `fail`.
    let level = std::env::var("NETBOOT_LOG")
        .ok()
        .and_then(|v| crate::klog::parse_log_level(&v).ok())
        .unwrap_or(log::LevelFilter::Warn);
    crate::klog::init(crate::klog::LogTarget::Stderr, level, Vec::new());
    let rest = args.get(2..).unwrap_or(&[]);
    match args.get(1).map(String::as_str) {
        Some("plan") => plan::run(rest),
        Some("config-fetch") => config::run(rest),
        Some("discover") => discover::run(rest),
        Some("probe") => probe::run(rest),
        Some("events") => events::run(rest),
        Some("report") => report::run(rest),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Exit::Ok as i32
        }
        Some(other) => {
            eprint!("netboot: unknown command {other:?}\n{USAGE}");
            Exit::Usage as i32
        }
        None => {
            eprint!("{USAGE}");
            Exit::Usage as i32
        }
    }
}
