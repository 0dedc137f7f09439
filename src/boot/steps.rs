//! The steps between module loading and the root mount, each recorded with
//! its facts. Kept apart from `mod.rs` so the flow there reads like the plan.

use super::attach::Attached;
use super::pid1::{self, RealSys};
use super::{Exec, StepError};
use crate::disk::resolve::{self, Root};
use crate::disk::scsi as block;
use crate::events::{step, Facts};
use crate::kmod::{self, KernelLoader, ModuleIndex};
use crate::netlink::uevent::UeventSocket;
use crate::plan::{BootPlan, RootPath};
use std::path::Path;
use std::time::Instant;

/// Modules the boot path always needs: the iSCSI transport and the SCSI
/// disk driver ([`kmod::BOOT_EXTRAS`], crc32c, is added first). The NIC
/// driver comes from coldplug; the file system module at mount time.
const BOOT_MODULES: [&str; 2] = ["iscsi_tcp", "sd_mod"];
/// Coldplug rounds: PCI → virtio bus → virtio_net needs two; a margin.
const COLDPLUG_ROUNDS: usize = 4;

pub fn modules(
    exec: &mut Exec,
    dir: &Path,
    plan: &BootPlan,
    mode: super::Mode,
) -> Result<(ModuleIndex, super::preload::Lists), StepError> {
    let net = &plan.network;
    exec.step(
        step::MODULES,
        Facts::new().str("dir", dir.display().to_string()),
        || {
            let t = Instant::now();
            let none = super::preload::Lists::default;
            // Inside another init the modules may all be built in or loaded
            // already, and an image may carry no index: nothing to load is
            // then not an error (a missing iscsi_tcp shows at iscsi.connect).
            if mode == super::Mode::Attach && !dir.join("modules.dep").exists() {
                // mkinitcpio keeps only kmod's binary indexes: the image's
                // modprobe reads them (names, then device aliases).
                if let Some(modprobe) = kmod::modprobe::usable(dir) {
                    let mut names: Vec<String> = kmod::BOOT_EXTRAS
                        .iter()
                        .chain(BOOT_MODULES.iter())
                        .map(|s| s.to_string())
                        .collect();
                    // Rounds, as coldplug: a bus driver (virtio_pci) makes
                    // the devices (virtio:d00000001…) the next round loads.
                    let mut asked: Vec<String> = Vec::new();
                    for _ in 0..COLDPLUG_ROUNDS {
                        names.extend(kmod::scan_bus_modaliases(Path::new("/sys")));
                        names.sort();
                        names.dedup();
                        names.retain(|n| !asked.contains(n));
                        if names.is_empty() {
                            break;
                        }
                        if let Err(e) = kmod::modprobe::run(&modprobe, &names) {
                            log::warn!("{e}");
                        }
                        asked.append(&mut names);
                    }
                    let names = asked;
                    crate::net::raise_early(net);
                    return Ok((
                        (ModuleIndex::default(), none()),
                        Facts::new()
                            .str("modprobe", modprobe.display().to_string())
                            .u64("requested", names.len() as u64)
                            .u64("took_ms", t.elapsed().as_millis() as u64),
                    ));
                }
                log::info!("{}: no modules.dep; loading no modules", dir.display());
                crate::net::raise_early(net);
                return Ok((
                    (ModuleIndex::default(), none()),
                    Facts::new().str("skipped", "no modules.dep"),
                ));
            }
            let index = ModuleIndex::load(dir)?;
            let index_ms = t.elapsed().as_millis() as u64;
            let sys = Path::new("/sys");
            let mut loader = KernelLoader::new(sys);
            // The NIC first (coldplug) and its link raised at once, so the
            // kernel's carrier handling runs while the rest loads.
            let mut scan_us = 0u64;
            let cold = kmod::coldplug_with(&index, &mut loader, COLDPLUG_ROUNDS, || {
                let s = Instant::now();
                let v = kmod::scan_bus_modaliases(sys);
                scan_us += s.elapsed().as_micros() as u64;
                v
            });
            for e in &cold.failed {
                log::warn!("coldplug: {e}");
            }
            crate::net::raise_early(net);
            let mut named = Vec::new();
            // vlan=: the kernel would request 8021q for the link kind
            // (`rtnl-link-vlan`) through a modprobe we do not have; the
            // network step needs it.
            if !net.vlans.is_empty() {
                named.extend(kmod::load_by_name(&index, &mut loader, &["8021q"])?);
            }
            let storage_names: Vec<&str> = kmod::BOOT_EXTRAS
                .iter()
                .chain(BOOT_MODULES.iter())
                .copied()
                .collect();
            let mut lists = super::preload::Lists::default();
            if mode == super::Mode::Attach {
                // Inside another init: in this step, in order, only what is
                // missing (its callers read this step's `loaded`).
                named.extend(kmod::load_by_name(&index, &mut loader, &storage_names)?);
            } else {
                // PID 1: the iSCSI/SCSI modules, then the root's file
                // system, load in a helper thread while the network comes
                // up and the login and disk scan wait (preload.rs).
                lists.storage = index.resolve(&storage_names)?;
                lists.storage_pre = kmod::parallel::prerequisites(&index, &lists.storage);
                lists.fs_types = speculative_fs(plan, &index);
                match index.resolve(&fs_aliases(&index, &lists.fs_types)) {
                    Ok(l) => lists.fs = l,
                    Err(e) => log::debug!("file-system modules not preloaded: {e}"),
                }
                lists.fs_pre = kmod::parallel::prerequisites(&index, &lists.fs);
            }
            let fresh = |l: &[kmod::Loaded]| {
                l.iter()
                    .filter(|m| !m.already)
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let facts = Facts::new()
                .str("loaded", fresh(&named))
                .str("coldplug", fresh(&cold.loaded))
                .u64("count", (named.len() + cold.loaded.len()) as u64)
                .u64("coldplug_rounds", cold.rounds as u64)
                .u64("index_ms", index_ms)
                .u64("scan_ms", scan_us / 1000)
                .u64("took_ms", t.elapsed().as_millis() as u64);
            Ok::<_, kmod::ModulesError>(((index, lists), facts))
        },
    )
}

/// The file systems worth loading before the disk is there: `rootfstype=`
/// (the command line's; a fetched config may name another, which the
/// mount then loads), else the one file system this image carries a
/// module for (our initramfs carries exactly the root's, `--fs`). Several
/// candidates without `rootfstype=`: none (the probe decides at mount).
fn speculative_fs(plan: &BootPlan, index: &ModuleIndex) -> Vec<String> {
    if let Some(list) = &plan.root.fstype {
        return list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let mods = index.fs_modules();
    if mods.len() == 1 {
        return mods;
    }
    Vec::new()
}

/// Names to resolve for file-system types: the module itself when it has
/// the type's name, else its `fs-TYPE` alias; builtins and types without a
/// module here are left out.
fn fs_aliases(index: &ModuleIndex, types: &[String]) -> Vec<String> {
    types
        .iter()
        .filter(|t| !index.is_builtin(t))
        .filter_map(|t| {
            if index.has_module(t) {
                Some(t.clone())
            } else {
                let alias = format!("fs-{t}");
                (!index.match_alias(&alias).is_empty()).then_some(alias)
            }
        })
        .collect()
}

/// Bring the network up; returns what each configured link got (the first
/// is the boot NIC: its MAC names the generated initiator; DHCP's host
/// name and root path come from here too).
pub fn network(
    exec: &mut Exec,
    plan: &BootPlan,
    deadline: Instant,
    existing: crate::net::Existing,
) -> Result<Vec<crate::net::LinkReport>, StepError> {
    exec.step(step::NET_LINK, Facts::new(), || {
        let links = crate::net::bring_up(&plan.network, deadline, existing)?;
        let mut f = Facts::new();
        for (i, l) in links.iter().enumerate() {
            let p = if i == 0 {
                String::new()
            } else {
                format!("{i}.")
            };
            f = f
                .str(&format!("{p}iface"), l.iface.clone())
                .str(&format!("{p}mac"), l.mac.clone())
                .u64(&format!("{p}carrier_ms"), l.carrier_ms)
                .str(
                    &format!("{p}address"),
                    format!("{}/{}", l.address, l.prefix_len),
                );
            if let Some(g) = &l.gateway {
                f = f.str(&format!("{p}gateway"), g.to_string());
            }
            // What DHCP learned (none of these for a static entry).
            if let Some(s) = &l.dhcp_server {
                f = f.str(&format!("{p}dhcp_server"), s.to_string());
            }
            if let Some(s) = l.lease_s {
                f = f.u64(&format!("{p}lease_s"), s.into());
            }
            if let Some(ms) = l.dhcp_ms {
                f = f.u64(&format!("{p}dhcp_ms"), ms);
            }
            // Option 17 may carry CHAP credentials (RFC 4173 user:pass@):
            // masked here, before the step's event leaves on the connector
            // (the redactor learns the secret only once the path is used).
            if let Some(r) = &l.root_path {
                f = f.str(&format!("{p}root_path"), crate::cmdline::rootpath::mask(r));
            }
            if let Some(h) = &l.hostname {
                f = f.str(&format!("{p}hostname"), h.clone());
            }
            if !l.dns.is_empty() {
                let dns: Vec<String> = l.dns.iter().map(|a| a.to_string()).collect();
                f = f.str(&format!("{p}dns"), dns.join(","));
            }
        }
        Ok::<_, crate::net::NetError>((links, f))
    })
}

/// Scan the session's host, wait for the LUN and its partitions, resolve
/// `root=` on it. Returns the LUN's disk name (`sda`) and the root on it.
pub fn disk(
    exec: &mut Exec,
    plan: &BootPlan,
    path: &RootPath,
    a: &Attached,
    uevents: &mut UeventSocket,
    deadline: Instant,
) -> Result<(String, Root), StepError> {
    let sys = Path::new("/sys");
    let host = a.session.host_no;
    exec.step(
        step::SCSI_SCAN,
        Facts::new().u64("host", host.into()),
        || block::scan_host(sys, host).map(|()| ((), Facts::new())),
    )?;
    let disk = exec.step(
        step::DISK_WAIT,
        Facts::new()
            .u64("sid", a.session.sid.into())
            .u64("lun", path.lun),
        || {
            let t = Instant::now();
            block::wait_for_disk(sys, a.session.sid, path.lun, deadline, uevents).map(|d| {
                let f = Facts::new()
                    .str("disk", d.name.clone())
                    .u64("size_sectors", d.size_sectors)
                    .u64("waited_ms", t.elapsed().as_millis() as u64);
                (d, f)
            })
        },
    )?;
    let name = disk.name.clone();
    let root = exec.step(
        step::ROOT_FIND,
        Facts::new().str("root", root_spec(&plan.root.device)),
        || {
            resolve::resolve(
                sys,
                Path::new("/dev"),
                &plan.root.device,
                &[disk],
                &path.target,
            )
            .map(|r| {
                let mut f = Facts::new()
                    .str("device", r.dev_path.display().to_string())
                    .str("fstype", r.fstype.clone().unwrap_or_default());
                if let Some(u) = &r.uuid {
                    f = f.str("uuid", u.clone());
                }
                if let Some(l) = &r.label {
                    f = f.str("label", l.clone());
                }
                (r, f)
            })
        },
    )?;
    Ok((name, root))
}

fn root_spec(d: &crate::plan::RootDevice) -> String {
    use crate::plan::RootDevice::*;
    match d {
        Lun => "lun".into(),
        Path(p) => p.clone(),
        Label(l) => format!("LABEL={l}"),
        Uuid(u) => format!("UUID={u}"),
        PartUuid(u) => format!("PARTUUID={u}"),
        PartLabel(l) => format!("PARTLABEL={l}"),
    }
}

pub fn tune(exec: &mut Exec, plan: &BootPlan, disk: &str) -> Result<(), StepError> {
    let disk = disk.to_string();
    exec.step(
        step::QUEUE_TUNE,
        Facts::new().str("disk", disk.clone()),
        || {
            block::tune(Path::new("/sys"), &disk, &plan.tuning).map(|r| {
                let mut f = Facts::new()
                    .str("scheduler", r.scheduler.clone())
                    .str("offered", r.offered.join(" "));
                if let Some(n) = r.nr_requests {
                    f = f.u64("nr_requests", n.into());
                }
                if let Some(q) = r.queue_depth {
                    f = f.u64("queue_depth", q.into());
                }
                if !r.warnings.is_empty() {
                    f = f.str("warnings", r.warnings.join("; "));
                }
                ((), f)
            })
        },
    )
}

/// File system types to try: `rootfstype=` (comma list), else the probed
/// type, else every block file system the kernel has registered.
fn fs_candidates(plan: &BootPlan, root: &Root) -> Vec<String> {
    if let Some(list) = &plan.root.fstype {
        return list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(t) = &root.fstype {
        return vec![t.clone()];
    }
    pid1::parse_filesystems(&std::fs::read_to_string("/proc/filesystems").unwrap_or_default())
}

/// The file system drivers for `types`, loaded only once the type is known
/// (`fs-<type>` is the alias every fs module carries). Not fatal: a driver
/// may be built in or loaded already.
pub fn load_fs_modules(index: &ModuleIndex, types: &[String]) {
    let mut loader = KernelLoader::new(Path::new("/sys"));
    for t in types {
        let alias = format!("fs-{t}");
        if index.is_builtin(t) || !index.has_module(t) && index.match_alias(&alias).is_empty() {
            continue;
        }
        let name = if index.has_module(t) {
            t.clone()
        } else {
            alias
        };
        if let Err(e) = kmod::load_by_name(index, &mut loader, &[name]) {
            log::warn!("loading the {t} module: {e}");
        }
    }
}

/// `netboot attach`: the caller mounts, but its `mount` may not be able to
/// load a driver (no modprobe in the image): load the root's file system
/// driver now, as the PID-1 mount step does.
pub fn attach_fs_modules(plan: &BootPlan, index: &ModuleIndex, root: &Root) {
    load_fs_modules(index, &fs_candidates(plan, root));
}

pub fn mount(
    exec: &mut Exec,
    plan: &BootPlan,
    index: &ModuleIndex,
    root: &Root,
) -> Result<String, StepError> {
    let dir = pid1::NEW_ROOT.to_string();
    let dev = root.dev_path.display().to_string();
    exec.step(
        step::ROOT_MOUNT,
        Facts::new()
            .str("device", dev.clone())
            .str("target", dir.clone()),
        || {
            let types = fs_candidates(plan, root);
            load_fs_modules(index, &types);
            let data = plan.root.flags.clone().unwrap_or_default();
            pid1::mount_root(&mut RealSys, &dev, &dir, &types, plan.root.read_only, &data).map(
                |fs| {
                    (
                        (),
                        Facts::new()
                            .str("fstype", fs)
                            .bool("read_only", plan.root.read_only),
                    )
                },
            )
        },
    )?;
    Ok(dir)
}
