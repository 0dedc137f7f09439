//! `netboot probe ROOT-PATH`: log in, list LUNs with INQUIRY and READ
//! CAPACITY(16), log out. Userspace only: checks a target before a reboot.

use super::common::{self, Spec};
use super::{fail, Exit};
use crate::cmdline::mask::Masker;
use crate::cmdline::rootpath;
use crate::iscsi::channel::TcpChannel;
use crate::iscsi::client::{Session, SessionError};
use crate::iscsi::login::{AuthUsed, LoginOutcome, Portal};
use crate::iscsi::scsi;
use serde::Serialize;
use std::ffi::OsString;
use std::time::Instant;

const CMD: &str = "probe";

pub static SPEC: Spec = Spec {
    prog: "netboot probe",
    synopsis: "[--timeout S] [--initiator IQN] [--json] ROOT-PATH",
    summary: "log in to a target, list its LUNs (INQUIRY, READ CAPACITY), log out",
    about: "\
ROOT-PATH is a root path as on the kernel command line (RFC 4173, dracut):
[iscsi:][USER:SECRET[:TUSER:TSECRET]@]SERVER:[PROTO]:[PORT]:[LUN]:TARGET,
PORT 1..65535 (default 3260), LUN decimal or hex groups (default 0), e.g.
iscsi:198.18.0.1::3260:1:iqn.2026-11.org.example:root. It runs in
userspace only, so a target can be checked before a reboot into it; the
LUN the root path names is marked '*' and must exist.

exit codes: 0 the LUN was found, 1 connect or login failed or the LUN is
missing (one line on stderr), 2 bad usage.
",
    opts: common::TOOL_OPTS,
};

#[derive(Serialize)]
struct LunInfo {
    lun: u64,
    device_type: u8,
    device_type_name: &'static str,
    vendor: String,
    product: String,
    revision: String,
    size_bytes: Option<u64>,
    block_size: Option<u32>,
    blocks: Option<u64>,
}

#[derive(Serialize)]
struct ProbeReport<'a> {
    target: &'a str,
    portal: String,
    initiator: &'a str,
    requested_lun: u64,
    login_ms: f64,
    login: &'a LoginOutcome,
    luns: Vec<LunInfo>,
}

fn list_luns(s: &mut Session<TcpChannel>) -> Result<Vec<LunInfo>, SessionError> {
    // REPORT LUNS: ask for 64 entries, then again with the size it reports.
    let mut alloc = 8 + 64 * 8;
    let mut data = s.scsi_in("REPORT LUNS", 0, scsi::report_luns(alloc), alloc)?;
    if data.len() >= 4 {
        let need = 8 + u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        if need > alloc && need <= 1 << 20 {
            alloc = need;
            data = s.scsi_in("REPORT LUNS", 0, scsi::report_luns(alloc), alloc)?;
        }
    }
    let luns = scsi::parse_report_luns(&data).map_err(|_| SessionError::DataOverrun {
        step: "REPORT LUNS",
        offset: 0,
        len: data.len(),
        alloc,
    })?;
    let mut out = Vec::new();
    for lun in luns {
        let inq = s.scsi_in("INQUIRY", lun, scsi::inquiry(96), 96)?;
        let Ok(inq) = scsi::parse_inquiry(&inq) else {
            log::warn!("LUN {lun}: short INQUIRY data ({} bytes)", inq.len());
            continue;
        };
        let cap = if inq.device_type == 0 && inq.peripheral_qualifier == 0 {
            let d = s.scsi_in("READ CAPACITY(16)", lun, scsi::read_capacity16(32), 32)?;
            scsi::parse_read_capacity16(&d).ok()
        } else {
            None
        };
        out.push(LunInfo {
            lun,
            device_type: inq.device_type,
            device_type_name: scsi::device_type_name(inq.device_type),
            vendor: inq.vendor,
            product: inq.product,
            revision: inq.revision,
            size_bytes: cap.map(|c| c.bytes()),
            block_size: cap.map(|c| c.block_size),
            blocks: cap.map(|c| c.blocks),
        });
    }
    Ok(out)
}

pub fn run(args: &[OsString]) -> i32 {
    let a = match common::parse(&SPEC, args) {
        Ok(a) => a,
        Err(e) => return SPEC.exit(e),
    };
    let [path_arg] = a.positional.as_slice() else {
        return SPEC.usage_error("give one ROOT-PATH");
    };
    let root = match common::text_secret("ROOT-PATH", path_arg, Masker::for_root_path)
        .and_then(|p| rootpath::parse(p).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => return SPEC.usage_error(e),
    };
    let initiator = common::initiator(&a);
    let portal = Portal {
        host: root.server.clone(),
        port: root.port,
    };
    let t0 = Instant::now();
    let est = match common::login(
        &a,
        &initiator,
        &portal,
        Some(&root.target),
        root.chap.clone(),
    ) {
        Ok(e) => e,
        Err(e) => return fail(CMD, Exit::Failure, e),
    };
    let login_ms = t0.elapsed().as_secs_f64() * 1e3;
    let at = est.portal.clone();
    let mut s = Session::new(est.channel, est.outcome);
    let luns = match list_luns(&mut s) {
        Ok(l) => l,
        Err(e) => {
            let _ = s.logout();
            return fail(
                CMD,
                Exit::Failure,
                format!("target {} at {at}: {e}", root.target),
            );
        }
    };
    if let Err(e) = s.logout() {
        return fail(
            CMD,
            Exit::Failure,
            format!("target {} at {at}: {e}", root.target),
        );
    }
    // The root path names a LUN: a probe that cannot find it must say so,
    // or a reboot into that root path fails where nobody is watching.
    if !luns.iter().any(|l| l.lun == root.lun) {
        let have: Vec<String> = luns.iter().map(|l| l.lun.to_string()).collect();
        return fail(
            CMD,
            Exit::Failure,
            format!(
                "target {} at {at} has no LUN {} (it reports LUNs {})",
                root.target,
                root.lun,
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
        );
    }
    let report = ProbeReport {
        target: &root.target,
        portal: at.to_string(),
        initiator: &initiator,
        requested_lun: root.lun,
        login_ms,
        login: &s.outcome,
        luns,
    };
    if !a.json {
        return common::print_stdout(&human(&report));
    }
    match serde_json::to_string_pretty(&report) {
        Ok(j) => common::print_stdout(&format!("{j}\n")),
        Err(e) => fail(CMD, Exit::Failure, e),
    }
}

/// The text report; INQUIRY strings come from the target, so each line is
/// escaped to stay one line.
fn human(r: &ProbeReport<'_>) -> String {
    let mut out = Vec::new();
    let tpgt = r
        .login
        .tpgt
        .map_or_else(|| "?".to_string(), |t| t.to_string());
    out.push(format!(
        "target {} at {} (tpgt {tpgt}), login {:.1} ms, auth {}",
        r.target,
        r.portal,
        r.login_ms,
        match r.login.auth {
            AuthUsed::None => "none",
            AuthUsed::Chap => "CHAP",
            AuthUsed::MutualChap => "mutual CHAP",
        }
    ));
    for l in &r.luns {
        let size = match (l.size_bytes, l.blocks, l.block_size) {
            (Some(b), Some(n), Some(bs)) => format!("  {b} bytes ({n} x {bs})"),
            _ => String::new(),
        };
        out.push(format!(
            "{} LUN {:<3} {:<10} {:<8} {:<16} {:<4}{size}",
            if l.lun == r.requested_lun { '*' } else { ' ' },
            l.lun,
            l.device_type_name,
            l.vendor,
            l.product,
            l.revision
        ));
    }
    out.iter()
        .map(|l| format!("{}\n", common::escape_controls(l)))
        .collect()
}
