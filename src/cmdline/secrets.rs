//! `netboot.secrets=FILE`: CHAP credentials from a file in the initramfs
//! instead of the kernel command line, which every process can read in
//! `/proc/cmdline` (and the kernel prints as "Kernel command line:").
//!
//! The file holds the command line's own credential keys, one per line:
//!
//! ```text
//! # /etc/netboot/secrets (mode 0600, in the initramfs only)
//! rd.iscsi.username=chapuser
//! rd.iscsi.password=chap secret with spaces
//! rd.iscsi.in.username=tgtuser
//! rd.iscsi.in.password="quoted also works"
//! ```
//!
//! The value is the rest of the line (a pair of surrounding double quotes
//! is removed), so secrets may hold spaces. Blank lines and lines starting
//! with `#` are skipped. Any other key is an error: a root path or a
//! setting here would be invisible to `netboot plan` readers of the command
//! line. A key given on the command line as well wins there (explicit
//! command-line keys win everywhere). Errors name the file, the line and
//! the key — never a value.

use super::tokenize::{normalize_key, Arg};
use std::fmt;

/// The keys a secrets file may set (normalised spelling).
pub const KEYS: [&str; 8] = [
    "rd.iscsi.username",
    "rd.iscsi.password",
    "rd.iscsi.in.username",
    "rd.iscsi.in.password",
    "iscsi_username",
    "iscsi_password",
    "iscsi_in_username",
    "iscsi_in_password",
];

/// Largest file read (a handful of credentials; more is not a secrets file).
pub const MAX_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsError {
    TooLarge {
        file: String,
        len: usize,
    },
    NotKeyValue {
        file: String,
        line: usize,
    },
    Key {
        file: String,
        line: usize,
        key: String,
    },
    Control {
        file: String,
        line: usize,
        key: String,
    },
}

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretsError::TooLarge { file, len } => write!(
                f,
                "netboot.secrets={file}: {len} bytes, more than {MAX_LEN}"
            ),
            SecretsError::NotKeyValue { file, line } => write!(
                f,
                "netboot.secrets={file}: line {line} is not KEY=VALUE"
            ),
            SecretsError::Key { file, line, key } => write!(
                f,
                "netboot.secrets={file}: line {line}: key {key:?} is not allowed here (allowed: rd.iscsi.username, rd.iscsi.password, rd.iscsi.in.username, rd.iscsi.in.password)"
            ),
            SecretsError::Control { file, line, key } => write!(
                f,
                "netboot.secrets={file}: line {line}: the value of {key} holds a control character"
            ),
        }
    }
}

impl std::error::Error for SecretsError {}

/// The file's credentials as command-line arguments, in file order.
pub fn file_args(text: &str, file: &str) -> Result<Vec<Arg>, SecretsError> {
    let file = super::quote(file);
    if text.len() > MAX_LEN {
        return Err(SecretsError::TooLarge {
            file,
            len: text.len(),
        });
    }
    let mut args = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((k, v)) = trimmed.split_once('=') else {
            return Err(SecretsError::NotKeyValue { file, line: n });
        };
        let raw = k.trim_end();
        let key = normalize_key(raw);
        if !KEYS.contains(&key.as_str()) {
            return Err(SecretsError::Key {
                file,
                line: n,
                key: raw.chars().take(64).filter(|c| !c.is_control()).collect(),
            });
        }
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        if v.chars().any(char::is_control) {
            return Err(SecretsError::Control {
                file,
                line: n,
                key: raw.to_string(),
            });
        }
        args.push(Arg {
            raw: raw.to_string(),
            key,
            value: Some(v.to_string()),
        });
    }
    Ok(args)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_comments_quotes() {
        let a = file_args(
            "# CHAP\n\nrd.iscsi.username=chapuser\r\nrd.iscsi.password=a secret = with spaces\n  rd.iscsi.in.username =tgt\nrd.iscsi.in.password=\"quoted\"\n",
            "/etc/netboot/secrets",
        )
        .unwrap();
        let kv: Vec<(&str, &str)> = a
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            kv,
            [
                ("rd.iscsi.username", "chapuser"),
                ("rd.iscsi.password", "a secret = with spaces"),
                ("rd.iscsi.in.username", "tgt"),
                ("rd.iscsi.in.password", "quoted"),
            ]
        );
    }

    #[test]
    fn errors_name_file_line_and_key_never_the_value() {
        let e = |t| file_args(t, "/etc/s").unwrap_err().to_string();
        assert_eq!(
            e("x\n"),
            r#"netboot.secrets="/etc/s": line 1 is not KEY=VALUE"#
        );
        assert_eq!(
            e("# c\niscsi=hunter2@198.18.0.1::::iqn.x\n"),
            r#"netboot.secrets="/etc/s": line 2: key "iscsi" is not allowed here (allowed: rd.iscsi.username, rd.iscsi.password, rd.iscsi.in.username, rd.iscsi.in.password)"#
        );
        assert_eq!(
            e("rd.iscsi.password=a\u{1b}[2Jb\n"),
            r#"netboot.secrets="/etc/s": line 1: the value of rd.iscsi.password holds a control character"#
        );
        assert!(!e("rd.iscsi.password=a\u{1b}[2Jb\n").contains("[2J"));
        let big = "#".repeat(MAX_LEN + 1);
        assert_eq!(
            e(&big),
            format!(
                r#"netboot.secrets="/etc/s": {} bytes, more than {MAX_LEN}"#,
                MAX_LEN + 1
            )
        );
    }
}
