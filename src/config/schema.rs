//! The fetched configuration: a versioned JSON document that can express
//! everything the kernel command line can (DESIGN.md §3), and its
//! validation into [`Config`] (merged into the plan by `super::merge`).
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
//!   "timeout_ms": 60000, "on_fail": "reboot", "reboot_delay_ms": 10000,
//!   "log": "info", "events": "11:0x4e42.1" }
//! ```
//!
//! Every field but `version` is optional; an absent field leaves the plan
//! alone. Unknown fields are errors that name their JSON path
//! (`paths[0].chap.pasword: unknown field …`, tracked by
//! `serde_path_to_error`). Values go through the command line's own
//! validators, field by field ([`crate::cmdline::keys`]: same bounds, same
//! messages), so a value is valid here exactly when the command line
//! accepts it for the same field. Durations are milliseconds here
//! (`timeout_ms`), seconds on the command line.
//!
//! TPGT: a path's own `tpgt` wins; paths without one take `iscsi.tpgt`
//! (unless `rd.iscsi.target.group=` is on the command line), else 1 — the
//! rule of [`crate::plan::BootPlan::apply_tpgt`].
//!
//! Secrets (`password`, sensitive parameter values) deserialize into
//! [`Secret`], so a parsed config never prints them.

use crate::cmdline::keys::{self, Dur, Num, PlanField, ValueError};
use crate::plan::{
    Chap, EventsTarget, FailurePolicy, IpConfig, LogLevel, MutualChap, Param, RootDevice, RootPath,
    Secret, DEFAULT_PORT, DEFAULT_TPGT,
};
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

pub const CONFIG_VERSION: u32 = 1;

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
    /// As `netboot.reboot_delay=`, in milliseconds.
    pub reboot_delay_ms: Option<u64>,
    /// `off`, `error` … `trace`.
    pub log: Option<String>,
    /// `off` or `GROUP[:IDX.VAL]` as `netboot.events=`.
    pub events: Option<String>,
    /// For netboot-configd, which removes it before sending: `true` lets
    /// configd serve this document's CHAP secrets on calls that are not
    /// rxkad-encrypted (plain or `auth`). Absent or `false`: such calls are
    /// refused (`NBCONF_SECRETS_REFUSED`) when the document holds secrets.
    pub serve_secrets_insecure: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    /// Host name, IPv4, or IPv6 (bare or in brackets).
    pub server: String,
    pub port: Option<u16>,
    pub lun: Option<u64>,
    pub target: String,
    /// This path's own TPGT; absent: the plan-wide one.
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
    /// As `rootflags=`; `""` clears the command line's.
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
    /// TPGT of every path without its own.
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
    /// A field is wrong; `path` like `paths[0].chap.password`, empty for
    /// the document itself.
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

fn field(path: &str, msg: impl fmt::Display) -> ConfigError {
    ConfigError::Field {
        path: path.to_string(),
        msg: msg.to_string(),
    }
}

/// The config path of a field (every field validated here has one).
fn at(f: PlanField) -> &'static str {
    f.config_path().unwrap_or("")
}

/// A validator's error at the path of its field.
fn invalid(f: PlanField) -> impl Fn(ValueError) -> ConfigError {
    move |e| field(at(f), e)
}

fn json_error(e: serde_json::Error) -> ConfigError {
    ConfigError::Json(e.to_string())
}

/// Deserialize with deny_unknown_fields and report where it failed.
pub fn parse_raw(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    // Version first, so a future schema says "version 2" rather than
    // "unknown field" for whatever it added. This pass also finds every
    // syntax error; a data error here (`version` not a number, the document
    // not an object) is left to the full pass, which names its path.
    #[derive(Deserialize)]
    struct Probe {
        version: Option<u64>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe { version: Some(n) }) if n != u64::from(CONFIG_VERSION) => {
            return Err(ConfigError::Version {
                found: u32::try_from(n).unwrap_or(u32::MAX),
            });
        }
        Err(e) if !e.is_data() => return Err(json_error(e)),
        _ => {}
    }
    // Every object, whatever its type in the schema: a repeated key is an
    // error at the key's own path, never last-wins (unique_keys.rs).
    match super::unique_keys::check(bytes) {
        Ok(()) => {}
        Err(super::unique_keys::Error::Duplicate(d)) => return Err(field(&d.path, d.msg)),
        Err(super::unique_keys::Error::Json(e)) => return Err(json_error(e)),
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return json_error(inner);
        }
        // The document itself is `.`; say nothing rather than that.
        field(if path == "." { "" } else { &path }, inner)
    })?;
    de.end().map_err(json_error)?;
    Ok(raw)
}

/// The validated settings of a config, as plan values. Built by
/// [`Config::from_json`], merged by `super::merge::apply`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `own_tpgt` is set on the paths that gave a `tpgt`.
    pub paths: Option<Vec<RootPath>>,
    pub chap: Option<Chap>,
    pub initiator: Option<String>,
    pub ip: Option<Vec<IpConfig>>,
    pub nameservers: Option<Vec<IpAddr>>,
    pub root_device: Option<RootDevice>,
    pub root_fstype: Option<String>,
    /// `Some(None)`: `"flags": ""`, no mount options.
    pub root_flags: Option<Option<String>>,
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
    pub on_fail: Option<FailurePolicy>,
    pub reboot_delay_ms: Option<u64>,
    pub log: Option<LogLevel>,
    /// `Some(None)`: `"events": "off"`.
    pub events: Option<Option<EventsTarget>>,
    /// configd's `serve_secrets_insecure` (the agent has no use for it).
    pub serve_secrets_insecure: bool,
}

impl Config {
    /// The document holds a credential: CHAP (plan-wide or a path's), or a
    /// sensitive node or login parameter (`Param::is_sensitive`).
    pub fn holds_secrets(&self) -> bool {
        self.chap.is_some()
            || self.paths.iter().flatten().any(|p| p.chap.is_some())
            || [&self.node_params, &self.login_params]
                .into_iter()
                .flatten()
                .flatten()
                .any(|p| p.is_sensitive())
    }
}

/// `Some(f(v))` for a present value, with `f`'s error.
fn opt<T, U, E>(v: &Option<T>, f: impl FnOnce(&T) -> Result<U, E>) -> Result<Option<U>, E> {
    v.as_ref().map(f).transpose()
}

fn chap(c: &RawChap, path: &str) -> Result<Chap, ConfigError> {
    // The command line treats an empty CHAP value as not given; a config
    // that names the object means it, so empty is an error here.
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

/// One root path, field by field with the root-path rules.
fn root_path(p: &RawPath, path: &str) -> Result<RootPath, ConfigError> {
    let sub = |f: &'static str| move |e: ValueError| field(&format!("{path}.{f}"), e);
    Ok(RootPath {
        server: keys::path_server(&p.server).map_err(sub("server"))?,
        port: keys::path_port(p.port.unwrap_or(DEFAULT_PORT)).map_err(sub("port"))?,
        lun: p.lun.unwrap_or(0),
        target: keys::path_target(&p.target).map_err(sub("target"))?,
        tpgt: p.tpgt.unwrap_or(DEFAULT_TPGT),
        own_tpgt: p.tpgt.is_some(),
        chap: opt(&p.chap, |c| chap(c, &format!("{path}.chap")))?,
        iface: None,
        netdev: None,
    })
}

/// Each `{key, value}` of a parameter list through `check`.
fn params(
    list: &[RawParam],
    f: PlanField,
    check: fn(&str, &str) -> Result<Param, ValueError>,
) -> Result<Vec<Param>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            check(&p.key, p.value.expose()).map_err(|e| field(&format!("{}[{i}]", at(f)), e))
        })
        .collect()
}

/// Each string of a list through `check`, which also sees the earlier ones.
fn list<T>(
    items: &[String],
    f: PlanField,
    check: impl Fn(&[T], &str) -> Result<T, ValueError>,
) -> Result<Vec<T>, ConfigError> {
    let mut out = Vec::new();
    for (i, s) in items.iter().enumerate() {
        let v = check(&out, s).map_err(|e| field(&format!("{}[{i}]", at(f)), e))?;
        out.push(v);
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
        let mut c = Config {
            paths: opt(&raw.paths, |ps| {
                ps.iter()
                    .enumerate()
                    .map(|(i, p)| root_path(p, &format!("paths[{i}]")))
                    .collect()
            })?,
            chap: opt(&raw.chap, |x| chap(x, "chap"))?,
            initiator: opt(&raw.initiator, |v| keys::initiator(v))
                .map_err(invalid(PlanField::Initiator))?,
            ip: opt(&raw.ip, |v| list(v, PlanField::Ip, keys::ip_entry))?,
            nameservers: opt(&raw.nameservers, |v| {
                list(v, PlanField::Nameservers, |_, s| keys::nameserver(s))
            })?,
            timeout_ms: opt(&raw.timeout_ms, |&ms| keys::timeout_ms(Dur::Millis(ms)))
                .map_err(invalid(PlanField::Timeout))?,
            on_fail: opt(&raw.on_fail, |v| keys::on_fail(v)).map_err(invalid(PlanField::OnFail))?,
            reboot_delay_ms: opt(&raw.reboot_delay_ms, |&ms| {
                keys::reboot_delay_ms(Dur::Millis(ms))
            })
            .map_err(invalid(PlanField::RebootDelay))?,
            log: opt(&raw.log, |v| keys::log_level(v)).map_err(invalid(PlanField::Log))?,
            events: opt(&raw.events, |v| keys::events(v)).map_err(invalid(PlanField::Events))?,
            serve_secrets_insecure: raw.serve_secrets_insecure.unwrap_or(false),
            ..Config::default()
        };
        if let Some(r) = &raw.root {
            c.root(r)?;
        }
        if let Some(i) = &raw.init {
            c.init_path =
                opt(&i.path, |v| keys::abs_path(v)).map_err(invalid(PlanField::InitPath))?;
            c.init_args = i.args.clone();
        }
        if let Some(t) = &raw.tuning {
            c.tuning(t)?;
        }
        if let Some(s) = &raw.iscsi {
            c.iscsi(s)?;
        }
        Ok(c)
    }

    fn root(&mut self, r: &RawRoot) -> Result<(), ConfigError> {
        self.root_device = opt(&r.device, |d| {
            if d.starts_with("iscsi:") || d == "dhcp" {
                Err(field(
                    at(PlanField::RootDevice),
                    "iSCSI paths go in \"paths\"",
                ))
            } else {
                keys::root_device(d).map_err(invalid(PlanField::RootDevice))
            }
        })?;
        self.root_fstype =
            opt(&r.fstype, |v| keys::root_fstype(v)).map_err(invalid(PlanField::RootFstype))?;
        self.root_flags = r.flags.as_deref().map(keys::root_flags);
        self.root_read_only = r.read_only;
        Ok(())
    }

    fn tuning(&mut self, t: &RawTuning) -> Result<(), ConfigError> {
        let n = |v: u32| Num::Json(u64::from(v));
        self.scheduler =
            opt(&t.scheduler, |v| keys::scheduler(v)).map_err(invalid(PlanField::Scheduler))?;
        self.nr_requests = opt(&t.nr_requests, |&v| keys::nr_requests(n(v)))
            .map_err(invalid(PlanField::NrRequests))?;
        self.queue_depth = opt(&t.queue_depth, |&v| keys::queue_depth(n(v)))
            .map_err(invalid(PlanField::QueueDepth))?;
        self.cmds_max =
            opt(&t.cmds_max, |&v| keys::cmds_max(n(v))).map_err(invalid(PlanField::CmdsMax))?;
        Ok(())
    }

    fn iscsi(&mut self, s: &RawIscsi) -> Result<(), ConfigError> {
        self.login_retry_max = opt(&s.login_retry_max, |&v| {
            keys::login_retry_max(Num::Json(u64::from(v)))
        })
        .map_err(invalid(PlanField::LoginRetryMax))?;
        self.tpgt = opt(&s.tpgt, |&v| keys::tpgt(Num::Json(u64::from(v))))
            .map_err(invalid(PlanField::Tpgt))?;
        self.node_params = opt(&s.node_params, |l| {
            params(l, PlanField::NodeParams, keys::node_param)
        })?;
        self.login_params = opt(&s.login_params, |l| {
            params(l, PlanField::LoginParams, keys::login_param)
        })?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const FULL: &str = r#"{ "version": 1,
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
      "timeout_ms": 60500, "on_fail": "shell", "reboot_delay_ms": 2500, "log": "debug",
      "events": "off" }"#;

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
        assert_eq!(
            (
                paths[0].port,
                paths[0].lun,
                paths[0].tpgt,
                paths[0].own_tpgt
            ),
            (3261, 2, 3, true)
        );
        assert_eq!((paths[1].port, paths[1].own_tpgt), (3260, false));
        assert_eq!(
            paths[0].chap.as_ref().map(|c| c.secret.expose()),
            Some("hunter2")
        );
        assert_eq!(paths[1].server, "fd00::1");
        assert_eq!(c.root_device, Some(RootDevice::Label("root".into())));
        assert_eq!(c.root_flags, Some(Some("noatime".into())));
        assert_eq!(c.timeout_ms, Some(60_500));
        assert_eq!(c.on_fail, Some(FailurePolicy::Shell));
        assert_eq!(c.reboot_delay_ms, Some(2_500));
        assert_eq!(c.log, Some(LogLevel::Debug));
        assert_eq!(c.events, Some(None));
        assert_eq!(c.cmds_max, Some(256));
        assert_eq!(c.tpgt, Some(1));
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
                "config field tunnig: unknown field `tunnig`, expected one of `version`, \
                 `paths`, `chap`, `initiator`, `ip`, `nameservers`, `root`, `init`, `tuning`, \
                 `iscsi`, `timeout_ms`, `on_fail`, `reboot_delay_ms`, `log`, `events`, \
                 `serve_secrets_insecure` at line 1 column 21",
            ),
            (
                r#"{"version":1,"paths":[{"server":"a","target":"t","chap":{"username":"u","pasword":"x"}}]}"#,
                "config field paths[0].chap.pasword: unknown field `pasword`, expected one of \
                 `username`, `password`, `mutual` at line 1 column 81",
            ),
            (
                r#"{"version":1,"tuning":{"queue_depth":"x"}}"#,
                "config field tuning.queue_depth: invalid type: string \"x\", expected u32 \
                 at line 1 column 40",
            ),
            (
                r#"{"version":1,"tuning":{"cmds_max":100}}"#,
                "config field tuning.cmds_max: 100 is not a power of two in 16..4096",
            ),
            (
                r#"{"version":1,"ip":["bogus"]}"#,
                "config field ip[0]: method \"bogus\" in \"bogus\" is not one of dhcp, on, \
                 any, dhcp6, auto6, off, none",
            ),
            (
                r#"{"version":1,"ip":["eth0:dhcp","eth0:dhcp"]}"#,
                "config field ip[1]: interface \"eth0\" is already configured by an earlier ip=",
            ),
            (
                r#"{"version":1,"nameservers":["198.18.0.1","dns"]}"#,
                "config field nameservers[1]: \"dns\" is not an IP address",
            ),
            (
                r#"{"version":2}"#,
                "config version 2 is not supported (this netboot reads version 1)",
            ),
            (
                r#"{"paths":[]}"#,
                "config: missing field `version` at line 1 column 12",
            ),
            (
                r#"{"version":"1"}"#,
                "config field version: invalid type: string \"1\", expected u32 \
                 at line 1 column 14",
            ),
            (
                r#""x""#,
                "config: invalid type: string \"x\", expected struct RawConfig at line 1 column 3",
            ),
            (
                r#"{"version":1,"on_fail":"explode"}"#,
                "config field on_fail: \"explode\" is not one of shell, reboot, halt",
            ),
            (
                r#"{"version":1,"log":"loud"}"#,
                "config field log: \"loud\" is not one of off, error, warn, warning, info, \
                 debug, trace",
            ),
            (
                r#"{"version":1,"timeout_ms":0}"#,
                "config field timeout_ms: 0 is not milliseconds in 1..86400000",
            ),
            (
                r#"{"version":1,"reboot_delay_ms":3600001}"#,
                "config field reboot_delay_ms: 3600001 is not milliseconds in 0..3600000",
            ),
            (
                r#"{"version":1,"iscsi":{"tpgt":70000}}"#,
                "config field iscsi.tpgt: invalid value: integer `70000`, expected u16 \
                 at line 1 column 34",
            ),
            (
                r#"{"version":1,"root":{"device":"LABEL="}}"#,
                "config field root.device: \"LABEL=\" is not /dev/…, LABEL=, UUID=, \
                 PARTUUID=, PARTLABEL=, iscsi:… or dhcp",
            ),
            (
                r#"{"version":1,"root":{"device":"iscsi:h::::t"}}"#,
                "config field root.device: iSCSI paths go in \"paths\"",
            ),
            (
                r#"{"version":1,"init":{"path":"sbin/init"}}"#,
                "config field init.path: \"sbin/init\" is not an absolute path",
            ),
            (
                r#"{"version":1,"events":"5"}"#,
                "config field events: netboot.events=\"5\": group 5 belongs to a kernel \
                 connector user; use 11..=32 (default 26)",
            ),
            (
                r#"{"version":1,"paths":[{"server":"a b","target":"t"}]}"#,
                "config field paths[0].server: \"a b\" is not a host name or IP address",
            ),
            (
                r#"{"version":1,"paths":[{"server":"h","target":"t","port":0}]}"#,
                "config field paths[0].port: 0 is not a port in 1..65535",
            ),
            (
                r#"{"version":1,"paths":[{"server":"h","target":""}]}"#,
                "config field paths[0].target: \"\" is not an iSCSI target name (1..223 \
                 bytes, no spaces or control characters)",
            ),
            (
                r#"{"version":1,"chap":{"username":"u","password":""}}"#,
                "config field chap.password: must not be empty",
            ),
            (
                r#"{"version":1,"iscsi":{"node_params":[{"key":"","value":"1"}]}}"#,
                "config field iscsi.node_params[0]: \"\" is not NODE.KEY=VALUE",
            ),
            (
                r#"{"version":1,"iscsi":{"login_params":[{"key":"HeaderDigest","value":"None CRC32C"}]}}"#,
                "config field iscsi.login_params[0]: \"None CRC32C\" is not an iSCSI value \
                 (1..255 printable ASCII characters)",
            ),
            // A key given twice is refused at its own path, in every object.
            (
                r#"{"version":1,"on_fail":"shell","on_fail":"reboot"}"#,
                "config field on_fail: duplicate key (a key may appear once per object) \
                 at line 1 column 40",
            ),
            (
                r#"{"version":1,"paths":[{"server":"a","target":"t","server":"b"}]}"#,
                "config field paths[0].server: duplicate key (a key may appear once per \
                 object) at line 1 column 57",
            ),
            (
                r#"{"version":1,"iscsi":{"node_params":[{"key":"k","value":"1","value":"2"}]}}"#,
                "config field iscsi.node_params[0].value: duplicate key (a key may appear \
                 once per object) at line 1 column 67",
            ),
            (
                r#"{"version":2,"version":1}"#,
                "config field version: duplicate key (a key may appear once per object) \
                 at line 1 column 22",
            ),
            (
                "{",
                "config is not valid JSON: EOF while parsing an object at line 1 column 1",
            ),
            (
                r#"{"version":1} x"#,
                "config is not valid JSON: trailing characters at line 1 column 15",
            ),
        ];
        let mut failures = Vec::new();
        for (json, want) in table {
            let got = err(json);
            if got != want {
                failures.push(format!("{json}\n  got: {got}\n want: {want}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn values_the_command_line_accepts_are_accepted() {
        // Quoted on the command line, so fine here too (the old check
        // refused every value with a space).
        let c = Config::from_json(
            br#"{"version":1,"root":{"device":"LABEL=a b","flags":""},"log":"WARNING",
                 "paths":[{"server":"[fd00::1]","target":"plain:name"}]}"#,
        )
        .expect("valid");
        assert_eq!(c.root_device, Some(RootDevice::Label("a b".into())));
        assert_eq!(c.root_flags, Some(None));
        assert_eq!(c.log, Some(LogLevel::Warn));
        let p = &c.paths.expect("paths")[0];
        assert_eq!(
            (p.server.as_str(), p.target.as_str()),
            ("fd00::1", "plain:name")
        );
    }

    /// One validator per field: the config's message is the command line's
    /// after the key.
    #[test]
    fn messages_match_the_command_line() {
        for (json, line) in [
            (
                r#"{"version":1,"initiator":"foo"}"#,
                "netboot.initiator=foo",
            ),
            (
                r#"{"version":1,"tuning":{"scheduler":"BFQ"}}"#,
                "netboot.scheduler=BFQ",
            ),
            (
                r#"{"version":1,"on_fail":"panic"}"#,
                "netboot.on_fail=panic",
            ),
            (r#"{"version":1,"log":"verbose"}"#, "netboot.log=verbose"),
            (
                r#"{"version":1,"root":{"fstype":"ext4;"}}"#,
                "rootfstype=ext4;",
            ),
            (
                r#"{"version":1,"root":{"device":"UUID=xyz"}}"#,
                "root=UUID=xyz",
            ),
            (r#"{"version":1,"ip":["eth0:dhcp:x"]}"#, "ip=eth0:dhcp:x"),
            (r#"{"version":1,"nameservers":["x"]}"#, "nameserver=x"),
            (r#"{"version":1,"init":{"path":"init"}}"#, "init=init"),
            (
                r#"{"version":1,"iscsi":{"login_params":[{"key":"a b","value":"1"}]}}"#,
                "\"netboot.param.a b=1\"",
            ),
        ] {
            let cfg = err(json);
            let cmd = crate::cmdline::parse_plan(line)
                .expect_err("invalid")
                .to_string();
            let tail = |s: &str, sep: &str| s.split_once(sep).map(|(_, t)| t.to_string());
            assert_eq!(tail(&cfg, ": "), tail(&cmd, "=: "), "{json} vs {line}");
        }
    }

    #[test]
    fn secret_not_echoed_in_errors() {
        let got = err(
            r#"{"version":1,"iscsi":{"login_params":[{"key":"CHAP_Password","value":"sec ret"}]}}"#,
        );
        assert_eq!(
            got,
            "config field iscsi.login_params[0]: \"***\" is not an iSCSI value (1..255 \
             printable ASCII characters)"
        );
    }
}
