//! Coldplug: the modalias of every device already in sysfs, matched
//! against modules.alias, loaded in rounds — what udev's coldplug trigger
//! and modprobe do on a full system.

use super::index::{ModuleIndex, ModulesError};
use super::load::{load_one, Loaded, ModuleLoader};
use std::path::Path;

/// Deepest directory nesting walked below `/sys/devices`. Real trees are
/// about 12 deep (PCI bridge chains); the bound only stops a runaway walk.
const MAX_SYSFS_DEPTH: usize = 24;

/// Result of coldplug: what was loaded, and what failed (not fatal: a
/// driver may refuse hardware it cannot drive, like udev we carry on).
#[derive(Debug, Default)]
pub struct Coldplug {
    pub loaded: Vec<Loaded>,
    pub failed: Vec<ModulesError>,
    /// Rounds that found new modaliases.
    pub rounds: usize,
}

/// Coldplug: match every device's modalias below `sysfs/devices` against
/// modules.alias and load the matching modules present in this index. Runs
/// in rounds (at most `max_rounds`), because loading a bus driver creates
/// new devices: virtio_pci binds the PCI device and registers the virtio
/// device `virtio:d00000001v…`, which only then matches virtio_net.
pub fn coldplug(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    sysfs: &Path,
    max_rounds: usize,
) -> Coldplug {
    coldplug_with(index, loader, max_rounds, || scan_modaliases(sysfs))
}

/// [`coldplug`] with the sysfs scan injected (for tests).
pub fn coldplug_with(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    max_rounds: usize,
    mut scan: impl FnMut() -> Vec<String>,
) -> Coldplug {
    let mut out = Coldplug::default();
    let mut seen_alias: Vec<String> = Vec::new();
    let mut tried: Vec<String> = Vec::new();
    for _ in 0..max_rounds {
        let fresh: Vec<String> = scan()
            .into_iter()
            .filter(|a| {
                let new = !seen_alias.contains(a);
                if new {
                    seen_alias.push(a.clone());
                }
                new
            })
            .collect();
        if fresh.is_empty() {
            break;
        }
        out.rounds += 1;
        let mut wanted: Vec<String> = Vec::new();
        for a in &fresh {
            for m in index.match_alias(a) {
                if !tried.contains(&m) {
                    tried.push(m.clone());
                    wanted.push(m);
                }
            }
        }
        if wanted.is_empty() {
            continue;
        }
        // Resolve one module at a time so one bad entry does not block the
        // rest; modules already loaded by an earlier entry are skipped.
        for m in wanted {
            let list = match index.resolve(&[m.as_str()]) {
                Ok(l) => l,
                Err(e) => {
                    out.failed.push(e);
                    continue;
                }
            };
            for mp in list {
                if out.loaded.iter().any(|l| l.name == mp.name) {
                    continue;
                }
                match load_one(loader, &mp) {
                    Ok(l) => out.loaded.push(l),
                    Err(e) => {
                        out.failed.push(e);
                        break;
                    }
                }
            }
        }
    }
    out
}

/// Collect every `modalias` file's content below `sysfs/devices`, without
/// following symlinks and at most [`MAX_SYSFS_DEPTH`] deep. Unreadable
/// entries are skipped: devices come and go while we walk. Sorted, each once.
pub fn scan_modaliases(sysfs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(sysfs.join("devices"), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for ent in rd.flatten() {
            // DirEntry::file_type does not follow symlinks.
            let Ok(ft) = ent.file_type() else { continue };
            if ft.is_dir() {
                if depth < MAX_SYSFS_DEPTH {
                    stack.push((ent.path(), depth + 1));
                }
            } else if ft.is_file() && ent.file_name() == "modalias" {
                if let Ok(s) = std::fs::read_to_string(ent.path()) {
                    let s = s.trim();
                    if !s.is_empty() {
                        out.push(s.to_string());
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}
