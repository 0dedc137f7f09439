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
//! Every file is validated against the schema ([`Config::from_json`]) when
//! first read and whenever its mtime or size changes (checked per request).
//! An existing but invalid file is an error (`NBCONF_INVALID`), never a
//! silent fall-through to `default.json`.

use super::proto::{self, Identity, MAX_REPLY};
use super::schema::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found { file: String, json: Vec<u8> },
    NotFound { tried: Vec<String> },
    Invalid { file: String, error: String },
    TooLarge { file: String, len: u64 },
    BadIdentity { what: &'static str, value: String },
    Io { file: String, error: String },
}

impl Lookup {
    /// The abort code for a failed lookup (proto.rs table).
    pub fn abort_code(&self) -> Option<i32> {
        match self {
            Lookup::Found { .. } => None,
            Lookup::NotFound { .. } | Lookup::Io { .. } => Some(proto::NBCONF_NOT_FOUND),
            Lookup::Invalid { .. } => Some(proto::NBCONF_INVALID),
            Lookup::TooLarge { .. } => Some(proto::NBCONF_TOO_LARGE),
            Lookup::BadIdentity { .. } => Some(proto::NBCONF_BAD_IDENTITY),
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

#[derive(Debug)]
struct Entry {
    mtime: Option<SystemTime>,
    len: u64,
    result: Result<Vec<u8>, String>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    cache: HashMap<String, Entry>,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    /// Validate every `*.json` in the directory; one message per problem.
    pub fn check_all(&mut self) -> std::io::Result<Vec<String>> {
        let mut msgs = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect();
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

    fn load(&mut self, name: &str) -> Lookup {
        let path = self.dir.join(name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Lookup::NotFound {
                    tried: vec![name.to_string()],
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.cache.remove(name);
                return Lookup::NotFound {
                    tried: vec![name.to_string()],
                };
            }
            Err(e) => {
                return Lookup::Io {
                    file: name.to_string(),
                    error: e.to_string(),
                };
            }
        };
        let (mtime, len) = (meta.modified().ok(), meta.len());
        if len > MAX_REPLY as u64 {
            return Lookup::TooLarge {
                file: name.to_string(),
                len,
            };
        }
        let fresh = self
            .cache
            .get(name)
            .is_some_and(|e| e.mtime == mtime && e.len == len && mtime.is_some());
        if !fresh {
            let result = match std::fs::read(&path) {
                Ok(b) if b.len() > MAX_REPLY => {
                    return Lookup::TooLarge {
                        file: name.to_string(),
                        len: b.len() as u64,
                    };
                }
                Ok(b) => Config::from_json(&b).map(|_| b).map_err(|e| e.to_string()),
                Err(e) => {
                    return Lookup::Io {
                        file: name.to_string(),
                        error: e.to_string(),
                    }
                }
            };
            self.cache
                .insert(name.to_string(), Entry { mtime, len, result });
        }
        match self.cache.get(name).map(|e| &e.result) {
            Some(Ok(b)) => Lookup::Found {
                file: name.to_string(),
                json: b.clone(),
            },
            Some(Err(e)) => Lookup::Invalid {
                file: name.to_string(),
                error: e.clone(),
            },
            None => Lookup::NotFound {
                tried: vec![name.to_string()],
            },
        }
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
