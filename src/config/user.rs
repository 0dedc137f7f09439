//! `netboot-configd --user NAME`: configd needs no privilege (port 7260 is
//! unprivileged and the files only need to be readable), so when started as
//! root it drops to an account once its sockets are bound: no supplementary
//! groups, then the account's group, then its user, real, effective and
//! saved IDs alike (setgroups(2), setresgid(2), setresuid(2); groups first,
//! because they cannot be changed once the user is not root), and it checks
//! that root cannot be regained.
//!
//! The account comes from `/etc/passwd` (passwd(5)): a static binary has no
//! NSS, and a system account for a daemon is a local one.

use rustix::process::{Gid, Uid};
use std::fmt;

pub const PASSWD: &str = "/etc/passwd";

/// The account to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// `/etc/passwd` could not be read.
    Read {
        path: String,
        error: String,
    },
    NoSuchUser {
        name: String,
        path: String,
    },
    /// The account's own line is malformed.
    BadEntry {
        path: String,
        line: usize,
        why: String,
    },
    /// The account is root: nothing would be dropped.
    IsRoot {
        name: String,
    },
    /// A set*id call failed (not root, or a seccomp filter).
    Drop {
        step: &'static str,
        error: String,
    },
    /// After the drop the process could still become root again.
    NotDropped {
        what: String,
    },
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::Read { path, error } => write!(f, "cannot read {path}: {error}"),
            UserError::NoSuchUser { name, path } => write!(
                f,
                "no account {name:?} in {path}; hint: create a system account \
                 (useradd --system --no-create-home {name})"
            ),
            UserError::BadEntry { path, line, why } => write!(f, "{path} line {line}: {why}"),
            UserError::IsRoot { name } => {
                write!(
                    f,
                    "account {name:?} has uid 0; name an unprivileged account"
                )
            }
            UserError::Drop { step, error } => write!(
                f,
                "cannot drop privileges: {step}: {error}; hint: --user needs configd \
                 started as root (leave it out otherwise)"
            ),
            UserError::NotDropped { what } => write!(f, "privileges not dropped: {what}"),
        }
    }
}

impl std::error::Error for UserError {}

/// The account `name` in the text of a passwd file. Lines of other
/// accounts are not looked at beyond their name (a malformed one must not
/// stop configd); NIS `+`/`-` lines and blank lines are skipped.
pub fn find_account(passwd: &str, path: &str, name: &str) -> Result<Account, UserError> {
    for (i, line) in passwd.lines().enumerate() {
        let mut f = line.split(':');
        if f.next() != Some(name) || name.is_empty() {
            continue;
        }
        let bad = |why: String| UserError::BadEntry {
            path: path.to_string(),
            line: i + 1,
            why,
        };
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() != 7 {
            return Err(bad(format!(
                "{} fields, passwd(5) has 7 (name:password:uid:gid:gecos:home:shell)",
                fields.len()
            )));
        }
        let num = |what: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| bad(format!("{what} {v:?} is not a number")))
        };
        let account = Account {
            name: name.to_string(),
            uid: num("uid", fields[2])?,
            gid: num("gid", fields[3])?,
        };
        if account.uid == 0 {
            return Err(UserError::IsRoot {
                name: name.to_string(),
            });
        }
        return Ok(account);
    }
    Err(UserError::NoSuchUser {
        name: name.to_string(),
        path: path.to_string(),
    })
}

/// [`find_account`] in `/etc/passwd`.
pub fn lookup(name: &str) -> Result<Account, UserError> {
    let text = std::fs::read_to_string(PASSWD).map_err(|e| UserError::Read {
        path: PASSWD.to_string(),
        error: e.to_string(),
    })?;
    find_account(&text, PASSWD, name)
}

/// Become `a` for good. rustix's calls are the kernel's, which change the
/// calling thread only (unlike libc's, which signal every thread):
/// configd never starts a thread, so the calling thread is the process.
pub fn drop_to(a: &Account) -> Result<(), UserError> {
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    let (uid, gid) = (Uid::from_raw(a.uid), Gid::from_raw(a.gid));
    let step = |step: &'static str| {
        move |e: rustix::io::Errno| UserError::Drop {
            step,
            error: e.to_string(),
        }
    };
    set_thread_groups(&[]).map_err(step("setgroups"))?;
    set_thread_res_gid(gid, gid, gid).map_err(step("setresgid"))?;
    set_thread_res_uid(uid, uid, uid).map_err(step("setresuid"))?;
    let ids = (
        rustix::process::getuid(),
        rustix::process::geteuid(),
        rustix::process::getgid(),
        rustix::process::getegid(),
    );
    if ids != (uid, uid, gid, gid) {
        return Err(UserError::NotDropped {
            what: format!(
                "ids are {ids:?} after setresuid/setresgid to {}:{}",
                a.uid, a.gid
            ),
        });
    }
    if set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_ok() {
        return Err(UserError::NotDropped {
            what: "setresuid(0, 0, 0) still succeeds".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/bash
+nis::::::
broken:x:1
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
netboot-configd:x:998:997::/nonexistent:/usr/sbin/nologin
badnum:x:12a:5::/:/bin/false
short:x:5:5
";

    #[test]
    fn accounts_and_errors() {
        let find = |name| find_account(PASSWD_TEXT, "/etc/passwd", name);
        assert_eq!(
            find("netboot-configd"),
            Ok(Account {
                name: "netboot-configd".into(),
                uid: 998,
                gid: 997
            })
        );
        assert_eq!(find("nobody").map(|a| (a.uid, a.gid)), Ok((65534, 65534)));
        let table = [
            (
                "ghost",
                "no account \"ghost\" in /etc/passwd; hint: create a system account \
                 (useradd --system --no-create-home ghost)",
            ),
            (
                "root",
                "account \"root\" has uid 0; name an unprivileged account",
            ),
            ("badnum", "/etc/passwd line 6: uid \"12a\" is not a number"),
            (
                "short",
                "/etc/passwd line 7: 4 fields, passwd(5) has 7 \
                 (name:password:uid:gid:gecos:home:shell)",
            ),
        ];
        for (name, want) in table {
            assert_eq!(
                find(name).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{name}"
            );
        }
    }
}
