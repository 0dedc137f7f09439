//! Text from the network or a file, made safe to print: every control
//! character escaped (`\n`, `\u{1b}`…), so a target's name, a DHCP host
//! name or a forged `boot.json` cannot break a line, forge the next one or
//! drive the terminal. A leaf: the logger, the events renderers and the
//! command-line tools all use it, so it depends on nothing.

use std::borrow::Cow;

/// `s` with every control character escaped as Rust's `escape_debug` does
/// (`\n`, `\t`, `\u{1b}`, `\u{85}`…); everything else untouched.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` quoted for a message as `{:?}` quotes it (so escaped), cut
/// after `max` characters with the cut marked: `"abc"…`. The mark is what
/// tells the error masker (`cmdline::mask`) that a value was cut, so a
/// credential cut in half still has its visible start masked.
pub fn quote_max(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((i, _)) => format!("{:?}…", value.get(..i).unwrap_or("")),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_controls_are_escaped() {
        assert!(matches!(
            escape_controls("a \"b\" é \\"),
            Cow::Borrowed("a \"b\" é \\")
        ));
        assert_eq!(
            escape_controls("a\nb\r\t\u{7f}\u{85}\u{1b}[2Jé"),
            "a\\nb\\r\\t\\u{7f}\\u{85}\\u{1b}[2Jé"
        );
        assert_eq!(quote_max("a\"b", 3), r#""a\"b""#);
        assert_eq!(quote_max("abcd", 3), r#""abc"…"#);
        // A forged second line stays on the first.
        let forged = escape_controls("x\nnetboot: all good");
        assert_eq!(forged.lines().count(), 1);
    }
}
