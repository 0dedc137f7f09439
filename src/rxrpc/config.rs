//! The fetched configuration: a versioned JSON document that can express
//! everything the kernel command line can (DESIGN.md §3), and how it is
//! merged into a [`BootPlan`].
//!
//! ```json
//! { "version": 1,
//!   "paths": [ { "server": "198.18.0.1", "port": 3260, "lun": 0,
//!                "target": "iqn.2024-01.org.example:root", "tpgt": 1,
//!                "chap": { "username": "u", "password": "p",
//!                          "mutual": { "username": "t", "password": "q" } } } ],
//!   "chap": { "username": "u", "password": "p" },
//!   "initiator": "iqn.2024-01.org.example:host1",
//!   "ip": ["198.18.0.2::198.18.0.1:255.255.255.0:host1:eth0:off"],
//!   "nameservers": ["198.18.0.1"],
//!   "root": { "device": "LABEL=root", "fstype": "ext4", "flags": "noatime", "read_only": true },
//!   "init": { "path": "/sbin/init", "args": ["single"] },
//!   "tuning": { "scheduler": "none", "nr_requests": 256, "queue_depth": 64, "cmds_max": 256 },
//!   "iscsi": { "login_retry_max": 5, "tpgt": 1,
//!              "node_params": [{"key": "node.session.timeo.replacement_timeout", "value": "30"}],
//!              "login_params": [{"key": "MaxRecvDataSegmentLength", "value": "262144"}] },
//!   "timeout_ms": 60000, "on_fail": "reboot", "log": "info", "events": "11:0x4e42.1" }
//! ```
//!
//! Every field but `version` is optional; an absent field leaves the plan
//! alone. Unknown fields are errors that name their path
//! (`paths[0].chap.pasword: unknown field …`). Values are validated with the
//! very parsers of the command line (same bounds, same messages): a value is
//! valid in the config exactly when `KEY=VALUE` is valid on the cmdline.
//!
//! Precedence ([`apply`]): a key given explicitly on the kernel command line
//! wins over the fetched value; the fetched value wins over defaults. Root
//! paths: if the command line has any root path (or `netroot=dhcp`), the
//! config's `paths` are ignored.
//!
//! Secrets (`password`) deserialize into [`Secret`], so a parsed config
//! never prints them.

use crate::cmdline::{self, ip, rootpath, tokenize};
use crate::plan::{BootPlan, Chap, MutualChap, Param, RootPath, Secret};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;

pub const CONFIG_VERSION: u32 = 1;

// Secret is defined in this crate, so the impl may live here: a config's
// passwords go straight into the type that never prints them.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: u32,
    /// Failover order.
    pub paths: Option<Vec<RawPath>>,
    /// Credentials for paths without their own (`rd.iscsi.username` & co.).
    pub chap: Option<RawChap>,
    pub initiator: Option<String>,
    /// `ip=` values in the command line's syntax.
    pub ip: Option<Vec<String>>,
    pub nameservers: Option<Vec<String>>,
    pub root: Option<RawRoot>,
    pub init: Option<RawInit>,
    pub tuning: Option<RawTuning>,
    pub iscsi: Option<RawIscsi>,
    pub timeout_ms: Option<u64>,
    /// `shell`, `reboot`, `halt`.
    pub on_fail: Option<String>,
    /// `error` … `trace`.
    pub log: Option<String>,
    /// `off` or `GROUP[:IDX.VAL]` as `netboot.events=`.
    pub events: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    pub server: String,
    pub port: Option<u16>,
    pub lun: Option<u64>,
    pub target: String,
    pub tpgt: Option<u16>,
    pub chap: Option<RawChap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChap {
    pub username: String,
    pub password: Secret,
    pub mutual: Option<RawMutual>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMutual {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoot {
    /// As `root=`: `/dev/sda1`, `LABEL=`, `UUID=`, `PARTUUID=`, `PARTLABEL=`.
    pub device: Option<String>,
    pub fstype: Option<String>,
    pub flags: Option<String>,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInit {
    pub path: Option<String>,
    pub args: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTuning {
    pub scheduler: Option<String>,
    pub nr_requests: Option<u32>,
    pub queue_depth: Option<u32>,
    pub cmds_max: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIscsi {
    pub login_retry_max: Option<u32>,
    pub tpgt: Option<u16>,
    pub node_params: Option<Vec<RawParam>>,
    pub login_params: Option<Vec<RawParam>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    pub key: String,
    pub value: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON at all (serde_json's message has line and column).
    Json(String),
    /// A field is wrong; `path` like `paths[0].chap.password`.
    Field { path: String, msg: String },
    /// Schema version we do not know.
    Version { found: u32 },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(e) => write!(f, "config is not valid JSON: {e}"),
            ConfigError::Field { path, msg } if path.is_empty() => write!(f, "config: {msg}"),
            ConfigError::Field { path, msg } => write!(f, "config field {path}: {msg}"),
            ConfigError::Version { found } => write!(
                f,
                "config version {found} is not supported (this netboot reads version {CONFIG_VERSION})"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------
// Path tracking: a Deserializer over a parsed serde_json::Value that records
// the path of the value being read; on error the path is where it failed.
// (A small stand-in for the serde_path_to_error crate.)
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

struct Track<'a, 'p> {
    v: &'a Value,
    path: &'p mut Vec<Seg>,
}

impl<'de, 'a, 'p> Deserializer<'de> for Track<'a, 'p> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(a) => visitor.visit_seq(SeqTrack {
                it: a.iter().enumerate(),
                path: self.path,
            }),
            Value::Object(m) => visitor.visit_map(MapTrack {
                it: m.iter(),
                value: None,
                path: self.path,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.v {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => Err(de::Error::custom("expected a string")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

struct SeqTrack<'a, 'p, I: Iterator<Item = (usize, &'a Value)>> {
    it: I,
    path: &'p mut Vec<Seg>,
}

impl<'de, 'a, 'p, I: Iterator<Item = (usize, &'a Value)>> SeqAccess<'de> for SeqTrack<'a, 'p, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, v)) = self.it.next() else {
            return Ok(None);
        };
        self.path.push(Seg::Index(i));
        let r = seed.deserialize(Track { v, path: self.path })?;
        self.path.pop();
        Ok(Some(r))
    }
}

struct MapTrack<'a, 'p> {
    it: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
    path: &'p mut Vec<Seg>,
}

impl<'de, 'a, 'p> MapAccess<'de> for MapTrack<'a, 'p> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((k, v)) = self.it.next() else {
            return Ok(None);
        };
        // Pushed before the key is read: an unknown-field error names it.
        self.path.push(Seg::Key(k.clone()));
        self.value = Some(v);
        let key = seed.deserialize(k.as_str().into_deserializer())?;
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value without key"))?;
        let r = seed.deserialize(Track { v, path: self.path })?;
        self.path.pop();
        Ok(r)
    }
}

fn field(path: &str, msg: impl fmt::Display) -> ConfigError {
    ConfigError::Field {
        path: path.to_string(),
        msg: msg.to_string(),
    }
}

/// Deserialize with deny_unknown_fields and report where it failed.
pub fn parse_raw(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
    // Version first, so a future schema says "version 2" rather than
    // "unknown field" for whatever it added.
    if let Some(n) = v.get("version").and_then(Value::as_u64) {
        if n != u64::from(CONFIG_VERSION) {
            return Err(ConfigError::Version {
                found: u32::try_from(n).unwrap_or(u32::MAX),
            });
        }
    }
    let mut path = Vec::new();
    RawConfig::deserialize(Track {
        v: &v,
        path: &mut path,
    })
    .map_err(|e| field(&render(&path), e))
}

// ---------------------------------------------------------------------------
// Validation: every value through the command line's own parser.
// ---------------------------------------------------------------------------

/// Parse `key=value` as a one-argument kernel command line. Values that the
/// cmdline could not carry verbatim (spaces, quotes, control characters)
/// are refused up front.
fn via_cmdline(path: &str, key: &str, value: &str) -> Result<BootPlan, ConfigError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        return Err(field(
            path,
            format!(
                "{} is empty or has spaces, quotes or control characters",
                cmdline_quote(value)
            ),
        ));
    }
    cmdline::parse_plan(&format!("{key}={value}")).map_err(|e| field(path, e))
}

fn cmdline_quote(v: &str) -> String {
    let mut s: String = v.chars().take(120).collect();
    if s.len() < v.len() {
        s.push('…');
    }
    format!("{s:?}")
}

/// The validated settings of a config, as plan values. Built by
/// [`Config::from_json`], merged by [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub paths: Option<Vec<RootPath>>,
    pub chap: Option<Chap>,
    pub initiator: Option<String>,
    pub ip: Option<Vec<crate::plan::IpConfig>>,
    pub nameservers: Option<Vec<std::net::IpAddr>>,
    pub root_device: Option<crate::plan::RootDevice>,
    pub root_fstype: Option<String>,
    pub root_flags: Option<String>,
    pub root_read_only: Option<bool>,
    pub init_path: Option<String>,
    pub init_args: Option<Vec<String>>,
    pub scheduler: Option<String>,
    pub nr_requests: Option<u32>,
    pub queue_depth: Option<u32>,
    pub cmds_max: Option<u32>,
    pub login_retry_max: Option<u32>,
    pub tpgt: Option<u16>,
    pub node_params: Option<Vec<Param>>,
    pub login_params: Option<Vec<Param>>,
    pub timeout_ms: Option<u64>,
    pub on_fail: Option<crate::plan::FailurePolicy>,
    pub log: Option<crate::plan::LogLevel>,
    pub events: Option<Option<crate::plan::EventsTarget>>,
}

fn chap(c: &RawChap, path: &str) -> Result<Chap, ConfigError> {
    let bad = |f: &str| field(&format!("{path}.{f}"), "must not be empty");
    if c.username.is_empty() {
        return Err(bad("username"));
    }
    if c.password.is_empty() {
        return Err(bad("password"));
    }
    let mutual = match &c.mutual {
        None => None,
        Some(m) if m.username.is_empty() => return Err(bad("mutual.username")),
        Some(m) if m.password.is_empty() => return Err(bad("mutual.password")),
        Some(m) => Some(MutualChap {
            username: m.username.clone(),
            secret: m.password.clone(),
        }),
    };
    Ok(Chap {
        username: c.username.clone(),
        secret: c.password.clone(),
        mutual,
    })
}

fn root_path(p: &RawPath, path: &str) -> Result<RootPath, ConfigError> {
    // Build the RFC 4173 form (no credentials: those stay typed) and let the
    // cmdline parser check server, port, LUN and target.
    let server = if p.server.contains(':') {
        format!("[{}]", p.server)
    } else {
        p.server.clone()
    };
    let port = p.port.map(|n| n.to_string()).unwrap_or_default();
    let lun = p.lun.map(|n| n.to_string()).unwrap_or_default();
    let s = format!("iscsi:{server}::{port}:{lun}:{}", p.target);
    let mut rp = rootpath::parse(&s).map_err(|e| field(path, e))?;
    if let Some(t) = p.tpgt {
        rp.tpgt = t;
    }
    rp.chap = p
        .chap
        .as_ref()
        .map(|c| chap(c, &format!("{path}.chap")))
        .transpose()?;
    Ok(rp)
}

/// `arg` maps (key, value) to the cmdline's (KEY, VALUE) for one parameter.
fn params(
    list: &[RawParam],
    path: &str,
    arg: impl Fn(&str, &str) -> (String, String),
) -> Result<Vec<Param>, ConfigError> {
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if p.value
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
        {
            // Not echoed: the value may be a password.
            return Err(field(&at, "value has spaces, quotes or control characters"));
        }
        let (k, v) = arg(&p.key, p.value.expose());
        let plan = via_cmdline(&at, &k, &v)?;
        let got = plan
            .iscsi
            .node_params
            .into_iter()
            .chain(plan.iscsi.login_params)
            .next()
            .ok_or_else(|| field(&at, "not a KEY=VALUE parameter"))?;
        out.push(got);
    }
    Ok(out)
}

impl Config {
    /// Parse and validate a config document.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw = parse_raw(bytes)?;
        Config::from_raw(&raw)
    }

    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        if raw.version != CONFIG_VERSION {
            return Err(ConfigError::Version { found: raw.version });
        }
        let mut c = Config::default();
        if let Some(ps) = &raw.paths {
            let mut v = Vec::new();
            for (i, p) in ps.iter().enumerate() {
                v.push(root_path(p, &format!("paths[{i}]"))?);
            }
            c.paths = Some(v);
        }
        c.chap = raw.chap.as_ref().map(|x| chap(x, "chap")).transpose()?;
        if let Some(i) = &raw.initiator {
            c.initiator = via_cmdline("initiator", "netboot.initiator", i)?.initiator;
        }
        if let Some(ips) = &raw.ip {
            let mut v = Vec::new();
            for (i, s) in ips.iter().enumerate() {
                let at = format!("ip[{i}]");
                let cfg = ip::parse(s).map_err(|e| field(&at, e))?;
                if v.iter()
                    .any(|o: &crate::plan::IpConfig| o.iface == cfg.iface)
                {
                    return Err(field(
                        &at,
                        "interface already configured by an earlier ip entry",
                    ));
                }
                v.push(cfg);
            }
            c.ip = Some(v);
        }
        if let Some(ns) = &raw.nameservers {
            let mut v = Vec::new();
            for (i, s) in ns.iter().enumerate() {
                v.push(ip::parse_addr(s).ok_or_else(|| {
                    field(
                        &format!("nameservers[{i}]"),
                        format!("{} is not an IP address", cmdline_quote(s)),
                    )
                })?);
            }
            c.nameservers = Some(v);
        }
        if let Some(r) = &raw.root {
            if let Some(d) = &r.device {
                if d.starts_with("iscsi:") || d == "dhcp" {
                    return Err(field("root.device", "iSCSI paths go in \"paths\""));
                }
                c.root_device = Some(via_cmdline("root.device", "root", d)?.root.device);
            }
            if let Some(t) = &r.fstype {
                c.root_fstype = via_cmdline("root.fstype", "rootfstype", t)?.root.fstype;
            }
            if let Some(f) = &r.flags {
                c.root_flags = via_cmdline("root.flags", "rootflags", f)?.root.flags;
            }
            c.root_read_only = r.read_only;
        }
        if let Some(i) = &raw.init {
            if let Some(p) = &i.path {
                c.init_path = via_cmdline("init.path", "init", p)?.init.path;
            }
            c.init_args = i.args.clone();
        }
        if let Some(t) = &raw.tuning {
            if let Some(s) = &t.scheduler {
                c.scheduler = via_cmdline("tuning.scheduler", "netboot.scheduler", s)?
                    .tuning
                    .scheduler;
            }
            if let Some(n) = t.nr_requests {
                c.nr_requests =
                    via_cmdline("tuning.nr_requests", "netboot.nr_requests", &n.to_string())?
                        .tuning
                        .nr_requests;
            }
            if let Some(n) = t.queue_depth {
                c.queue_depth = Some(
                    via_cmdline("tuning.queue_depth", "netboot.queue_depth", &n.to_string())?
                        .tuning
                        .queue_depth,
                );
            }
            if let Some(n) = t.cmds_max {
                c.cmds_max = Some(
                    via_cmdline("tuning.cmds_max", "netboot.cmds_max", &n.to_string())?
                        .tuning
                        .cmds_max,
                );
            }
        }
        if let Some(s) = &raw.iscsi {
            if let Some(n) = s.login_retry_max {
                c.login_retry_max = Some(
                    via_cmdline(
                        "iscsi.login_retry_max",
                        "rd.iscsi.login_retry_max",
                        &n.to_string(),
                    )?
                    .iscsi
                    .login_retry_max,
                );
            }
            c.tpgt = s.tpgt;
            if let Some(l) = &s.node_params {
                c.node_params = Some(params(l, "iscsi.node_params", |k, v| {
                    ("rd.iscsi.param".to_string(), format!("{k}={v}"))
                })?);
            }
            if let Some(l) = &s.login_params {
                c.login_params = Some(params(l, "iscsi.login_params", |k, v| {
                    (format!("netboot.param.{k}"), v.to_string())
                })?);
            }
        }
        if let Some(ms) = raw.timeout_ms {
            let s = format!("{}.{:03}", ms / 1000, ms % 1000);
            c.timeout_ms = Some(via_cmdline("timeout_ms", "netboot.timeout", &s)?.timeout_ms);
        }
        if let Some(v) = &raw.on_fail {
            c.on_fail = Some(via_cmdline("on_fail", "netboot.on_fail", v)?.on_fail);
        }
        if let Some(v) = &raw.log {
            c.log = Some(via_cmdline("log", "netboot.log", v)?.log);
        }
        if let Some(v) = &raw.events {
            c.events = Some(via_cmdline("events", "netboot.events", v)?.events);
        }
        Ok(c)
    }
}

/// The normalized keys (`-` → `_`, as the tokenizer folds them) present on
/// a kernel command line, for [`apply`].
pub fn explicit_keys(cmdline: &str) -> Vec<String> {
    tokenize::tokenize(cmdline)
        .args
        .into_iter()
        .map(|a| a.key)
        .collect()
}

/// Merge `config` into `plan`. `explicit` are the command-line keys (from
/// [`explicit_keys`]); a config field is skipped when any key that sets the
/// same plan field was given. Call after `parse_plan` on the same cmdline.
pub fn apply(config: &Config, plan: &mut BootPlan, explicit: &[String]) {
    let given = |keys: &[&str]| explicit.iter().any(|k| keys.contains(&k.as_str()));
    let given_prefix = |p: &str| explicit.iter().any(|k| k.starts_with(p));
    fn set<T: Clone>(dst: &mut T, src: &Option<T>, skip: bool) {
        if let (Some(v), false) = (src, skip) {
            *dst = v.clone();
        }
    }
    let chap_keys = [
        "rd.iscsi.username",
        "rd.iscsi.password",
        "rd.iscsi.in.username",
        "rd.iscsi.in.password",
        "iscsi_username",
        "iscsi_password",
        "iscsi_in_username",
        "iscsi_in_password",
    ];
    if config.chap.is_some() && !given(&chap_keys) {
        plan.iscsi.chap = config.chap.clone();
    }
    if !given(&["rd.iscsi.target.group", "iscsi_target_group"]) {
        set(&mut plan.iscsi.tpgt, &config.tpgt, false);
    }
    if let Some(paths) = &config.paths {
        if plan.paths.is_empty() && !plan.root_path_from_dhcp {
            plan.paths = paths.clone();
            for p in &mut plan.paths {
                if p.chap.is_none() {
                    p.chap = plan.iscsi.chap.clone();
                }
            }
        }
    }
    if config.initiator.is_some()
        && !given(&["rd.iscsi.initiator", "iscsi_initiator", "netboot.initiator"])
    {
        plan.initiator = config.initiator.clone();
    }
    set(&mut plan.network.ip, &config.ip, given(&["ip"]));
    set(
        &mut plan.network.nameservers,
        &config.nameservers,
        given(&["nameserver"]),
    );
    set(&mut plan.root.device, &config.root_device, given(&["root"]));
    if config.root_fstype.is_some() && !given(&["rootfstype"]) {
        plan.root.fstype = config.root_fstype.clone();
    }
    if config.root_flags.is_some() && !given(&["rootflags"]) {
        plan.root.flags = config.root_flags.clone();
    }
    set(
        &mut plan.root.read_only,
        &config.root_read_only,
        given(&["ro", "rw"]),
    );
    if config.init_path.is_some() && !given(&["init"]) {
        plan.init.path = config.init_path.clone();
    }
    let has_args = !plan.init.args.is_empty();
    set(&mut plan.init.args, &config.init_args, has_args);
    if config.scheduler.is_some() && !given(&["netboot.scheduler"]) {
        plan.tuning.scheduler = config.scheduler.clone();
    }
    if config.nr_requests.is_some() && !given(&["netboot.nr_requests"]) {
        plan.tuning.nr_requests = config.nr_requests;
    }
    set(
        &mut plan.tuning.queue_depth,
        &config.queue_depth,
        given(&["netboot.queue_depth"]),
    );
    set(
        &mut plan.tuning.cmds_max,
        &config.cmds_max,
        given(&["netboot.cmds_max"]),
    );
    set(
        &mut plan.iscsi.login_retry_max,
        &config.login_retry_max,
        given(&["rd.iscsi.login_retry_max"]),
    );
    set(
        &mut plan.iscsi.node_params,
        &config.node_params,
        given(&["rd.iscsi.param", "iscsi_param"]),
    );
    set(
        &mut plan.iscsi.login_params,
        &config.login_params,
        given_prefix("netboot.param."),
    );
    set(
        &mut plan.timeout_ms,
        &config.timeout_ms,
        given(&["netboot.timeout"]),
    );
    set(
        &mut plan.on_fail,
        &config.on_fail,
        given(&["netboot.on_fail"]),
    );
    set(&mut plan.log, &config.log, given(&["netboot.log"]));
    set(&mut plan.events, &config.events, given(&["netboot.events"]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FailurePolicy, RootDevice};

    const FULL: &str = r#"{ "version": 1,
      "paths": [ { "server": "198.18.0.1", "port": 3261, "lun": 2,
                   "target": "iqn.2024-01.org.example:root", "tpgt": 3,
                   "chap": { "username": "u", "password": "hunter2",
                             "mutual": { "username": "t", "password": "q" } } },
                 { "server": "fd00::1", "target": "iqn.2024-01.org.example:root" } ],
      "chap": { "username": "d", "password": "defaultpw" },
      "initiator": "iqn.2024-01.org.example:host1",
      "ip": ["198.18.0.2::198.18.0.1:255.255.255.0:host1:eth0:off"],
      "nameservers": ["198.18.0.1"],
      "root": { "device": "LABEL=root", "fstype": "ext4", "flags": "noatime", "read_only": false },
      "init": { "path": "/sbin/init", "args": ["single"] },
      "tuning": { "scheduler": "none", "nr_requests": 256, "queue_depth": 64, "cmds_max": 256 },
      "iscsi": { "login_retry_max": 5, "tpgt": 1,
                 "node_params": [{"key": "node.session.timeo.replacement_timeout", "value": "30"}],
                 "login_params": [{"key": "MaxRecvDataSegmentLength", "value": "262144"}] },
      "timeout_ms": 60500, "on_fail": "shell", "log": "debug", "events": "off" }"#;

    fn err(json: &str) -> String {
        match Config::from_json(json.as_bytes()) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_config_parses() {
        let c = Config::from_json(FULL.as_bytes()).expect("valid");
        let paths = c.paths.as_ref().expect("paths");
        assert_eq!(paths.len(), 2);
        assert_eq!((paths[0].port, paths[0].lun, paths[0].tpgt), (3261, 2, 3));
        assert_eq!(
            paths[0].chap.as_ref().map(|c| c.secret.expose()),
            Some("hunter2")
        );
        assert_eq!(paths[1].server, "fd00::1");
        assert_eq!(c.root_device, Some(RootDevice::Label("root".into())));
        assert_eq!(c.timeout_ms, Some(60_500));
        assert_eq!(c.on_fail, Some(FailurePolicy::Shell));
        assert_eq!(c.events, Some(None));
        assert_eq!(c.cmds_max, Some(256));
        // Secrets never print.
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("defaultpw"),
            "{dbg}"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let table = [
            (
                r#"{"version":1,"tunnig":{}}"#,
                "config field tunnig: unknown field `tunnig`",
            ),
            (
                r#"{"version":1,"paths":[{"server":"a","target":"t","chap":{"username":"u","pasword":"x"}}]}"#,
                "config field paths[0].chap.pasword: unknown field `pasword`",
            ),
            (
                r#"{"version":1,"tuning":{"queue_depth":"x"}}"#,
                "config field tuning.queue_depth: invalid type",
            ),
            (
                r#"{"version":1,"tuning":{"cmds_max":100}}"#,
                "config field tuning.cmds_max: invalid netboot.cmds_max=",
            ),
            (r#"{"version":1,"ip":["bogus"]}"#, "config field ip[0]: "),
            (r#"{"version":2}"#, "config version 2 is not supported"),
            (r#"{"paths":[]}"#, "config: missing field `version`"),
            (
                r#"{"version":1,"on_fail":"explode"}"#,
                "config field on_fail: invalid netboot.on_fail=",
            ),
            (
                r#"{"version":1,"root":{"device":"LABEL=a b"}}"#,
                "config field root.device: \"LABEL=a b\" is empty or has spaces",
            ),
            (
                r#"{"version":1,"paths":[{"server":"a b","target":"t"}]}"#,
                "config field paths[0]: ",
            ),
            ("{", "config is not valid JSON"),
        ];
        for (json, want) in table {
            let got = err(json);
            assert!(got.starts_with(want), "{json}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn secret_not_echoed_in_errors() {
        let got = err(
            r#"{"version":1,"iscsi":{"login_params":[{"key":"CHAP_Password","value":"sec ret"}]}}"#,
        );
        assert!(!got.contains("sec ret"), "{got}");
    }

    #[test]
    fn apply_precedence() {
        let c = Config::from_json(FULL.as_bytes()).expect("valid");
        // Command line sets scheduler, timeout and a root path: those win.
        let line = "netboot.scheduler=mq-deadline netboot.timeout=5 iscsi=10.0.0.9::::iqn.x:y netboot.on-fail=halt";
        let mut plan = cmdline::parse_plan(line).expect("plan");
        apply(&c, &mut plan, &explicit_keys(line));
        assert_eq!(plan.tuning.scheduler.as_deref(), Some("mq-deadline"));
        assert_eq!(plan.timeout_ms, 5000);
        assert_eq!(plan.on_fail, FailurePolicy::Halt);
        assert_eq!(plan.paths.len(), 1);
        assert_eq!(plan.paths[0].server, "10.0.0.9");
        // Everything else comes from the config.
        assert_eq!(plan.tuning.queue_depth, 64);
        assert_eq!(
            plan.initiator.as_deref(),
            Some("iqn.2024-01.org.example:host1")
        );
        assert_eq!(plan.events, None);
        assert!(!plan.root.read_only);
        assert_eq!(
            plan.iscsi.chap.as_ref().map(|c| c.username.as_str()),
            Some("d")
        );

        // Without cmdline paths the config's paths are used, in order; the
        // second gets the default CHAP.
        let mut plan = cmdline::parse_plan("ro").expect("plan");
        apply(&c, &mut plan, &explicit_keys("ro"));
        assert_eq!(plan.paths.len(), 2);
        assert!(plan.root.read_only, "explicit ro wins over read_only=false");
        assert_eq!(
            plan.paths[1].chap.as_ref().map(|c| c.username.as_str()),
            Some("d")
        );
        let json = serde_json::to_string(&plan).expect("json");
        assert!(!json.contains("hunter2") && !json.contains("defaultpw"));
    }

    #[test]
    fn minimal_config_changes_nothing() {
        let c = Config::from_json(br#"{"version":1}"#).expect("valid");
        let mut plan = BootPlan::default();
        apply(&c, &mut plan, &[]);
        assert_eq!(plan, BootPlan::default());
    }
}
