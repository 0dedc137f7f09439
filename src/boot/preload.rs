//! Modules loaded by a helper thread while the main thread waits for the
//! network, the login and the disk: first the iSCSI and SCSI modules
//! (`modules.storage`, needed by `iscsi.connect`), then the root's
//! file-system modules (`modules.fs`, needed by the mount). Within a group,
//! modules independent in the dependency graph load concurrently
//! ([`kmod::parallel`]), one loader per CPU.
//!
//! Each group is one step, recorded with the thread's own start and end
//! when the main thread collects it ([`crate::events::Recorder::span`]), so
//! the report's timeline shows it overlapping the main thread's steps. The
//! main thread waits for a group only until the boot's one deadline; the
//! thread is joined once both groups are in. Spawning may fail: then the
//! groups load in the calling thread, as before.

use super::{Exec, StepError};
use crate::boot::error::BootError;
use crate::events::{step, Facts};
use crate::kmod::{self, KernelLoader, Loaded, ModulePath, ModulesError};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to load, resolved in the main thread (an unknown name fails the
/// `modules` step, as before).
#[derive(Debug, Default)]
pub struct Lists {
    pub storage: Vec<ModulePath>,
    pub storage_pre: Vec<Vec<usize>>,
    /// Speculative: the mount loads what it needs again (skipping what is
    /// in the kernel), so a config that names another file system changes
    /// nothing but the time.
    pub fs: Vec<ModulePath>,
    pub fs_pre: Vec<Vec<usize>>,
    /// The file-system types `fs` stands for (a fact).
    pub fs_types: Vec<String>,
}

impl Lists {
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty() && self.fs.is_empty()
    }
}

/// One group's outcome, timed from the preload's origin.
struct Done {
    name: &'static str,
    start: Duration,
    end: Duration,
    workers: usize,
    result: Result<Vec<Loaded>, ModulesError>,
}

/// What waiting for the thread gave.
enum Next {
    Got(Done),
    /// The deadline passed first.
    Late,
    /// No result will come (the channel is closed).
    Ended,
}

/// The running preload; see the module docs.
pub struct Preload {
    origin_us: u64,
    rx: Option<mpsc::Receiver<Done>>,
    /// Results made in the calling thread (no thread could be started).
    ready: Vec<Done>,
    thread: Option<JoinHandle<()>>,
    storage_done: bool,
    fs_done: bool,
    fs_types: Vec<String>,
}

fn run_group(name: &'static str, origin: Instant, list: &[ModulePath], pre: &[Vec<usize>]) -> Done {
    let start = origin.elapsed();
    let workers = kmod::parallel::default_workers();
    let sys = Path::new("/sys");
    let load = |m: &ModulePath| kmod::load_one(&mut KernelLoader::new(sys), m);
    let result =
        kmod::parallel::all_loaded(kmod::parallel::load_concurrently(list, pre, workers, &load));
    Done {
        name,
        start,
        end: origin.elapsed(),
        workers,
        result,
    }
}

impl Preload {
    /// Start loading `lists` in a helper thread.
    pub fn spawn(exec: &Exec, lists: Lists) -> Preload {
        let origin = Instant::now();
        let mut p = Preload {
            origin_us: exec.rec.now_us(),
            rx: None,
            ready: Vec::new(),
            thread: None,
            storage_done: lists.storage.is_empty(),
            fs_done: lists.fs.is_empty(),
            fs_types: lists.fs_types.clone(),
        };
        if lists.is_empty() {
            return p;
        }
        let (tx, rx) = mpsc::channel();
        let body = move |tx: mpsc::Sender<Done>, l: Lists| {
            for (name, list, pre) in [
                (step::MODULES_STORAGE, &l.storage, &l.storage_pre),
                (step::MODULES_FS, &l.fs, &l.fs_pre),
            ] {
                if list.is_empty() {
                    continue;
                }
                let d = run_group(name, origin, list, pre);
                // Without the storage modules the boot fails: the file
                // system's are not worth the time.
                let stop = d.result.is_err();
                if tx.send(d).is_err() || stop {
                    return;
                }
            }
        };
        // A failed spawn drops its closure: the lists travel through a
        // shared slot, so the fallback below can still take them.
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(lists)));
        let for_thread = std::sync::Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("netboot-preload".into())
            .spawn(move || {
                let lists = for_thread.lock().ok().and_then(|mut g| g.take());
                if let Some(l) = lists {
                    body(tx, l);
                }
            });
        match spawned {
            Ok(h) => {
                p.thread = Some(h);
                p.rx = Some(rx);
            }
            Err(e) => {
                log::warn!("modules: cannot start a loader thread ({e}); loading in sequence");
                let lists = shared.lock().ok().and_then(|mut g| g.take());
                if let Some(l) = lists {
                    for (name, list, pre) in [
                        (step::MODULES_STORAGE, &l.storage, &l.storage_pre),
                        (step::MODULES_FS, &l.fs, &l.fs_pre),
                    ] {
                        if !list.is_empty() {
                            p.ready.push(run_group(name, origin, list, pre));
                        }
                    }
                }
            }
        }
        p
    }

    fn us(&self, d: Duration) -> u64 {
        self.origin_us.saturating_add(d.as_micros() as u64)
    }

    /// The next group's result, waiting until `deadline` at most.
    fn next(&mut self, deadline: Instant) -> Next {
        if !self.ready.is_empty() {
            return Next::Got(self.ready.remove(0));
        }
        let Some(rx) = self.rx.as_ref() else {
            return Next::Ended;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(d) => Next::Got(d),
            Err(mpsc::RecvTimeoutError::Timeout) => Next::Late,
            Err(mpsc::RecvTimeoutError::Disconnected) => Next::Ended,
        }
    }

    /// The thread sent its last result: what is still open was skipped
    /// (the file systems after a storage failure).
    fn ended(&mut self, exec: &mut Exec) -> Result<(), StepError> {
        self.fs_done = true;
        if self.storage_done {
            return Ok(());
        }
        self.storage_done = true;
        let text = "the module loader thread ended without a result";
        let now = exec.rec.now_us();
        exec.rec.span(
            step::MODULES_STORAGE,
            self.us(Duration::ZERO),
            now,
            Err(text),
        );
        Err(StepError::new(
            step::MODULES_STORAGE,
            BootError::fatal(text),
        ))
    }

    fn record(&mut self, exec: &mut Exec, d: Done) -> Result<(), StepError> {
        let (start, end) = (self.us(d.start), self.us(d.end));
        let fs = d.name == step::MODULES_FS;
        if fs {
            self.fs_done = true;
        } else {
            self.storage_done = true;
        }
        match d.result {
            Ok(loaded) => {
                let fresh: Vec<&str> = loaded
                    .iter()
                    .filter(|m| !m.already)
                    .map(|m| m.name.as_str())
                    .collect();
                let mut f = Facts::new()
                    .str("loaded", fresh.join(","))
                    .u64("count", loaded.len() as u64)
                    .u64("workers", d.workers as u64)
                    .u64("took_ms", d.end.saturating_sub(d.start).as_millis() as u64);
                if fs {
                    f = f.str("fstypes", self.fs_types.join(","));
                }
                exec.rec.span(d.name, start, end, Ok::<_, &str>(f));
                Ok(())
            }
            Err(e) => {
                let err = StepError::new(d.name, e);
                exec.rec.span(d.name, start, end, Err(err.chain().as_str()));
                if fs {
                    // Speculative: the mount step loads what it needs and
                    // reports a real failure there.
                    log::warn!("{}; the mount loads the file system again", err.chain());
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Nothing left to collect: join the thread (it has sent its last
    /// result, so this returns at once).
    fn join_if_done(&mut self) {
        if self.storage_done && self.fs_done {
            self.rx = None;
            if let Some(h) = self.thread.take() {
                let _ = h.join();
            }
        }
    }

    /// The thread did not deliver before the deadline: a fatal error for
    /// the group's step (recorded). The thread is left to the process: a
    /// `finit_module` that does not return cannot be interrupted, and the
    /// boot fails now.
    fn late(&mut self, exec: &mut Exec, name: &'static str) -> StepError {
        let text = "still loading when netboot.timeout ran out".to_string();
        let start = self.us(Duration::ZERO);
        let now = exec.rec.now_us();
        exec.rec.span(name, start, now, Err(text.as_str()));
        if name == step::MODULES_FS {
            self.fs_done = true;
        }
        self.storage_done = true;
        StepError::new(name, BootError::fatal(text))
    }

    /// Wait for the storage group (before `iscsi.connect`).
    pub fn storage(&mut self, exec: &mut Exec, deadline: Instant) -> Result<(), StepError> {
        while !self.storage_done {
            match self.next(deadline) {
                Next::Got(d) => self.record(exec, d)?,
                Next::Late => return Err(self.late(exec, step::MODULES_STORAGE)),
                Next::Ended => self.ended(exec)?,
            }
        }
        self.join_if_done();
        Ok(())
    }

    /// Wait for every group and join the thread (once the root device is
    /// present, and on every error path of the boot).
    pub fn finish(&mut self, exec: &mut Exec, deadline: Instant) -> Result<(), StepError> {
        let mut first_err = None;
        while !(self.storage_done && self.fs_done) {
            match self.next(deadline) {
                Next::Got(d) => {
                    if let Err(e) = self.record(exec, d) {
                        first_err.get_or_insert(e);
                    }
                }
                Next::Ended => {
                    if let Err(e) = self.ended(exec) {
                        first_err.get_or_insert(e);
                    }
                }
                Next::Late => {
                    let name = if self.storage_done {
                        step::MODULES_FS
                    } else {
                        step::MODULES_STORAGE
                    };
                    let e = self.late(exec, name);
                    self.fs_done = true;
                    first_err.get_or_insert(e);
                }
            }
        }
        self.join_if_done();
        first_err.map_or(Ok(()), Err)
    }
}
