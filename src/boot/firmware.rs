//! The `firmware.ibft` step (`rd.iscsi.firmware`, `rd.iscsi.ibft`,
//! `netboot.ibft`): load `iscsi_ibft` unless the table is shown already,
//! read `/sys/firmware/ibft` and merge it into the plan
//! ([`crate::ibft::plan::merge`]; explicit command-line keys win). Runs
//! after the modules step and before the network, in PID 1 and in
//! `netboot attach`.

use super::{BootError, Exec, StepError};
use crate::cmdline::keys::PlanField;
use crate::events::{step, Facts};
use crate::ibft;
use crate::kmod::{self, KernelLoader, ModuleIndex};
use crate::plan::BootPlan;
use std::collections::BTreeSet;
use std::path::Path;

/// The driver that publishes the table (it pulls `iscsi_boot_sysfs`).
const MODULE: &str = "iscsi_ibft";
/// /dev/kmsg records read to find the driver's verdict, at most.
const KMSG_RECORDS_MAX: usize = 20_000;

/// The step; returns the fields the table set (explicit like the command
/// line's for a later config merge).
pub fn ibft_step(
    exec: &mut Exec,
    plan: &mut BootPlan,
    index: &ModuleIndex,
    explicit: &BTreeSet<PlanField>,
) -> Result<BTreeSet<PlanField>, StepError> {
    let dir = Path::new(ibft::SYSFS_DIR);
    let merged = exec.step(
        step::FIRMWARE_IBFT,
        Facts::new().str("dir", ibft::SYSFS_DIR),
        || {
            let mut loaded = "already present";
            if !dir.is_dir() {
                let mut loader = KernelLoader::new(Path::new("/sys"));
                kmod::load_by_name(index, &mut loader, &[MODULE]).map_err(|e| {
                    BootError::fatal(format!(
                        "rd.iscsi.firmware: cannot load {MODULE} to read the iBFT: {e}"
                    ))
                })?;
                loaded = MODULE;
            }
            if !dir.is_dir() {
                let said = kmsg_ibft_line()
                    .map(|l| format!("the kernel said {:?}", crate::escape::escape_controls(&l)))
                    .unwrap_or_else(|| "the kernel logged no iBFT line".to_string());
                return Err(BootError::fatal(format!(
                    "rd.iscsi.firmware: no iBFT: {} is absent after loading {MODULE} ({said}); \
                     boot with a firmware that publishes an iBFT, or give ip= and the root path on the command line",
                    ibft::SYSFS_DIR
                )));
            }
            let tree = ibft::sysfs::read_tree(dir)
                .map_err(|e| BootError::fatal(format!("rd.iscsi.firmware: {e}")))?;
            let fail = |e: ibft::IbftError| BootError::fatal(format!("rd.iscsi.firmware: {e}"));
            let table = ibft::parse(&tree).map_err(fail)?;
            let m = ibft::plan::merge(&table, plan, explicit, &ibft::sysfs::link_of_mac).map_err(fail)?;
            let facts = Facts::new()
                .str("module", loaded)
                .u64("targets", table.targets.len() as u64)
                .u64("nics", table.nics.len() as u64)
                .u64("paths", plan.paths.len() as u64)
                .str(
                    "initiator",
                    plan.initiator.clone().unwrap_or_default(),
                );
            Ok::<_, BootError>((m, facts))
        },
    )?;
    for n in &merged.notes {
        log::info!("iBFT: {n}");
    }
    Ok(merged.fields)
}

/// The last /dev/kmsg line that mentions the iBFT ("iBFT detected.", "No
/// iBFT detected.", a checksum complaint), read without blocking and
/// bounded; `None` if none or unreadable.
fn kmsg_ibft_line() -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut buf = vec![0u8; 8192];
    let mut found = None;
    for _ in 0..KMSG_RECORDS_MAX {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                // "PRIO,SEQ,USEC,FLAGS;text\n"
                if let Some((_, text)) = rec.split_once(';') {
                    let text = text.lines().next().unwrap_or_default();
                    if text.contains("iBFT") {
                        found = Some(text.to_string());
                    }
                }
            }
            // EPIPE: a record was overwritten; go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    found
}
