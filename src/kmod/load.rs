//! Loading: the [`ModuleLoader`] seam, the real [`KernelLoader`]
//! (`finit_module(2)` through rustix, `/sys/module` for "already loaded")
//! and the loop that loads a resolved list in order.

use super::index::{module_name, ModuleIndex, ModulePath, ModulesError};
use rustix::io::Errno;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `MODULE_INIT_COMPRESSED_FILE` (include/uapi/linux/module.h, Linux 5.17):
/// the kernel decompresses the file itself (CONFIG_MODULE_DECOMPRESS).
pub const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;

/// The module directory of the running kernel: `/lib/modules/$(uname -r)`.
pub fn running_kernel_dir() -> PathBuf {
    let uts = rustix::system::uname();
    Path::new("/lib/modules").join(uts.release().to_string_lossy().as_ref())
}

fn is_compressed(path: &str) -> bool {
    path.ends_with(".ko.xz") || path.ends_with(".ko.zst") || path.ends_with(".ko.gz")
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

/// Load one resolved module unless it is in the kernel already.
pub fn load_one(loader: &mut dyn ModuleLoader, m: &ModulePath) -> Result<Loaded, ModulesError> {
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

/// Resolve `names` in one go ([`ModuleIndex::resolve`]) and load the
/// result in order. Modules no table asks for are the caller's to name:
/// the boot puts [`BOOT_EXTRAS`](super::BOOT_EXTRAS) in front of its own.
pub fn load_by_name<S: AsRef<str>>(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    names: &[S],
) -> Result<Vec<Loaded>, ModulesError> {
    load_modules(loader, &index.resolve(names)?)
}
