//! `netboot-configd`'s document store: JSON files in one directory, chosen
//! by the caller's identity. Only configd links this.
//!
//! File names (tried in this order; the first that exists is served):
//!
//! | identity | file |
//! |---|---|
//! | MAC `52:54:00:12:34:56` (any case, `:` or `-`) | `mac-52-54-00-12-34-56.json` |
//! | initiator `iqn.2024-01.org.example:h1` (lowercased) | `iqn-iqn.2024-01.org.example:h1.json` |
//! | host name `Node1.example` (lowercased) | `host-node1.example.json` |
//! | — | `default.json` |
//!
//! Identity values are never used raw as paths: each must parse as what it
//! claims to be (MAC: six hex octets; IQN: `iqn.`/`eui.`/`naa.` with only
//! `a-z 0-9 . : -`; host: RFC 1123 labels) and the file name is rebuilt from
//! the parsed value, so `/`, NUL and `..` components cannot occur. An
//! invalid non-empty value refuses the whole call (`NBCONF_BAD_IDENTITY`).
//!
//! Every file is validated against the schema ([`super::fetch::parse_config`], errors masked) when
//! first read and whenever it changes (device, inode, size or mtime, from a
//! `statat` that follows no symlink, per request; an unchanged file is
//! answered from the cache without opening it). An existing but invalid file
//! is an error (`NBCONF_INVALID`), never a silent fall-through to
//! `default.json`.
//!
//! Only regular files directly in the directory are served, and no symlink
//! is followed: the file is opened relative to a descriptor of the directory
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (openat2(2), Linux
//! ≥ 5.6; where it gives `ENOSYS`, or `EPERM` from a seccomp filter,
//! `openat(O_NOFOLLOW)`, which suffices because a name has a single
//! component), `O_NONBLOCK` so a FIFO cannot block the server,
//! then `fstat` must say "regular file" and the read is bounded by
//! [`MAX_REPLY`]. A symlink (even to a valid config, even dangling), FIFO,
//! directory, device or socket with a config's name is refused and reported
//! (`NBCONF_UNREADABLE`, the reason in the log), as is a file that cannot be
//! opened or read: the caller learns that its file is broken instead of
//! getting `default.json`. configd runs as root only if started so, and then
//! should drop to `--user` (README "Configuration over RxRPC").

use super::proto::{self, Identity, MAX_REPLY};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Why a file with a config's name is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Symlinks are never followed: one could point anywhere (`/etc/shadow`).
    Symlink,
    /// A FIFO, directory, device or socket: `what` says which.
    NotRegular { what: &'static str },
    /// `openat2` found the name resolving outside the directory (`EXDEV`);
    /// names are built without `/` or `..`, so this is defence in depth.
    Outside,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Symlink => write!(f, "is a symbolic link, and configd follows none"),
            Refusal::NotRegular { what } => write!(f, "is {what}, not a regular file"),
            Refusal::Outside => write!(f, "resolves outside the directory"),
        }
    }
}

/// The refusal for a file of this type, `None` for a regular file.
fn refusal(st: &Stat) -> Option<Refusal> {
    let what = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => return None,
        FileType::Symlink => return Some(Refusal::Symlink),
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown file type",
    };
    Some(Refusal::NotRegular { what })
}

/// How a file is opened beneath the directory's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: no symlink
    /// in any component, nothing outside the directory.
    Openat2,
    /// Kernels before 5.6 (`openat2` gives `ENOSYS`): `openat` with
    /// `O_NOFOLLOW`. Our names are one component without `..`, so refusing
    /// a symlink as the last component is the same guarantee.
    NoFollow,
}

/// Open `name` in `dir` for reading with `how`: never follows a symlink,
/// never blocks on a FIFO (`O_NONBLOCK`), never becomes a controlling
/// terminal (`O_NOCTTY`). The caller checks the file type with `fstat`.
pub fn open_beneath(dir: &OwnedFd, name: &str, how: Resolver) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    match how {
        Resolver::Openat2 => rustix::fs::openat2(
            dir,
            name,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ),
        Resolver::NoFollow => {
            rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found {
        file: String,
        json: Vec<u8>,
    },
    NotFound {
        tried: Vec<String>,
    },
    Invalid {
        file: String,
        error: String,
    },
    TooLarge {
        file: String,
        len: u64,
    },
    BadIdentity {
        what: &'static str,
        value: String,
    },
    /// Not a regular file beneath the directory: reported, not served.
    Refused {
        file: String,
        why: Refusal,
    },
    /// The file exists but cannot be opened or read (`EACCES` after the
    /// privilege drop, `EIO`, …).
    Io {
        file: String,
        error: String,
    },
}

impl Lookup {
    /// The abort code for a failed lookup (proto.rs table).
    pub fn abort_code(&self) -> Option<i32> {
        match self {
            Lookup::Found { .. } => None,
            Lookup::NotFound { .. } => Some(proto::NBCONF_NOT_FOUND),
            Lookup::Invalid { .. } => Some(proto::NBCONF_INVALID),
            Lookup::TooLarge { .. } => Some(proto::NBCONF_TOO_LARGE),
            Lookup::BadIdentity { .. } => Some(proto::NBCONF_BAD_IDENTITY),
            Lookup::Refused { .. } | Lookup::Io { .. } => Some(proto::NBCONF_UNREADABLE),
        }
    }
}

fn valid_iqn(s: &str) -> bool {
    let ok_prefix = ["iqn.", "eui.", "naa."].iter().any(|p| s.starts_with(p));
    ok_prefix
        && s.len() > 4
        && s.len() <= crate::cmdline::rootpath::MAX_NAME_LEN
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b':' | b'-')
        })
        && !s.contains("..")
}

fn valid_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// File names to try for `id`, in order, or the identity field at fault.
pub fn candidates(id: &Identity) -> Result<Vec<String>, Lookup> {
    let bad = |what, value: &str| Lookup::BadIdentity {
        what,
        value: value.chars().take(64).collect(),
    };
    let mut v = Vec::new();
    if !id.mac.is_empty() {
        let mac = crate::cmdline::ip::parse_mac(&id.mac).ok_or_else(|| bad("mac", &id.mac))?;
        v.push(format!("mac-{}.json", mac.replace(':', "-")));
    }
    if !id.iqn.is_empty() {
        let iqn = id.iqn.to_ascii_lowercase();
        if !valid_iqn(&iqn) {
            return Err(bad("iqn", &id.iqn));
        }
        v.push(format!("iqn-{iqn}.json"));
    }
    if !id.hostname.is_empty() {
        let h = id.hostname.to_ascii_lowercase();
        if !valid_hostname(&h) {
            return Err(bad("hostname", &id.hostname));
        }
        v.push(format!("host-{h}.json"));
    }
    v.push("default.json".to_string());
    Ok(v)
}

/// What identifies one version of a file: device, inode, size, mtime (s,
/// ns). A replaced or edited file changes at least one.
type Stamp = [i128; 5];

fn stamp(st: &Stat) -> Stamp {
    [
        i128::from(st.st_dev),
        i128::from(st.st_ino),
        i128::from(st.st_size),
        i128::from(st.st_mtime),
        i128::from(st.st_mtime_nsec),
    ]
}

#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    result: Result<Vec<u8>, String>,
}

#[derive(Debug)]
pub struct Store {
    /// For messages only; files are opened relative to `dirfd`.
    dir: PathBuf,
    dirfd: OwnedFd,
    resolver: Resolver,
    cache: HashMap<String, Entry>,
}

impl Store {
    /// Open the directory (symlinks in `dir` itself are the operator's
    /// choice and are followed) and find out whether `openat2` exists.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        let dirfd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // ENOSYS: a kernel before 5.6. EPERM: a seccomp filter that does not
        // know openat2 (older container runtimes answer so); opening the
        // directory itself cannot fail so otherwise.
        let resolver = match open_beneath(&dirfd, ".", Resolver::Openat2) {
            Err(Errno::NOSYS | Errno::PERM) => Resolver::NoFollow,
            _ => Resolver::Openat2,
        };
        Ok(Self::with_resolver(dir, dirfd, resolver))
    }

    /// [`Store::open`] with a chosen resolver (tests of the fallback).
    pub fn with_resolver(dir: &Path, dirfd: OwnedFd, resolver: Resolver) -> Store {
        Store {
            dir: dir.to_path_buf(),
            dirfd,
            resolver,
            cache: HashMap::new(),
        }
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Validate every `*.json` in the directory; one message per problem.
    pub fn check_all(&mut self) -> std::io::Result<Vec<String>> {
        let mut msgs = Vec::new();
        if self.resolver == Resolver::NoFollow {
            msgs.push(format!(
                "{}: openat2 is not available (Linux before 5.6, or a seccomp filter): \
                 files are opened with O_NOFOLLOW and checked to be regular files",
                self.dir.display()
            ));
        }
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.dirfd)? {
            if let Ok(n) = entry?.file_name().to_str() {
                if n.ends_with(".json") {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();
        for n in names {
            let scheme = n == "default.json"
                || n.starts_with("mac-")
                || n.starts_with("iqn-")
                || n.starts_with("host-");
            if !scheme {
                msgs.push(format!(
                    "{n}: ignored (not mac-*, iqn-*, host-* or default.json)"
                ));
                continue;
            }
            match self.load(&n) {
                Lookup::Found { .. } => {}
                other => msgs.push(describe(&other)),
            }
        }
        Ok(msgs)
    }

    /// Open `name`, falling back to [`Resolver::NoFollow`] for good on
    /// `ENOSYS`.
    fn open_file(&mut self, name: &str) -> rustix::io::Result<OwnedFd> {
        match open_beneath(&self.dirfd, name, self.resolver) {
            Err(Errno::NOSYS) if self.resolver == Resolver::Openat2 => {
                self.resolver = Resolver::NoFollow;
                open_beneath(&self.dirfd, name, self.resolver)
            }
            r => r,
        }
    }

    fn load(&mut self, name: &str) -> Lookup {
        let file = name.to_string();
        let not_found = || Lookup::NotFound {
            tried: vec![name.to_string()],
        };
        let io = |what: &str, e: &dyn fmt::Display| Lookup::Io {
            file: name.to_string(),
            error: format!("cannot {what}: {e}"),
        };
        // Look before opening: a FIFO or a device node is reported without
        // ever being opened (a device's open may act). The fstat of the
        // opened file below stays the authority, so a rename in between is
        // caught there. ENAMETOOLONG: no such file can exist (a 253-byte
        // host name makes a 263-byte name), so it is simply not there.
        match rustix::fs::statat(&self.dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT | Errno::NAMETOOLONG) => {
                self.cache.remove(name);
                return not_found();
            }
            Err(e) => return io("stat", &e),
            Ok(st) => {
                if let Some(why) = refusal(&st) {
                    return Lookup::Refused { file, why };
                }
                // The same regular file (device, inode, size, mtime) as the
                // one read and checked before: answer from the cache, which
                // reads nothing through the name.
                if let Some(e) = self.cache.get(name).filter(|e| e.stamp == stamp(&st)) {
                    return cached(file, &e.result);
                }
            }
        }
        let fd = match self.open_file(name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return not_found(),
            // RESOLVE_NO_SYMLINKS and O_NOFOLLOW both say ELOOP.
            Err(Errno::LOOP) => {
                return Lookup::Refused {
                    file,
                    why: Refusal::Symlink,
                }
            }
            Err(Errno::XDEV) => {
                return Lookup::Refused {
                    file,
                    why: Refusal::Outside,
                }
            }
            Err(e) => return io("open", &e),
        };
        let st = match rustix::fs::fstat(&fd) {
            Ok(st) => st,
            Err(e) => return io("fstat", &e),
        };
        if let Some(why) = refusal(&st) {
            return Lookup::Refused { file, why };
        }
        let len = u64::try_from(st.st_size).unwrap_or(0);
        if len > MAX_REPLY as u64 {
            return Lookup::TooLarge { file, len };
        }
        let stamp = stamp(&st);
        if let Some(e) = self.cache.get(name).filter(|e| e.stamp == stamp) {
            return cached(file, &e.result);
        }
        // Bounded even if the file grows after the fstat.
        let mut b = Vec::with_capacity(len as usize);
        let read = std::fs::File::from(fd)
            .take(MAX_REPLY as u64 + 1)
            .read_to_end(&mut b);
        if let Err(e) = read {
            return io("read", &e);
        }
        if b.len() > MAX_REPLY {
            return Lookup::TooLarge {
                file,
                len: b.len() as u64,
            };
        }
        // The agent's own parser, masked: configd's log never shows a
        // secret from a file that does not validate.
        let result = super::fetch::parse_config(&b)
            .map(|_| b)
            .map_err(|e| e.to_string());
        let found = cached(file.clone(), &result);
        self.cache.insert(file, Entry { stamp, result });
        found
    }

    pub fn lookup(&mut self, id: &Identity) -> Lookup {
        let names = match candidates(id) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let mut tried = Vec::new();
        for n in names {
            match self.load(&n) {
                Lookup::NotFound { .. } => tried.push(n),
                other => return other,
            }
        }
        Lookup::NotFound { tried }
    }
}

/// The lookup result for a file read and validated before.
fn cached(file: String, result: &Result<Vec<u8>, String>) -> Lookup {
    match result {
        Ok(json) => Lookup::Found {
            file,
            json: json.clone(),
        },
        Err(error) => Lookup::Invalid {
            file,
            error: error.clone(),
        },
    }
}

/// One-line description for logs.
pub fn describe(l: &Lookup) -> String {
    match l {
        Lookup::Found { file, json } => format!("{file} ({} bytes)", json.len()),
        Lookup::NotFound { tried } => format!("no file (tried {})", tried.join(", ")),
        Lookup::Invalid { file, error } => format!("{file} invalid: {error}"),
        Lookup::TooLarge { file, len } => {
            format!("{file} is {len} bytes, over the {MAX_REPLY}-byte limit")
        }
        Lookup::BadIdentity { what, value } => {
            format!("{what} {value:?} refused (not a valid {what})")
        }
        Lookup::Refused { file, why } => format!(
            "{file} refused: {why}; only regular files in the directory are served \
             (no fall-through to default.json)"
        ),
        Lookup::Io { file, error } => format!("{file}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(mac: &str, iqn: &str, host: &str) -> Identity {
        Identity {
            mac: mac.into(),
            iqn: iqn.into(),
            hostname: host.into(),
        }
    }

    const VALID: &str = r#"{"version":1}"#;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let d =
                std::env::temp_dir().join(format!("netboot-store-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).expect("mkdir");
            TempDir(d)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir_fd(d: &Path) -> OwnedFd {
        rustix::fs::open(d, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).expect("open dir")
    }

    /// A file that does not validate is reported through the agent's masked
    /// parser: configd's log never shows a secret from it.
    #[test]
    fn an_invalid_file_is_reported_without_its_secrets() {
        let t = TempDir::new("masked");
        std::fs::write(
            t.0.join("default.json"),
            r#"{"version":1,"paths":["iscsi:u:iqn.S3cretPw@198.18.0.1::99999::iqn.2026-11.test:root"]}"#,
        )
        .expect("write");
        let mut store = Store::open(&t.0).expect("open");
        let l = store.lookup(&id("", "", ""));
        let text = describe(&l);
        assert!(matches!(l, Lookup::Invalid { .. }), "{text}");
        assert!(!text.contains("S3cretPw"), "{text}");
        assert!(text.contains("99999"), "{text}");
    }

    /// Every kind of non-regular file with a config's name, next to a valid
    /// default.json: each is refused with its reason, none falls through.
    #[test]
    fn only_regular_files_are_served() {
        let t = TempDir::new("kinds");
        let d = &t.0;
        let outside = TempDir::new("kinds-outside");
        std::fs::write(outside.0.join("elsewhere.json"), VALID).expect("write");
        std::fs::write(d.join("default.json"), VALID).expect("write");
        std::fs::write(d.join("host-plain.json"), VALID).expect("write");
        let link = |to: &Path, name: &str| {
            std::os::unix::fs::symlink(to, d.join(name)).expect("symlink");
        };
        link(&outside.0.join("elsewhere.json"), "host-out.json");
        link(Path::new("/etc/shadow"), "host-shadow.json");
        link(Path::new("host-plain.json"), "host-inside.json");
        link(Path::new("/nonexistent"), "host-dangling.json");
        std::fs::create_dir(d.join("host-dir.json")).expect("mkdir");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("host-fifo.json"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let symlink = "is a symbolic link, and configd follows none";
        let table = [
            ("plain", None),
            ("out", Some(symlink)),
            ("shadow", Some(symlink)),
            ("inside", Some(symlink)),
            ("dangling", Some(symlink)),
            ("dir", Some("is a directory, not a regular file")),
            ("fifo", Some("is a FIFO, not a regular file")),
        ];
        for resolver in [Resolver::Openat2, Resolver::NoFollow] {
            let mut st = Store::with_resolver(d, dir_fd(d), resolver);
            for (host, want) in table {
                let got = st.lookup(&id("", "", host));
                let file = format!("host-{host}.json");
                match want {
                    None => assert_eq!(
                        got,
                        Lookup::Found {
                            file,
                            json: VALID.into()
                        }
                    ),
                    Some(why) => {
                        assert_eq!(got.abort_code(), Some(proto::NBCONF_UNREADABLE), "{got:?}");
                        assert_eq!(
                            describe(&got),
                            format!(
                                "{file} refused: {why}; only regular files in the directory \
                                 are served (no fall-through to default.json)"
                            ),
                            "{resolver:?}"
                        );
                    }
                }
            }
        }
        // A 253-byte host name makes a file name over NAME_MAX: no such
        // file can exist, so the lookup goes on to default.json.
        let long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        let mut st = Store::open(d).expect("open");
        assert_eq!(
            st.lookup(&id("", "", &long)),
            Lookup::Found {
                file: "default.json".into(),
                json: VALID.into()
            }
        );
        // The startup check names each of them.
        assert_eq!(
            st.resolver(),
            Resolver::Openat2,
            "openat2 exists on this kernel"
        );
        let msgs = st.check_all().expect("check");
        assert_eq!(msgs.len(), 6, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("host-dangling.json refused: is a symbolic link"),
            "{msgs:#?}"
        );
    }

    /// The open itself refuses what the look-before-open would have caught
    /// (a symlink swapped in between), and openat2 refuses to leave the
    /// directory even for a name with `..`, which `candidates` never makes.
    #[test]
    fn open_beneath_refuses_symlinks_and_escapes() {
        let t = TempDir::new("beneath");
        std::fs::write(t.0.join("real.json"), VALID).expect("write");
        std::os::unix::fs::symlink("real.json", t.0.join("link.json")).expect("symlink");
        let fd = dir_fd(&t.0);
        for how in [Resolver::Openat2, Resolver::NoFollow] {
            assert!(open_beneath(&fd, "real.json", how).is_ok(), "{how:?}");
            assert_eq!(
                open_beneath(&fd, "link.json", how).err(),
                Some(Errno::LOOP),
                "{how:?}"
            );
        }
        let up = format!(
            "../{}/real.json",
            t.0.file_name().and_then(|n| n.to_str()).unwrap_or("")
        );
        assert_eq!(
            open_beneath(&fd, &up, Resolver::Openat2).err(),
            Some(Errno::XDEV)
        );
    }

    #[test]
    fn names_and_traversal() {
        assert_eq!(
            candidates(&id(
                "52:54:00:12:34:5F",
                "IQN.2024-01.org.x:h1",
                "Node1.Example"
            )),
            Ok(vec![
                "mac-52-54-00-12-34-5f.json".to_string(),
                "iqn-iqn.2024-01.org.x:h1.json".to_string(),
                "host-node1.example.json".to_string(),
                "default.json".to_string()
            ])
        );
        for bad in [
            id("../../etc/passwd", "", ""),
            id("", "iqn.x/../../y", ""),
            id("", "iqn...", ""),
            id("", "", "../etc"),
            id("", "", "a/b"),
            id("", "", "a\0b"),
            id("", "", ".."),
        ] {
            assert!(
                matches!(candidates(&bad), Err(Lookup::BadIdentity { .. })),
                "{bad:?}"
            );
        }
    }
}
