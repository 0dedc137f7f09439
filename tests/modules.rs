//! Module index parsing, resolution, coldplug rounds and loading, with small
//! fixture tables, plus a check against a real Debian kernel tree (cached
//! under `target/vm/kernels/*/kroot`, cross-checked with modprobe). Without
//! that tree those tests print `SKIPPED: …` (a failure with
//! NETBOOT_REQUIRE_VM=1).

mod support;

use netboot::kmod::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEP: &str = "\
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko.zst: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/a.ko:
kernel/b.ko:
kernel/c.ko:
";
const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-ext4 ext4
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
";
const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep cifs gcm
softdep a post: b
softdep b pre: a
softdep c pre: crc16
softdep c pre: ext4
";
const BUILTIN: &str = "kernel/drivers/scsi/scsi_mod.ko\n";

fn fixture() -> ModuleIndex {
    let p = Path::new("x");
    ModuleIndex::from_tables(
        Path::new("/lib/modules/test"),
        parse_dep(DEP, p).unwrap(),
        parse_alias(ALIAS, p).unwrap(),
        parse_softdep(SOFTDEP, p).unwrap(),
        parse_builtin(BUILTIN),
    )
}

fn names(v: &[ModulePath]) -> Vec<&str> {
    v.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn parse_errors_name_file_and_line() {
    let e = parse_dep("a.ko:\nbroken line\n", Path::new("/m/modules.dep")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/m/modules.dep:2: malformed line \"broken line\""
    );
    let e = parse_alias("alias onlyone\n", Path::new("/m/modules.alias")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/m/modules.alias:1: malformed line \"alias onlyone\""
    );
    let e = parse_softdep("options x y=1\n", Path::new("/m/s")).unwrap_err();
    assert!(e.to_string().starts_with("/m/s:1:"), "{e}");
}

#[test]
fn softdep_parse_ignores_words_before_keywords() {
    let s = parse_softdep(
        "softdep cifs gcm\nsoftdep x-y pre: a b post: c\n",
        Path::new("s"),
    )
    .unwrap();
    assert_eq!(s[0].pre, Vec::<String>::new());
    assert_eq!(s[1].module, "x_y");
    assert_eq!(s[1].pre, vec!["a", "b"]);
    assert_eq!(s[1].post, vec!["c"]);
}

#[test]
fn resolve_orders_deps_softdeps_and_aliases() {
    let idx = fixture();
    let r = idx.resolve(&["fs-ext4"]).unwrap();
    // softdep pre: crypto-crc32c → the generic module only, then the deps
    // last-first, then ext4.
    assert_eq!(
        names(&r),
        ["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"]
    );
    assert_eq!(
        r[4].path,
        PathBuf::from("/lib/modules/test/kernel/fs/ext4/ext4.ko")
    );
    // Each once, builtins silently satisfied, `-`/`_` alike.
    let r = idx
        .resolve(&["virtio-net", "virtio_pci", "scsi_mod", "virtio_net"])
        .unwrap();
    assert_eq!(
        names(&r),
        ["virtio_ring", "virtio", "virtio_net", "virtio_pci"]
    );
    // Only the first softdep line of a module counts, as in kmod.
    assert_eq!(names(&idx.resolve(&["c"]).unwrap()), ["crc16", "c"]);
    // Softdep cycle a post: b, b pre: a terminates.
    assert_eq!(names(&idx.resolve(&["a"]).unwrap()), ["a", "b"]);
    assert_eq!(names(&idx.resolve(&["b"]).unwrap()), ["a", "b"]);
    // The boot extras resolve.
    assert_eq!(
        names(&idx.resolve(BOOT_EXTRAS).unwrap()),
        ["crc32c_generic"]
    );
    let e = idx.resolve(&["ext4", "nosuch"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "module \"nosuch\" is neither a module, a builtin nor an alias in /lib/modules/test (hint: add it to the initramfs)"
    );
}

#[test]
fn alias_matching_only_for_present_modules() {
    let idx = fixture();
    assert_eq!(
        idx.match_alias("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
        ["virtio_pci"]
    );
    // e1000 is in modules.alias but not in this (initramfs) modules.dep.
    assert!(idx
        .match_alias("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00")
        .is_empty());
    assert_eq!(
        idx.match_alias("crypto-crc32c"),
        ["crc32c_intel", "crc32c_generic"]
    );
}

#[derive(Default)]
struct Fake {
    loaded: HashSet<String>,
    calls: Vec<PathBuf>,
    fail: Option<(String, i32)>,
}

impl ModuleLoader for Fake {
    fn is_loaded(&self, name: &str) -> bool {
        self.loaded.contains(name)
    }
    fn load(&mut self, path: &Path) -> Result<(), ModulesError> {
        self.calls.push(path.to_path_buf());
        let name = module_name(&path.to_string_lossy());
        if let Some((f, errno)) = &self.fail {
            if *f == name {
                return Err(ModulesError::Load {
                    path: path.to_path_buf(),
                    errno: *errno,
                });
            }
        }
        self.loaded.insert(name);
        Ok(())
    }
}

#[test]
fn load_skips_loaded_and_reports_errors() {
    let idx = fixture();
    let mut fake = Fake::default();
    fake.loaded.insert("mbcache".into());
    let r = load_by_name(&idx, &mut fake, &[BOOT_EXTRAS, &["ext4"]].concat()).unwrap();
    assert_eq!(
        r.iter()
            .map(|l| (l.name.as_str(), l.already))
            .collect::<Vec<_>>(),
        [
            ("crc32c_generic", false),
            ("jbd2", false),
            ("mbcache", true),
            ("crc16", false),
            ("ext4", false)
        ]
    );
    assert_eq!(fake.calls.len(), 4);

    let mut fake = Fake {
        fail: Some(("jbd2".into(), libc::ENOEXEC)),
        ..Fake::default()
    };
    let e = load_by_name(&idx, &mut fake, &["ext4"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "finit_module(/lib/modules/test/kernel/fs/jbd2/jbd2.ko): {} (hint: built for another kernel?)",
            std::io::Error::from_raw_os_error(libc::ENOEXEC)
        )
    );
    assert_eq!(fake.calls.len(), 2, "stops at the first failure");
}

#[test]
fn coldplug_runs_in_rounds_until_nothing_new() {
    let idx = fixture();
    let mut fake = Fake::default();
    let pci = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
    let scans = std::cell::RefCell::new(0);
    let c = coldplug_with(&idx, &mut fake, 4, || {
        *scans.borrow_mut() += 1;
        let mut s: Vec<String> = [pci, "acpi:PNP0A03:", "pci:v00008086d00001237sv*"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // The virtio device exists once virtio_pci is loaded (it binds the
        // PCI function and registers the virtio device).
        if fake_has(&s, pci) && *scans.borrow() > 1 {
            s.push("virtio:d00000001v00001AF4".into());
        }
        s
    });
    assert!(c.failed.is_empty(), "{:?}", c.failed);
    assert_eq!(
        c.loaded.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["virtio_ring", "virtio", "virtio_pci", "virtio_net"]
    );
    assert_eq!(c.rounds, 2);
    assert_eq!(*scans.borrow(), 3, "third scan finds nothing new and stops");
}

fn fake_has(s: &[String], a: &str) -> bool {
    s.iter().any(|x| x == a)
}

#[test]
fn coldplug_failures_are_collected_not_fatal() {
    let idx = fixture();
    let mut fake = Fake {
        fail: Some(("virtio_pci".into(), libc::ENODEV)),
        ..Fake::default()
    };
    let c = coldplug_with(&idx, &mut fake, 4, || {
        vec!["pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00".to_string()]
    });
    assert_eq!(c.failed.len(), 1);
    assert!(
        c.failed[0].to_string().contains("no matching hardware"),
        "{}",
        c.failed[0]
    );
}

#[test]
fn scan_walks_without_following_symlinks() {
    let d = std::env::temp_dir().join(format!("nbmod-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let dev = d.join("devices/pci0000:00/0000:00:03.0");
    std::fs::create_dir_all(dev.join("virtio0")).unwrap();
    std::fs::write(dev.join("modalias"), "pci:v00001AF4d00001000\n").unwrap();
    std::fs::write(dev.join("virtio0/modalias"), "virtio:d00000001v00001AF4\n").unwrap();
    std::os::unix::fs::symlink(d.join("devices"), dev.join("loop")).unwrap();
    let s = scan_modaliases(&d);
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!(
        s.into_iter().collect::<Vec<_>>(),
        ["pci:v00001AF4d00001000", "virtio:d00000001v00001AF4"]
    );
}

/// A depmod'ed Debian kernel tree: `target/vm/kernels/*/kroot/lib/modules/KVER`.
/// A cached Debian kernel tree; the 6.1 one when several are cached (the
/// expectations below are 6.1's: on 6.12 `virtio_pci` is built in).
fn real_tree() -> Option<(PathBuf, PathBuf, String)> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vm/kernels");
    let mut found = Vec::new();
    for k in std::fs::read_dir(base).ok()?.flatten() {
        let kroot = k.path().join("kroot");
        let Ok(mods) = std::fs::read_dir(kroot.join("lib/modules")) else {
            continue;
        };
        for m in mods.flatten() {
            if m.path().join("modules.dep").exists() {
                let kver = m.file_name().to_string_lossy().into_owned();
                found.push((kroot.clone(), m.path(), kver));
            }
        }
    }
    found.sort_by_key(|(_, _, kver)| (!kver.starts_with("6.1.0-"), kver.clone()));
    found.into_iter().next()
}

fn need_tree() -> Option<(PathBuf, PathBuf, String)> {
    let t = real_tree();
    if t.is_none() {
        support::skip_unless_required(
            "NETBOOT_REQUIRE_VM",
            "the kernel-tree check",
            "no kernel tree under target/vm/kernels/*/kroot (qemu/kernel.sh fetches one)",
        );
    }
    t
}

#[test]
fn real_debian_tree_resolves_the_boot_set() {
    let Some((kroot, dir, kver)) = need_tree() else {
        return;
    };
    let idx = ModuleIndex::load(&dir).unwrap();
    let req = [
        "crc32c",
        "iscsi_tcp",
        "sd_mod",
        "ext4",
        "virtio_net",
        "virtio_pci",
    ];
    let r = idx.resolve(&req).unwrap();
    let got = names(&r);
    if kver.starts_with("6.1.0-") {
        // iscsi-kernel-and-login.md §8.2, names normalised.
        let doc = "crc32c_generic virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
                   virtio_pci failover net_failover virtio_net scsi_common scsi_mod \
                   scsi_transport_iscsi libiscsi libiscsi_tcp iscsi_tcp crct10dif_common crc64 \
                   crc_t10dif crc64_rocksoft t10_pi sd_mod jbd2 mbcache crc16 ext4";
        let mut want: Vec<&str> = doc.split_whitespace().collect();
        // The reference was loaded with insmod; we also honour the declared
        // `softdep crc_t10dif pre: crct10dif` (modules.softdep), as modprobe
        // does, so the generic crct10dif comes before crc_t10dif.
        want.push("crct10dif_generic");
        let pos = |n: &str| got.iter().position(|g| *g == n);
        assert!(pos("crct10dif_generic") < pos("crc_t10dif"), "{got:?}");
        assert_eq!(got.first(), Some(&"crc32c_generic"), "{got:?}");
        let mut a = got.clone();
        let mut b = want.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "same module set as the reference");
    }
    // Every module after all its modules.dep dependencies (our own reading
    // of the table, independent of the resolver's traversal).
    let dep_text = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    for line in dep_text.lines() {
        let Some((m, deps)) = line.split_once(':') else {
            continue;
        };
        let Some(i) = got.iter().position(|g| *g == module_name(m)) else {
            continue;
        };
        for d in deps.split_whitespace() {
            let j = got.iter().position(|g| *g == module_name(d));
            assert!(
                matches!(j, Some(j) if j < i),
                "{m} needs {d} first; order: {got:?}"
            );
        }
    }
    // Independent check with modprobe: every module comes after all its
    // deps, and modprobe's dependency list for it is contained in ours.
    for (i, m) in r.iter().enumerate() {
        assert!(m.path.exists(), "{}", m.path.display());
        let out = Command::new("modprobe")
            .args(["-d"])
            .arg(&kroot)
            .args(["-S", &kver, "--show-depends", "--ignore-install", &m.name])
            .output();
        let Ok(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            let Some(p) = line.strip_prefix("insmod ") else {
                continue;
            };
            // Our one deliberate difference: softdeps through an alias with
            // several implementations keep only the generic one, modprobe
            // also loads the CPU-specific ones under kernel/arch/.
            if p.contains("/kernel/arch/") {
                continue;
            }
            let dep = module_name(p.split_whitespace().next().unwrap_or(""));
            let pos = got.iter().position(|g| *g == dep);
            assert!(
                matches!(pos, Some(j) if j <= i),
                "{} needs {dep} before it (modprobe: {line}); order: {got:?}",
                m.name
            );
        }
    }
}

#[test]
fn real_debian_tree_alias_matching_agrees_with_modprobe() {
    let Some((kroot, dir, kver)) = need_tree() else {
        return;
    };
    let idx = ModuleIndex::load(&dir).unwrap();
    let cases = [
        (
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
            "virtio_pci",
        ),
        ("virtio:d00000001v00001AF4", "virtio_net"),
        (
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
            "e1000",
        ),
        ("fs-ext4", "ext4"),
    ];
    for (alias, want) in cases {
        let ours = idx.match_alias(alias);
        assert_eq!(ours, [want], "{alias}");
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(&kroot)
            .args(["-S", &kver, "--resolve-alias", alias])
            .output();
        if let Ok(out) = out {
            let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(module_name)
                .collect();
            assert_eq!(ours, theirs, "modprobe --resolve-alias {alias}");
        }
    }
    // The boot extras resolve to the generic implementation only.
    assert_eq!(
        names(&idx.resolve(BOOT_EXTRAS).unwrap()),
        ["crc32c_generic"]
    );
    // modprobe loads all crc32c implementations; we keep the generic one.
    let all = idx.match_alias("crypto-crc32c");
    assert!(all.contains(&"crc32c_generic".to_string()), "{all:?}");
}

/// This host's own devices (whatever they are) against the Debian tables:
/// our fnmatch must pick exactly the modules modprobe picks, for every
/// modalias in /sys (PCI, virtio, ACPI, platform, the long `cpu:` one).
#[test]
fn real_sysfs_modaliases_agree_with_modprobe() {
    let Some((kroot, dir, kver)) = need_tree() else {
        return;
    };
    let idx = ModuleIndex::load(&dir).unwrap();
    let t = std::time::Instant::now();
    let aliases = scan_modaliases(Path::new("/sys"));
    let scan = t.elapsed();
    if aliases.is_empty() {
        support::note_skip("no modalias files under /sys/devices");
        return;
    }
    let t = std::time::Instant::now();
    let ours: Vec<Vec<String>> = aliases.iter().map(|a| idx.match_alias(a)).collect();
    eprintln!(
        "{} modaliases: scan {scan:?}, match against {} modules {:?}",
        aliases.len(),
        dir.display(),
        t.elapsed()
    );
    for (a, ours) in aliases.iter().zip(&ours) {
        let Ok(out) = Command::new("modprobe")
            .arg("-d")
            .arg(&kroot)
            .args(["-S", &kver, "--resolve-alias", a])
            .output()
        else {
            return;
        };
        // modprobe also names builtins (modules.builtin.alias); we only
        // return loadable modules.
        let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(module_name)
            .filter(|m| idx.has_module(m))
            .collect();
        let mut o = ours.clone();
        let mut t = theirs.clone();
        o.sort();
        t.sort();
        t.dedup();
        assert_eq!(o, t, "modalias {a}");
    }
    // Coldplug with a recording loader over the real tree finishes and
    // loads only what the aliases matched plus their dependencies.
    #[derive(Default)]
    struct Rec(Vec<String>);
    impl ModuleLoader for Rec {
        fn is_loaded(&self, _: &str) -> bool {
            false
        }
        fn load(&mut self, path: &Path) -> Result<(), ModulesError> {
            self.0.push(module_name(&path.to_string_lossy()));
            Ok(())
        }
    }
    let mut rec = Rec::default();
    let c = coldplug(&idx, &mut rec, Path::new("/sys"), 4);
    assert!(c.failed.is_empty(), "{:?}", c.failed);
    for m in ours.iter().flatten() {
        assert!(rec.0.contains(m), "{m} matched but not loaded: {:?}", rec.0);
    }
    let mut uniq = rec.0.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), rec.0.len(), "each module once: {:?}", rec.0);
}

/// The real loader's failure paths (this host cannot load modules, and a
/// test must not load any): a missing file and a file that is no module.
#[test]
fn kernel_loader_errors_name_the_file() {
    let mut l = KernelLoader::new(Path::new("/sys"));
    let e = l.load(Path::new("/nonexistent/x.ko")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("opening module /nonexistent/x.ko: "),
        "{e}"
    );
    let d = std::env::temp_dir().join(format!("nbko-{}.ko", std::process::id()));
    std::fs::write(&d, b"not an ELF module").unwrap();
    let r = l.load(&d);
    std::fs::remove_file(&d).unwrap();
    match r {
        Err(ModulesError::Load { path, errno }) => {
            assert_eq!(path, d);
            // ENOEXEC (bad ELF), ENOSYS (no module support), EPERM (not
            // root / modules_disabled) depending on the host.
            assert!(
                [libc::ENOEXEC, libc::ENOSYS, libc::EPERM, libc::EINVAL].contains(&errno),
                "{errno}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!l.is_loaded("surely_not_a_module"));
}
