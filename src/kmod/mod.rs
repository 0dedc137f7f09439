//! Kernel modules without modprobe or udev: the text indexes `depmod`
//! writes, dependency resolution in load order, coldplug by `modalias`, and
//! `finit_module(2)`.
//!
//! Two halves. Pure: `index.rs` (the parsers, [`ModuleIndex`] and its
//! resolution) and `fnmatch.rs` take text and return data, never panic,
//! and are fuzzed (fuzz/fuzz_targets/modules_dep.rs); they import nothing
//! from the other half. Loading: `load.rs` holds the syscall seam
//! ([`ModuleLoader`], [`KernelLoader`] the real one) so the logic above it
//! is tested with a recording fake; `coldplug.rs` walks sysfs.

mod coldplug;
mod fnmatch;
mod index;
mod load;
pub mod modprobe;
pub mod parallel;

pub use coldplug::{coldplug, coldplug_with, scan_bus_modaliases, scan_modaliases, Coldplug};
pub use fnmatch::fnmatch;
pub use index::{
    module_name, normalize_alias, parse_alias, parse_builtin, parse_dep, parse_softdep, DepEntry,
    ModuleIndex, ModulePath, ModulesError, SoftDep,
};
pub use load::{
    load_by_name, load_modules, load_one, running_kernel_dir, KernelLoader, Loaded, ModuleLoader,
    MODULE_INIT_COMPRESSED_FILE,
};

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
