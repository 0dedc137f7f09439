//! The text indexes `depmod` writes — `modules.dep`, `modules.alias`,
//! `modules.softdep`, `modules.builtin` — and dependency resolution in load
//! order.
//!
//! Pure: the parsers and the resolver take text and return data, never
//! panic, and import nothing from the loading half (`load.rs`).
//! Formats: depmod(8), modules.dep(5), modprobe.d(5) for `softdep`;
//! matching follows kmod (libkmod-module.c `kmod_module_new_from_lookup`:
//! the name is normalised, then looked up as a module name, then as a
//! builtin, then as an alias with fnmatch(3), flags 0).

use super::fnmatch::{fnmatch, literal_prefix};
use crate::sys::errno::errno_text;
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// How deep softdep/dependency chains may nest before we call it a loop.
const MAX_DEP_DEPTH: usize = 64;

/// What `finit_module(2)` errors usually mean at boot.
const LOAD_HINTS: &[(Errno, &str)] = &[
    (Errno::NOEXEC, "built for another kernel?"),
    (Errno::NOENT, "unknown symbol — dependency missing?"),
    (
        Errno::KEYREJECTED,
        "signature rejected — module.sig_enforce?",
    ),
    (Errno::BADMSG, "signature rejected — module.sig_enforce?"),
    (Errno::NODEV, "no matching hardware or CPU feature"),
    (Errno::PERM, "needs CAP_SYS_MODULE; modules_disabled set?"),
    (Errno::NOSYS, "kernel without module support"),
];

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
    /// Not loaded because a module it needs failed to load.
    DepFailed { name: String, dep: String },
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
            ModulesError::Load { path, errno } => write!(
                f,
                "finit_module({}): {}",
                path.display(),
                errno_text(*errno, LOAD_HINTS)
            ),
            ModulesError::DepFailed { name, dep } => write!(
                f,
                "module {name:?} not loaded: module {dep:?}, which it needs, failed to load"
            ),
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

    /// What must be in the kernel before `name` loads: its modules.dep
    /// dependencies and its `pre:` softdeps, as module names.
    pub fn load_after(&self, name: &str) -> Vec<String> {
        let n = module_name(name);
        let mut out: Vec<String> = self.dep(&n).map(|r| r.deps.clone()).unwrap_or_default();
        for pre in self.softdep(&n).map(|s| s.pre.as_slice()).unwrap_or(&[]) {
            out.extend(self.expand(pre).unwrap_or_default());
        }
        out
    }

    /// The modules `name`'s `post:` softdeps stand for (they load after it).
    pub fn posts(&self, name: &str) -> Vec<String> {
        let n = module_name(name);
        let mut out = Vec::new();
        for post in self.softdep(&n).map(|s| s.post.as_slice()).unwrap_or(&[]) {
            out.extend(self.expand(post).unwrap_or_default());
        }
        out
    }

    /// Modules here that register a file system (an `fs-TYPE` alias, which
    /// every file-system module carries), sorted, each once.
    pub fn fs_modules(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .aliases
            .iter()
            .filter(|a| a.pattern.starts_with("fs_"))
            .map(|a| a.module.clone())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise() {
        assert_eq!(module_name("kernel/lib/crc-t10dif.ko"), "crc_t10dif");
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko.zst"), "ext4");
        assert_eq!(module_name("crc64-rocksoft"), "crc64_rocksoft");
        assert_eq!(normalize_alias("crypto-crc32c"), "crypto_crc32c");
        assert_eq!(normalize_alias("x[a-z]-y"), "x[a-z]_y");
    }
}
