//! Reading `/sys/firmware/ibft` (or a saved copy) into a [`Tree`]: one
//! level of directories, one level of regular files, each read with a cap.
//! Symbolic links (`ethernet0/device`) and deeper levels are not followed.
//! The kernel's files need CAP_SYS_ADMIN to read (`iscsi_boot_sysfs.c`);
//! a refusal is an error naming the file.

use super::{Tree, MAX_ATTR_LEN};
use std::fmt;
use std::path::{Path, PathBuf};

/// At most this many directory entries per level (a sysfs entry has
/// about a dozen attributes; the table at most a few dozen structures).
pub const MAX_DIR_ENTRIES: usize = 128;

#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            crate::escape::escape_controls(&self.path.to_string_lossy()),
            self.what
        )
    }
}

impl std::error::Error for ReadError {}

fn fail(path: &Path, what: impl fmt::Display) -> ReadError {
    ReadError {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// The names in `dir` with their file types (no symlinks followed), at most
/// [`MAX_DIR_ENTRIES`].
fn entries(dir: &Path) -> Result<Vec<(String, std::fs::FileType)>, ReadError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let e = e.map_err(|e| fail(dir, e))?;
        if out.len() >= MAX_DIR_ENTRIES {
            return Err(fail(dir, format!("more than {MAX_DIR_ENTRIES} entries")));
        }
        let t = e.file_type().map_err(|err| fail(&e.path(), err))?;
        // Names we would look up are ASCII; others cannot match.
        if let Some(name) = e.file_name().to_str() {
            out.push((name.to_string(), t));
        }
    }
    Ok(out)
}

/// The name of the network link whose MAC is `mac` (lowercase), from
/// `/sys/class/net/*/address`; `None` if no link has it.
pub fn link_of_mac(mac: &str) -> Option<String> {
    let dir = Path::new("/sys/class/net");
    for (name, _) in entries(dir).ok()? {
        let p = dir.join(&name).join("address");
        let Ok(b) = crate::bounded::read_file(&p, 64) else {
            continue;
        };
        if String::from_utf8_lossy(&b).trim().eq_ignore_ascii_case(mac) {
            return Some(name);
        }
    }
    None
}

/// The tree under `dir` (module docs).
pub fn read_tree(dir: &Path) -> Result<Tree, ReadError> {
    let mut tree = Tree::new();
    for (name, t) in entries(dir)? {
        if !t.is_dir() {
            continue;
        }
        let sub = dir.join(&name);
        for (attr, at) in entries(&sub)? {
            if !at.is_file() {
                continue;
            }
            let p = sub.join(&attr);
            let bytes =
                crate::bounded::read_file(&p, MAX_ATTR_LEN as u64).map_err(|e| fail(&p, e))?;
            tree.insert(format!("{name}/{attr}"), bytes);
        }
    }
    Ok(tree)
}
