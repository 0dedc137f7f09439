//! `netboot report [FILE]`: print the boot report (default
//! /run/netboot/boot.json) like `systemd-analyze blame`, then in order.

use std::path::Path;

use super::{fail, Exit};
use crate::events::{BootReport, DEFAULT_REPORT_PATH};

pub fn run(args: &[String]) -> i32 {
    let path = match args {
        [] => DEFAULT_REPORT_PATH,
        [p] if !p.starts_with('-') || p == "-" => p.as_str(),
        _ => return fail("report", Exit::Usage, "usage: netboot report [FILE]"),
    };
    match BootReport::read(Path::new(path)) {
        Ok(r) => {
            print!("{}", r.render());
            Exit::Ok as i32
        }
        Err(e) => fail("report", Exit::Failure, e),
    }
}
