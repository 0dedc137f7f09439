//! Secrets and their guard: [`Secret`] holds a credential in the plan and
//! never prints it; [`Redactor`] replaces every configured secret by `***`
//! in whatever text still leaves the agent (log lines, events, the report).
//!
//! A leaf: the plan, the logger and the events all use it, so it depends on
//! none of them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A secret (CHAP password). It never prints: `Debug`, `Display` and JSON all
/// show `***`; only [`Secret::expose`] gives the bytes, for the CHAP digest.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where the value is consumed (CHAP, SET_PARAM).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A config document's passwords go straight into the type that never
/// prints them (`config::schema`).
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Defence in depth against leaking secrets: every string that leaves the
/// agent (event payload, report, log line) passes through [`Redactor`], which
/// replaces each configured secret by `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Non-empty secrets, longest first so a secret containing another is
    /// replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: Vec<String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// This redactor plus `more` secrets.
    pub fn with(&self, more: Vec<String>) -> Redactor {
        let mut all = self.secrets.clone();
        all.extend(more);
        Redactor::new(all)
    }

    /// `s` with every secret replaced by `***`.
    pub fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        out
    }

    /// True if any secret occurs in `s`.
    pub fn leaks(&self, s: &str) -> bool {
        self.secrets.iter().any(|x| s.contains(x.as_str()))
    }

    /// Redact every string (keys too) inside a JSON value, so the result
    /// still serializes to valid JSON.
    pub fn redact_value(&self, v: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_value(x)),
            Value::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut x) in old {
                    self.redact_value(&mut x);
                    m.insert(self.redact(&k).into_owned(), x);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_but_deserializes_its_value() {
        let s: Secret = serde_json::from_str(r#""hunter2""#).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""***""#);
    }

    #[test]
    fn redactor_replaces_longest_first_and_keeps_json_valid() {
        let r = Redactor::new(vec!["".into(), "pa\"ss".into(), "pa\"ssword".into()]);
        assert_eq!(r.redact("x pa\"ssword y pa\"ss"), "x *** y ***");
        let mut v = serde_json::json!({"pa\"ss": ["pa\"ss", 1, {"k": "1pa\"ss2"}]});
        r.redact_value(&mut v);
        assert_eq!(v.to_string(), r#"{"***":["***",1,{"k":"1***2"}]}"#);
        assert!(!r.leaks(&v.to_string()));
    }
}
