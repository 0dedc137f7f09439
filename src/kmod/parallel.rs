//! Loading a resolved list with several `finit_module(2)` calls at once.
//!
//! The kernel holds `module_mutex` only briefly per load (the duplicate
//! check, each symbol lookup, formation): signature hashing, relocation and
//! the module's init run unlocked, so modules that do not depend on each
//! other may load concurrently. A module still loads only after everything
//! it needs ([`prerequisites`]): a user started before its dependency was
//! even added fails with an unknown symbol. The schedule is pure apart from
//! the injected `load`; on one CPU it is the list order.

use super::index::{ModuleIndex, ModulePath, ModulesError};
use super::load::Loaded;
use std::sync::{Condvar, Mutex, MutexGuard};

/// More loaders than this only queue on `module_mutex`.
pub const MAX_WORKERS: usize = 4;

/// Loaders to run: one per CPU, at most [`MAX_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

/// For each module of `list` (in load order, as
/// [`ModuleIndex::resolve`] returns it), the positions of the earlier
/// modules it must wait for: its modules.dep dependencies and `pre:`
/// softdeps, and every module whose `post:` softdep names it.
pub fn prerequisites(index: &ModuleIndex, list: &[ModulePath]) -> Vec<Vec<usize>> {
    let pos = |n: &str| list.iter().position(|m| m.name == n);
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); list.len()];
    let add = |out: &mut Vec<Vec<usize>>, at: usize, before: usize| {
        // Only earlier ones: the resolver put every dependency first, and
        // a later "dependency" (a softdep cycle) must not block forever.
        if before < at {
            if let Some(v) = out.get_mut(at) {
                if !v.contains(&before) {
                    v.push(before);
                }
            }
        }
    };
    for (i, m) in list.iter().enumerate() {
        for d in index.load_after(&m.name) {
            if let Some(j) = pos(&d) {
                add(&mut out, i, j);
            }
        }
        for p in index.posts(&m.name) {
            if let Some(j) = pos(&p) {
                add(&mut out, j, i);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Ok,
    Failed,
}

struct Sched {
    state: Vec<State>,
    results: Vec<Option<Result<Loaded, ModulesError>>>,
}

fn lock(m: &Mutex<Sched>) -> MutexGuard<'_, Sched> {
    // Nothing here panics (and the release build aborts on panic), so a
    // poisoned lock still holds consistent state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Load `list` with up to `workers` concurrent loaders (the calling thread
/// is one of them; every other is a scoped thread, joined before this
/// returns). `prereq` comes from [`prerequisites`]. A module whose
/// prerequisite failed is not tried ([`ModulesError::DepFailed`]). Returns
/// one result per module, in list order.
pub fn load_concurrently(
    list: &[ModulePath],
    prereq: &[Vec<usize>],
    workers: usize,
    load: &(dyn Fn(&ModulePath) -> Result<Loaded, ModulesError> + Sync),
) -> Vec<Result<Loaded, ModulesError>> {
    let shared = (
        Mutex::new(Sched {
            state: vec![State::Waiting; list.len()],
            results: (0..list.len()).map(|_| None).collect(),
        }),
        Condvar::new(),
    );
    let workers = workers.clamp(1, MAX_WORKERS).min(list.len().max(1));
    std::thread::scope(|s| {
        for _ in 1..workers {
            let spawned = std::thread::Builder::new()
                .name("netboot-kmod".into())
                .spawn_scoped(s, || work(&shared, list, prereq, load));
            if let Err(e) = spawned {
                // Fewer loaders, same result: this thread does the rest.
                log::debug!("module loader thread: {e}");
                break;
            }
        }
        work(&shared, list, prereq, load);
    });
    let sched = shared.0.into_inner().unwrap_or_else(|e| e.into_inner());
    sched
        .results
        .into_iter()
        .zip(list)
        .map(|(r, m)| {
            r.unwrap_or_else(|| {
                Err(ModulesError::DepLoop {
                    name: m.name.clone(),
                })
            })
        })
        .collect()
}

/// What a loader does next.
enum Next {
    Load(usize),
    Wait,
    Done,
}

fn pick(g: &mut Sched, list: &[ModulePath], prereq: &[Vec<usize>]) -> (Next, bool) {
    let mut changed = false;
    let mut waiting = false;
    let mut running = false;
    let st = |g: &Sched, j: usize| g.state.get(j).copied().unwrap_or(State::Failed);
    for i in 0..g.state.len() {
        match st(g, i) {
            State::Running => {
                running = true;
                continue;
            }
            State::Waiting => {}
            State::Ok | State::Failed => continue,
        }
        let needs = prereq.get(i).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(&bad) = needs.iter().find(|&&j| st(g, j) == State::Failed) {
            let name = list.get(i).map(|m| m.name.clone()).unwrap_or_default();
            let dep = list.get(bad).map(|m| m.name.clone()).unwrap_or_default();
            set(
                g,
                i,
                State::Failed,
                Err(ModulesError::DepFailed { name, dep }),
            );
            changed = true;
            continue;
        }
        if needs.iter().all(|&j| st(g, j) == State::Ok) {
            return (Next::Load(i), changed);
        }
        waiting = true;
    }
    if !waiting {
        return (Next::Done, changed);
    }
    if !running {
        // Cannot happen with prerequisites that point backwards; never
        // wait forever if it does.
        for i in 0..g.state.len() {
            if st(g, i) == State::Waiting {
                let name = list.get(i).map(|m| m.name.clone()).unwrap_or_default();
                set(g, i, State::Failed, Err(ModulesError::DepLoop { name }));
            }
        }
        return (Next::Done, true);
    }
    (Next::Wait, changed)
}

fn set(g: &mut Sched, i: usize, s: State, r: Result<Loaded, ModulesError>) {
    if let Some(x) = g.state.get_mut(i) {
        *x = s;
    }
    if let Some(x) = g.results.get_mut(i) {
        *x = Some(r);
    }
}

fn work(
    shared: &(Mutex<Sched>, Condvar),
    list: &[ModulePath],
    prereq: &[Vec<usize>],
    load: &(dyn Fn(&ModulePath) -> Result<Loaded, ModulesError> + Sync),
) {
    let (m, cv) = shared;
    let mut g = lock(m);
    loop {
        let (next, changed) = pick(&mut g, list, prereq);
        if changed {
            cv.notify_all();
        }
        match next {
            Next::Done => return,
            Next::Wait => g = cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            Next::Load(i) => {
                if let Some(x) = g.state.get_mut(i) {
                    *x = State::Running;
                }
                drop(g);
                let r = match list.get(i) {
                    Some(mp) => load(mp),
                    None => Err(ModulesError::DepLoop {
                        name: String::new(),
                    }),
                };
                g = lock(m);
                let s = if r.is_ok() { State::Ok } else { State::Failed };
                set(&mut g, i, s, r);
                cv.notify_all();
            }
        }
    }
}

/// The results of [`load_concurrently`] as one: every module loaded, or
/// the first failure in load order.
pub fn all_loaded(results: Vec<Result<Loaded, ModulesError>>) -> Result<Vec<Loaded>, ModulesError> {
    results.into_iter().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::kmod::{DepEntry, SoftDep};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn index() -> ModuleIndex {
        let dep = |p: &str, d: &[&str]| DepEntry {
            path: p.into(),
            deps: d.iter().map(|s| s.to_string()).collect(),
        };
        ModuleIndex::from_tables(
            Path::new("/m"),
            vec![
                dep(
                    "k/iscsi_tcp.ko",
                    &[
                        "k/libiscsi_tcp.ko",
                        "k/libiscsi.ko",
                        "k/scsi_transport_iscsi.ko",
                        "k/scsi_mod.ko",
                    ],
                ),
                dep(
                    "k/libiscsi_tcp.ko",
                    &[
                        "k/libiscsi.ko",
                        "k/scsi_transport_iscsi.ko",
                        "k/scsi_mod.ko",
                    ],
                ),
                dep(
                    "k/libiscsi.ko",
                    &["k/scsi_transport_iscsi.ko", "k/scsi_mod.ko"],
                ),
                dep("k/scsi_transport_iscsi.ko", &["k/scsi_mod.ko"]),
                dep("k/scsi_mod.ko", &[]),
                dep("k/sd_mod.ko", &["k/scsi_mod.ko"]),
                dep("k/ext4.ko", &["k/jbd2.ko", "k/mbcache.ko", "k/crc16.ko"]),
                dep("k/jbd2.ko", &[]),
                dep("k/mbcache.ko", &[]),
                dep("k/crc16.ko", &[]),
                dep("k/crc32c_generic.ko", &[]),
            ],
            vec![
                ("crypto_crc32c".into(), "crc32c_generic".into()),
                ("crc32c".into(), "crc32c_generic".into()),
            ],
            vec![SoftDep {
                module: "ext4".into(),
                pre: vec!["crc32c".into()],
                post: vec![],
            }],
            vec![],
        )
    }

    fn loaded(m: &ModulePath) -> Loaded {
        Loaded {
            name: m.name.clone(),
            path: m.path.clone(),
            already: false,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn prerequisites_follow_modules_dep_and_softdeps() {
        let ix = index();
        let list = ix.resolve(&["iscsi_tcp", "sd_mod", "ext4"]).unwrap();
        let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
        let pre = prerequisites(&ix, &list);
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        let needs = |n: &str| {
            let mut v: Vec<&str> = pre[at(n)].iter().map(|&j| names[j]).collect();
            v.sort();
            v
        };
        assert_eq!(needs("scsi_mod"), Vec::<&str>::new());
        assert_eq!(needs("sd_mod"), ["scsi_mod"]);
        assert_eq!(
            needs("iscsi_tcp"),
            [
                "libiscsi",
                "libiscsi_tcp",
                "scsi_mod",
                "scsi_transport_iscsi"
            ]
        );
        // pre: crc32c resolves through the alias.
        assert_eq!(
            needs("ext4"),
            ["crc16", "crc32c_generic", "jbd2", "mbcache"]
        );
        for (i, p) in pre.iter().enumerate() {
            assert!(p.iter().all(|&j| j < i), "{i}: {p:?} points forward");
        }
    }

    /// Every module starts only after all of its prerequisites finished,
    /// whatever the number of loaders; each loads once.
    #[test]
    fn concurrent_loads_respect_the_dependency_order() {
        let ix = index();
        let list = ix.resolve(&["iscsi_tcp", "sd_mod", "ext4"]).unwrap();
        let pre = prerequisites(&ix, &list);
        for workers in [1, 2, 4] {
            let log: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());
            let load = |m: &ModulePath| {
                log.lock().unwrap().push((m.name.clone(), true));
                std::thread::sleep(Duration::from_millis(2));
                log.lock().unwrap().push((m.name.clone(), false));
                Ok(loaded(m))
            };
            let res = all_loaded(load_concurrently(&list, &pre, workers, &load)).unwrap();
            assert_eq!(res.len(), list.len());
            let log = log.into_inner().unwrap();
            for (i, m) in list.iter().enumerate() {
                let started = log.iter().position(|(n, s)| *n == m.name && *s).unwrap();
                for &j in &pre[i] {
                    let dep_done = log
                        .iter()
                        .position(|(n, s)| *n == list[j].name && !*s)
                        .unwrap();
                    assert!(
                        dep_done < started,
                        "{} started before {} ended",
                        m.name,
                        list[j].name
                    );
                }
                assert_eq!(log.iter().filter(|(n, s)| *n == m.name && *s).count(), 1);
            }
            if workers == 1 {
                let order: Vec<&String> = log.iter().filter(|(_, s)| *s).map(|(n, _)| n).collect();
                let want: Vec<&String> = list.iter().map(|m| &m.name).collect();
                assert_eq!(order, want, "one loader keeps the list order");
            }
        }
    }

    #[test]
    fn a_failed_module_skips_its_users_but_not_independent_ones() {
        let ix = index();
        let list = ix.resolve(&["iscsi_tcp", "ext4"]).unwrap();
        let pre = prerequisites(&ix, &list);
        let load = |m: &ModulePath| {
            if m.name == "libiscsi" {
                Err(ModulesError::Load {
                    path: PathBuf::from("/m/k/libiscsi.ko"),
                    errno: 8,
                })
            } else {
                Ok(loaded(m))
            }
        };
        let res = load_concurrently(&list, &pre, 2, &load);
        let by = |n: &str| &res[list.iter().position(|m| m.name == n).unwrap()];
        assert!(by("ext4").is_ok() && by("scsi_transport_iscsi").is_ok());
        assert!(matches!(
            by("libiscsi_tcp"),
            Err(ModulesError::DepFailed { .. })
        ));
        assert!(matches!(by("libiscsi"), Err(ModulesError::Load { .. })));
        assert_eq!(
            by("iscsi_tcp").as_ref().unwrap_err().to_string(),
            "module \"iscsi_tcp\" not loaded: module \"libiscsi_tcp\", which it needs, failed to load"
        );
        let first = all_loaded(res).unwrap_err().to_string();
        assert!(
            first.starts_with("finit_module(/m/k/libiscsi.ko)"),
            "{first}"
        );
        assert!(load_concurrently(&[], &[], 4, &load).is_empty());
    }

    #[test]
    fn fs_modules_are_the_ones_with_an_fs_alias() {
        let ix = ModuleIndex::from_tables(
            Path::new("/m"),
            vec![
                DepEntry {
                    path: "k/ext4.ko".into(),
                    deps: vec![],
                },
                DepEntry {
                    path: "k/sd_mod.ko".into(),
                    deps: vec![],
                },
            ],
            vec![
                ("fs_ext4".into(), "ext4".into()),
                ("fs_ext3".into(), "ext4".into()),
                ("fs_xfs".into(), "xfs".into()),
                ("scsi:t_0x00".into(), "sd_mod".into()),
            ],
            vec![],
            vec![],
        );
        assert_eq!(ix.fs_modules(), ["ext4"]);
    }
}
