//! Split a kernel command line into `key[=value]` arguments exactly like the
//! kernel does: `next_arg()` in lib/cmdline.c and `parse_args()` in
//! kernel/params.c.
//!
//! - whitespace separates arguments, except inside double quotes;
//! - a quote at the start of the argument (`"key=a b"`) or of the value
//!   (`key="a b"`) is removed together with a quote ending the argument;
//!   other quotes group but stay in the value (the kernel does the same);
//! - an unterminated quote runs to the end of the line (no error);
//! - a bare `--` ends the kernel's part: the rest goes to init as argv
//!   (init/main.c), each argument rejoined as `key=value`;
//! - names compare with `-` and `_` alike (`parameq()` in kernel/params.c).
//!
//! Delimiters are ASCII, so every slice boundary below falls on a char
//! boundary; `get()` keeps it panic-free regardless.

/// One `key[=value]`. `Debug` never shows the value: values on this line
/// carry CHAP secrets (`rd.iscsi.password=`, `iscsi=user:pass@…`), and
/// one `{arg:?}` in a log call must not leak them.
#[derive(Clone, PartialEq, Eq)]
pub struct Arg {
    /// The name as written (quotes removed), for messages.
    pub raw: String,
    /// The name with `-` folded to `_`, for matching.
    pub key: String,
    /// `None` for a bare flag (`ro`), `Some("")` for `key=`.
    pub value: Option<String>,
}

impl std::fmt::Debug for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = match &self.value {
            None => "none".to_string(),
            Some(v) => format!("<{} bytes>", v.len()),
        };
        write!(f, "Arg({:?}={value})", self.raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Kernel-side arguments, in command-line order (repeats kept).
    pub args: Vec<Arg>,
    /// Arguments after `--`, for init.
    pub init_args: Vec<String>,
}

/// Fold `-` to `_` so `netboot.on-fail` and `netboot.on_fail` are one key.
pub fn normalize_key(key: &str) -> String {
    key.replace('-', "_")
}

/// The kernel's `isspace()` on ASCII (lib/ctype.c).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// One argument: (name, value), and the rest of the line.
fn next_arg(s: &str) -> (&str, Option<&str>, &str) {
    let b = s.as_bytes();
    let (start, quoted) = if b.first() == Some(&b'"') {
        (1, true)
    } else {
        (0, false)
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut end = start;
    while let Some(&c) = b.get(end) {
        if is_space(c) && !in_quote {
            break;
        }
        if equals.is_none() && c == b'=' {
            equals = Some(end);
        }
        if c == b'"' {
            in_quote = !in_quote;
        }
        end += 1;
    }
    let rest = s.get(end + 1..).unwrap_or("");
    // A closing quote at the very end of the argument is dropped when the
    // argument or its value opened with one.
    let closes = end > start && b.get(end - 1) == Some(&b'"');
    match equals {
        None => {
            let stop = if quoted && closes { end - 1 } else { end };
            (s.get(start..stop).unwrap_or(""), None, rest)
        }
        Some(eq) => {
            let mut vstart = eq + 1;
            let mut vend = end;
            let value_quoted = b.get(vstart) == Some(&b'"');
            if value_quoted {
                vstart += 1;
            }
            if (quoted || value_quoted) && closes {
                vend -= 1;
            }
            let vend = vend.max(vstart);
            (
                s.get(start..eq).unwrap_or(""),
                Some(s.get(vstart..vend).unwrap_or("")),
                rest,
            )
        }
    }
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// Tokenize a whole command line (e.g. the contents of /proc/cmdline).
pub fn tokenize(line: &str) -> Tokens {
    // /proc/cmdline is a C string: nothing after a NUL exists for the kernel.
    let line = line.split('\0').next().unwrap_or("");
    let mut out = Tokens::default();
    let mut rest = skip_spaces(line);
    let mut after_dashes = false;
    while !rest.is_empty() {
        let (name, value, next) = next_arg(rest);
        rest = skip_spaces(next);
        if after_dashes {
            out.init_args.push(match value {
                Some(v) => format!("{name}={v}"),
                None => name.to_string(),
            });
            continue;
        }
        if value.is_none() && name == "--" {
            after_dashes = true;
            continue;
        }
        if name.is_empty() {
            // `"` alone or `=x`: the kernel passes it on unnamed; nothing to match.
            continue;
        }
        out.args.push(Arg {
            raw: name.to_string(),
            key: normalize_key(name),
            value: value.map(str::to_string),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let t = tokenize("iscsi=u:hunter2secret@198.18.0.1::::iqn.x ro rd.iscsi.password=");
        assert_eq!(
            format!("{:?}", t.args),
            r#"[Arg("iscsi"=<35 bytes>), Arg("ro"=none), Arg("rd.iscsi.password"=<0 bytes>)]"#
        );
    }

    fn pairs(line: &str) -> Vec<(String, Option<String>)> {
        tokenize(line)
            .args
            .into_iter()
            .map(|a| (a.key, a.value))
            .collect()
    }

    fn p(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(str::to_string))
    }

    #[test]
    fn kernel_quoting_rules() {
        assert_eq!(
            pairs(r#"a="x y" "b=c d" ro  e= f"g h"i"#),
            vec![
                p("a", Some("x y")),
                p("b", Some("c d")),
                p("ro", None),
                p("e", Some("")),
                p("f\"g h\"i", None),
            ]
        );
    }

    #[test]
    fn unterminated_quote_takes_the_rest() {
        assert_eq!(pairs(r#"a="x y z"#), vec![p("a", Some("x y z"))]);
        assert_eq!(pairs(r#"""#), vec![]);
        assert_eq!(pairs(r#"a=""#), vec![p("a", Some(""))]);
        assert_eq!(pairs(r#""ro"#), vec![p("ro", None)]);
    }

    #[test]
    fn dashes_and_init_args() {
        let t = tokenize("  rd-iscsi.x=1 -- single a=\"b c\" --\n");
        assert_eq!(t.args[0].key, "rd_iscsi.x");
        assert_eq!(t.args[0].raw, "rd-iscsi.x");
        assert_eq!(t.init_args, vec!["single", "a=b c", "--"]);
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(pairs("a=1\0b=2"), vec![p("a", Some("1"))]);
    }
}
