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

/// Devices with a modalias that are on no bus: the CPU's (`cpu:type:…`,
/// the CPU-feature modules) and DMI's (`dmi:…`).
const BUSLESS: [&str; 2] = [
    "devices/system/cpu/modalias",
    "devices/virtual/dmi/id/modalias",
];

/// The modalias of every device on a bus (`sysfs/bus/*/devices/*/modalias`,
/// through the bus's links) plus the [`BUSLESS`] ones: the devices a
/// driver can bind, as [`scan_modaliases`] finds them, without walking the
/// whole of `/sys/devices` (under QEMU TCG that walk took ≈ 110 ms a
/// round at boot). Without a readable `sysfs/bus`, the walk. Sorted, each
/// once.
pub fn scan_bus_modaliases(sysfs: &Path) -> Vec<String> {
    let Ok(buses) = std::fs::read_dir(sysfs.join("bus")) else {
        return scan_modaliases(sysfs);
    };
    let mut out = Vec::new();
    let mut read = |p: &Path| {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
        }
    };
    let mut any = false;
    for bus in buses.flatten() {
        let Ok(devs) = std::fs::read_dir(bus.path().join("devices")) else {
            continue;
        };
        any = true;
        for d in devs.flatten() {
            read(&d.path().join("modalias"));
        }
    }
    if !any {
        return scan_modaliases(sysfs);
    }
    for b in BUSLESS {
        read(&sysfs.join(b));
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bus_scan_finds_what_the_walk_finds() {
        let d = std::env::temp_dir().join(format!("nbbus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let pci = d.join("devices/pci0000:00/0000:00:03.0");
        std::fs::create_dir_all(pci.join("virtio0")).unwrap();
        std::fs::write(pci.join("modalias"), "pci:v00001AF4d00001000\n").unwrap();
        std::fs::write(pci.join("virtio0/modalias"), "virtio:d00000001v00001AF4\n").unwrap();
        let cpu = d.join("devices/system/cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(
            cpu.join("modalias"),
            "cpu:type:x86,ven0000fam0006mod003F:feature:,0000\n",
        )
        .unwrap();
        // Without bus links: the walk.
        assert_eq!(scan_bus_modaliases(&d), scan_modaliases(&d));
        for (bus, dev, target) in [
            ("pci", "0000:00:03.0", pci.clone()),
            ("virtio", "virtio0", pci.join("virtio0")),
        ] {
            let devs = d.join("bus").join(bus).join("devices");
            std::fs::create_dir_all(&devs).unwrap();
            std::os::unix::fs::symlink(&target, devs.join(dev)).unwrap();
        }
        std::fs::create_dir_all(d.join("bus/empty/devices")).unwrap();
        let got = scan_bus_modaliases(&d);
        assert_eq!(got, scan_modaliases(&d));
        assert_eq!(got.len(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
