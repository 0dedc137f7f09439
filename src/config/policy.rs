//! netboot-configd's security policy for GetConfig, pure: who may fetch
//! which document over which kind of call. Only configd links this.
//!
//! | call | may fetch | CHAP secrets in the reply |
//! |---|---|---|
//! | plain (security index 0) | any machine's document, as before rxkad | refused (`NBCONF_SECRETS_REFUSED`) unless the document says `"serve_secrets_insecure": true` |
//! | rxkad `clear`/`auth` with a machine token | only the document for the token's own MAC | refused, as for plain calls |
//! | rxkad `encrypt` with a machine token | only the token's own MAC | served |
//! | rxkad with a fleet token | any machine's document | served at `encrypt`, else as above |
//!
//! Why `auth` is not enough for secrets: at level 1 only the first 8 bytes
//! of each packet are encrypted (rxkad.md §3); the rest of the reply, the
//! CHAP secrets with it, crosses the network in clear. `auth` proves who
//! asks and that nothing was changed on the way, not that nobody read it.
//!
//! The MAC check: a machine token's instance is `mac-52-54-00-12-34-56`;
//! the request's MAC must be that one (an empty MAC is refused too, so the
//! token cannot fall through to `iqn-`, `host-` or `default.json` files of
//! other machines). Fleet tokens are for images shared by many machines.
//!
//! `serve_secrets_insecure` is configd's alone: it is removed from the
//! document before it is sent.

use super::proto::{self, Identity};
use super::schema::Config;
use crate::rxkad::files::Holder;
use crate::rxkad::Level;
use std::fmt;

/// The caller as the rxkad layer vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Security index 0: nothing is known about who asks.
    Plain,
    /// rxkad: a verified ticket for `name.instance`, at `level`.
    Token {
        name: String,
        instance: String,
        level: Level,
    },
}

impl Caller {
    fn level(&self) -> Option<Level> {
        match self {
            Caller::Plain => None,
            Caller::Token { level, .. } => Some(*level),
        }
    }

    /// For log lines: `plain`, `encrypt netboot.mac-…`.
    pub fn describe(&self) -> String {
        match self {
            Caller::Plain => "plain".to_string(),
            Caller::Token {
                name,
                instance,
                level,
            } => format!(
                "{level} {}.{}",
                crate::escape::escape_controls(name),
                crate::escape::escape_controls(instance)
            ),
        }
    }
}

/// Why a call is refused; each has its own abort code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The ticket is valid but not a netboot principal.
    NotNetbootToken { principal: String },
    /// A machine token asking for another machine's document.
    WrongMachine { token_mac: String, asked: String },
    /// CHAP secrets on a call that is not encrypted.
    SecretsNeedEncrypt { level: Option<Level> },
}

impl Refusal {
    pub fn abort_code(&self) -> i32 {
        match self {
            Refusal::NotNetbootToken { .. } => proto::NBCONF_NOT_NETBOOT_TOKEN,
            Refusal::WrongMachine { .. } => proto::NBCONF_WRONG_MACHINE,
            Refusal::SecretsNeedEncrypt { .. } => proto::NBCONF_SECRETS_REFUSED,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotNetbootToken { principal } => write!(
                f,
                "refused: ticket for {} is not a netboot token (netboot.mac-… or netboot.fleet-…)",
                crate::escape::quote_max(principal, 64)
            ),
            Refusal::WrongMachine { token_mac, asked } => write!(
                f,
                "refused: the token is for machine {token_mac}, the request names mac {}",
                crate::escape::quote_max(asked, 64)
            ),
            Refusal::SecretsNeedEncrypt { level } => write!(
                f,
                "refused: the document holds CHAP secrets and the call is {} (secrets need \
                 rxkad encrypt, or \"serve_secrets_insecure\": true in the file)",
                match level {
                    None => "not secured (security index 0)",
                    Some(Level::Clear) => "rxkad clear, not encrypted",
                    Some(Level::Auth) => "rxkad auth, not encrypted",
                    Some(Level::Encrypt) => "encrypted",
                }
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Before the lookup: may this caller ask for this identity?
pub fn check_identity(caller: &Caller, id: &Identity) -> Result<(), Refusal> {
    let Caller::Token { name, instance, .. } = caller else {
        return Ok(());
    };
    match Holder::of(name, instance) {
        None => Err(Refusal::NotNetbootToken {
            principal: format!("{name}.{instance}"),
        }),
        Some(Holder::Fleet(_)) => Ok(()),
        Some(Holder::Machine(mac)) => {
            let asked = crate::cmdline::ip::parse_mac(&id.mac);
            if asked.as_deref() == Some(mac.as_str()) {
                Ok(())
            } else {
                Err(Refusal::WrongMachine {
                    token_mac: mac,
                    asked: id.mac.clone(),
                })
            }
        }
    }
}

/// After the lookup: the document as sent (without
/// `serve_secrets_insecure`), or why it is not sent. `json` has passed
/// the store's validation; one that no longer parses is sent unchanged
/// only if it is not a config at all (it cannot hold secrets we know of),
/// which the store never returns.
pub fn prepare_reply(caller: &Caller, json: &[u8]) -> Result<Vec<u8>, Refusal> {
    decide(caller, &Prepared::of(json)).map(<[u8]>::to_vec)
}

/// What the policy needs to know of one document, worked out once per
/// document text (parsing the config costs more than the rest of a call).
#[derive(Debug, Clone)]
pub struct Prepared {
    secret: bool,
    allowed: bool,
    doc: Vec<u8>,
}

impl Prepared {
    pub fn of(json: &[u8]) -> Prepared {
        let config = Config::from_json(json).ok();
        Prepared {
            allowed: config.as_ref().is_some_and(|c| c.serve_secrets_insecure),
            secret: config.as_ref().is_none_or(Config::holds_secrets),
            doc: strip_directive(json),
        }
    }
}

/// The document to send for `caller`, or why not.
pub fn decide<'p>(caller: &Caller, p: &'p Prepared) -> Result<&'p [u8], Refusal> {
    if p.secret && !p.allowed && caller.level() != Some(Level::Encrypt) {
        return Err(Refusal::SecretsNeedEncrypt {
            level: caller.level(),
        });
    }
    Ok(&p.doc)
}

/// [`Prepared`] by document text, for configd's calls: a changed file is a
/// new text, so the memo is never stale. Bounded: past
/// [`PreparedCache::MAX`] documents it starts over.
#[derive(Debug, Default)]
pub struct PreparedCache {
    /// By a hash of the text; the text is kept to rule out collisions.
    map: std::collections::HashMap<u64, (Vec<u8>, Prepared)>,
}

impl PreparedCache {
    pub const MAX: usize = 1024;

    pub fn get(&mut self, json: &[u8]) -> &Prepared {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        json.hash(&mut h);
        let key = h.finish();
        if self.map.len() >= Self::MAX && !self.map.contains_key(&key) {
            self.map.clear();
        }
        let slot = self
            .map
            .entry(key)
            .or_insert_with(|| (json.to_vec(), Prepared::of(json)));
        if slot.0 != json {
            *slot = (json.to_vec(), Prepared::of(json));
        }
        &slot.1
    }
}

/// The document without its top-level `serve_secrets_insecure` (re-encoded
/// only when the key is there; the agent parses, so key order is moot).
pub fn strip_directive(json: &[u8]) -> Vec<u8> {
    const KEY: &str = "serve_secrets_insecure";
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut m)) if m.contains_key(KEY) => {
            m.remove(KEY);
            serde_json::to_vec(&serde_json::Value::Object(m)).unwrap_or_else(|_| json.to_vec())
        }
        _ => json.to_vec(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAC: &str = "52:54:00:12:34:56";
    const SECRET: &[u8] = br#"{"version":1,"paths":[{"server":"198.18.0.1","target":"iqn.2026-11.test:root","chap":{"username":"u","password":"chapsecret12"}}]}"#;
    const PLAIN: &[u8] =
        br#"{"version":1,"paths":[{"server":"198.18.0.1","target":"iqn.2026-11.test:root"}]}"#;
    const ALLOWED: &[u8] = br#"{"version":1,"serve_secrets_insecure":true,"chap":{"username":"u","password":"chapsecret12"}}"#;
    const PARAM: &[u8] = br#"{"version":1,"iscsi":{"login_params":[{"key":"X-com.example-password","value":"chapsecret12"}]}}"#;

    fn token(instance: &str, level: Level) -> Caller {
        Caller::Token {
            name: "netboot".into(),
            instance: instance.into(),
            level,
        }
    }

    fn id(mac: &str) -> Identity {
        Identity {
            mac: mac.into(),
            ..Identity::default()
        }
    }

    #[test]
    fn cache_answers_like_prepare_reply() {
        let mut c = PreparedCache::default();
        let enc = token("mac-52-54-00-12-34-56", Level::Encrypt);
        for doc in [SECRET, PLAIN, ALLOWED, SECRET] {
            for caller in [&Caller::Plain, &enc] {
                let cached = decide(caller, c.get(doc)).map(<[u8]>::to_vec);
                assert_eq!(cached, prepare_reply(caller, doc));
            }
        }
        assert_eq!(c.map.len(), 3);
    }

    #[test]
    fn machine_tokens_fetch_only_their_own_mac() {
        let m = token("mac-52-54-00-12-34-56", Level::Encrypt);
        assert_eq!(check_identity(&m, &id(MAC)), Ok(()));
        assert_eq!(check_identity(&m, &id("52-54-00-12-34-56")), Ok(()));
        assert_eq!(
            check_identity(&m, &id("52:54:00:12:34:56".to_uppercase().as_str())),
            Ok(())
        );
        let e = check_identity(&m, &id("52:54:00:12:34:57")).unwrap_err();
        assert_eq!(e.abort_code(), proto::NBCONF_WRONG_MACHINE);
        assert_eq!(
            e.to_string(),
            "refused: the token is for machine 52:54:00:12:34:56, the request names mac \"52:54:00:12:34:57\""
        );
        // No MAC: no fall-through to other machines' iqn-/host-/default files.
        assert!(check_identity(&m, &id("")).is_err());
        let f = token("fleet-rack7", Level::Auth);
        assert_eq!(check_identity(&f, &id("52:54:00:12:34:57")), Ok(()));
        assert_eq!(check_identity(&Caller::Plain, &id("anything")), Ok(()));
        let bad = token("", Level::Encrypt);
        assert_eq!(
            check_identity(&bad, &id(MAC)).unwrap_err().abort_code(),
            proto::NBCONF_NOT_NETBOOT_TOKEN
        );
    }

    #[test]
    fn secrets_only_encrypted_unless_the_file_allows() {
        let enc = token("fleet-a", Level::Encrypt);
        let auth = token("fleet-a", Level::Auth);
        assert_eq!(prepare_reply(&enc, SECRET).unwrap(), SECRET);
        for c in [&Caller::Plain, &auth, &token("fleet-a", Level::Clear)] {
            let e = prepare_reply(c, SECRET).unwrap_err();
            assert_eq!(e.abort_code(), proto::NBCONF_SECRETS_REFUSED);
            assert!(e.to_string().contains("secrets need rxkad encrypt"), "{e}");
            assert!(prepare_reply(c, PARAM).is_err());
            assert_eq!(prepare_reply(c, PLAIN).unwrap(), PLAIN);
        }
        // Allowed explicitly: served, and the directive is not sent.
        let sent = prepare_reply(&Caller::Plain, ALLOWED).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&sent).unwrap();
        assert!(v.get("serve_secrets_insecure").is_none());
        assert_eq!(v["chap"]["username"], "u");
        assert!(Config::from_json(&sent).unwrap().holds_secrets());
        assert_eq!(
            Refusal::SecretsNeedEncrypt { level: None }.to_string(),
            "refused: the document holds CHAP secrets and the call is not secured (security \
             index 0) (secrets need rxkad encrypt, or \"serve_secrets_insecure\": true in the file)"
        );
    }

    #[test]
    fn holds_secrets_follows_the_schema() {
        assert!(Config::from_json(SECRET).unwrap().holds_secrets());
        assert!(Config::from_json(PARAM).unwrap().holds_secrets());
        assert!(!Config::from_json(PLAIN).unwrap().holds_secrets());
        let login = br#"{"version":1,"iscsi":{"login_params":[{"key":"MaxBurstLength","value":"262144"}]}}"#;
        assert!(!Config::from_json(login).unwrap().holds_secrets());
    }
}
