//! `netboot plan [--cmdline STRING | --cmdline-file FILE]`: parse a kernel
//! command line (default /proc/cmdline) and print the BootPlan as pretty
//! JSON. Exit 0 with the plan, 1 on an invalid value or unreadable file
//! (one line on stderr), 2 on bad usage. Secrets print as `***`.

use super::{fail, Exit};

const CMD: &str = "plan";
const USAGE: &str = "usage: netboot plan [--cmdline STRING | --cmdline-file FILE]";

pub fn run(args: &[String]) -> i32 {
    let mut line: Option<String> = None;
    let mut file: Option<&str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Exit::Ok as i32;
            }
            "--cmdline" | "--cmdline-file" if line.is_some() || file.is_some() => {
                return fail(
                    CMD,
                    Exit::Usage,
                    format!("give one of --cmdline, --cmdline-file\n{USAGE}"),
                );
            }
            "--cmdline" => match it.next() {
                Some(v) => line = Some(v.clone()),
                None => {
                    return fail(
                        CMD,
                        Exit::Usage,
                        format!("--cmdline needs a value\n{USAGE}"),
                    )
                }
            },
            "--cmdline-file" => match it.next() {
                Some(v) => file = Some(v),
                None => {
                    return fail(
                        CMD,
                        Exit::Usage,
                        format!("--cmdline-file needs a value\n{USAGE}"),
                    )
                }
            },
            // Never echo an unknown argument verbatim: it may be a cmdline
            // with a CHAP secret given without --cmdline.
            other if other.starts_with('-') => {
                return fail(CMD, Exit::Usage, format!("unknown option\n{USAGE}"))
            }
            _ => return fail(CMD, Exit::Usage, format!("unexpected argument\n{USAGE}")),
        }
    }
    let text = match line {
        Some(l) => l,
        None => {
            let path = file.unwrap_or("/proc/cmdline");
            match std::fs::read(path) {
                // /proc/cmdline is bytes, not promised UTF-8; the parser
                // only cares about ASCII delimiters.
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => return fail(CMD, Exit::Failure, format!("cannot read {path}: {e}")),
            }
        }
    };
    let plan = match crate::cmdline::parse_plan(&text) {
        Ok(p) => p,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    match serde_json::to_string_pretty(&plan) {
        Ok(json) => {
            println!("{json}");
            Exit::Ok as i32
        }
        Err(e) => fail(CMD, Exit::Failure, format!("cannot encode the plan: {e}")),
    }
}
