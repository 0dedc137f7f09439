//! Which block device is the root: `root=` from the plan against what is on
//! the session's disks.
//!
//! [`scan`] does the I/O (reads the partition table and the superblocks of
//! the whole disk and of each partition straight from the disk node, so no
//! partition node is needed); [`select`] is the pure choice, tested with
//! made-up disk contents.

use super::fs::{probe, FsInfo, PROBE_LEN};
use super::part::{self, Partition, ReadAt, Table};
use super::scsi::{self as block, BlockError, ScsiDisk};
use crate::plan::RootDevice;
use std::fmt;
use std::path::{Path, PathBuf};

/// What one disk holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskContents {
    /// `sda`.
    pub disk: String,
    /// The iSCSI target name, for messages.
    pub target: String,
    /// A file system on the whole disk (then the table is not read).
    pub whole: Option<FsInfo>,
    pub table: Option<Table>,
    /// Why the table could not be read, if it could not.
    pub table_error: Option<String>,
    /// The file system in each partition of `table`, in table order.
    pub part_fs: Vec<Option<FsInfo>>,
}

/// The chosen device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Kernel name, `sda` or `sda2`.
    pub name: String,
    pub partn: Option<u32>,
    pub fs: Option<FsInfo>,
}

/// The resolved root device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub dev_path: PathBuf,
    pub name: String,
    /// Probed type; `None` if no known signature (mount then needs
    /// `rootfstype=`).
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub partn: Option<u32>,
}

#[derive(Debug)]
pub enum ResolveError {
    /// Nothing matched `wanted` (`LABEL=root`); `found` lists what is there.
    NotFound {
        wanted: String,
        on: String,
        found: String,
    },
    /// `root=/dev/X` does not exist.
    NoPath {
        path: String,
        on: String,
        found: String,
    },
    /// `PARTUUID=…/PARTNROFF=N` is malformed.
    PartNrOff(String),
    Open {
        path: PathBuf,
        err: std::io::Error,
    },
    Read {
        path: PathBuf,
        offset: u64,
        err: std::io::Error,
    },
    Block(BlockError),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotFound { wanted, on, found } => {
                write!(f, "no {wanted} on {on}: found {found}")
            }
            ResolveError::NoPath { path, on, found } => write!(
                f,
                "root={path} does not exist; {on} has {found} (hint: use root=LABEL=, UUID= or PARTUUID=, names can differ between boots)"
            ),
            ResolveError::PartNrOff(v) => {
                write!(f, "root=PARTUUID={v}: expected UUID/PARTNROFF=<number>")
            }
            ResolveError::Open { path, err } => write!(f, "opening {}: {err}", path.display()),
            ResolveError::Read { path, offset, err } => {
                write!(f, "reading {} at byte {offset}: {err}", path.display())
            }
            ResolveError::Block(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// The kernel's partition name (block/partitions/core.c `add_partition`:
/// a `p` separator when the disk name ends in a digit, as nvme0n1p1).
pub fn part_name(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// One candidate device: the whole disk or a partition.
struct Cand<'a> {
    name: String,
    part: Option<&'a Partition>,
    fs: Option<&'a FsInfo>,
}

fn candidates(d: &DiskContents) -> Vec<Cand<'_>> {
    let mut v = vec![Cand {
        name: d.disk.clone(),
        part: None,
        fs: d.whole.as_ref(),
    }];
    if let Some(t) = &d.table {
        for (i, p) in t.parts.iter().enumerate() {
            v.push(Cand {
                name: part_name(&d.disk, p.number),
                part: Some(p),
                fs: d.part_fs.get(i).and_then(|f| f.as_ref()),
            });
        }
    }
    v
}

/// Which attribute the "found" list shows, matching what was asked.
#[derive(Clone, Copy)]
enum Show {
    Fs,
    Label,
    Uuid,
    PartUuid,
    PartLabel,
}

fn describe(c: &Cand<'_>, show: Show) -> String {
    let mut s = c.name.clone();
    match c.fs {
        Some(fs) => {
            s.push(' ');
            s.push_str(fs.fstype);
        }
        None if c.part.is_some_and(|p| p.extended) => s.push_str(" (extended)"),
        None => s.push_str(" (no file system)"),
    }
    let extra = match show {
        Show::Fs => None,
        Show::Label => c.fs.map(|f| ("LABEL", f.label.as_deref())),
        Show::Uuid => c.fs.map(|f| ("UUID", f.uuid.as_deref())),
        Show::PartUuid => c.part.map(|p| ("PARTUUID", Some(p.uuid.as_str()))),
        Show::PartLabel => c.part.map(|p| ("PARTLABEL", p.label.as_deref())),
    };
    if let Some((k, v)) = extra {
        s.push_str(&format!(" {k}={}", v.unwrap_or("")));
    }
    s
}

fn found_list(disks: &[DiskContents], show: Show) -> String {
    let mut items = Vec::new();
    for d in disks {
        // A whole disk with a table holds no file system: list only its
        // partitions then.
        let cands = candidates(d);
        let skip_whole = d.whole.is_none() && cands.len() > 1;
        for c in cands.iter().skip(usize::from(skip_whole)) {
            items.push(describe(c, show));
        }
        if let Some(e) = &d.table_error {
            items.push(format!("{} partition table unreadable: {e}", d.disk));
        }
    }
    if items.is_empty() {
        "no disks".into()
    } else {
        items.join(", ")
    }
}

fn on(disks: &[DiskContents]) -> String {
    let v: Vec<String> = disks
        .iter()
        .map(|d| format!("{} ({})", d.disk, d.target))
        .collect();
    if v.is_empty() {
        "the session".into()
    } else {
        v.join(", ")
    }
}

fn choose(c: &Cand<'_>) -> Choice {
    Choice {
        name: c.name.clone(),
        partn: c.part.map(|p| p.number),
        fs: c.fs.cloned(),
    }
}

/// Pick the root among `disks` (the session's disks, the planned LUN first).
pub fn select(root: &RootDevice, disks: &[DiskContents]) -> Result<Choice, ResolveError> {
    let not_found = |wanted: String, show: Show| ResolveError::NotFound {
        wanted,
        on: on(disks),
        found: found_list(disks, show),
    };
    let mountable = |c: &Cand<'_>| c.fs.is_some_and(|f| f.mountable);
    let first = |pred: &dyn Fn(&Cand<'_>) -> bool| {
        disks
            .iter()
            .flat_map(candidates)
            .find(|c| pred(c))
            .map(|c| choose(&c))
    };
    match root {
        RootDevice::Lun => {
            // The LUN itself if it holds a file system, else its first
            // partition (by number) that does.
            let d = disks
                .first()
                .ok_or_else(|| not_found("file system".into(), Show::Fs))?;
            let mut cands = candidates(d);
            cands.sort_by_key(|c| c.part.map_or(0, |p| p.number));
            cands
                .iter()
                .find(|c| mountable(c))
                .map(choose)
                .ok_or_else(|| not_found("mountable file system".into(), Show::Fs))
        }
        RootDevice::Path(p) => {
            let name = p.strip_prefix("/dev/").unwrap_or(p);
            first(&|c| c.name == name).ok_or_else(|| ResolveError::NoPath {
                path: p.clone(),
                on: on(disks),
                found: found_list(disks, Show::Fs),
            })
        }
        RootDevice::Label(l) => first(&|c| c.fs.and_then(|f| f.label.as_deref()) == Some(l))
            .ok_or_else(|| not_found(format!("file system with LABEL={l}"), Show::Label)),
        RootDevice::Uuid(u) => first(&|c| {
            c.fs.and_then(|f| f.uuid.as_deref())
                .is_some_and(|x| x.eq_ignore_ascii_case(u))
        })
        .ok_or_else(|| not_found(format!("file system with UUID={u}"), Show::Uuid)),
        RootDevice::PartLabel(l) => first(&|c| c.part.and_then(|p| p.label.as_deref()) == Some(l))
            .ok_or_else(|| not_found(format!("partition with PARTLABEL={l}"), Show::PartLabel)),
        RootDevice::PartUuid(v) => {
            // init/do_mounts.c: `PARTUUID=<uuid>/PARTNROFF=<n>` names the
            // partition n numbers after the one with that UUID, same disk.
            let (uuid, off) = match v.split_once('/') {
                Some((u, rest)) => {
                    let n = rest
                        .strip_prefix("PARTNROFF=")
                        .and_then(|n| n.parse::<i64>().ok())
                        .ok_or_else(|| ResolveError::PartNrOff(v.clone()))?;
                    (u, n)
                }
                None => (v.as_str(), 0),
            };
            let wanted = || format!("partition with PARTUUID={v}");
            for d in disks {
                let cands = candidates(d);
                let Some(base) = cands
                    .iter()
                    .find(|c| c.part.is_some_and(|p| p.uuid.eq_ignore_ascii_case(uuid)))
                else {
                    continue;
                };
                let target = i64::from(base.part.map_or(0, |p| p.number)) + off;
                return cands
                    .iter()
                    .find(|c| c.part.is_some_and(|p| i64::from(p.number) == target))
                    .map(choose)
                    .ok_or_else(|| not_found(wanted(), Show::PartUuid));
            }
            Err(not_found(wanted(), Show::PartUuid))
        }
    }
}

/// Read up to [`PROBE_LEN`] bytes at `offset`, less if the device (or the
/// partition, `limit` bytes long) is smaller.
fn read_head(
    dev: &mut std::fs::File,
    path: &Path,
    offset: u64,
    limit: u64,
) -> Result<Vec<u8>, ResolveError> {
    let n = usize::try_from(limit.min(PROBE_LEN as u64)).unwrap_or(PROBE_LEN);
    let mut buf = vec![0u8; n];
    dev.read_at(offset, &mut buf)
        .map_err(|err| ResolveError::Read {
            path: path.to_path_buf(),
            offset,
            err,
        })?;
    Ok(buf)
}

/// Read what `disk` holds: a file system on the whole disk, or its
/// partition table and each partition's file system. `dev` is `/dev`.
pub fn scan(
    sys: &Path,
    dev: &Path,
    disk: &ScsiDisk,
    target: &str,
) -> Result<DiskContents, ResolveError> {
    let path = block::dev_path(sys, dev, &disk.name).map_err(ResolveError::Block)?;
    let mut f = std::fs::File::open(&path).map_err(|err| ResolveError::Open {
        path: path.clone(),
        err,
    })?;
    let size = disk.size_sectors.saturating_mul(512);
    let whole = probe(&read_head(&mut f, &path, 0, size)?);
    let mut out = DiskContents {
        disk: disk.name.clone(),
        target: target.to_string(),
        whole,
        table: None,
        table_error: None,
        part_fs: Vec::new(),
    };
    if out.whole.is_some() {
        return Ok(out);
    }
    let lbs = std::fs::read_to_string(
        sys.join("block")
            .join(&disk.name)
            .join("queue/logical_block_size"),
    )
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(512);
    match part::parse(&mut f, lbs) {
        Ok(t) => out.table = t,
        Err(e) => out.table_error = Some(e.to_string()),
    }
    if let Some(t) = &out.table {
        for p in &t.parts {
            let fs = if p.extended || p.start >= size {
                None
            } else {
                probe(&read_head(
                    &mut f,
                    &path,
                    p.start,
                    p.len.min(size - p.start),
                )?)
            };
            out.part_fs.push(fs);
        }
    }
    Ok(out)
}

/// Resolve `root` on the session's `disks` (planned LUN first): scan them,
/// select, and make sure the device node exists.
pub fn resolve(
    sys: &Path,
    dev: &Path,
    root: &RootDevice,
    disks: &[ScsiDisk],
    target: &str,
) -> Result<Root, ResolveError> {
    let mut contents = Vec::with_capacity(disks.len());
    for d in disks {
        contents.push(scan(sys, dev, d, target)?);
    }
    let c = select(root, &contents)?;
    let dev_path = block::dev_path(sys, dev, &c.name).map_err(ResolveError::Block)?;
    Ok(Root {
        dev_path,
        name: c.name,
        fstype: c.fs.as_ref().map(|f| f.fstype.to_string()),
        uuid: c.fs.as_ref().and_then(|f| f.uuid.clone()),
        label: c.fs.and_then(|f| f.label),
        partn: c.partn,
    })
}
