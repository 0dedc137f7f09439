//! The one key table: every [`PlanField`] that the kernel command line or
//! the fetched config document sets, with its command-line aliases and its
//! place in the config, and one validator per field.
//!
//! Both inputs go through it:
//! - `parse_plan` dispatches each argument by [`PlanField::of_key`] and
//!   checks its value with the validator below;
//! - `config::schema` checks the document's values with the same validators
//!   (same bounds, same messages), and `config::merge` skips a config field
//!   that the command line gave ([`explicit_fields`]).
//!
//! Validators return a [`ValueError`] without the key; the command line
//! shows it as `invalid KEY=: …`, the config as `config field PATH: …`.
//! Numbers come as [`Num`] (command-line text or a JSON number), durations
//! as [`Dur`] (seconds text or JSON milliseconds), so each field has one
//! rule whatever its source.

use super::events::EventsError;
use super::ip::{self, IpError};
use super::quote;
use super::rootpath::{self, parse_dec, valid_host, RootPathError, MAX_NAME_LEN};
use super::tokenize;
use crate::plan::{
    ConfigServer, EventsTarget, FailurePolicy, IfName, IpConfig, LogLevel, Param, RootDevice,
    RootPath,
};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

// Bounds of the numeric keys, documented in one place.
/// `nr_requests`: the kernel refuses more than 2048 with an I/O scheduler
/// (block/blk-sysfs.c, `MAX_SCHED_RQ` = 16 × BLKDEV_DEFAULT_RQ).
pub const NR_REQUESTS_MAX: u64 = 2048;
/// `queue_depth` (per LUN): our bound; deeper queues than 1024 buy nothing
/// over one TCP connection and only grow the session's memory.
pub const QUEUE_DEPTH_MAX: u64 = 1024;
/// `cmds_max` (per session): libiscsi's `ISCSI_TOTAL_CMDS_MIN`/`MAX` (16,
/// 4096), and a power of two, which libiscsi otherwise rounds down to.
pub const CMDS_MAX_MIN: u64 = 16;
pub const CMDS_MAX_MAX: u64 = 4096;
/// `netboot.timeout`: 1 ms .. 1 day.
pub const TIMEOUT_MAX_MS: u64 = 86_400_000;
/// `netboot.reboot_delay`: 0 .. 1 hour. Zero reboots at once (as before
/// the key existed); longer than an hour is a halt in all but name.
pub const REBOOT_DELAY_MAX_MS: u64 = 3_600_000;
/// dracut's `rd.iscsi.login_retry_max` bound.
pub const LOGIN_RETRY_MAX: u64 = 10_000;

/// Defines [`PlanField`] from one table: each field with its command-line
/// aliases and its config path.
macro_rules! plan_fields {
    ($($(#[$doc:meta])* $name:ident: [$($alias:literal),*], $config:expr;)*) => {
        /// A plan field that the command line or the config sets.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum PlanField {
            $($(#[$doc])* $name,)*
        }

        impl PlanField {
            /// Every field, in table order.
            pub const ALL: &'static [PlanField] = &[$(PlanField::$name),*];

            /// Command-line names, normalized (`-` as `_`); a trailing `*`
            /// matches any rest. Empty: the field has no key.
            pub const fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(PlanField::$name => &[$($alias),*],)*
                }
            }

            /// Where the config document sets the field, if it does.
            pub const fn config_path(self) -> Option<&'static str> {
                match self {
                    $(PlanField::$name => $config,)*
                }
            }
        }
    };
}

plan_fields! {
    /// iSCSI root paths, in failover order. `root=iscsi:…` and `root=dhcp`
    /// set them too (through [`PlanField::RootDevice`]); the merge goes by
    /// the parsed plan for this field.
    Paths: ["iscsi", "iscsiroot", "netroot"], Some("paths");
    /// The device to mount; `root=iscsi:…` also adds a path.
    RootDevice: ["root"], Some("root.device");
    Initiator: ["rd.iscsi.initiator", "iscsi_initiator", "netboot.initiator"], Some("initiator");
    ChapUsername: ["rd.iscsi.username", "iscsi_username"], Some("chap.username");
    ChapPassword: ["rd.iscsi.password", "iscsi_password"], Some("chap.password");
    MutualUsername: ["rd.iscsi.in.username", "iscsi_in_username"], Some("chap.mutual.username");
    MutualPassword: ["rd.iscsi.in.password", "iscsi_in_password"], Some("chap.mutual.password");
    Tpgt: ["rd.iscsi.target.group", "iscsi_target_group"], Some("iscsi.tpgt");
    LoginRetryMax: ["rd.iscsi.login_retry_max"], Some("iscsi.login_retry_max");
    NodeParams: ["rd.iscsi.param", "iscsi_param"], Some("iscsi.node_params");
    Firmware: ["rd.iscsi.firmware", "iscsi_firmware"], None;
    Ibft: ["rd.iscsi.ibft", "netboot.ibft"], None;
    Ip: ["ip"], Some("ip");
    Ifnames: ["ifname"], None;
    /// `vlan=NAME:PARENT` (dracut).
    Vlans: ["vlan"], None;
    Bootif: ["BOOTIF"], None;
    Nameservers: ["nameserver"], Some("nameservers");
    Neednet: ["rd.neednet"], None;
    RootFstype: ["rootfstype"], Some("root.fstype");
    RootFlags: ["rootflags"], Some("root.flags");
    ReadOnly: ["ro", "rw"], Some("root.read_only");
    InitPath: ["init"], Some("init.path");
    /// The arguments after `--`: no key of their own.
    InitArgs: [], Some("init.args");
    Scheduler: ["netboot.scheduler"], Some("tuning.scheduler");
    NrRequests: ["netboot.nr_requests"], Some("tuning.nr_requests");
    QueueDepth: ["netboot.queue_depth"], Some("tuning.queue_depth");
    CmdsMax: ["netboot.cmds_max"], Some("tuning.cmds_max");
    Timeout: ["netboot.timeout"], Some("timeout_ms");
    OnFail: ["netboot.on_fail"], Some("on_fail");
    RebootDelay: ["netboot.reboot_delay"], Some("reboot_delay_ms");
    Log: ["netboot.log"], Some("log");
    /// What keeps the root session alive after switch_root.
    Recovery: ["netboot.recovery"], None;
    Events: ["netboot.events"], Some("events");
    ConfigServers: ["netboot.config"], None;
    ConfigRequired: ["netboot.config.required"], None;
    /// rxkad level of the config fetch: `none`, `auth`, `encrypt`.
    ConfigSecurity: ["netboot.config.security"], None;
    /// The rxkad token file (default `/etc/netboot/config.token`).
    ConfigToken: ["netboot.config.token"], None;
    CredentialsFile: ["netboot.secrets"], None;
    /// `netboot.param.KEY=VALUE`.
    LoginParams: ["netboot.param.*"], Some("iscsi.login_params");
}

impl PlanField {
    /// The field a normalized command-line key sets (`None`: not ours).
    pub fn of_key(key: &str) -> Option<PlanField> {
        PlanField::ALL.iter().copied().find(|f| {
            f.aliases().iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == *a,
            })
        })
    }
}

/// Our `netboot.*` keys, for the unknown-key message: `initiator, …,
/// param.KEY`, in table order.
pub fn netboot_keys() -> String {
    PlanField::ALL
        .iter()
        .flat_map(|f| f.aliases())
        .filter_map(|a| a.strip_prefix("netboot."))
        .map(|a| a.replace('*', "KEY"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fields a command line sets explicitly: those of its keys, and
/// [`PlanField::InitArgs`] if it has arguments after `--`.
pub fn explicit_fields(cmdline: &str) -> BTreeSet<PlanField> {
    let t = tokenize::tokenize(cmdline);
    let mut set = fields_of(&t.args);
    if !t.init_args.is_empty() {
        set.insert(PlanField::InitArgs);
    }
    set
}

/// The fields these arguments set (e.g. a `netboot.secrets=` file's, to
/// add to [`explicit_fields`] if they should win over the config too).
pub fn fields_of(args: &[tokenize::Arg]) -> BTreeSet<PlanField> {
    args.iter()
        .filter_map(|a| PlanField::of_key(&a.key))
        .collect()
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a value is refused, without the key that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    RootPath(RootPathError),
    Ip(IpError),
    /// [`super::events`]' message (it names `netboot.events=` itself).
    Events(EventsError),
    /// A node key we cannot honour, or its value out of range.
    NodeParam(crate::iscsi::node::NodeParamError),
    /// A login key's value that is not of the key's RFC 7143 type.
    LoginValue(crate::iscsi::text::NegotiationError),
    /// A second `ip=` entry for the same interface.
    IpDuplicate {
        iface: String,
    },
    /// `value` (quoted and length-limited, or masked) is not `expected`.
    Not {
        value: String,
        expected: Expected,
    },
}

/// What a value should have been: the text after "is not".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Netroot,
    RootDevice,
    Ifname,
    Vlan,
    Bootif,
    IpAddress,
    IscsiName,
    Host,
    Port,
    TargetName,
    Integer {
        min: u64,
        max: u64,
    },
    PowerOfTwo {
        min: u64,
        max: u64,
    },
    /// Command-line seconds with up to 3 decimals; bounds in ms.
    Seconds {
        min_ms: u64,
        max_ms: u64,
    },
    /// Config milliseconds.
    Millis {
        min: u64,
        max: u64,
    },
    Bool,
    OneOf(&'static str),
    Scheduler,
    ConfigServer,
    NodeParam,
    LoginKey,
    LoginValue,
    AbsPath,
    FsTypes,
}

/// Milliseconds as seconds without trailing zeros: 1 → `0.001`, 86400000 → `86400`.
fn secs(ms: u64) -> String {
    let s = format!("{}.{:03}", ms / 1000, ms % 1000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Expected::*;
        match self {
            Netroot => f.write_str("iscsi:… or dhcp; netboot boots only iSCSI"),
            RootDevice => {
                f.write_str("/dev/…, LABEL=, UUID=, PARTUUID=, PARTLABEL=, iscsi:… or dhcp")
            }
            Ifname => f.write_str("NAME:MAC like lan0:52:54:00:12:34:56"),
            Vlan => f.write_str(
                "NAME:PARENT like eth0.42:eth0 or vlan42:eth0 (the VLAN id 1..4094 in decimal after the last . or after vlan)",
            ),
            Bootif => f.write_str("a MAC like 01-52-54-00-12-34-56 or 52:54:00:12:34:56"),
            IpAddress => f.write_str("an IP address"),
            IscsiName => write!(
                f,
                "an iSCSI name (iqn.…, eui.… or naa.…, at most {MAX_NAME_LEN} bytes, no spaces)"
            ),
            Host => f.write_str("a host name or IP address"),
            Port => f.write_str("a port in 1..65535"),
            TargetName => write!(
                f,
                "an iSCSI target name (1..{MAX_NAME_LEN} bytes, no spaces or control characters)"
            ),
            Integer { min, max } => write!(f, "an integer in {min}..{max}"),
            PowerOfTwo { min, max } => write!(f, "a power of two in {min}..{max}"),
            Seconds { min_ms, max_ms } => write!(
                f,
                "seconds in {}..{} (at most 3 decimals)",
                secs(*min_ms),
                secs(*max_ms)
            ),
            Millis { min, max } => write!(f, "milliseconds in {min}..{max}"),
            Bool => f.write_str("0 or 1"),
            OneOf(allowed) => write!(f, "one of {allowed}"),
            Scheduler => f.write_str("a scheduler name (1..15 of a-z 0-9 - _)"),
            ConfigServer => f.write_str("rxrpc:HOST[:PORT] with PORT 1..65535"),
            NodeParam => f.write_str("NODE.KEY=VALUE"),
            LoginKey => f.write_str("an iSCSI key name (letters, digits, . - + @ _; at most 63)"),
            LoginValue => f.write_str("an iSCSI value (1..255 printable ASCII characters)"),
            AbsPath => f.write_str("an absolute path"),
            FsTypes => f.write_str("a file system type list like ext4 or ext4,xfs"),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::RootPath(e) => e.fmt(f),
            ValueError::Ip(e) => e.fmt(f),
            ValueError::Events(e) => e.fmt(f),
            ValueError::NodeParam(e) => e.fmt(f),
            ValueError::LoginValue(e) => e.fmt(f),
            ValueError::IpDuplicate { iface } => write!(
                f,
                "interface {iface} is already configured by an earlier ip="
            ),
            ValueError::Not { value, expected } => write!(f, "{value} is not {expected}"),
        }
    }
}

impl std::error::Error for ValueError {}

fn not(value: &str, expected: Expected) -> ValueError {
    ValueError::Not {
        value: quote(value),
        expected,
    }
}

/// A number as given: command-line text (decimal digits only, no sign) or
/// a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num<'a> {
    Text(&'a str),
    Json(u64),
}

impl Num<'_> {
    fn get(self) -> Option<u64> {
        match self {
            Num::Text(s) => parse_dec(s),
            Num::Json(n) => Some(n),
        }
    }
    fn shown(self) -> String {
        match self {
            Num::Text(s) => quote(s),
            Num::Json(n) => n.to_string(),
        }
    }
}

/// `n` within `min..=max` (and a power of two if `pow2`).
fn bounded(n: Num, min: u64, max: u64, pow2: bool) -> Result<u64, ValueError> {
    n.get()
        .filter(|v| (min..=max).contains(v) && (!pow2 || v.is_power_of_two()))
        .ok_or_else(|| ValueError::Not {
            value: n.shown(),
            expected: if pow2 {
                Expected::PowerOfTwo { min, max }
            } else {
                Expected::Integer { min, max }
            },
        })
}

/// A duration as given: command-line seconds `D[.DDD]`, or JSON
/// milliseconds (the config's `*_ms` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dur<'a> {
    Seconds(&'a str),
    Millis(u64),
}

/// `D[.DDD]` seconds → milliseconds (no bounds).
fn seconds_ms(value: &str) -> Option<u64> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || (value.contains('.') && frac.is_empty()) {
        return None;
    }
    let secs = parse_dec(int)?;
    let frac_ms = if frac.is_empty() {
        0
    } else {
        parse_dec(frac)? * 10u64.pow(3 - frac.len() as u32)
    };
    secs.checked_mul(1000)?.checked_add(frac_ms)
}

fn duration_ms(d: Dur, min_ms: u64, max_ms: u64) -> Result<u64, ValueError> {
    let (ms, value, expected) = match d {
        Dur::Seconds(s) => (
            seconds_ms(s),
            quote(s),
            Expected::Seconds { min_ms, max_ms },
        ),
        Dur::Millis(ms) => (
            Some(ms),
            ms.to_string(),
            Expected::Millis {
                min: min_ms,
                max: max_ms,
            },
        ),
    };
    ms.filter(|ms| (min_ms..=max_ms).contains(ms))
        .ok_or(ValueError::Not { value, expected })
}

// ---------------------------------------------------------------------------
// One validator per field, in table order.
// ---------------------------------------------------------------------------

/// [`PlanField::Paths`]: `iscsi=` / `iscsiroot=` / `root=iscsi:…`.
pub fn root_path(value: &str) -> Result<RootPath, ValueError> {
    rootpath::parse(value).map_err(ValueError::RootPath)
}

/// [`PlanField::Paths`]: `netroot=`: a root path, or `None` for `dhcp`
/// (take it from DHCP option 17).
pub fn netroot(value: &str) -> Result<Option<RootPath>, ValueError> {
    match value {
        // dhcp6: dracut's `root=dhcp6` (dhcp-root.sh); the root path then
        // comes from DHCPv6 option 59.
        "dhcp" | "dhcp6" | "iscsi" => Ok(None),
        v if v.starts_with("iscsi:") => root_path(v).map(Some),
        v => Err(not(v, Expected::Netroot)),
    }
}

/// [`PlanField::Paths`], config form: a root path's server: a host name,
/// IPv4, or IPv6 (bare or in brackets), returned as `RootPath::server`
/// holds it.
pub fn path_server(value: &str) -> Result<String, ValueError> {
    let inner = value
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(value);
    if inner.contains(':') {
        if let Ok(a) = inner.parse::<std::net::Ipv6Addr>() {
            return Ok(a.to_string());
        }
    } else if valid_host(value) {
        return Ok(value.to_string());
    }
    Err(not(value, Expected::Host))
}

/// [`PlanField::Paths`], config form: a port, 1..65535.
pub fn path_port(port: u16) -> Result<u16, ValueError> {
    if port == 0 {
        Err(ValueError::Not {
            value: "0".into(),
            expected: Expected::Port,
        })
    } else {
        Ok(port)
    }
}

/// [`PlanField::Paths`], config form: a target name (RFC 7143 §4.2.7.1
/// length; no spaces or control characters).
pub fn path_target(value: &str) -> Result<String, ValueError> {
    if rootpath::valid_target(value) {
        Ok(value.to_string())
    } else {
        Err(not(value, Expected::TargetName))
    }
}

/// [`PlanField::RootDevice`]: a device spec (`root=iscsi:…` and `root=dhcp`
/// are root paths, handled by the caller). `/dev/root` is the LUN.
pub fn root_device(value: &str) -> Result<RootDevice, ValueError> {
    let bad = || not(value, Expected::RootDevice);
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string()).ok_or_else(bad);
    let uuid = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| s.to_string())
            .ok_or_else(bad)
    };
    Ok(match value {
        "/dev/root" => RootDevice::Lun,
        v if v.starts_with("/dev/") && v.len() > 5 => RootDevice::Path(v.to_string()),
        v => {
            if let Some(s) = v.strip_prefix("LABEL=") {
                RootDevice::Label(nonempty(s)?)
            } else if let Some(s) = v.strip_prefix("UUID=") {
                RootDevice::Uuid(uuid(s)?)
            } else if let Some(s) = v.strip_prefix("PARTUUID=") {
                // init/do_mounts.c: PARTUUID=uuid[/PARTNROFF=n]
                let (u, off) = match s.split_once("/PARTNROFF=") {
                    Some((u, n)) => (u, Some(n)),
                    None => (s, None),
                };
                uuid(u)?;
                if off.is_some_and(|n| parse_dec(n).is_none()) {
                    return Err(bad());
                }
                RootDevice::PartUuid(s.to_string())
            } else if let Some(s) = v.strip_prefix("PARTLABEL=") {
                RootDevice::PartLabel(nonempty(s)?)
            } else {
                return Err(bad());
            }
        }
    })
}

/// [`PlanField::Initiator`]: RFC 7143 §4.2.7: iqn., eui. or naa. names, at
/// most 223 bytes.
pub fn initiator(value: &str) -> Result<String, ValueError> {
    let lower = value.get(..4).map(str::to_ascii_lowercase);
    let ok = matches!(lower.as_deref(), Some("iqn." | "eui." | "naa."))
        && value.len() > 4
        && value.len() <= MAX_NAME_LEN
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value.to_string())
    } else {
        Err(not(value, Expected::IscsiName))
    }
}

/// [`PlanField::Tpgt`]: 0..65535.
pub fn tpgt(n: Num) -> Result<u16, ValueError> {
    bounded(n, 0, u64::from(u16::MAX), false).map(|v| v as u16)
}

/// [`PlanField::LoginRetryMax`].
pub fn login_retry_max(n: Num) -> Result<u32, ValueError> {
    bounded(n, 0, LOGIN_RETRY_MAX, false).map(|v| v as u32)
}

/// [`PlanField::NodeParams`]: an open-iscsi node key (e.g.
/// `node.session.timeo.replacement_timeout`) and its value, checked by the
/// iSCSI side's own rules, so `netboot plan` shows what the boot would
/// refuse. Only the key is ever echoed: the value may be a password.
pub fn node_param(key: &str, value: &str) -> Result<Param, ValueError> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(not(key, Expected::NodeParam));
    }
    crate::iscsi::node::NodeSettings::check(key, value).map_err(ValueError::NodeParam)?;
    Ok(Param {
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// [`node_param`] in the command line's form `NODE.KEY=VALUE`.
pub fn node_param_kv(value: &str) -> Result<Param, ValueError> {
    match value.split_once('=') {
        Some((k, v)) => node_param(k, v),
        None => Err(not(value, Expected::NodeParam)),
    }
}

/// [`PlanField::Firmware`], [`PlanField::Ibft`], [`PlanField::Neednet`],
/// [`PlanField::ConfigRequired`]: a bare flag is true; else 0/1 and the
/// usual spellings.
pub fn flag(value: Option<&str>) -> Result<bool, ValueError> {
    match value {
        None | Some("1" | "yes" | "true" | "on") => Ok(true),
        Some("0" | "no" | "false" | "off") => Ok(false),
        Some(v) => Err(not(v, Expected::Bool)),
    }
}

/// [`PlanField::Ip`]: one `ip=` entry, at most one per interface
/// (`earlier` are the entries before it; for a short list, the config's).
pub fn ip_entry(earlier: &[IpConfig], value: &str) -> Result<IpConfig, ValueError> {
    let c = ip::parse(value).map_err(ValueError::Ip)?;
    if earlier.iter().any(|o| o.iface == c.iface) {
        return Err(ip_duplicate(&c));
    }
    Ok(c)
}

fn ip_duplicate(c: &IpConfig) -> ValueError {
    let iface = c.iface.as_deref().map_or("(any)".to_string(), quote);
    ValueError::IpDuplicate { iface }
}

/// [`ip_entry`] for a long list (the command line): the interfaces seen
/// so far in a set, so n entries cost O(n log n), not O(n²).
#[derive(Debug, Default)]
pub struct IpEntries {
    ifaces: std::collections::HashSet<Option<String>>,
}

impl IpEntries {
    /// Parse one more entry, refusing a second one for an interface.
    pub fn add(&mut self, value: &str) -> Result<IpConfig, ValueError> {
        let c = ip::parse(value).map_err(ValueError::Ip)?;
        if !self.ifaces.insert(c.iface.clone()) {
            return Err(ip_duplicate(&c));
        }
        Ok(c)
    }
}

/// [`PlanField::Ifnames`]: `NAME:MAC`.
pub fn ifname(value: &str) -> Result<IfName, ValueError> {
    let bad = || not(value, Expected::Ifname);
    let (name, mac) = value.split_once(':').ok_or_else(bad)?;
    let mac = ip::parse_mac(mac)
        .filter(|_| ip::valid_iface(name))
        .ok_or_else(bad)?;
    Ok(IfName {
        name: name.to_string(),
        mac,
    })
}

/// [`PlanField::Vlans`]: `NAME:PARENT`, the VLAN id from the name
/// ([`ip::parse_vlan`]).
pub fn vlan(value: &str) -> Result<crate::plan::Vlan, ValueError> {
    ip::parse_vlan(value).ok_or_else(|| not(value, Expected::Vlan))
}

/// [`PlanField::Bootif`]: pxelinux IPAPPEND 2: `01-` (ARP type Ethernet)
/// then the MAC, or a plain MAC.
pub fn bootif(value: &str) -> Result<String, ValueError> {
    let mac = value
        .strip_prefix("01-")
        .filter(|m| m.len() == 17)
        .unwrap_or(value);
    ip::parse_mac(mac).ok_or_else(|| not(value, Expected::Bootif))
}

/// [`PlanField::Nameservers`]: one IP literal.
pub fn nameserver(value: &str) -> Result<IpAddr, ValueError> {
    ip::parse_addr(value).ok_or_else(|| not(value, Expected::IpAddress))
}

/// [`PlanField::RootFstype`]: `ext4` or a list `ext4,xfs`.
pub fn root_fstype(value: &str) -> Result<String, ValueError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b',' | b'.' | b'_' | b'-'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(not(value, Expected::FsTypes))
    }
}

/// [`PlanField::RootFlags`]: mount(2) data, anything; empty = none.
pub fn root_flags(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// [`PlanField::InitPath`] (and `netboot.secrets=`): an absolute path.
pub fn abs_path(value: &str) -> Result<String, ValueError> {
    if value.starts_with('/') && value.len() > 1 && !value.chars().any(char::is_control) {
        Ok(value.to_string())
    } else {
        Err(not(value, Expected::AbsPath))
    }
}

/// [`PlanField::Scheduler`]: a block I/O scheduler name.
pub fn scheduler(value: &str) -> Result<String, ValueError> {
    let ok = !value.is_empty()
        && value.len() <= 15
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(not(value, Expected::Scheduler))
    }
}

/// [`PlanField::NrRequests`].
pub fn nr_requests(n: Num) -> Result<u32, ValueError> {
    bounded(n, 1, NR_REQUESTS_MAX, false).map(|v| v as u32)
}

/// [`PlanField::QueueDepth`].
pub fn queue_depth(n: Num) -> Result<u32, ValueError> {
    bounded(n, 1, QUEUE_DEPTH_MAX, false).map(|v| v as u32)
}

/// [`PlanField::CmdsMax`].
pub fn cmds_max(n: Num) -> Result<u32, ValueError> {
    bounded(n, CMDS_MAX_MIN, CMDS_MAX_MAX, true).map(|v| v as u32)
}

/// [`PlanField::Timeout`]: 1 ms ..= 1 day, in milliseconds.
pub fn timeout_ms(d: Dur) -> Result<u64, ValueError> {
    duration_ms(d, 1, TIMEOUT_MAX_MS)
}

/// [`PlanField::OnFail`].
pub fn on_fail(value: &str) -> Result<FailurePolicy, ValueError> {
    FailurePolicy::parse(value).ok_or_else(|| not(value, Expected::OneOf("shell, reboot, halt")))
}

/// [`PlanField::RebootDelay`]: 0 ..= 1 hour, in milliseconds.
pub fn reboot_delay_ms(d: Dur) -> Result<u64, ValueError> {
    duration_ms(d, 0, REBOOT_DELAY_MAX_MS)
}

/// [`PlanField::Recovery`].
pub fn recovery(value: &str) -> Result<crate::plan::Recovery, ValueError> {
    crate::plan::Recovery::parse(value)
        .ok_or_else(|| not(value, Expected::OneOf("resident, iscsid, off")))
}

/// [`PlanField::Log`]: [`LogLevel::parse`], the one log-level parser.
pub fn log_level(value: &str) -> Result<LogLevel, ValueError> {
    LogLevel::parse(value).ok_or_else(|| not(value, Expected::OneOf(LogLevel::ALLOWED)))
}

/// [`PlanField::Events`]: `off` (`None`) or `GROUP[:IDX.VAL]`;
/// [`super::events`] owns the syntax and the rules (groups and ids clear of
/// kernel connector users).
pub fn events(value: &str) -> Result<Option<EventsTarget>, ValueError> {
    super::events::parse(value).map_err(ValueError::Events)
}

/// [`PlanField::ConfigSecurity`]: `none`, `auth` or `encrypt`
/// ([`crate::plan::ConfigSecurity::parse`]).
pub fn config_security(value: &str) -> Result<crate::plan::ConfigSecurity, ValueError> {
    crate::plan::ConfigSecurity::parse(value)
        .ok_or_else(|| not(value, Expected::OneOf("none, auth, encrypt")))
}

/// [`PlanField::ConfigServers`]: `rxrpc:HOST[:PORT]`, HOST a name, IPv4 or
/// `[IPv6]`.
pub fn config_server(value: &str) -> Result<ConfigServer, ValueError> {
    parse_config_server(value).ok_or_else(|| not(value, Expected::ConfigServer))
}

fn parse_config_server(value: &str) -> Option<ConfigServer> {
    let v = value.strip_prefix("rxrpc:")?;
    let (host, port) = if let Some(r) = v.strip_prefix('[') {
        let (inner, after) = r.split_once(']')?;
        let host = inner.parse::<std::net::Ipv6Addr>().ok()?.to_string();
        match after {
            "" => (host, None),
            a => (host, Some(a.strip_prefix(':')?)),
        }
    } else {
        match v.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (v.to_string(), None),
        }
    };
    if !valid_host(&host) && host.parse::<std::net::Ipv6Addr>().is_err() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            parse_dec(p)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n != 0)?,
        ),
    };
    Some(ConfigServer { host, port })
}

/// [`PlanField::LoginParams`]: RFC 7143 §6.1: key names are letters,
/// digits and `.-+@_`, at most 63 bytes; values at most 255 bytes of
/// printable text. The value of a credential-like key is never echoed.
pub fn login_param(key: &str, value: &str) -> Result<Param, ValueError> {
    let key_ok = !key.is_empty()
        && key.len() <= 63
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'@' | b'_'));
    if !key_ok {
        return Err(not(key, Expected::LoginKey));
    }
    let p = Param {
        key: key.to_string(),
        value: value.to_string(),
    };
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        let shown = if p.is_sensitive() {
            "\"***\"".to_string()
        } else {
            quote(value)
        };
        return Err(ValueError::Not {
            value: shown,
            expected: Expected::LoginValue,
        });
    }
    // The login's own check of an offer (`LoginConfig::apply_overrides`
    // runs it again at boot): a known key's value must be of its type.
    crate::iscsi::text::validate(key, value).map_err(ValueError::LoginValue)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_maps_back_to_its_field() {
        for f in PlanField::ALL {
            for a in f.aliases() {
                let key = a.replace('*', "X");
                assert_eq!(PlanField::of_key(&key), Some(*f), "{a}");
            }
        }
        assert_eq!(
            PlanField::of_key("netboot.param."),
            Some(PlanField::LoginParams)
        );
        assert_eq!(PlanField::of_key("rdinit"), None);
        assert_eq!(PlanField::of_key("netboot.on_fial"), None);
    }

    #[test]
    fn netboot_key_list() {
        assert_eq!(
            netboot_keys(),
            "initiator, ibft, scheduler, nr_requests, queue_depth, cmds_max, timeout, on_fail, \
             reboot_delay, log, recovery, events, config, config.required, config.security, \
             config.token, secrets, param.KEY"
        );
    }

    #[test]
    fn explicit_fields_fold_aliases_and_init_args() {
        let got =
            explicit_fields("iscsi_initiator=iqn.a:b netboot.on-fail=halt ro quiet -- single");
        let want: BTreeSet<PlanField> = [
            PlanField::Initiator,
            PlanField::OnFail,
            PlanField::ReadOnly,
            PlanField::InitArgs,
        ]
        .into();
        assert_eq!(got, want);
        assert!(explicit_fields("--").is_empty());
    }

    #[test]
    fn seconds_and_bounds() {
        let t = |s| timeout_ms(Dur::Seconds(s)).ok();
        assert_eq!(t("30"), Some(30_000));
        assert_eq!(t("0.5"), Some(500));
        assert_eq!(t("1.25"), Some(1250));
        assert_eq!(t("0"), None);
        assert_eq!(t("1."), None);
        assert_eq!(t("1.0001"), None);
        assert_eq!(t("86401"), None);
        assert_eq!(t("99999999999999999999"), None);
        let r = |s| reboot_delay_ms(Dur::Seconds(s)).ok();
        assert_eq!(r("0"), Some(0));
        assert_eq!(r("3600"), Some(3_600_000));
        assert_eq!(r("3600.001"), None);
        assert_eq!(
            timeout_ms(Dur::Millis(0)).map_err(|e| e.to_string()),
            Err("0 is not milliseconds in 1..86400000".to_string())
        );
        assert_eq!(
            reboot_delay_ms(Dur::Seconds("-1")).map_err(|e| e.to_string()),
            Err(r#""-1" is not seconds in 0..3600 (at most 3 decimals)"#.to_string())
        );
        assert_eq!(
            cmds_max(Num::Json(100)).map_err(|e| e.to_string()),
            Err("100 is not a power of two in 16..4096".to_string())
        );
    }

    #[test]
    fn log_levels_with_exact_errors() {
        for (v, want) in [
            ("off", LogLevel::Off),
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("warning", LogLevel::Warn),
            ("INFO", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ] {
            assert_eq!(log_level(v), Ok(want), "{v}");
        }
        assert_eq!(
            log_level("verbose").map_err(|e| e.to_string()),
            Err(
                r#""verbose" is not one of off, error, warn, warning, info, debug, trace"#
                    .to_string()
            )
        );
    }

    #[test]
    fn config_path_parts() {
        assert_eq!(path_server("fd00::1"), Ok("fd00::1".to_string()));
        assert_eq!(path_server("[FD00::1]"), Ok("fd00::1".to_string()));
        assert_eq!(
            path_server("san-a.example"),
            Ok("san-a.example".to_string())
        );
        assert_eq!(
            path_server("a b").map_err(|e| e.to_string()),
            Err(r#""a b" is not a host name or IP address"#.to_string())
        );
        assert_eq!(
            path_server("fd00::zz").map_err(|e| e.to_string()),
            Err(r#""fd00::zz" is not a host name or IP address"#.to_string())
        );
        assert_eq!(path_target("foo:bar"), Ok("foo:bar".to_string()));
        assert!(path_target("").is_err());
        assert!(path_port(0).is_err());
    }
}
