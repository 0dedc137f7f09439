//! Fallback for `netboot attach` in images whose module directory has only
//! kmod's binary indexes (`modules.dep.bin`, `modules.alias.bin`: mkinitcpio
//! deletes the text ones): the image's own `modprobe` resolves names and
//! device aliases there. Bounded: one `modprobe` run per call, killed
//! after [`MODPROBE_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One modprobe run; a module's init can take seconds (firmware), never this.
pub const MODPROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Where initramfs images put modprobe (kmod or busybox).
const CANDIDATES: [&str; 4] = [
    "/usr/bin/modprobe",
    "/usr/sbin/modprobe",
    "/sbin/modprobe",
    "/bin/modprobe",
];

/// The module directory has only binary indexes, and a modprobe exists.
pub fn usable(moddir: &Path) -> Option<PathBuf> {
    if moddir.join("modules.dep").exists() || !moddir.join("modules.dep.bin").exists() {
        return None;
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// `modprobe -q -a ARGS…` (module names or modaliases); the exit status is
/// modprobe's (1 when any one is unknown: not fatal for aliases).
pub fn run(modprobe: &Path, args: &[String]) -> Result<bool, String> {
    if args.is_empty() {
        return Ok(true);
    }
    let mut child = Command::new(modprobe)
        .arg("-q")
        .arg("-a")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", modprobe.display()))?;
    let until = Instant::now() + MODPROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} s",
                    modprobe.display(),
                    MODPROBE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{}: {e}", modprobe.display())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_for_a_directory_with_binary_indexes_alone() {
        let d = std::env::temp_dir().join(format!("netboot-modprobe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(usable(&d), None, "no index at all");
        std::fs::write(d.join("modules.dep.bin"), b"").unwrap();
        let has_modprobe = CANDIDATES.iter().any(|c| Path::new(c).is_file());
        assert_eq!(usable(&d).is_some(), has_modprobe);
        std::fs::write(d.join("modules.dep"), b"").unwrap();
        assert_eq!(usable(&d), None, "the text index is ours to read");
        assert!(run(Path::new("/nonexistent/modprobe"), &["x".into()]).is_err());
        assert_eq!(run(Path::new("/nonexistent/modprobe"), &[]), Ok(true));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
