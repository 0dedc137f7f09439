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
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

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
    Sync,
    Chdir(String),
    /// The initramfs contents deleted (the new root below it skipped).
    CleanInitramfs {
        skip: String,
    },
    Chroot(String),
    Exec {
        path: String,
        args: Vec<String>,
    },
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
    /// `lstat` succeeds: a dangling absolute symlink counts (it resolves
    /// only after chroot).
    fn lexists(&self, path: &str) -> bool;
    fn sync(&mut self);
    fn chdir(&mut self, path: &str) -> Result<(), Errno>;
    /// statfs(2) `f_type` of `path`.
    fn fs_magic(&self, path: &str) -> Option<i64>;
    /// Delete everything on the root's device except `skip` (the new root).
    fn clean_initramfs(&mut self, skip: &str);
    fn chroot(&mut self, path: &str) -> Result<(), Errno>;
    /// execve(2); returns only on failure.
    fn exec(&mut self, path: &str, args: &[String]) -> Errno;
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
    fn lexists(&self, path: &str) -> bool {
        rustix::fs::lstat(path).is_ok()
    }
    fn sync(&mut self) {
        rustix::fs::sync();
    }
    fn chdir(&mut self, path: &str) -> Result<(), Errno> {
        rustix::process::chdir(path)
    }
    fn fs_magic(&self, path: &str) -> Option<i64> {
        #[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64 musl, not everywhere
        rustix::fs::statfs(path).ok().map(|st| st.f_type as i64)
    }
    fn clean_initramfs(&mut self, skip: &str) {
        if let Some(root_dev) = dev_of("/") {
            remove_tree(Path::new("/"), root_dev, Path::new(skip), 0);
        }
    }
    fn chroot(&mut self, path: &str) -> Result<(), Errno> {
        rustix::process::chroot(path)
    }
    fn exec(&mut self, path: &str, args: &[String]) -> Errno {
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(path)
            .arg0(path)
            .args(args)
            .exec();
        Errno::from_io_error(&err).unwrap_or(Errno::NOEXEC)
    }
}

/// Records every call; mounts succeed unless listed in `fail`.
#[derive(Debug, Default)]
pub struct Recording {
    pub calls: Vec<Call>,
    pub fail: Vec<(String, Errno)>,
    pub mountpoints: Vec<String>,
    pub existing: Vec<String>,
    /// What `fs_magic` reports for the old root.
    pub root_magic: i64,
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
    fn lexists(&self, path: &str) -> bool {
        self.exists(path)
    }
    fn sync(&mut self) {
        self.calls.push(Call::Sync);
    }
    fn chdir(&mut self, path: &str) -> Result<(), Errno> {
        self.calls.push(Call::Chdir(path.into()));
        self.check(&format!("chdir:{path}"))
    }
    fn fs_magic(&self, _path: &str) -> Option<i64> {
        Some(self.root_magic)
    }
    fn clean_initramfs(&mut self, skip: &str) {
        self.calls.push(Call::CleanInitramfs { skip: skip.into() });
    }
    fn chroot(&mut self, path: &str) -> Result<(), Errno> {
        self.calls.push(Call::Chroot(path.into()));
        self.check(&format!("chroot:{path}"))
    }
    fn exec(&mut self, path: &str, args: &[String]) -> Errno {
        self.calls.push(Call::Exec {
            path: path.into(),
            args: args.to_vec(),
        });
        Errno::NOEXEC
    }
}

/// The API file systems every boot needs, in order. devtmpfs gives device
/// nodes without udev; /run carries the boot report across switch_root.
const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);
const PSEUDO: [(&str, &str, &str, MountFlags, &str); 4] = [
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, ""),
    (
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MountFlags::NOSUID,
        "mode=0755",
    ),
    (
        "tmpfs",
        "/run",
        "tmpfs",
        MountFlags::NOSUID.union(MountFlags::NODEV),
        "mode=0755",
    ),
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
        match sys.mount(src, target, fstype, flags, data) {
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
fn clean_initramfs(sys: &mut dyn Sys, new_root: &str) {
    let Some(ftype) = sys.fs_magic("/") else {
        return;
    };
    if ftype != RAMFS_MAGIC && ftype != TMPFS_MAGIC {
        log::info!("old root is not ramfs/tmpfs (f_type {ftype:#x}); leaving it alone");
        return;
    }
    sys.clean_initramfs(new_root);
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
        let is_dir =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
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
    switch_root_with(&mut RealSys, new_root, init)
}

/// The switch_root sequence over the syscall seam, in systemd
/// switch-root.c's order: check the new init exists (before any bridge is
/// burnt), sync, move /dev /proc /sys /run into the new root, chdir there,
/// delete the old initramfs (ramfs/tmpfs only), move the new root onto `/`,
/// chroot, chdir `/`, exec init.
pub fn switch_root_with(sys: &mut dyn Sys, new_root: &str, init: &Init) -> Pid1Error {
    let candidates = init_candidates(init);
    let Some(path) = candidates
        .iter()
        .find(|c| sys.lexists(&format!("{new_root}{c}")))
        .cloned()
    else {
        return Pid1Error::NoInit {
            tried: candidates
                .iter()
                .map(|c| format!("{new_root}{c}"))
                .collect(),
        };
    };
    sys.sync();
    if let Err(e) = move_api_mounts(sys, new_root) {
        return e;
    }
    if let Err(errno) = sys.chdir(new_root) {
        return Pid1Error::Chdir {
            path: new_root.into(),
            errno,
        };
    }
    clean_initramfs(sys, new_root);
    if let Err(errno) = sys.mount_move(".", "/") {
        return Pid1Error::MoveMount {
            from: new_root.into(),
            to: "/".into(),
            errno,
        };
    }
    if let Err(errno) = sys.chroot(".") {
        return Pid1Error::Chroot { errno };
    }
    if let Err(errno) = sys.chdir("/") {
        return Pid1Error::Chdir {
            path: "/".into(),
            errno,
        };
    }
    let errno = sys.exec(&path, &init.args);
    Pid1Error::Exec { path, errno }
}

pub fn uptime() -> f64 {
    crate::sys::clock::boottime_us() as f64 / 1e6
}

/// The failure policy. Never returns: PID 1 must not exit (the kernel
/// would panic with "Attempted to kill init").
///
/// `reboot` waits `delay_ms` first (`netboot.reboot_delay`): a failure that
/// repeats on every boot (a wrong secret, a typo) then stays readable on
/// the console, and DHCP and the target are not hammered in a tight loop.
pub fn fail_policy(policy: FailurePolicy, delay_ms: u64) -> ! {
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
    let cmd = match policy {
        FailurePolicy::Reboot => {
            if delay_ms > 0 {
                log::error!(
                    "rebooting in {} (netboot.reboot_delay)",
                    crate::boot::failover::Secs(std::time::Duration::from_millis(delay_ms))
                );
                std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            }
            rustix::system::RebootCommand::Restart
        }
        // Power off rather than RB_HALT_SYSTEM: a halted machine that keeps
        // its power on is indistinguishable from a hang for whoever waits on
        // it (a VM host, a BMC), and needs a hand to restart anyway.
        _ => rustix::system::RebootCommand::PowerOff,
    };
    rustix::fs::sync();
    if let Err(errno) = rustix::system::reboot(cmd) {
        // reboot(2) only fails without CAP_SYS_BOOT (not PID 1 in the init
        // namespace): say so, then wait forever rather than exit.
        log::error!("reboot(2) failed: {errno}; waiting forever");
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// What the fatal-signal handler does, set by [`crash_guard`]: 0 = power
/// off, 1 = reboot; and the reboot delay in seconds.
static CRASH_REBOOT: AtomicU8 = AtomicU8::new(0);
static CRASH_DELAY_S: AtomicU32 = AtomicU32::new(0);

/// The signals a crash of this process raises: a panic in the shipped build
/// is `ud2` (SIGILL, `-Cpanic=immediate-abort`), `abort()` is SIGABRT, bad
/// memory SIGSEGV/SIGBUS.
const FATAL_SIGNALS: [libc::c_int; 6] = [
    libc::SIGILL,
    libc::SIGABRT,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGSYS,
];

/// Async-signal-safe end of a crashed PID 1: one line on the console,
/// sync, the delay, then reboot(2) per the policy. Only raw syscalls here
/// (signal-safety(7)): no allocation, no locks, no logger.
extern "C" fn on_fatal_signal(_sig: libc::c_int) {
    const MSG: &[u8] = b"netboot: PID 1 crashed (fatal signal); applying netboot.on_fail\n";
    let reboot = CRASH_REBOOT.load(Ordering::Relaxed) == 1;
    let delay = CRASH_DELAY_S.load(Ordering::Relaxed);
    // SAFETY: write(2), sync(2), sleep(3)/nanosleep(2) and reboot(2) are
    // async-signal-safe; MSG is a static buffer of the given length.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::sync();
        if reboot && delay > 0 {
            libc::sleep(delay);
        }
        libc::reboot(if reboot {
            libc::LINUX_REBOOT_CMD_RESTART
        } else {
            libc::LINUX_REBOOT_CMD_POWER_OFF
        });
    }
    // reboot(2) failed (no CAP_SYS_BOOT): returning would re-run the
    // faulting instruction; with SA_RESETHAND the default action now ends
    // the process, and the kernel's panic setting takes over.
}

/// Install the fatal-signal handler (once) and set what it does: a crash of
/// PID 1 reboots or powers off per `netboot.on_fail` (shell cannot be
/// offered from a signal handler: it powers off, like halt) instead of
/// killing init into a kernel panic that, with the kernel's default
/// `panic=0`, hangs the machine. systemd's `crash_reboot` does the same.
pub fn crash_guard(policy: FailurePolicy, delay_ms: u64) {
    CRASH_REBOOT.store(u8::from(policy == FailurePolicy::Reboot), Ordering::Relaxed);
    CRASH_DELAY_S.store(
        u32::try_from(delay_ms / 1000).unwrap_or(u32::MAX),
        Ordering::Relaxed,
    );
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        for sig in FATAL_SIGNALS {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
            // value; the handler is an extern "C" fn that only makes
            // async-signal-safe calls; sigaction copies the struct.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
                // SA_ONSTACK: a stack overflow's SIGSEGV runs on the
                // alternate stack std installs; SA_RESETHAND: a second
                // fault inside the handler takes the default action.
                sa.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    log::warn!(
                        "sigaction({sig}) failed: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
    });
}

/// The value for /proc/sys/kernel/panic that matches the policy: `reboot`
/// → reboot that many seconds after a kernel panic (at least 1, so the
/// panic message reaches the console); `halt`/`shell` → `None`, the
/// kernel's default stays (0: stop at the panic message — a halted machine).
pub fn panic_timeout_for(policy: FailurePolicy, delay_ms: u64) -> Option<u64> {
    (policy == FailurePolicy::Reboot).then_some((delay_ms / 1000).max(1))
}

/// Set the kernel's panic behaviour from the policy, unless the operator
/// gave `panic=` on the command line (theirs wins). Covers what the signal
/// handler cannot: an oops in a driver, a panic before our handler.
pub fn kernel_panic_policy(cmdline: &str, policy: FailurePolicy, delay_ms: u64) {
    let given = crate::cmdline::tokenize::tokenize(cmdline)
        .args
        .iter()
        .any(|a| a.key == "panic");
    if given {
        return;
    }
    if let Some(secs) = panic_timeout_for(policy, delay_ms) {
        if let Err(e) = std::fs::write("/proc/sys/kernel/panic", format!("{secs}\n")) {
            log::warn!("/proc/sys/kernel/panic: {e}");
        }
    }
}

/// Test-only crash route (the VM test of the crash guard): when the
/// initramfs holds [`TEST_CRASH_FILE`], PID 1 panics on purpose right after
/// reading its command line. Only an initramfs built for that test has the
/// file; whoever can add files to the initramfs controls the boot anyway.
pub const TEST_CRASH_FILE: &str = "/etc/netboot/test-crash";

#[allow(clippy::panic)]
pub fn test_crash_route() {
    if Path::new(TEST_CRASH_FILE).exists() {
        log::error!("test-crash: {TEST_CRASH_FILE} exists; PID 1 panics now");
        panic!("test-crash");
    }
}

/// Where the root is mounted before switch_root.
pub const NEW_ROOT: &str = "/newroot";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_panic_timeout_follows_the_policy() {
        assert_eq!(panic_timeout_for(FailurePolicy::Reboot, 10_000), Some(10));
        assert_eq!(panic_timeout_for(FailurePolicy::Reboot, 0), Some(1));
        assert_eq!(panic_timeout_for(FailurePolicy::Reboot, 1_500), Some(1));
        assert_eq!(panic_timeout_for(FailurePolicy::Halt, 10_000), None);
        assert_eq!(panic_timeout_for(FailurePolicy::Shell, 10_000), None);
    }

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

    fn mv(from: &str, to: &str) -> Call {
        Call::Move {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn switch_root_order_is_systemds() {
        let mut r = Recording {
            mountpoints: vec!["/dev".into(), "/proc".into(), "/sys".into(), "/run".into()],
            existing: vec![
                "/newroot/sbin/init".into(),
                "/newroot/dev".into(),
                "/newroot/proc".into(),
                "/newroot/sys".into(),
            ],
            root_magic: RAMFS_MAGIC,
            ..Default::default()
        };
        let init = Init {
            path: None,
            args: vec!["single".into()],
        };
        let e = switch_root_with(&mut r, "/newroot", &init);
        assert_eq!(
            r.calls,
            [
                Call::Sync,
                mv("/dev", "/newroot/dev"),
                mv("/proc", "/newroot/proc"),
                mv("/sys", "/newroot/sys"),
                // /newroot/run is missing: detached rather than moved.
                Call::Detach("/run".into()),
                Call::Chdir("/newroot".into()),
                Call::CleanInitramfs {
                    skip: "/newroot".into()
                },
                mv(".", "/"),
                Call::Chroot(".".into()),
                Call::Chdir("/".into()),
                Call::Exec {
                    path: "/sbin/init".into(),
                    args: vec!["single".into()]
                },
            ]
        );
        assert_eq!(
            e,
            Pid1Error::Exec {
                path: "/sbin/init".into(),
                errno: Errno::NOEXEC
            }
        );
    }

    #[test]
    fn switch_root_keeps_a_root_that_is_not_an_initramfs_and_stops_at_the_first_error() {
        let mut r = Recording {
            existing: vec!["/newroot/bin/sh".into()],
            root_magic: 0xef53, // ext4: never deleted
            fail: vec![("chroot:.".into(), Errno::PERM)],
            ..Default::default()
        };
        let e = switch_root_with(&mut r, "/newroot", &Init::default());
        assert_eq!(
            r.calls,
            [
                Call::Sync,
                Call::Chdir("/newroot".into()),
                mv(".", "/"),
                Call::Chroot(".".into()),
            ]
        );
        assert_eq!(e, Pid1Error::Chroot { errno: Errno::PERM });
        let mut r = Recording::default();
        let e = switch_root_with(&mut r, "/newroot", &Init::default());
        assert!(r.calls.is_empty(), "nothing is touched without an init");
        assert_eq!(
            e.to_string(),
            Pid1Error::NoInit {
                tried: ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"]
                    .map(|c| format!("/newroot{c}"))
                    .to_vec()
            }
            .to_string()
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
