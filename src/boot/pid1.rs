//! PID 1 duties: pseudo filesystems, mounting the root, the defensive
//! switch_root, and the failure policy (shell / reboot / halt).
//!
//! The mount calls go through [`Sys`], so the order of operations is tested
//! with a recording fake ([`Recording`]) without root; [`RealSys`] is the
//! rustix implementation.

use crate::plan::{FailurePolicy, Init};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::fmt;
use std::path::Path;

/// statfs f_type of an initramfs root (include/uapi/linux/magic.h).
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pid1Error {
    Mkdir {
        path: String,
        errno: Errno,
    },
    Mount {
        what: String,
        target: String,
        errno: Errno,
    },
    /// No file system type could mount the root device.
    MountRoot {
        device: String,
        tried: Vec<(String, Errno)>,
    },
    MoveMount {
        from: String,
        to: String,
        errno: Errno,
    },
    Chroot {
        errno: Errno,
    },
    Chdir {
        path: String,
        errno: Errno,
    },
    /// None of the init candidates exists in the new root.
    NoInit {
        tried: Vec<String>,
    },
    Exec {
        path: String,
        errno: Errno,
    },
}

impl fmt::Display for Pid1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pid1Error::Mkdir { path, errno } => write!(f, "mkdir {path}: {errno}"),
            Pid1Error::Mount {
                what,
                target,
                errno,
            } => write!(f, "mount {what} on {target}: {errno}"),
            Pid1Error::MountRoot { device, tried } => {
                write!(f, "cannot mount root {device}:")?;
                if tried.is_empty() {
                    write!(f, " no file system type to try (hint: set rootfstype=)")?;
                }
                for (i, (fs, e)) in tried.iter().enumerate() {
                    write!(f, "{} {fs}: {e}", if i == 0 { "" } else { ";" })?;
                }
                Ok(())
            }
            Pid1Error::MoveMount { from, to, errno } => {
                write!(f, "moving mount {from} to {to}: {errno}")
            }
            Pid1Error::Chroot { errno } => write!(f, "chroot into the new root: {errno}"),
            Pid1Error::Chdir { path, errno } => write!(f, "chdir {path}: {errno}"),
            Pid1Error::NoInit { tried } => write!(
                f,
                "no init found in the new root (tried {}); hint: set init=",
                tried.join(", ")
            ),
            Pid1Error::Exec { path, errno } => write!(f, "exec {path}: {errno}"),
        }
    }
}

impl std::error::Error for Pid1Error {}

/// The syscalls PID 1 makes, as data for the recording fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mkdir(String),
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: u32,
        data: String,
    },
    Move {
        from: String,
        to: String,
    },
    Detach(String),
}

pub trait Sys {
    fn mkdir(&mut self, path: &str) -> Result<(), Errno>;
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), Errno>;
    fn mount_move(&mut self, from: &str, to: &str) -> Result<(), Errno>;
    fn detach(&mut self, target: &str) -> Result<(), Errno>;
    /// Is `path` a mount point (a different device than its parent)?
    fn is_mountpoint(&self, path: &str) -> bool;
    fn exists(&self, path: &str) -> bool;
}

pub struct RealSys;

fn dev_of(path: &str) -> Option<u64> {
    rustix::fs::stat(path).ok().map(|s| s.st_dev)
}

impl Sys for RealSys {
    fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        match rustix::fs::mkdir(path, rustix::fs::Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), Errno> {
        let data = CString::new(data).map_err(|_| Errno::INVAL)?;
        rustix::mount::mount(source, target, fstype, flags, data.as_c_str())
    }
    fn mount_move(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        rustix::mount::mount_move(from, to)
    }
    fn detach(&mut self, target: &str) -> Result<(), Errno> {
        rustix::mount::unmount(target, UnmountFlags::DETACH)
    }
    fn is_mountpoint(&self, path: &str) -> bool {
        let parent = Path::new(path)
            .parent()
            .map_or_else(|| "/".to_string(), |p| p.display().to_string());
        match (dev_of(path), dev_of(&parent)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }
    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }
}

/// Records every call; mounts succeed unless listed in `fail`.
#[derive(Debug, Default)]
pub struct Recording {
    pub calls: Vec<Call>,
    pub fail: Vec<(String, Errno)>,
    pub mountpoints: Vec<String>,
    pub existing: Vec<String>,
}

impl Recording {
    fn check(&self, key: &str) -> Result<(), Errno> {
        match self.fail.iter().find(|(k, _)| k == key) {
            Some((_, e)) => Err(*e),
            None => Ok(()),
        }
    }
}

impl Sys for Recording {
    fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        self.calls.push(Call::Mkdir(path.into()));
        self.check(path)
    }
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), Errno> {
        self.calls.push(Call::Mount {
            source: source.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags: flags.bits(),
            data: data.into(),
        });
        self.check(&format!("{fstype}:{target}"))
    }
    fn mount_move(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        self.calls.push(Call::Move {
            from: from.into(),
            to: to.into(),
        });
        self.check(&format!("move:{from}"))
    }
    fn detach(&mut self, target: &str) -> Result<(), Errno> {
        self.calls.push(Call::Detach(target.into()));
        Ok(())
    }
    fn is_mountpoint(&self, path: &str) -> bool {
        self.mountpoints.iter().any(|m| m == path)
    }
    fn exists(&self, path: &str) -> bool {
        self.existing.iter().any(|m| m == path)
    }
}

/// The API file systems every boot needs, in order. devtmpfs gives device
/// nodes without udev; /run carries the boot report across switch_root.
const PSEUDO: [(&str, &str, &str, u32, &str); 4] = [
    ("proc", "/proc", "proc", 0x2 | 0x4 | 0x8, ""), // nosuid nodev noexec
    ("sysfs", "/sys", "sysfs", 0x2 | 0x4 | 0x8, ""),
    ("devtmpfs", "/dev", "devtmpfs", 0x2, "mode=0755"), // nosuid
    ("tmpfs", "/run", "tmpfs", 0x2 | 0x4, "mode=0755"), // nosuid nodev
];

/// Mount /proc, /sys, /dev, /run. Already mounted (EBUSY) is fine: a
/// wrapper init or the kernel (CONFIG_DEVTMPFS_MOUNT) may have done it.
pub fn mount_pseudofs(sys: &mut dyn Sys) -> Result<Vec<&'static str>, Pid1Error> {
    let mut done = Vec::new();
    for (src, target, fstype, flags, data) in PSEUDO {
        sys.mkdir(target).map_err(|errno| Pid1Error::Mkdir {
            path: target.into(),
            errno,
        })?;
        if sys.is_mountpoint(target) {
            continue;
        }
        match sys.mount(
            src,
            target,
            fstype,
            MountFlags::from_bits_retain(flags),
            data,
        ) {
            Ok(()) => done.push(target),
            Err(Errno::BUSY) => {}
            Err(errno) => {
                return Err(Pid1Error::Mount {
                    what: fstype.into(),
                    target: target.into(),
                    errno,
                })
            }
        }
    }
    Ok(done)
}

/// Block file systems the kernel has registered (`/proc/filesystems` lines
/// without `nodev`), in its order: the fallback when neither `rootfstype=`
/// nor the superblock names the type.
pub fn parse_filesystems(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Mount `device` on `target`, trying each type in turn; the error lists
/// every type tried with its errno.
pub fn mount_root(
    sys: &mut dyn Sys,
    device: &str,
    target: &str,
    types: &[String],
    read_only: bool,
    data: &str,
) -> Result<String, Pid1Error> {
    sys.mkdir(target).map_err(|errno| Pid1Error::Mkdir {
        path: target.into(),
        errno,
    })?;
    let flags = if read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let mut tried = Vec::new();
    for fs in types {
        match sys.mount(device, target, fs, flags, data) {
            Ok(()) => return Ok(fs.clone()),
            Err(e) => tried.push((fs.clone(), e)),
        }
    }
    Err(Pid1Error::MountRoot {
        device: device.into(),
        tried,
    })
}

/// Mounts that follow the root into the new system.
const CARRIED: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// Move /dev /proc /sys /run under `new_root` (systemd switch-root.c's
/// transfer table). A mount whose target is missing in the new root is
/// detached instead: leaving it would pin the old root.
pub fn move_api_mounts(sys: &mut dyn Sys, new_root: &str) -> Result<(), Pid1Error> {
    for m in CARRIED {
        if !sys.is_mountpoint(m) {
            continue;
        }
        let to = format!("{new_root}{m}");
        if !sys.exists(&to) {
            log::warn!("{to} does not exist in the new root; unmounting {m} instead of moving it");
            let _ = sys.detach(m);
            continue;
        }
        sys.mount_move(m, &to)
            .map_err(|errno| Pid1Error::MoveMount {
                from: m.into(),
                to: to.clone(),
                errno,
            })?;
    }
    Ok(())
}

/// Init candidates in the kernel's order (init/main.c kernel_init).
pub fn init_candidates(init: &Init) -> Vec<String> {
    match &init.path {
        Some(p) => vec![p.clone()],
        None => ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// Delete the initramfs contents (they would pin RAM forever), but only if
/// the old root really is ramfs/tmpfs, never crossing into another mount
/// (the new root is mounted below it) — systemd switch-root.c's rule.
fn clean_initramfs(new_root: &str) {
    let Ok(st) = rustix::fs::statfs("/") else {
        return;
    };
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64 musl, not everywhere
    let ftype = st.f_type as i64;
    if ftype != RAMFS_MAGIC && ftype != TMPFS_MAGIC {
        log::info!("old root is not ramfs/tmpfs (f_type {ftype:#x}); leaving it alone");
        return;
    }
    let Some(root_dev) = dev_of("/") else {
        return;
    };
    remove_tree(Path::new("/"), root_dev, Path::new(new_root), 0);
}

fn remove_tree(dir: &Path, dev: u64, skip: &Path, depth: u32) {
    if depth > 64 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        let Ok(st) = rustix::fs::lstat(&p) else {
            continue;
        };
        if st.st_dev != dev {
            continue; // another mount: not ours to delete
        }
        let is_dir = (st.st_mode & 0o170000) == 0o040000;
        if is_dir {
            remove_tree(&p, dev, skip, depth + 1);
            let _ = std::fs::remove_dir(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Switch to the root mounted at `new_root` and exec its init. Returns only
/// on failure.
pub fn switch_root(new_root: &str, init: &Init) -> Pid1Error {
    // Make sure the new root has an init before we burn any bridge.
    let candidates = init_candidates(init);
    let Some(path) = candidates
        .iter()
        .find(|c| {
            let p = format!("{new_root}{c}");
            // A dangling absolute symlink (/sbin/init -> /lib/systemd/systemd)
            // resolves only after chroot: accept any link.
            rustix::fs::lstat(p.as_str()).is_ok()
        })
        .cloned()
    else {
        return Pid1Error::NoInit {
            tried: candidates
                .iter()
                .map(|c| format!("{new_root}{c}"))
                .collect(),
        };
    };
    rustix::fs::sync();
    if let Err(e) = move_api_mounts(&mut RealSys, new_root) {
        return e;
    }
    if let Err(errno) = rustix::process::chdir(new_root) {
        return Pid1Error::Chdir {
            path: new_root.into(),
            errno,
        };
    }
    clean_initramfs(new_root);
    if let Err(errno) = rustix::mount::mount_move(".", "/") {
        return Pid1Error::MoveMount {
            from: new_root.into(),
            to: "/".into(),
            errno,
        };
    }
    if let Err(errno) = rustix::process::chroot(".") {
        return Pid1Error::Chroot { errno };
    }
    if let Err(errno) = rustix::process::chdir("/") {
        return Pid1Error::Chdir {
            path: "/".into(),
            errno,
        };
    }
    exec_init(&path, &init.args)
}

fn exec_init(path: &str, args: &[String]) -> Pid1Error {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(path)
        .arg0(path)
        .args(args)
        .exec();
    Pid1Error::Exec {
        path: path.into(),
        errno: Errno::from_io_error(&err).unwrap_or(Errno::NOEXEC),
    }
}

/// Seconds since boot (CLOCK_BOOTTIME, the clock of /proc/uptime), for the
/// in-guest benchmark marks; needs no /proc, so it works before pseudofs.
pub fn uptime() -> f64 {
    crate::events::boottime_us() as f64 / 1e6
}

/// The failure policy. Never returns: PID 1 must not exit (the kernel
/// would panic with "Attempted to kill init").
pub fn fail_policy(policy: FailurePolicy) -> ! {
    let mut policy = policy;
    if policy == FailurePolicy::Shell {
        if let Some(sh) = ["/bin/sh", "/bin/busybox"]
            .iter()
            .find(|p| Path::new(p).exists())
        {
            log::error!("starting an emergency shell ({sh}); exit it to reboot");
            let mut cmd = std::process::Command::new(sh);
            if sh.ends_with("busybox") {
                cmd.arg("sh");
            }
            let _ = cmd.status();
            policy = FailurePolicy::Reboot;
        } else {
            log::error!("netboot.on_fail=shell but this initramfs has no shell; halting");
            policy = FailurePolicy::Halt;
        }
    }
    rustix::fs::sync();
    let cmd = match policy {
        FailurePolicy::Reboot => rustix::system::RebootCommand::Restart,
        // Power off rather than RB_HALT_SYSTEM: a halted machine that keeps
        // its power on is indistinguishable from a hang for whoever waits on
        // it (a VM host, a BMC), and needs a hand to restart anyway.
        _ => rustix::system::RebootCommand::PowerOff,
    };
    let _ = rustix::system::reboot(cmd);
    // reboot(2) only fails without CAP_SYS_BOOT (not PID 1 in the init
    // namespace): wait forever rather than exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Where the root is mounted before switch_root.
pub const NEW_ROOT: &str = "/newroot";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudofs_order_and_flags() {
        let mut r = Recording::default();
        let done = mount_pseudofs(&mut r).unwrap();
        assert_eq!(done, ["/proc", "/sys", "/dev", "/run"]);
        let mounts: Vec<_> = r
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { fstype, target, .. } => Some(format!("{fstype}:{target}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            mounts,
            ["proc:/proc", "sysfs:/sys", "devtmpfs:/dev", "tmpfs:/run"]
        );
    }

    #[test]
    fn pseudofs_skips_mounted_and_busy_but_reports_failures() {
        let mut r = Recording {
            mountpoints: vec!["/dev".into()],
            fail: vec![("sysfs:/sys".into(), Errno::BUSY)],
            ..Default::default()
        };
        assert_eq!(mount_pseudofs(&mut r).unwrap(), ["/proc", "/run"]);
        let mut r = Recording {
            fail: vec![("tmpfs:/run".into(), Errno::NODEV)],
            ..Default::default()
        };
        assert_eq!(
            mount_pseudofs(&mut r).unwrap_err().to_string(),
            "mount tmpfs on /run: No such device (os error 19)"
        );
    }

    #[test]
    fn root_mount_tries_types_and_lists_failures() {
        let mut r = Recording {
            fail: vec![
                ("xfs:/newroot".into(), Errno::INVAL),
                ("btrfs:/newroot".into(), Errno::NODEV),
            ],
            ..Default::default()
        };
        let types = vec!["xfs".to_string(), "btrfs".into(), "ext4".into()];
        assert_eq!(
            mount_root(&mut r, "/dev/sda1", "/newroot", &types, true, "").unwrap(),
            "ext4"
        );
        assert!(r.calls.contains(&Call::Mount {
            source: "/dev/sda1".into(),
            target: "/newroot".into(),
            fstype: "ext4".into(),
            flags: MountFlags::RDONLY.bits(),
            data: "".into()
        }));
        let mut r = Recording {
            fail: vec![("ext4:/newroot".into(), Errno::INVAL)],
            ..Default::default()
        };
        let e =
            mount_root(&mut r, "/dev/sdb", "/newroot", &["ext4".into()], false, "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot mount root /dev/sdb: ext4: Invalid argument (os error 22)"
        );
    }

    #[test]
    fn api_mounts_move_or_detach() {
        let mut r = Recording {
            mountpoints: vec!["/dev".into(), "/proc".into(), "/sys".into(), "/run".into()],
            existing: vec![
                "/newroot/dev".into(),
                "/newroot/proc".into(),
                "/newroot/sys".into(),
            ],
            ..Default::default()
        };
        move_api_mounts(&mut r, "/newroot").unwrap();
        assert_eq!(
            r.calls,
            [
                Call::Move {
                    from: "/dev".into(),
                    to: "/newroot/dev".into()
                },
                Call::Move {
                    from: "/proc".into(),
                    to: "/newroot/proc".into()
                },
                Call::Move {
                    from: "/sys".into(),
                    to: "/newroot/sys".into()
                },
                Call::Detach("/run".into()),
            ]
        );
    }

    #[test]
    fn filesystems_and_init_candidates() {
        let fs = "nodev\tsysfs\nnodev\ttmpfs\n\text3\n\text4\n\txfs\nnodev\tdevtmpfs\n";
        assert_eq!(parse_filesystems(fs), ["ext3", "ext4", "xfs"]);
        assert_eq!(
            init_candidates(&Init::default()),
            ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"]
        );
        let i = Init {
            path: Some("/usr/lib/systemd/systemd".into()),
            args: vec![],
        };
        assert_eq!(init_candidates(&i), ["/usr/lib/systemd/systemd"]);
    }
}
