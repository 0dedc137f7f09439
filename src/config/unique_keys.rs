//! One pass over a JSON document that refuses a key given twice in one
//! object, anywhere in the document, and says where.
//!
//! Why a pass of its own: serde's derived structs refuse a repeated field,
//! but report it with the parent's path only (`config: duplicate field
//! `on_fail``), and any map or `serde_json::Value` in a schema would keep
//! the last value silently (serde_json's `Map` is last-wins, RFC 8259 §4
//! leaves duplicate names undefined). This walk does not depend on the
//! schema types, so every object of the document is covered, today's and
//! tomorrow's. Depth is bounded by serde_json's recursion limit (128), so
//! the walk cannot exhaust the stack.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// A duplicate key: the JSON path of the key (`paths[0].server`) and
/// serde_json's message with line and column of its second occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub path: String,
    pub msg: String,
}

/// What [`check`] found wrong.
#[derive(Debug)]
pub enum Error {
    Duplicate(DuplicateKey),
    /// Not JSON (callers normally found this already).
    Json(serde_json::Error),
}

/// `Ok` if no object in `bytes` repeats a key.
pub fn check(bytes: &[u8]) -> Result<(), Error> {
    let mut path = Vec::new();
    let mut dup = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = Walk {
        path: &mut path,
        dup: &mut dup,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (walked, dup) {
        (Ok(()), _) => Ok(()),
        (Err(e), Some(path)) => Err(Error::Duplicate(DuplicateKey {
            path,
            msg: e.to_string(),
        })),
        (Err(e), None) => Err(Error::Json(e)),
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

/// `a.b[0].c`, as serde_path_to_error writes paths; a key that is not
/// plain (ASCII letters, digits, `_`, `-`) is written `["…"]`, JSON-escaped,
/// so a key cannot forge a path or put control characters in a log line.
fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::Key(k)
                if !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Key(k) => {
                let quoted = serde_json::to_string(k).unwrap_or_else(|_| "\"?\"".into());
                s.push_str(&format!("[{quoted}]"));
            }
        }
    }
    s
}

/// Deserializes any value, checking the keys of every object in it.
struct Walk<'a> {
    path: &'a mut Vec<Seg>,
    /// Set to the duplicate's path just before the error is raised.
    dup: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Seg::Index(i));
            let more = seq.next_element_seed(Walk {
                path: &mut *self.path,
                dup: &mut *self.dup,
            })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                self.path.push(Seg::Key(key));
                *self.dup = Some(render(self.path));
                return Err(de::Error::custom(
                    "duplicate key (a key may appear once per object)",
                ));
            }
            self.path.push(Seg::Key(key.clone()));
            map.next_value_seed(Walk {
                path: &mut *self.path,
                dup: &mut *self.dup,
            })?;
            self.path.pop();
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(json: &str) -> Option<DuplicateKey> {
        match check(json.as_bytes()) {
            Ok(()) => None,
            Err(Error::Duplicate(d)) => Some(d),
            Err(Error::Json(e)) => Some(DuplicateKey {
                path: "<not json>".into(),
                msg: e.to_string(),
            }),
        }
    }

    #[test]
    fn every_object_is_checked() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            (r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#, None),
            (r#"[1,"x",null,true,-2.5,{}]"#, None),
            (
                r#"{"on_fail":"shell","on_fail":"reboot"}"#,
                Some((
                    "on_fail",
                    "duplicate key (a key may appear once per object) at line 1 column 28",
                )),
            ),
            (
                r#"{"p":[{"s":1},{"t":2,"s":3,"s":4}]}"#,
                Some((
                    "p[1].s",
                    "duplicate key (a key may appear once per object) at line 1 column 30",
                )),
            ),
            // The escaped spelling is the same key.
            (
                r#"{"ab":1,"a\u0062":2}"#,
                Some((
                    "ab",
                    "duplicate key (a key may appear once per object) at line 1 column 17",
                )),
            ),
            (
                "{\"x\":{\"a b\\n\":1,\"a b\\n\":2}}",
                Some((
                    "x[\"a b\\n\"]",
                    "duplicate key (a key may appear once per object) at line 1 column 23",
                )),
            ),
        ];
        for (json, want) in table {
            let got = dup(json);
            let want = want.map(|(p, m)| DuplicateKey {
                path: p.to_string(),
                msg: m.to_string(),
            });
            assert_eq!(got, want, "{json}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(check(deep.as_bytes()), Err(Error::Json(_))));
    }
}
