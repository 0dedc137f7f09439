//! The boot plan: every input (command line, later DHCP, iBFT, RxRPC config)
//! is parsed into these values before anything is executed.

use serde::{Serialize, Serializer};
use std::fmt;

pub mod secret;

/// Used throughout the plan, the cmdline, the config and iSCSI as
/// `plan::Secret`.
pub use secret::Secret;

/// CHAP credentials. `mutual` is the target's name and secret the initiator
/// checks (RFC 7143 §12.1.3, "bidirectional" CHAP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chap {
    pub username: String,
    // JSON says "password" (dracut's word): `netboot plan` output must not
    // contain the string "secret" at all, so a grep over it stays meaningful.
    #[serde(rename = "password")]
    pub secret: Secret,
    pub mutual: Option<MutualChap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MutualChap {
    pub username: String,
    #[serde(rename = "password")]
    pub secret: Secret,
}

/// One iSCSI root path (RFC 4173 + dracut extensions):
/// `[iscsi:][user:pass[:ruser:rpass]@]server:[proto]:[port]:[lun]:targetname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootPath {
    /// Host name or IP literal; IPv6 without the brackets.
    pub server: String,
    pub port: u16,
    pub lun: u64,
    pub target: String,
    /// Target portal group tag (default 1, as iscsistart), as used: the
    /// path's own if it gave one, else the plan's `iscsi.tpgt` (see
    /// [`BootPlan::apply_tpgt`]).
    pub tpgt: u16,
    /// `tpgt` is the path's own (a config `paths[i].tpgt`), so the
    /// plan-wide TPGT does not replace it. Never set for command-line and
    /// DHCP root paths: the RFC 4173 / dracut syntax has no TPGT field.
    #[serde(skip)]
    pub own_tpgt: bool,
    pub chap: Option<Chap>,
    /// dracut's optional iface / netdev fields, kept for information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netdev: Option<String>,
}

pub const DEFAULT_PORT: u16 = 3260;
pub const DEFAULT_TPGT: u16 = 1;

impl RootPath {
    /// `host:port`, with IPv6 literals bracketed, for messages and connect().
    pub fn portal(&self) -> String {
        crate::hostport::host_port(&self.server, self.port)
    }
}

// ---------------------------------------------------------------------------
// The whole plan. Every field has a concrete value (defaults filled in), so
// `netboot plan` shows exactly what the executor will do.
// ---------------------------------------------------------------------------

use std::net::IpAddr;

/// cmds_max / queue_depth defaults: iscsistart's and iscsid.conf's (128 / 32).
pub const DEFAULT_CMDS_MAX: u32 = 128;
pub const DEFAULT_QUEUE_DEPTH: u32 = 32;
/// Login attempts per path (`rd.iscsi.login_retry_max`); 0 = retry until
/// `netboot.timeout` passes (the default).
pub const DEFAULT_LOGIN_RETRY_MAX: u32 = 0;
/// Budget for "network up → root device present", all paths together.
/// iscsistart's replacement_timeout is 120 s; a target that is back within
/// that window should not cost a reboot.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;
/// Pause before `netboot.on_fail=reboot` reboots: long enough to read the
/// error on the console and to keep a deterministic failure (bad command
/// line, wrong CHAP secret) from hammering DHCP and the target in a tight
/// loop; short enough that a transient outage still costs little.
pub const DEFAULT_REBOOT_DELAY_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootPlan {
    /// iSCSI root paths in failover order (cmdline order of `iscsi=`,
    /// `netroot=iscsi:`, `root=iscsi:`).
    pub paths: Vec<RootPath>,
    /// `root=dhcp` / `netroot=dhcp`: take a root path from DHCP option 17
    /// (RFC 4173), appended after `paths`.
    pub root_path_from_dhcp: bool,
    /// Initiator IQN. `None` means "generate one" (the executor derives it,
    /// e.g. from /etc/machine-id), as dracut does when none is configured.
    pub initiator: Option<String>,
    pub iscsi: IscsiSettings,
    pub network: Network,
    pub root: RootMount,
    pub init: Init,
    pub tuning: Tuning,
    /// Milliseconds from network start until the root device must exist.
    pub timeout_ms: u64,
    pub on_fail: FailurePolicy,
    /// `netboot.reboot_delay=`: milliseconds to wait before
    /// `on_fail: reboot` reboots.
    pub reboot_delay_ms: u64,
    pub log: LogLevel,
    /// `netboot.recovery=`: who answers the root session's connection
    /// errors after switch_root.
    pub recovery: Recovery,
    /// `None` = `netboot.events=off`.
    pub events: Option<EventsTarget>,
    pub config: ConfigSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscsiSettings {
    /// `rd.iscsi.username`/`password` (+ `in.*`): used by every path that
    /// has no inline credentials (also DHCP-provided ones).
    pub chap: Option<Chap>,
    /// `rd.iscsi.target.group` (or the config's `iscsi.tpgt`): the TPGT of
    /// every path that gives none itself, already applied to `paths`.
    pub tpgt: u16,
    pub login_retry_max: u32,
    /// `rd.iscsi.firmware`: boot from the iBFT (`crate::ibft`): the
    /// boot loads `iscsi_ibft` and merges the table's initiator, targets
    /// and NIC into the plan before the network step; explicit
    /// command-line keys win.
    pub firmware: bool,
    /// `rd.iscsi.ibft` / `netboot.ibft`: the same as `firmware` (dracut
    /// treats both as "use the iBFT"; netboot reads the whole table for
    /// either).
    pub ibft: bool,
    /// `rd.iscsi.param=K=V`: open-iscsi node keys, in cmdline order.
    pub node_params: Vec<Param>,
    /// `netboot.param.KEY=VALUE`: RFC 7143 login keys we offer, in order.
    pub login_params: Vec<Param>,
}

/// A `KEY=VALUE` override. Values of keys that look like credentials
/// (`password`, `secret`) serialize and debug-print as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    pub value: String,
}

impl Param {
    pub fn is_sensitive(&self) -> bool {
        let k = self.key.to_ascii_lowercase();
        k.contains("password") || k.contains("secret")
    }
}

impl Param {
    fn shown(&self) -> &str {
        if self.is_sensitive() {
            "***"
        } else {
            &self.value
        }
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Param({:?}={:?})", self.key, self.shown())
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Param", 2)?;
        st.serialize_field("key", &self.key)?;
        st.serialize_field("value", self.shown())?;
        st.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Network {
    /// One entry per `ip=`, in cmdline order; empty = no `ip=` given.
    pub ip: Vec<IpConfig>,
    /// `ifname=NAME:MAC`.
    pub ifnames: Vec<IfName>,
    /// `BOOTIF=`: MAC of the boot NIC (lowercase, colon separated).
    pub bootif: Option<String>,
    /// `nameserver=`, in order.
    pub nameservers: Vec<IpAddr>,
    /// `rd.neednet=1`.
    pub neednet: bool,
    /// `vlan=NAME:PARENT` (dracut): 802.1Q links created over rtnetlink
    /// before any `ip=` entry is configured, in order.
    ///
    /// For the iBFT helper: a NIC entry with a non-zero VLAN field becomes
    /// one entry here, `{name: "<nic>.<vid>", parent: <the NIC's name>,
    /// id: <vid>}`, and its `ip=` entry names `<nic>.<vid>` (the address
    /// goes on the VLAN device, as open-iscsi does). `net::bring_up`
    /// creates every entry (loading 8021q) and raises its parent first.
    pub vlans: Vec<Vlan>,
}

/// One VLAN link: `name` on top of `parent`, tagged `id` (1..4094).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vlan {
    pub name: String,
    pub parent: String,
    pub id: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpMethod {
    /// Addresses from the `ip=` fields (autoconf `off`/`none`).
    Static,
    /// DHCPv4 (`dhcp`, `on`, `any`).
    Dhcp,
    Dhcp6,
    /// IPv6 stateless autoconfiguration.
    Auto6,
    /// `ip=off` / `ip=none` alone: configure nothing.
    Off,
}

/// One `ip=` value. `iface: None` means "every interface" (`ip=dhcp`) or,
/// for a static entry, "the first interface with a link".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    pub iface: Option<String>,
    pub method: IpMethod,
    pub address: Option<IpAddr>,
    pub prefix_len: Option<u8>,
    pub peer: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    pub hostname: Option<String>,
    pub dns: Vec<IpAddr>,
    pub ntp: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
}

impl IpConfig {
    /// An entry with only a method (and interface): `ip=dhcp`, `ip=eth0:dhcp`.
    pub fn method_only(iface: Option<String>, method: IpMethod) -> IpConfig {
        IpConfig {
            iface,
            method,
            address: None,
            prefix_len: None,
            peer: None,
            gateway: None,
            hostname: None,
            dns: Vec::new(),
            ntp: None,
            mtu: None,
            mac: None,
        }
    }
}

impl Network {
    /// The `ip=` entries in effect: as given, or — none given — `ip=dhcp`,
    /// as dracut does when the network is needed (modules.d/40network: a
    /// netroot without `ip=` defaults to dhcp).
    pub fn effective_ip(&self) -> Vec<IpConfig> {
        if self.ip.is_empty() {
            vec![IpConfig::method_only(None, IpMethod::Dhcp)]
        } else {
            self.ip.clone()
        }
    }

    /// DHCP (v4, or DHCPv6 for its option 59) will run (explicitly or by
    /// default): a root path may come from it.
    pub fn uses_dhcp(&self) -> bool {
        self.effective_ip()
            .iter()
            .any(|ip| matches!(ip.method, IpMethod::Dhcp | IpMethod::Dhcp6))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IfName {
    pub name: String,
    pub mac: String,
}

/// What to mount as root, found on the attached iSCSI disk(s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum RootDevice {
    /// The iSCSI LUN itself if it holds a file system, else its first
    /// partition. Default; also `root=/dev/root` and `root=iscsi:…`.
    Lun,
    Path(String),
    Label(String),
    Uuid(String),
    /// May carry the kernel's `/PARTNROFF=N` suffix.
    PartUuid(String),
    PartLabel(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootMount {
    pub device: RootDevice,
    /// `rootfstype=`; `None` = probe. May be a comma-separated list.
    pub fstype: Option<String>,
    /// `rootflags=`, passed to mount(2) as data.
    pub flags: Option<String>,
    /// `ro` / `rw`, last wins; default read-only like the kernel
    /// (init/do_mounts.c `root_mountflags = MS_RDONLY`), so the real root's
    /// fsck can run before it remounts read-write.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Init {
    /// `init=`; `None` = the kernel's order: /sbin/init, /etc/init,
    /// /bin/init, /bin/sh (init/main.c `kernel_init`).
    pub path: Option<String>,
    /// Everything after `--` (init/main.c hands it to init as argv).
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tuning {
    /// Block I/O scheduler for the iSCSI disk; `None` = kernel default.
    pub scheduler: Option<String>,
    /// /sys/block/X/queue/nr_requests; `None` = kernel default.
    pub nr_requests: Option<u32>,
    pub queue_depth: u32,
    pub cmds_max: u32,
}

/// Who keeps the root session alive after switch_root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    /// The default: a resident process reconnects after connection errors
    /// until iscsid starts (then iscsid owns the session). Without it a
    /// root with no iscsid dies at the first target restart.
    Resident,
    /// Nothing from netboot: the root system starts iscsid, which adopts
    /// the session; between switch_root and iscsid nobody recovers.
    Iscsid,
    /// Nobody (tests, or roots that accept the risk).
    Off,
}

impl Recovery {
    pub fn parse(value: &str) -> Option<Recovery> {
        match value {
            "resident" => Some(Recovery::Resident),
            "iscsid" => Some(Recovery::Iscsid),
            "off" => Some(Recovery::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Recovery::Resident => "resident",
            Recovery::Iscsid => "iscsid",
            Recovery::Off => "off",
        }
    }
}

/// What PID 1 does when a step fails (STYLE.md item 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    Shell,
    Reboot,
    Halt,
}

impl FailurePolicy {
    /// The `netboot.on_fail=` spelling.
    pub fn parse(value: &str) -> Option<FailurePolicy> {
        match value {
            "shell" => Some(FailurePolicy::Shell),
            "reboot" => Some(FailurePolicy::Reboot),
            "halt" => Some(FailurePolicy::Halt),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FailurePolicy::Shell => "shell",
            FailurePolicy::Reboot => "reboot",
            FailurePolicy::Halt => "halt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing is logged (the step events and the report still are).
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The accepted spellings, for messages.
    pub const ALLOWED: &'static str = "off, error, warn, warning, info, debug, trace";

    /// The one log-level parser, for `netboot.log=`, the config's `log` and
    /// the tools' `NETBOOT_LOG`: [`Self::ALLOWED`], ASCII case-insensitive
    /// (`warning` is syslog's word for `warn`).
    pub fn parse(value: &str) -> Option<LogLevel> {
        Some(match value.to_ascii_lowercase().as_str() {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> log::LevelFilter {
        match l {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// Connector address for boot events (DESIGN.md §1): parsed from
/// `netboot.events=` by `cmdline::events`, used by the events emitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventsTarget {
    /// Netlink multicast group, 1..=32.
    pub group: u32,
    pub idx: u32,
    pub val: u32,
}

/// The default connector address of boot events: group 26, idx 0x4e42
/// (ASCII "NB"), val 1 (the boot event stream). Why these numbers (clear of
/// the kernel's connector users): the `events` module docs, "Transport".
pub const DEFAULT_EVENTS_TARGET: EventsTarget = EventsTarget {
    group: 26,
    idx: 0x4e42,
    val: 1,
};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ConfigSource {
    /// `netboot.config=rxrpc:HOST[:PORT]`, tried in order.
    pub servers: Vec<ConfigServer>,
    /// `netboot.config.required=1`: fail the boot if no server answers.
    pub required: bool,
    /// `netboot.secrets=FILE`: absolute path of a credentials file.
    pub credentials_file: Option<String>,
    /// `netboot.config.security=`: the fetch's rxkad level.
    pub security: ConfigSecurity,
    /// `netboot.config.token=PATH`: the rxkad token file; `None`:
    /// [`DEFAULT_CONFIG_TOKEN`].
    pub token: Option<String>,
}

/// Where the agent looks for its rxkad token when `netboot.config.token=`
/// is not given (`initramfs/build.sh --config-token FILE` puts it there).
pub const DEFAULT_CONFIG_TOKEN: &str = "/etc/netboot/config.token";

/// `netboot.config.security=`: how the config fetch is secured (rxkad,
/// RxRPC security index 2). `default`: `encrypt` when the token file
/// exists, else `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigSecurity {
    #[default]
    Default,
    /// Security index 0: neither authenticated nor encrypted.
    None,
    /// rxkad level 1: the server checks the token; each packet's header
    /// checksum binds it to its call, only its first 8 bytes are sealed.
    Auth,
    /// rxkad level 2: authenticated and every packet encrypted.
    Encrypt,
}

impl ConfigSecurity {
    pub fn parse(value: &str) -> Option<ConfigSecurity> {
        match value {
            "none" => Some(ConfigSecurity::None),
            "auth" => Some(ConfigSecurity::Auth),
            "encrypt" => Some(ConfigSecurity::Encrypt),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConfigSecurity::Default => "default",
            ConfigSecurity::None => "none",
            ConfigSecurity::Auth => "auth",
            ConfigSecurity::Encrypt => "encrypt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigServer {
    /// Host name or IP literal; IPv6 without brackets.
    pub host: String,
    /// `None` = the config client's default port.
    pub port: Option<u16>,
}

impl Default for BootPlan {
    fn default() -> Self {
        BootPlan {
            paths: Vec::new(),
            root_path_from_dhcp: false,
            initiator: None,
            iscsi: IscsiSettings {
                chap: None,
                tpgt: DEFAULT_TPGT,
                login_retry_max: DEFAULT_LOGIN_RETRY_MAX,
                firmware: false,
                ibft: false,
                node_params: Vec::new(),
                login_params: Vec::new(),
            },
            network: Network::default(),
            root: RootMount {
                device: RootDevice::Lun,
                fstype: None,
                flags: None,
                read_only: true,
            },
            init: Init::default(),
            tuning: Tuning {
                scheduler: None,
                nr_requests: None,
                queue_depth: DEFAULT_QUEUE_DEPTH,
                cmds_max: DEFAULT_CMDS_MAX,
            },
            timeout_ms: DEFAULT_TIMEOUT_MS,
            // Unattended fleets: a transient target or network outage is
            // best retried by a full reboot (fresh DHCP, firmware, link); a
            // shell on a headless console would wait forever.
            on_fail: FailurePolicy::Reboot,
            reboot_delay_ms: DEFAULT_REBOOT_DELAY_MS,
            log: LogLevel::Info,
            recovery: Recovery::Resident,
            events: Some(DEFAULT_EVENTS_TARGET),
            config: ConfigSource::default(),
        }
    }
}

impl BootPlan {
    /// The TPGT rule: a path that gave its own TPGT keeps it; every other
    /// path gets the plan-wide `iscsi.tpgt` (`rd.iscsi.target.group=`, else
    /// the config's `iscsi.tpgt`, else 1). Run again whenever
    /// `iscsi.tpgt` or `paths` change (cmdline parsing, config merge).
    pub fn apply_tpgt(&mut self) {
        for p in &mut self.paths {
            if !p.own_tpgt {
                p.tpgt = self.iscsi.tpgt;
            }
        }
    }

    /// Every credential in the plan (CHAP secrets of each path and the
    /// global ones, sensitive login parameters): the logger, the events and
    /// the report replace these with `***` wherever they would appear.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut chap = |c: &Option<Chap>| {
            if let Some(c) = c {
                out.push(c.secret.expose().to_string());
                if let Some(m) = &c.mutual {
                    out.push(m.secret.expose().to_string());
                }
            }
        };
        chap(&self.iscsi.chap);
        for p in &self.paths {
            chap(&p.chap);
        }
        for p in self
            .iscsi
            .node_params
            .iter()
            .chain(&self.iscsi.login_params)
        {
            if p.is_sensitive() {
                out.push(p.value.clone());
            }
        }
        out.retain(|s| !s.is_empty());
        out.sort();
        out.dedup();
        out
    }
}
