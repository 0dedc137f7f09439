//! From an iSCSI session to its block device, through sysfs: host rescan,
//! session → LUN → disk mapping, waiting for the disk and its partitions,
//! the device node, and queue tuning.
//!
//! Every function takes the sysfs root (`/sys` at boot) so tests run on a
//! fake tree in a temp dir. The layout (drivers/scsi/scsi_transport_iscsi.c
//! `iscsi_add_session`: the session device is a child of the SCSI host and
//! the parent of its targets; drivers/scsi/scsi_scan.c names targets
//! `target<H>:<C>:<T>` and devices `<H>:<C>:<T>:<L>`; sd registers the disk
//! under the SCSI device):
//!
//! ```text
//! /sys/class/iscsi_session/session<sid>/device -> …/host<H>/session<sid>
//!     target<H>:0:<T>/<H>:0:<T>:<LUN>/block/<sdX>/{dev,size,<sdX><N>/partition}
//! /sys/block/<sdX>/queue/{scheduler,nr_requests,logical_block_size}
//! /sys/block/<sdX>/device/queue_depth
//! ```

use crate::netlink::uevent::{Action, Received, UeventSocket};
use crate::plan::Tuning;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum BlockError {
    /// Writing `- - -` to the host's scan file failed.
    Scan {
        path: PathBuf,
        err: std::io::Error,
    },
    /// The session directory or one of its entries could not be read.
    Sysfs {
        path: PathBuf,
        err: std::io::Error,
    },
    /// A sysfs value is not what the kernel writes there.
    Value {
        path: PathBuf,
        value: String,
    },
    /// The LUN's disk did not show up in time. `seen` describes the LUNs
    /// the session had at the deadline.
    Timeout {
        sid: u32,
        lun: u64,
        target: String,
        secs: f32,
        seen: String,
    },
    Uevent(crate::netlink::uevent::UeventError),
    Mknod {
        path: PathBuf,
        dev: String,
        err: rustix::io::Errno,
    },
    /// A tuning write failed; EINVAL means the kernel refused the value.
    Write {
        path: PathBuf,
        value: String,
        err: std::io::Error,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::Scan { path, err } => {
                write!(
                    f,
                    "rescanning SCSI host: writing \"- - -\" to {}: {err}",
                    path.display()
                )
            }
            BlockError::Sysfs { path, err } => write!(f, "reading {}: {err}", path.display()),
            BlockError::Value { path, value } => {
                write!(
                    f,
                    "{} holds {value:?}, which is not a valid value",
                    path.display()
                )
            }
            BlockError::Timeout {
                sid,
                lun,
                target,
                secs,
                seen,
            } => write!(
                f,
                "LUN {lun} of session {sid} ({target}) did not appear within {secs:.1} s; \
                 the session has {seen}"
            ),
            BlockError::Uevent(e) => write!(f, "waiting for the disk: {e}"),
            BlockError::Mknod { path, dev, err } => {
                write!(f, "mknod {} (block {dev}): {err}", path.display())
            }
            BlockError::Write { path, value, err } => {
                write!(f, "writing {value:?} to {}: {err}", path.display())?;
                if err.raw_os_error() == Some(libc::EINVAL) {
                    write!(f, " (the kernel refused the value)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BlockError {}

fn read_str(path: &Path) -> Result<String, BlockError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|err| BlockError::Sysfs {
            path: path.to_path_buf(),
            err,
        })
}

fn read_num<T: std::str::FromStr>(path: &Path) -> Result<T, BlockError> {
    let s = read_str(path)?;
    s.parse().map_err(|_| BlockError::Value {
        path: path.to_path_buf(),
        value: s,
    })
}

/// Reads and writes of sysfs attributes, the seam [`tune_with`] goes
/// through: a plain file cannot act like a kernel attribute (a write to
/// `scheduler` changes which entry is bracketed, `queue_depth` is capped),
/// so tests plug in a fake that does.
pub trait Attrs {
    fn read(&mut self, path: &Path) -> std::io::Result<String>;
    fn write(&mut self, path: &Path, value: &str) -> std::io::Result<()>;
}

/// The real sysfs.
pub struct SysfsAttrs;

impl Attrs for SysfsAttrs {
    fn read(&mut self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&mut self, path: &Path, value: &str) -> std::io::Result<()> {
        std::fs::write(path, value)
    }
}

fn attr_read(a: &mut dyn Attrs, path: &Path) -> Result<String, BlockError> {
    a.read(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|err| BlockError::Sysfs {
            path: path.to_path_buf(),
            err,
        })
}

fn attr_num(a: &mut dyn Attrs, path: &Path) -> Result<u32, BlockError> {
    let s = attr_read(a, path)?;
    s.parse().map_err(|_| BlockError::Value {
        path: path.to_path_buf(),
        value: s,
    })
}

fn attr_write(a: &mut dyn Attrs, path: &Path, value: &str) -> Result<(), BlockError> {
    a.write(path, value).map_err(|err| BlockError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        err,
    })
}

/// Ask the SCSI host to scan all channels, targets and LUNs, as open-iscsi
/// does after login (usr/initiator.c → sysfs `scan`; drivers/scsi/
/// scsi_sysfs.c `store_scan` parses "- - -" as wildcards).
pub fn scan_host(sys: &Path, host_no: u32) -> Result<(), BlockError> {
    let path = sys.join(format!("class/scsi_host/host{host_no}/scan"));
    std::fs::write(&path, "- - -").map_err(|err| BlockError::Scan { path, err })
}

/// One SCSI device of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiLun {
    /// `H:C:T:L` as sysfs names the device.
    pub hctl: String,
    pub lun: u64,
    /// The block device, if sd has bound (LUN 0 of tgt is a controller
    /// with only an sg node).
    pub disk: Option<ScsiDisk>,
}

/// A SCSI disk's block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiDisk {
    /// Kernel name, `sda`.
    pub name: String,
    pub lun: u64,
    pub hctl: String,
    pub major: u32,
    pub minor: u32,
    /// In 512-byte sectors (`/sys/block/X/size`, always 512-byte units).
    pub size_sectors: u64,
}

/// Parse `MAJOR:MINOR` from a sysfs `dev` file.
fn parse_dev(path: &Path) -> Result<(u32, u32), BlockError> {
    let s = read_str(path)?;
    s.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or(BlockError::Value {
            path: path.to_path_buf(),
            value: s,
        })
}

fn dir_names(path: &Path) -> Result<Vec<String>, BlockError> {
    let rd = std::fs::read_dir(path).map_err(|err| BlockError::Sysfs {
        path: path.to_path_buf(),
        err,
    })?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The session's target name, for messages (`…/session<sid>/targetname`).
pub fn session_target(sys: &Path, sid: u32) -> Option<String> {
    read_str(&sys.join(format!("class/iscsi_session/session{sid}/targetname"))).ok()
}

/// The LUN of a SCSI device directory named `H:C:T:L`; `None` for any
/// other entry below a target (power, subsystem, uevent).
pub fn parse_hctl(name: &str) -> Option<u64> {
    let mut it = name.split(':');
    for _ in 0..3 {
        it.next()?.parse::<u32>().ok()?;
    }
    let lun = it.next()?.parse().ok()?;
    it.next().is_none().then_some(lun)
}

fn not_found(e: &BlockError) -> bool {
    matches!(e, BlockError::Sysfs { err, .. } if err.kind() == ErrorKind::NotFound)
}

/// The block device below SCSI device directory `sdev`, if sd has
/// registered one. A missing `block/` or `dev` means "not (yet) there":
/// `dev` is created with the device (drivers/base/core.c `device_add`).
fn block_disk(sdev: &Path, hctl: &str, lun: u64) -> Result<Option<ScsiDisk>, BlockError> {
    let bdir = sdev.join("block");
    let names = match dir_names(&bdir) {
        Err(e) if not_found(&e) => return Ok(None),
        r => r?,
    };
    let Some(name) = names.into_iter().next() else {
        return Ok(None);
    };
    let d = bdir.join(&name);
    let (major, minor) = match parse_dev(&d.join("dev")) {
        Err(e) if not_found(&e) => return Ok(None),
        r => r?,
    };
    Ok(Some(ScsiDisk {
        size_sectors: read_num(&d.join("size"))?,
        name,
        lun,
        hctl: hctl.to_string(),
        major,
        minor,
    }))
}

/// All SCSI devices below session `sid`, sorted by LUN.
pub fn session_luns(sys: &Path, sid: u32) -> Result<Vec<ScsiLun>, BlockError> {
    let sdev_root = sys.join(format!("class/iscsi_session/session{sid}/device"));
    let mut out = Vec::new();
    for t in dir_names(&sdev_root)? {
        if !t.starts_with("target") {
            continue;
        }
        let tdir = sdev_root.join(&t);
        for hctl in dir_names(&tdir)? {
            let Some(lun) = parse_hctl(&hctl) else {
                continue;
            };
            let disk = block_disk(&tdir.join(&hctl), &hctl, lun)?;
            out.push(ScsiLun { hctl, lun, disk });
        }
    }
    out.sort_by_key(|l| l.lun);
    Ok(out)
}

/// The disks (LUNs with a block device) of session `sid`.
pub fn session_disks(sys: &Path, sid: u32) -> Result<Vec<ScsiDisk>, BlockError> {
    Ok(session_luns(sys, sid)?
        .into_iter()
        .filter_map(|l| l.disk)
        .collect())
}

/// The partition numbers sysfs shows for disk `name` (`/sys/block/X/XN/partition`).
pub fn partitions(sys: &Path, name: &str) -> Result<Vec<u32>, BlockError> {
    let dir = sys.join("block").join(name);
    let mut out = Vec::new();
    for e in dir_names(&dir)? {
        if e.starts_with(name) && e.len() > name.len() {
            if let Ok(n) = read_num::<u32>(&dir.join(&e).join("partition")) {
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// How the session's LUNs look, for the timeout message.
fn describe_luns(luns: &Result<Vec<ScsiLun>, BlockError>) -> String {
    match luns {
        Err(e) => format!("no readable SCSI devices ({e})"),
        Ok(l) if l.is_empty() => "no SCSI devices (hint: did the host scan run?)".into(),
        Ok(l) => {
            let parts: Vec<String> = l
                .iter()
                .map(|x| match &x.disk {
                    Some(d) => format!("{} ({})", x.lun, d.name),
                    None => format!("{} (no block device, e.g. sg only)", x.lun),
                })
                .collect();
            format!("LUNs {}", parts.join(", "))
        }
    }
}

/// Quiet time after which a disk whose `add` uevent we did not see (it came
/// before we subscribed) counts as settled, i.e. its partitions are in sysfs.
pub const SETTLE: Duration = Duration::from_millis(300);
/// Longest sleep between two looks at sysfs while waiting.
const RECHECK: Duration = Duration::from_millis(250);

/// Wait until LUN `lun` of session `sid` has a block device and its
/// partitions are in sysfs; sysfs is the truth, uevents only wake us.
///
/// When is the partition scan done? block/genhd.c `device_add_disk`
/// suppresses uevents, scans the partition table, then announces the disk
/// and every partition (`disk_uevent(disk, KOBJ_ADD)`). So once the disk's
/// `add` event is seen, sysfs already lists the partitions. If the disk was
/// found in sysfs without seeing its event (it was added before `sock`
/// subscribed), we accept it after [`SETTLE`] without events for it.
/// Open `sock` before [`scan_host`] so the event is not missed.
pub fn wait_for_disk(
    sys: &Path,
    sid: u32,
    lun: u64,
    deadline: Instant,
    sock: &mut UeventSocket,
) -> Result<ScsiDisk, BlockError> {
    let started = Instant::now();
    let mut seen = DiskEvents::default();
    let mut first_found: Option<Instant> = None;
    loop {
        let luns = session_luns(sys, sid);
        let found = match &luns {
            Ok(l) => l.iter().find(|x| x.lun == lun).and_then(|x| x.disk.clone()),
            // The session directory may lag behind CREATE_SESSION; the
            // deadline decides.
            Err(_) => None,
        };
        let now = Instant::now();
        let mut wait = deadline.saturating_duration_since(now);
        if let Some(d) = found {
            if seen.announced(&d.name) {
                return Ok(d);
            }
            let since = *first_found.get_or_insert(now);
            let settled_at = seen.last_for(&d.name).map_or(since, |t| t.max(since)) + SETTLE;
            // At the deadline a present disk wins over waiting to settle:
            // the deadline bounds its appearance, and a missing partition
            // is then reported by root resolution with what was found.
            if now >= settled_at || wait.is_zero() {
                return Ok(d);
            }
            wait = wait.min(settled_at - now);
        }
        if wait.is_zero() {
            return Err(BlockError::Timeout {
                sid,
                lun,
                target: session_target(sys, sid).unwrap_or_else(|| "target unknown".into()),
                secs: now.duration_since(started).as_secs_f32(),
                seen: describe_luns(&luns),
            });
        }
        // Uevents wake us; the cap re-reads sysfs now and then anyway, so a
        // wake-up lost for any reason (a kernel without uevent netlink, an
        // event filtered out above) costs at most RECHECK, not the deadline.
        match sock.recv(wait.min(RECHECK)).map_err(BlockError::Uevent)? {
            Received::Event(ev) if ev.subsystem.as_deref() == Some("block") => {
                if let Some(name) = ev.devname.as_deref() {
                    let disk_add =
                        ev.action == Action::Add && ev.devtype.as_deref() == Some("disk");
                    seen.record(name, disk_add, Instant::now());
                }
            }
            Received::Event(_) | Received::Timeout | Received::Lost => {}
        }
    }
}

/// Block uevents seen while waiting: when each device last had one, and
/// which disks were announced with `add`. Bounded: old entries go first.
#[derive(Default)]
struct DiskEvents {
    last: Vec<(String, Instant)>,
    added: Vec<String>,
}

const MAX_TRACKED: usize = 256;

impl DiskEvents {
    fn record(&mut self, name: &str, disk_add: bool, at: Instant) {
        self.last.retain(|(n, _)| n != name);
        if self.last.len() >= MAX_TRACKED {
            self.last.remove(0);
        }
        self.last.push((name.to_string(), at));
        if disk_add && !self.added.iter().any(|n| n == name) {
            if self.added.len() >= MAX_TRACKED {
                self.added.remove(0);
            }
            self.added.push(name.to_string());
        }
    }

    fn announced(&self, disk: &str) -> bool {
        self.added.iter().any(|n| n == disk)
    }

    /// Latest event for `disk` or one of its partitions (`sda1`, `nvme0n1p1`).
    fn last_for(&self, disk: &str) -> Option<Instant> {
        self.last
            .iter()
            .filter(|(n, _)| is_same_or_part(disk, n))
            .map(|(_, t)| *t)
            .max()
    }
}

/// `name` is `disk` or a partition of it (kernel naming, see
/// disk::resolve::part_name).
fn is_same_or_part(disk: &str, name: &str) -> bool {
    match name.strip_prefix(disk) {
        Some("") => true,
        Some(rest) => {
            let digits = rest.strip_prefix('p').unwrap_or(rest);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// `/dev/<name>`: devtmpfs creates it when the device is added; without
/// devtmpfs, create the node from sysfs `dev` (`/sys/class/block/<name>/dev`).
pub fn dev_path(sys: &Path, dev: &Path, name: &str) -> Result<PathBuf, BlockError> {
    let path = dev.join(name);
    if path.exists() {
        return Ok(path);
    }
    let (major, minor) = parse_dev(&sys.join("class/block").join(name).join("dev"))?;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(major, minor),
    )
    .map_err(|err| BlockError::Mknod {
        path: path.clone(),
        dev: format!("{major}:{minor}"),
        err,
    })?;
    Ok(path)
}

/// Effective queue settings after [`tune`], read back from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuneReport {
    /// The active scheduler (`[x]` in the scheduler file).
    pub scheduler: String,
    /// What the kernel offered.
    pub offered: Vec<String>,
    pub nr_requests: Option<u32>,
    /// `None` if the device has no `queue_depth` (not a SCSI device).
    pub queue_depth: Option<u32>,
    /// Requests that were not applied as asked, also logged with log::warn!.
    pub warnings: Vec<String>,
}

/// Parse the scheduler file, `mq-deadline kyber [bfq] none` → (active, offered).
pub fn parse_scheduler(s: &str) -> (Option<String>, Vec<String>) {
    let mut active = None;
    let mut offered = Vec::new();
    for w in s.split_whitespace() {
        let name = match w.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            Some(inner) => {
                active = Some(inner.to_string());
                inner
            }
            None => w,
        };
        offered.push(name.to_string());
    }
    (active, offered)
}

/// Scheduler used when the plan names none: `none`. The LUN is served by a
/// target that has its own queue and elevator over the real disks, and
/// requests reach it over one TCP connection; reordering them here only adds
/// latency and CPU (the same reason Linux picks `none` for fast multi-queue
/// devices, block/elevator.c `elevator_get_default`). If `none` is not
/// offered, keep the kernel's choice.
pub const DEFAULT_SCHEDULER: &str = "none";

fn warn(report: &mut TuneReport, msg: String) {
    log::warn!("{msg}");
    report.warnings.push(msg);
}

/// Apply `tuning` to disk `name` and report what is in effect.
pub fn tune(sys: &Path, name: &str, tuning: &Tuning) -> Result<TuneReport, BlockError> {
    tune_with(&mut SysfsAttrs, sys, name, tuning)
}

/// [`tune`] through an explicit attribute seam.
pub fn tune_with(
    a: &mut dyn Attrs,
    sys: &Path,
    name: &str,
    tuning: &Tuning,
) -> Result<TuneReport, BlockError> {
    let q = sys.join("block").join(name).join("queue");
    let sched_path = q.join("scheduler");
    let (active, offered) = parse_scheduler(&attr_read(a, &sched_path)?);
    let mut report = TuneReport {
        scheduler: active.clone().unwrap_or_default(),
        offered,
        nr_requests: None,
        queue_depth: None,
        warnings: Vec::new(),
    };
    let (want, explicit) = match &tuning.scheduler {
        Some(s) => (s.as_str(), true),
        None => (DEFAULT_SCHEDULER, false),
    };
    if active.as_deref() != Some(want) {
        if report.offered.iter().any(|o| o == want) {
            attr_write(a, &sched_path, want)?;
            let (now, _) = parse_scheduler(&attr_read(a, &sched_path)?);
            report.scheduler = now.unwrap_or_default();
        } else if explicit {
            let msg = format!(
                "{name}: scheduler {want:?} is not offered by the kernel (offered: {}); keeping {:?}",
                report.offered.join(" "),
                report.scheduler
            );
            warn(&mut report, msg);
        }
    }
    let nr_path = q.join("nr_requests");
    if let Some(n) = tuning.nr_requests {
        attr_write(a, &nr_path, &n.to_string())?;
        let got = attr_num(a, &nr_path)?;
        if got != n {
            let msg = format!("{name}: nr_requests {n} requested, the kernel set {got}");
            warn(&mut report, msg);
        }
        report.nr_requests = Some(got);
    } else {
        report.nr_requests = attr_num(a, &nr_path).ok();
    }
    let qd_path = sys.join("block").join(name).join("device/queue_depth");
    if attr_read(a, &qd_path).is_ok() {
        let want = tuning.queue_depth;
        attr_write(a, &qd_path, &want.to_string())?;
        // scsi_change_queue_depth caps at what the host allows.
        let got = attr_num(a, &qd_path)?;
        if got != want {
            let msg =
                format!("{name}: queue_depth {want} requested, the kernel capped it to {got}");
            warn(&mut report, msg);
        }
        report.queue_depth = Some(got);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hctl_names() {
        assert_eq!(parse_hctl("3:0:0:1"), Some(1));
        assert_eq!(parse_hctl("0:0:0:16384"), Some(16384));
        for bad in ["power", "3:0:0", "3:0:0:1:2", "3:x:0:1", "3:0:0:", "uevent"] {
            assert_eq!(parse_hctl(bad), None, "{bad}");
        }
    }

    #[test]
    fn partition_names() {
        assert!(is_same_or_part("sda", "sda"));
        assert!(is_same_or_part("sda", "sda12"));
        assert!(is_same_or_part("nvme0n1", "nvme0n1p2"));
        assert!(!is_same_or_part("sda", "sdab"));
        assert!(!is_same_or_part("sda", "sdb1"));
        assert!(!is_same_or_part("sda", "sdap"));
    }

    #[test]
    fn only_the_disks_own_events_count() {
        let t0 = Instant::now();
        let mut ev = DiskEvents::default();
        ev.record("sdb", true, t0);
        ev.record("sda1", false, t0 + Duration::from_millis(5));
        ev.record("sda", false, t0 + Duration::from_millis(1));
        assert!(ev.announced("sdb") && !ev.announced("sda"));
        assert_eq!(ev.last_for("sda"), Some(t0 + Duration::from_millis(5)));
        assert_eq!(ev.last_for("sdc"), None);
        for i in 0..2 * MAX_TRACKED {
            ev.record(&format!("loop{i}"), true, t0);
        }
        assert!(ev.last.len() <= MAX_TRACKED && ev.added.len() <= MAX_TRACKED);
    }

    #[test]
    fn scheduler_file() {
        assert_eq!(
            parse_scheduler("[mq-deadline] kyber none\n"),
            (
                Some("mq-deadline".into()),
                vec!["mq-deadline".into(), "kyber".into(), "none".into()]
            )
        );
        assert_eq!(parse_scheduler("none"), (None, vec!["none".into()]));
        assert_eq!(parse_scheduler(""), (None, vec![]));
    }
}
