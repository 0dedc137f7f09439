//! Kernel modules without modprobe or udev: the text indexes `depmod`
//! writes (`modules.dep`, `modules.alias`, `modules.softdep`,
//! `modules.builtin`), dependency resolution in load order, coldplug by
//! `modalias`, and `finit_module(2)`.
//!
//! The parsers and the resolver are pure (they take text and return data) and
//! never panic; the syscalls sit behind [`ModuleLoader`] so the executor logic
//! is tested with a recording fake. Formats: depmod(8), modules.dep(5),
//! modprobe.d(5) for `softdep`; matching follows kmod (libkmod-module.c
//! `kmod_module_new_from_lookup`: the name is normalised, then looked up as a
//! module name, then as a builtin, then as an alias with fnmatch(3), flags 0).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;

/// Modules the boot needs although no table says so.
///
/// `crc32c`: ext4 and jbd2 compute metadata checksums (on by default with
/// mkfs.ext4) and iSCSI header/data digests use the `crc32c` crypto
/// transform. The kernel finds a transform by `request_module("crypto-…")`
/// (crypto/api.c `crypto_larval_lookup`), which runs `/sbin/modprobe` — there
/// is none in our initramfs, so the lookup fails and the mount with
/// `metadata_csum` fails with ENOMEM/ENOENT. ext4/jbd2 declare the softdep,
/// iscsi_tcp does not; we load it first either way. It resolves through the
/// `crc32c` alias to `crc32c_generic` (see [`ModuleIndex::resolve`]).
pub const BOOT_EXTRAS: &[&str] = &["crc32c"];

/// `MODULE_INIT_COMPRESSED_FILE` (include/uapi/linux/module.h, Linux 5.17):
/// the kernel decompresses the file itself (CONFIG_MODULE_DECOMPRESS).
pub const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;

/// Deepest directory nesting walked below `/sys/devices`. Real trees are
/// about 12 deep (PCI bridge chains); the bound only stops a runaway walk.
const MAX_SYSFS_DEPTH: usize = 24;
/// How deep softdep/dependency chains may nest before we call it a loop.
const MAX_DEP_DEPTH: usize = 64;

/// Everything that can fail here, each naming the file, module or value.
#[derive(Debug)]
pub enum ModulesError {
    /// Reading an index file failed.
    Read { path: PathBuf, err: io::Error },
    /// A line of an index file is malformed (1-based line number).
    Parse {
        path: PathBuf,
        line: usize,
        text: String,
    },
    /// Neither a module, a builtin nor an alias in this directory.
    Unknown { name: String, dir: PathBuf },
    /// Dependencies or softdeps nest deeper than [`MAX_DEP_DEPTH`].
    DepLoop { name: String },
    /// Opening the module file failed.
    Open { path: PathBuf, err: io::Error },
    /// `finit_module` refused the module.
    Load { path: PathBuf, errno: i32 },
}

impl fmt::Display for ModulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModulesError::Read { path, err } => write!(
                f,
                "reading module index {}: {err} (hint: did the initramfs builder run depmod?)",
                path.display()
            ),
            ModulesError::Parse { path, line, text } => {
                write!(f, "{}:{line}: malformed line {text:?}", path.display())
            }
            ModulesError::Unknown { name, dir } => write!(
                f,
                "module {name:?} is neither a module, a builtin nor an alias in {} (hint: add it to the initramfs)",
                dir.display()
            ),
            ModulesError::DepLoop { name } => write!(
                f,
                "dependencies of module {name:?} nest deeper than {MAX_DEP_DEPTH} (loop in modules.dep/softdep?)"
            ),
            ModulesError::Open { path, err } => {
                write!(f, "opening module {}: {err}", path.display())
            }
            ModulesError::Load { path, errno } => {
                let hint = match Errno::from_raw_os_error(*errno) {
                    Errno::NOEXEC => " (hint: built for another kernel?)",
                    Errno::NOENT => " (hint: unknown symbol — dependency missing?)",
                    Errno::KEYREJECTED | Errno::BADMSG => {
                        " (hint: signature rejected — module.sig_enforce?)"
                    }
                    Errno::NODEV => " (hint: no matching hardware or CPU feature)",
                    Errno::PERM => " (hint: needs CAP_SYS_MODULE; modules_disabled set?)",
                    Errno::NOSYS => " (hint: kernel without module support)",
                    _ => "",
                };
                write!(
                    f,
                    "finit_module({}): {}{hint}",
                    path.display(),
                    io::Error::from_raw_os_error(*errno)
                )
            }
        }
    }
}

impl std::error::Error for ModulesError {}

/// Module name from a path or name: basename without `.ko[.xz|.zst|.gz]`,
/// `-` turned into `_` (kmod `modname_normalize`).
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base);
    stem.replace('-', "_")
}

/// Alias normalisation as kmod's `alias_normalize`: `-` becomes `_` except
/// inside a `[...]` bracket expression, where it is a range.
pub fn normalize_alias(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_bracket = false;
    for c in s.chars() {
        match c {
            '[' => in_bracket = true,
            ']' => in_bracket = false,
            '-' if !in_bracket => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

fn is_compressed(path: &str) -> bool {
    path.ends_with(".ko.xz") || path.ends_with(".ko.zst") || path.ends_with(".ko.gz")
}

/// One `modules.dep` line: the module's path (relative to the module
/// directory) and its dependencies as written (the last must load first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    pub path: String,
    pub deps: Vec<String>,
}

/// One `softdep` line of `modules.softdep` / modprobe.d.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDep {
    pub module: String,
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn parse_err(path: &Path, line: usize, text: &str) -> ModulesError {
    ModulesError::Parse {
        path: path.to_path_buf(),
        line,
        text: text.chars().take(120).collect(),
    }
}

/// Parse `modules.dep` (`path: dep dep…`). `path` only names the file in
/// errors.
pub fn parse_dep(text: &str, path: &Path) -> Result<Vec<DepEntry>, ModulesError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let (m, deps) = l.split_once(':').ok_or_else(|| parse_err(path, n, l))?;
        let m = m.trim();
        if m.is_empty() || m.contains(char::is_whitespace) {
            return Err(parse_err(path, n, l));
        }
        out.push(DepEntry {
            path: m.to_string(),
            deps: deps.split_whitespace().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// Parse `modules.alias` (`alias PATTERN MODULE`) into (pattern, module)
/// pairs, both normalised.
pub fn parse_alias(text: &str, path: &Path) -> Result<Vec<(String, String)>, ModulesError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let mut w = l.split_whitespace();
        match (w.next(), w.next(), w.next(), w.next()) {
            (Some("alias"), Some(pat), Some(m), None) => {
                out.push((normalize_alias(pat), module_name(m)))
            }
            _ => return Err(parse_err(path, n, l)),
        }
    }
    Ok(out)
}

/// Parse `modules.softdep` (`softdep MOD [pre: A…] [post: B…]`). Words
/// before the first `pre:`/`post:` are ignored, as kmod does
/// (libkmod-config.c `kmod_config_add_softdep`); depmod writes such lines for
/// modules that declare `MODULE_SOFTDEP("gcm")` without a keyword.
pub fn parse_softdep(text: &str, path: &Path) -> Result<Vec<SoftDep>, ModulesError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let mut w = l.split_whitespace();
        let module = match (w.next(), w.next()) {
            (Some("softdep"), Some(m)) => module_name(m),
            _ => return Err(parse_err(path, n, l)),
        };
        let mut sd = SoftDep {
            module,
            pre: Vec::new(),
            post: Vec::new(),
        };
        let mut mode = 0u8;
        for word in w {
            match word {
                "pre:" => mode = 1,
                "post:" => mode = 2,
                _ if mode == 1 => sd.pre.push(word.to_string()),
                _ if mode == 2 => sd.post.push(word.to_string()),
                _ => {}
            }
        }
        out.push(sd);
    }
    Ok(out)
}

/// Parse `modules.builtin` (one `kernel/…/name.ko` per line) into names,
/// sorted, each once.
pub fn parse_builtin(text: &str) -> Vec<String> {
    let mut v: Vec<String> = lines(text).map(|(_, l)| module_name(l)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// fnmatch(3) with flags 0 (no FNM_PATHNAME, no FNM_PERIOD): `*`, `?`,
/// `[...]` with ranges and `!`/`^` negation, `\` escapes. Iterative with one
/// backtrack point per `*` (the classic linear-memory matcher), so no
/// recursion depth and no panics on any input.
pub fn fnmatch(pattern: &str, s: &str) -> bool {
    let p = pattern.as_bytes();
    let t = s.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let c = t.get(ti).copied().unwrap_or(0);
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match bracket(p, pi, c) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // An unterminated `[` is a literal `[` (glibc behaviour).
                None => (c == b'[').then_some(1),
            },
            Some(b'\\') => match p.get(pi + 1) {
                Some(&e) if e == c => Some(2),
                None if c == b'\\' => Some(1),
                _ => None,
            },
            Some(&l) if l == c => Some(1),
            _ => None,
        };
        match step {
            Some(n) => {
                pi += n;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// Match `c` against the bracket expression starting at `p[start] == '['`.
/// Returns (matched, length of the expression) or None if unterminated.
fn bracket(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            break;
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
            hi = *p.get(i + 1)?;
            i += 2;
            if hi == b'\\' {
                hi = *p.get(i)?;
                i += 1;
            }
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negate, i + 1 - start))
}

/// The literal prefix of a glob pattern (up to the first special byte): a
/// cheap filter before fnmatch, since modalias patterns start with their
/// bus (`pci:v00008086d…`).
fn literal_prefix(p: &str) -> &str {
    let end = p.find(['*', '?', '[', '\\']).unwrap_or(p.len());
    p.get(..end).unwrap_or("")
}

/// The module directory of the running kernel: `/lib/modules/$(uname -r)`.
pub fn running_kernel_dir() -> PathBuf {
    let uts = rustix::system::uname();
    Path::new("/lib/modules").join(uts.release().to_string_lossy().as_ref())
}

/// One module to load: its normalised name and absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePath {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
struct Alias {
    /// Normalised glob pattern.
    pattern: String,
    module: String,
    /// Length of the pattern's literal prefix.
    prefix: usize,
}

/// The parsed indexes of one module directory.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    dir: PathBuf,
    /// By module name.
    deps: HashMap<String, DepRec>,
    /// Aliases of modules present in modules.dep, file order.
    aliases: Vec<Alias>,
    /// By module; the first line per module only.
    softdeps: HashMap<String, SoftDep>,
    builtin: HashSet<String>,
}

#[derive(Debug, Clone)]
struct DepRec {
    /// Relative to the module directory.
    path: String,
    /// Dependencies as names, in modules.dep order (the last loads first).
    deps: Vec<String>,
}

impl ModuleIndex {
    /// Read `dir/modules.dep` (required) and `modules.alias`,
    /// `modules.softdep`, `modules.builtin` (each optional: an initramfs may
    /// carry only what it needs).
    pub fn load(dir: &Path) -> Result<ModuleIndex, ModulesError> {
        let read = |name: &str, required: bool| -> Result<(PathBuf, String), ModulesError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(t) => Ok((path, t)),
                Err(e) if !required && e.kind() == io::ErrorKind::NotFound => {
                    Ok((path, String::new()))
                }
                Err(err) => Err(ModulesError::Read { path, err }),
            }
        };
        let (dp, dep) = read("modules.dep", true)?;
        let (ap, alias) = read("modules.alias", false)?;
        let (sp, softdep) = read("modules.softdep", false)?;
        let (_, builtin) = read("modules.builtin", false)?;
        Ok(ModuleIndex::from_tables(
            dir,
            parse_dep(&dep, &dp)?,
            parse_alias(&alias, &ap)?,
            parse_softdep(&softdep, &sp)?,
            parse_builtin(&builtin),
        ))
    }

    /// Build from parsed tables (tests use this with small fixtures).
    pub fn from_tables(
        dir: &Path,
        dep: Vec<DepEntry>,
        alias: Vec<(String, String)>,
        softdep: Vec<SoftDep>,
        builtin: Vec<String>,
    ) -> ModuleIndex {
        let mut deps: HashMap<String, DepRec> = HashMap::with_capacity(dep.len());
        for e in dep {
            deps.entry(module_name(&e.path)).or_insert(DepRec {
                deps: e.deps.iter().map(|d| module_name(d)).collect(),
                path: e.path,
            });
        }
        // kmod uses only the first softdep line that matches a module
        // (libkmod-module.c `kmod_module_get_softdeps`: "find only the first
        // command, as modprobe from module-init-tools does").
        let mut softdeps = HashMap::new();
        for sd in softdep {
            softdeps.entry(sd.module.clone()).or_insert(sd);
        }
        let builtin: HashSet<String> = builtin.into_iter().collect();
        let find = |m: &str| deps.contains_key(m);
        // Aliases of modules we do not carry can never be loaded: drop them
        // once here, and compute each pattern's literal prefix once, so
        // matching a modalias is mostly a prefix compare (the full Debian
        // table has 26k aliases).
        let aliases = alias
            .into_iter()
            .filter(|(_, m)| find(m))
            .map(|(pattern, module)| Alias {
                prefix: literal_prefix(&pattern).len(),
                pattern,
                module,
            })
            .collect();
        ModuleIndex {
            dir: dir.to_path_buf(),
            deps,
            aliases,
            softdeps,
            builtin,
        }
    }

    fn dep(&self, name: &str) -> Option<&DepRec> {
        self.deps.get(name)
    }

    fn softdep(&self, name: &str) -> Option<&SoftDep> {
        self.softdeps.get(name)
    }

    fn builtin_has(&self, name: &str) -> bool {
        self.builtin.contains(name)
    }

    /// The module directory this index describes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Is `name` a loadable module here (present in modules.dep)?
    pub fn has_module(&self, name: &str) -> bool {
        self.dep(&module_name(name)).is_some()
    }

    /// Is `name` built into the kernel?
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin_has(&module_name(name))
    }

    /// All modules (present in modules.dep) whose alias pattern matches
    /// `modalias`, in modules.alias order, each once.
    pub fn match_alias(&self, modalias: &str) -> Vec<String> {
        let s = normalize_alias(modalias);
        let mut out: Vec<String> = Vec::new();
        for a in &self.aliases {
            let prefix = a.pattern.as_bytes().get(..a.prefix).unwrap_or(&[]);
            if s.as_bytes().starts_with(prefix)
                && !out.contains(&a.module)
                && fnmatch(&a.pattern, &s)
            {
                out.push(a.module.clone());
            }
        }
        out
    }

    /// Modules a requested name stands for: itself, nothing (builtin), or
    /// the modules its alias matches. When an alias matches several modules
    /// and some are generic, the CPU-specific ones under `kernel/arch/` are
    /// dropped: they are accelerations that refuse to load (ENODEV) on a CPU
    /// without the feature — crc32c_intel needs SSE4.2, which QEMU's default
    /// TCG CPU lacks (arch/x86/crypto/crc32c-intel_glue.c
    /// `crc32c_intel_mod_init`) — and coldplug of the `cpu:` modalias loads
    /// them where the CPU has the feature. modprobe would load all of them.
    fn expand(&self, name: &str) -> Result<Vec<String>, ModulesError> {
        let n = module_name(name);
        if self.dep(&n).is_some() {
            return Ok(vec![n]);
        }
        if self.builtin_has(&n) {
            return Ok(Vec::new());
        }
        let all = self.match_alias(name);
        if all.is_empty() {
            return Err(ModulesError::Unknown {
                name: name.to_string(),
                dir: self.dir.clone(),
            });
        }
        let generic: Vec<String> = all
            .iter()
            .filter(|m| {
                self.dep(m)
                    .is_some_and(|d| !d.path.starts_with("kernel/arch/"))
            })
            .cloned()
            .collect();
        Ok(if generic.is_empty() { all } else { generic })
    }

    /// Resolve requested names (module names or aliases such as
    /// `crypto-crc32c`, `fs-ext4`) to the modules to load, in load order:
    /// for each module its `pre:` softdeps, its dependencies (the last in
    /// modules.dep first), itself, then its `post:` softdeps; each module
    /// once. Builtins are satisfied silently; an unknown name is an error.
    /// Softdeps that cannot be resolved are skipped, as modprobe does.
    pub fn resolve<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<ModulePath>, ModulesError> {
        let mut order = Vec::new();
        let mut seen = Vec::new();
        for name in names {
            for m in self.expand(name.as_ref())? {
                self.visit(&m, 0, &mut seen, &mut order)?;
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|n| {
                let d = self.dep(&n)?;
                Some(ModulePath {
                    path: self.dir.join(&d.path),
                    name: n,
                })
            })
            .collect())
    }

    fn visit(
        &self,
        name: &str,
        depth: usize,
        seen: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), ModulesError> {
        if depth > MAX_DEP_DEPTH {
            return Err(ModulesError::DepLoop {
                name: name.to_string(),
            });
        }
        // Marked before the deps are visited, so a softdep cycle
        // (a pre: b, b post: a) terminates.
        if seen.iter().any(|s| s == name) {
            return Ok(());
        }
        seen.push(name.to_string());
        let soft = self.softdep(name);
        for pre in soft.map(|s| s.pre.as_slice()).unwrap_or(&[]) {
            for m in self.expand(pre).unwrap_or_default() {
                self.visit(&m, depth + 1, seen, order)?;
            }
        }
        if let Some(rec) = self.dep(name) {
            for d in rec.deps.iter().rev() {
                self.visit(d, depth + 1, seen, order)?;
            }
        }
        order.push(name.to_string());
        for post in soft.map(|s| s.post.as_slice()).unwrap_or(&[]) {
            for m in self.expand(post).unwrap_or_default() {
                self.visit(&m, depth + 1, seen, order)?;
            }
        }
        Ok(())
    }
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

/// The syscall seam for loading.
pub trait ModuleLoader {
    /// Is the module already in the kernel (`/sys/module/NAME`)?
    fn is_loaded(&self, name: &str) -> bool;
    /// Insert one module file; `EEXIST` must come back as `Ok`.
    fn load(&mut self, path: &Path) -> Result<(), ModulesError>;
}

/// The real loader: `finit_module(2)`, `/sys/module` for "loaded".
#[derive(Debug, Clone)]
pub struct KernelLoader {
    sys_module: PathBuf,
}

impl KernelLoader {
    /// `sysfs` is where sysfs is mounted (`/sys` at boot).
    pub fn new(sysfs: &Path) -> KernelLoader {
        KernelLoader {
            sys_module: sysfs.join("module"),
        }
    }
}

impl ModuleLoader for KernelLoader {
    fn is_loaded(&self, name: &str) -> bool {
        self.sys_module.join(module_name(name)).exists()
    }

    fn load(&mut self, path: &Path) -> Result<(), ModulesError> {
        let file = File::open(path).map_err(|err| ModulesError::Open {
            path: path.to_path_buf(),
            err,
        })?;
        let flags = if is_compressed(&path.to_string_lossy()) {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        match rustix::system::finit_module(&file, c"", flags) {
            // EEXIST: loaded meanwhile (e.g. by the kernel's own request_module).
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(errno) => Err(ModulesError::Load {
                path: path.to_path_buf(),
                errno: errno.raw_os_error(),
            }),
        }
    }
}

/// What happened to one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub name: String,
    pub path: PathBuf,
    /// Already in the kernel: not loaded again.
    pub already: bool,
    pub duration: Duration,
}

/// Load resolved modules in order, skipping those already loaded; stops at
/// the first failure.
pub fn load_modules(
    loader: &mut dyn ModuleLoader,
    modules: &[ModulePath],
) -> Result<Vec<Loaded>, ModulesError> {
    let mut out = Vec::with_capacity(modules.len());
    for m in modules {
        out.push(load_one(loader, m)?);
    }
    Ok(out)
}

fn load_one(loader: &mut dyn ModuleLoader, m: &ModulePath) -> Result<Loaded, ModulesError> {
    let t = Instant::now();
    let already = loader.is_loaded(&m.name);
    if !already {
        loader.load(&m.path)?;
    }
    Ok(Loaded {
        name: m.name.clone(),
        path: m.path.clone(),
        already,
        duration: t.elapsed(),
    })
}

/// Resolve and load `names` (plus [`BOOT_EXTRAS`] first when `extras`).
pub fn load_by_name<S: AsRef<str>>(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    names: &[S],
    extras: bool,
) -> Result<Vec<Loaded>, ModulesError> {
    let mut all: Vec<&str> = Vec::new();
    if extras {
        all.extend(BOOT_EXTRAS);
    }
    all.extend(names.iter().map(|n| n.as_ref()));
    load_modules(loader, &index.resolve(&all)?)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(!fnmatch("pci:v00008086d*", "pci:v00001AF4d00001000"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("x[0-9]y", "x5y"));
        assert!(!fnmatch("x[!0-9]y", "x5y"));
        assert!(fnmatch("x[]]y", "x]y"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a*b*c", "aXbYbZc"));
        assert!(!fnmatch("a*b*c", "aXbYbZ"));
        assert!(fnmatch("dmi*:svnQEMU*", "dmi:bvnSeaBIOS:svnQEMU:pn"));
        for p in ["[", "[!", "\\", "[a-", "*[", "[\\"] {
            let _ = fnmatch(p, "a-[\\");
        }
    }

    #[test]
    fn names_normalise() {
        assert_eq!(module_name("kernel/lib/crc-t10dif.ko"), "crc_t10dif");
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko.zst"), "ext4");
        assert_eq!(module_name("crc64-rocksoft"), "crc64_rocksoft");
        assert_eq!(normalize_alias("crypto-crc32c"), "crypto_crc32c");
        assert_eq!(normalize_alias("x[a-z]-y"), "x[a-z]_y");
    }
}
