//! The one masker for errors that echo user input: it knows every
//! credential an input may hold and replaces each in the final text of
//! the error with `***`.
//!
//! Why not mask where each message is built: the parsers echo what they
//! were given, and what they were given is not always what it looks like.
//! A password can start with `iqn.` (a mutual-CHAP target name often is
//! the target's IQN) or hold `:` and `@`; an unclosed quote pulls a
//! credentialed root path into another key's value, whose error then
//! echoes it; `discover USER:SECRET` without `@HOST` is a "portal". So the
//! masker is built from the whole input, before anything is parsed, and
//! collects a credential under *every* reading of it:
//!
//! - the kernel's reading of the command line (the tokenizer), and two
//!   quote-blind ones (split on white space; on white space and `"`), in
//!   which every `KEY=` inside a word counts, so a root path swallowed by
//!   an unclosed quote is still seen;
//! - for a credential key (`rd.iscsi.password=`, any key whose name holds
//!   `password` or `secret`, a sensitive `rd.iscsi.param=` node key), its
//!   value;
//! - for a root path (`iscsi=`, `netroot=`, `root=`, `iscsiroot=`), the
//!   credential fields before its first `@` (the parser's reading), and
//!   before each later one (a password holding `@`; the first eight and
//!   the last), unless what precedes that `@` is a complete root path
//!   (then the `@` is in a target name): the password fields of
//!   `user:pass` and `user:pass:tuser:tpass`; of anything else every
//!   field but the user name, or the first one when nothing else is left
//!   (`pass@`, `pass:@`);
//! - for a config document, every string under a `password`/`secret` key
//!   or in a sensitive `{key, value}` parameter, and root-path credentials
//!   in any string;
//! - the secrets file's passwords.
//!
//! [`Masker::mask`] replaces each credential as it may appear in a
//! message: raw, escaped as `{:?}` quotes it (once or twice), and with
//! control characters escaped; and a credential cut off by a quote's
//! elision (`"…`) has its visible start masked too. User names are not
//! credentials: they identify, the plan prints them, and the target's
//! name in mutual CHAP is often the target name itself.
//!
//! Building a masker walks its input a few times (linear, candidates kept
//! in a set); the command line's is built only when there is an error to
//! mask. When masking cannot settle (credentials made of `*` next to a
//! mask), the whole message is withheld rather than shown.

use super::keys::PlanField;
use super::rootpath;
use super::tokenize::{self, normalize_key, Arg};
use crate::escape::escape_controls;
use std::collections::BTreeSet;
use std::fmt;

/// What a credential becomes.
const MASK: &str = "***";
/// How a quote ends when its value was cut ([`super::quote`] and the
/// tools' `quote_os`).
const ELIDED: &str = "\"…";
/// How far before [`ELIDED`] a cut credential can start: a quote shows at
/// most 120 characters, each escaped to at most 10 bytes (`\u{10ffff}`).
const ELIDED_WINDOW: usize = 120 * 10;

/// Passes of [`Masker::mask`] before it gives up on a text.
const MAX_PASSES: usize = 8;
/// What an error says when masking could not settle (credentials made of
/// `*` and the mask's own characters, found only by fuzzing).
const WITHHELD: &str = "invalid input (the message is withheld: it would show a credential)";

/// Shortest run between U+FFFD that counts as a credential of its own.
const MIN_RUN: usize = 4;

/// Every credential candidate of one input (a set: a hostile line repeats
/// itself). `Debug` shows only how many.
#[derive(Clone, Default)]
pub struct Masker {
    candidates: BTreeSet<String>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker(<{} candidates>)", self.candidates.len())
    }
}

/// How a word of input may carry a credential.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carrier {
    RootPath,
    Credential,
    NodeParam,
}

/// The key table's view of a (normalized) key.
fn carrier(key: &str) -> Option<Carrier> {
    match PlanField::of_key(key) {
        Some(PlanField::Paths | PlanField::RootDevice) => Some(Carrier::RootPath),
        Some(PlanField::ChapPassword | PlanField::MutualPassword) => Some(Carrier::Credential),
        Some(PlanField::NodeParams) => Some(Carrier::NodeParam),
        // netboot.secrets= names a file, it is not one.
        Some(PlanField::CredentialsFile) => None,
        _ if is_credential_name(key) => Some(Carrier::Credential),
        _ => None,
    }
}

/// A key whose value is a credential by its name (`Param::is_sensitive`'s
/// rule: `node.session.auth.password`, `netboot.param.CHAP_Secret`…).
fn is_credential_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret")
}

/// The kernel's `isspace()` (lib/ctype.c), as the tokenizer uses it, and
/// NUL, where the kernel's line ends (so a value ends there too).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\0')
}

/// A byte of a key name (`node.conn[0].timeo.x`, `rd-iscsi.password`).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'[' | b']')
}

impl Masker {
    pub fn new() -> Masker {
        Masker::default()
    }

    /// A kernel command line, with the arguments applied before it (a
    /// `netboot.secrets=` file's).
    pub fn for_cmdline(line: &str, before: &[Arg]) -> Masker {
        let mut m = Masker::new();
        m.cmdline(line);
        for a in before {
            if let Some(v) = &a.value {
                m.arg(&a.key, v);
            }
        }
        m
    }

    /// One root path (an argument of `netboot probe`, DHCP option 17).
    pub fn for_root_path(value: &str) -> Masker {
        let mut m = Masker::new();
        m.root_path(value);
        m
    }

    /// `netboot discover`'s `[USER:SECRET[:TUSER:TSECRET]@]HOST[:PORT]`.
    pub fn for_portal(arg: &str) -> Masker {
        let mut m = Masker::new();
        m.portal(arg);
        m
    }

    /// A config document (JSON; nothing is collected if it does not parse,
    /// and then no error echoes its strings either).
    pub fn for_config(doc: &[u8]) -> Masker {
        let mut m = Masker::new();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(doc) {
            m.json(&v, None);
        }
        m
    }

    /// A known credential (empty ones, and ones made of `*` only, which
    /// the mask itself would show, are skipped). One read from bytes that
    /// were not UTF-8 holds U+FFFD where a message shows `\xNN`: its runs
    /// between them (of [`MIN_RUN`] characters or more) count too.
    pub fn secret(&mut self, s: &str) {
        if s.is_empty() || s.bytes().all(|b| b == b'*') {
            return;
        }
        self.candidates.insert(s.to_string());
        if s.contains('\u{fffd}') {
            // Shorter runs would mask common letters everywhere.
            for run in s.split('\u{fffd}') {
                if run.chars().count() >= MIN_RUN && !run.bytes().all(|b| b == b'*') {
                    self.candidates.insert(run.to_string());
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Every reading of a command line (module docs).
    pub fn cmdline(&mut self, line: &str) {
        let t = tokenize::tokenize(line);
        for a in &t.args {
            if let Some(v) = &a.value {
                self.arg(&a.key, v);
            }
        }
        // After `--` the words go to init; one holding `iscsi=u:p@…` is
        // still a credential if an error ever echoes it.
        for word in line.split(is_space) {
            self.word(word);
        }
        for word in line.split(|c| is_space(c) || c == '"') {
            self.word(word);
        }
    }

    /// One `key=value` of the kernel's reading (`key` normalized).
    fn arg(&mut self, key: &str, value: &str) {
        match carrier(key) {
            Some(Carrier::RootPath) => self.root_path(value),
            Some(Carrier::Credential) => self.secret(value),
            Some(Carrier::NodeParam) => {
                if let Some((k, v)) = value.split_once('=') {
                    if is_credential_name(k) {
                        self.secret(v);
                    }
                }
            }
            None => {}
        }
    }

    /// A quote-blind word: every `NAME=` in it, wherever it starts, with
    /// the rest of the word as its value (for a credential: also up to the
    /// next such `NAME=`). Linear: each `=` looks back only over name
    /// bytes, which never include another `=`.
    fn word(&mut self, word: &str) {
        let b = word.as_bytes();
        let mut keys = Vec::new();
        for (i, &c) in b.iter().enumerate() {
            if c != b'=' {
                continue;
            }
            let mut j = i;
            while j > 0 && b.get(j - 1).is_some_and(|&p| is_name_byte(p)) {
                j -= 1;
            }
            let name = normalize_key(word.get(j..i).unwrap_or(""));
            if let Some(kind) = carrier(&name) {
                keys.push((j, i, kind));
            }
        }
        let mut root_seen = false;
        let mut credential_seen = false;
        for (n, &(_, eq, kind)) in keys.iter().enumerate() {
            let all = word.get(eq + 1..).unwrap_or("");
            let upto = keys.get(n + 1).map_or(word.len(), |k| k.0);
            let own = word.get(eq + 1..upto).unwrap_or("");
            match kind {
                // Later root paths in the word lie inside the first one's
                // value, whose readings already cover their fields.
                Carrier::RootPath if !root_seen => {
                    root_seen = true;
                    self.root_path(all);
                }
                // `rd.iscsi.param=node.session.auth.password=x`: the inner
                // `NAME=` is a credential key of its own.
                Carrier::RootPath | Carrier::NodeParam => {}
                Carrier::Credential => {
                    self.secret(own);
                    if !credential_seen {
                        credential_seen = true;
                        self.secret(all);
                    }
                }
            }
        }
    }

    /// Every reading of a root path's credentials (module docs).
    pub fn root_path(&mut self, value: &str) {
        let v = value.strip_prefix("iscsi:").unwrap_or(value);
        // The parser's own reading is credentials, whatever they look like.
        if let (Some(auth), _) = rootpath::split_auth(v) {
            self.auth_fields(auth);
        }
        for at in rootpath::auth_ends(v) {
            let auth = v.get(..at).unwrap_or("");
            // `server::::iqn.a@b`: the `@` belongs to the target name.
            if !auth.is_empty() && !rootpath::is_path_before_at(auth) {
                self.auth_fields(auth);
            }
        }
    }

    /// The fields of `user:pass[:tuser:tpass]` that are secrets: the
    /// password fields of the two valid forms; of an invalid one every
    /// non-empty field but the first (the user name), or the first if that
    /// leaves none (`pass@host`: the user name forgotten; `pass::@host`).
    fn auth_fields(&mut self, auth: &str) {
        let f: Vec<&str> = auth.split(':').collect();
        match f.as_slice() {
            [_, p] if rootpath::parse_auth(auth).is_some() => self.secret(p),
            [_, p, _, q] if rootpath::parse_auth(auth).is_some() => {
                self.secret(p);
                self.secret(q);
            }
            [first, rest @ ..] => {
                if rest.iter().all(|s| s.is_empty()) {
                    self.secret(first);
                }
                rest.iter().for_each(|s| self.secret(s));
            }
            [] => {}
        }
    }

    /// `[USER:SECRET[:TUSER:TSECRET]@]HOST[:PORT]`: the credentials before
    /// each `@` (the first eight and the last), and the whole value read as
    /// credentials whose `@HOST` was forgotten (unless it is an `[IPv6]`
    /// portal): a `HOST:PORT` has one `:`, so on an invalid portal this
    /// masks at most its port.
    pub fn portal(&mut self, arg: &str) {
        for at in rootpath::auth_ends(arg) {
            self.auth_fields(arg.get(..at).unwrap_or(""));
        }
        if !arg.starts_with('[') && arg.contains(':') {
            self.auth_fields(arg);
        }
    }

    fn json(&mut self, v: &serde_json::Value, key: Option<&str>) {
        use serde_json::Value;
        match v {
            Value::String(s) => {
                if key.is_some_and(is_credential_name) {
                    self.secret(s);
                }
                if s.contains('@') {
                    self.root_path(s);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.json(x, key)),
            Value::Object(m) => {
                // `{"key": "node.session.auth.password", "value": "…"}`
                if let (Some(Value::String(k)), Some(Value::String(val))) =
                    (m.get("key"), m.get("value"))
                {
                    if is_credential_name(k) {
                        self.secret(val);
                    }
                }
                for (k, x) in m {
                    self.json(x, Some(k));
                }
            }
            _ => {}
        }
    }

    /// `text` with every candidate, in each form a message may show it,
    /// replaced by `***` (longest first), then the visible start of a
    /// candidate cut off by an elided quote masked too.
    pub fn mask(&self, text: &str) -> String {
        if self.candidates.is_empty() {
            return text.to_string();
        }
        let mut forms: Vec<String> = Vec::new();
        for c in &self.candidates {
            let once = debug_inner(c);
            let twice = debug_inner(&once);
            forms.extend([c.clone(), once, twice, escape_controls(c).into_owned()]);
        }
        forms.retain(|f| !f.is_empty());
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        // A credential holding `*` can reappear where a mask meets what
        // was next to it: pass again (each replacement removes at least one
        // character that is not `*`, so this ends), a few times at most.
        let mut out = text.to_string();
        for _ in 0..MAX_PASSES {
            let mut changed = false;
            for f in &forms {
                if f.len() <= out.len() && out.contains(f.as_str()) {
                    out = out.replace(f.as_str(), MASK);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let out = mask_elided(&out, &forms);
        if forms.iter().any(|f| out.contains(f.as_str())) {
            return WITHHELD.to_string();
        }
        out
    }
}

/// `s` as `{:?}` shows it, without the surrounding quotes.
fn debug_inner(s: &str) -> String {
    let d = format!("{s:?}");
    d.get(1..d.len().saturating_sub(1))
        .unwrap_or("")
        .to_string()
}

/// Where a quote was cut (`"…`), the longest start of any form that ends
/// the visible text is masked.
fn mask_elided(text: &str, forms: &[String]) -> String {
    if !text.contains(ELIDED) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(ELIDED) {
        let before = rest.get(..i).unwrap_or("");
        let mut from = before.len().saturating_sub(ELIDED_WINDOW);
        while !before.is_char_boundary(from) {
            from += 1;
        }
        let window = before.get(from..).unwrap_or("");
        let cut = forms
            .iter()
            .map(|f| overlap(window.as_bytes(), f.as_bytes()))
            .max()
            .unwrap_or(0);
        // The match starts where a form starts, on a character boundary.
        out.push_str(before.get(..before.len() - cut).unwrap_or(""));
        if cut > 0 {
            out.push_str(MASK);
        }
        out.push_str(ELIDED);
        rest = rest.get(i + ELIDED.len()..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Length of the longest start of `pattern` that ends `text` (KMP over
/// the pattern cut to the text's length: linear in both).
fn overlap(text: &[u8], pattern: &[u8]) -> usize {
    let p = pattern.get(..pattern.len().min(text.len())).unwrap_or(&[]);
    if p.is_empty() {
        return 0;
    }
    let mut fail = vec![0usize; p.len()];
    let mut k = 0;
    for i in 1..p.len() {
        while k > 0 && p.get(i) != p.get(k) {
            k = fail.get(k - 1).copied().unwrap_or(0);
        }
        if p.get(i) == p.get(k) {
            k += 1;
        }
        if let Some(slot) = fail.get_mut(i) {
            *slot = k;
        }
    }
    let mut q = 0;
    for &c in text {
        while q > 0 && (q == p.len() || p.get(q) != Some(&c)) {
            q = fail.get(q - 1).copied().unwrap_or(0);
        }
        if p.get(q) == Some(&c) {
            q += 1;
        }
    }
    q
}

#[cfg(test)]
mod tests;
