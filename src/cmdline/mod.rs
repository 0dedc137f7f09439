//! Kernel command line → BootPlan: a tokenizer plus one parser per syntax.
//!
//! Keys we read (DESIGN.md §3): `iscsi=` (ours), dracut's `root=`, `netroot=`,
//! `rd.iscsi.*` and `ip=` family (dracut.cmdline(7)), the kernel's `root=`,
//! `rootfstype=`, `rootflags=`, `ro`/`rw`, `init=` (admin-guide/
//! kernel-parameters.txt), and our own `netboot.*`.
//!
//! Policy: unknown keys are ignored (the line is shared with the kernel and
//! other programs), except under `netboot.` — our namespace, where a typo
//! such as `netboot.on-fial=shell` would otherwise silently change the boot,
//! so it is an error. Single-valued keys: the last one wins (kernel
//! convention). Root paths accumulate in cmdline order as failover paths.

pub mod ip;
pub mod rootpath;
pub mod tokenize;

use crate::plan::{
    BootPlan, Chap, ConfigServer, FailurePolicy, IfName, LogLevel, MutualChap, Param, RootDevice,
    Secret,
};
use ip::IpError;
use rootpath::{parse_dec, valid_host, RootPathError, MAX_NAME_LEN};
use std::fmt;
use tokenize::Arg;

/// Longest value echoed in a message; the rest is elided so an error stays
/// one readable line even for hostile input.
const QUOTE_MAX: usize = 120;

/// `value` as a quoted, escaped, length-limited string for messages
/// (escaping keeps control characters from breaking the one-line rule).
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{:?}…", value.get(..i).unwrap_or("")),
        None => format!("{value:?}"),
    }
}

/// A key as typed, for an error line: quoted and escaped if it holds
/// anything but printable ASCII, so the error stays one line (fuzz-found).
fn show_key(key: &str) -> String {
    if key.bytes().all(|b| b.is_ascii_graphic()) && key.len() <= QUOTE_MAX {
        key.to_string()
    } else {
        quote(key)
    }
}

// Bounds of the numeric netboot.* keys, documented in one place.
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
/// dracut's `rd.iscsi.login_retry_max` bound.
pub const LOGIN_RETRY_MAX: u64 = 10_000;

const NETBOOT_KEYS: &str = "initiator, scheduler, nr_requests, queue_depth, cmds_max, timeout, \
                            on_fail, log, events, config, config.required, secrets, param.KEY";

/// One variant per failing key or syntax. Display is one line:
/// `invalid KEY=: what is wrong with which value`, values quoted and
/// credentials masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    /// `iscsi=`, `iscsiroot=`, `netroot=iscsi:…`, `root=iscsi:…`.
    RootPath {
        key: String,
        error: RootPathError,
    },
    /// `netroot=` with a scheme we do not boot (nfs:, nbd:…).
    Netroot {
        value: String,
    },
    /// `root=` that is no device spec we understand.
    RootDevice {
        value: String,
    },
    Ip {
        error: IpError,
    },
    /// `ip=` twice for the same interface.
    IpDuplicate {
        iface: String,
    },
    Ifname {
        value: String,
    },
    Bootif {
        value: String,
    },
    Nameserver {
        value: String,
    },
    Initiator {
        key: String,
        value: String,
    },
    /// One half of a CHAP pair without the other.
    ChapIncomplete {
        given: String,
        missing: &'static str,
    },
    /// An integer key out of range or not a number.
    Number {
        key: String,
        value: String,
        min: u64,
        max: u64,
    },
    CmdsMax {
        value: String,
    },
    Timeout {
        value: String,
    },
    Bool {
        key: String,
        value: String,
    },
    Choice {
        key: String,
        value: String,
        allowed: &'static str,
    },
    Scheduler {
        value: String,
    },
    Events(crate::events::EventsError),
    Config {
        value: String,
    },
    /// `rd.iscsi.param=` / `netboot.param.KEY=`; `why` says what is wrong.
    Param {
        key: String,
        value: String,
        why: &'static str,
    },
    /// `init=` / `netboot.secrets=` that is not an absolute path.
    Path {
        key: String,
        value: String,
    },
    FsType {
        value: String,
    },
    UnknownNetboot {
        key: String,
    },
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CmdlineError::*;
        match self {
            RootPath { key, error } => write!(f, "invalid {key}=: {error}"),
            Netroot { value } => write!(
                f,
                "invalid netroot=: {value} is not iscsi:… or dhcp; netboot boots only iSCSI"
            ),
            RootDevice { value } => write!(
                f,
                "invalid root=: {value} is not /dev/…, LABEL=, UUID=, PARTUUID=, PARTLABEL=, iscsi:… or dhcp"
            ),
            Ip { error } => write!(f, "invalid ip=: {error}"),
            IpDuplicate { iface } => write!(
                f,
                "invalid ip=: interface {iface} is already configured by an earlier ip="
            ),
            Ifname { value } => write!(
                f,
                "invalid ifname=: {value} is not NAME:MAC like lan0:52:54:00:12:34:56"
            ),
            Bootif { value } => write!(
                f,
                "invalid BOOTIF=: {value} is not a MAC like 01-52-54-00-12-34-56 or 52:54:00:12:34:56"
            ),
            Nameserver { value } => write!(f, "invalid nameserver=: {value} is not an IP address"),
            Initiator { key, value } => write!(
                f,
                "invalid {key}=: {value} is not an iSCSI name (iqn.…, eui.… or naa.…, at most {MAX_NAME_LEN} bytes, no spaces)"
            ),
            ChapIncomplete { given, missing } => {
                write!(f, "invalid {given}=: given without {missing}=")
            }
            Number { key, value, min, max } => {
                write!(f, "invalid {key}=: {value} is not an integer in {min}..{max}")
            }
            CmdsMax { value } => write!(
                f,
                "invalid netboot.cmds_max=: {value} is not a power of two in {CMDS_MAX_MIN}..{CMDS_MAX_MAX}"
            ),
            Timeout { value } => write!(
                f,
                "invalid netboot.timeout=: {value} is not seconds in 0.001..86400 (at most 3 decimals)"
            ),
            Bool { key, value } => write!(f, "invalid {key}=: {value} is not 0 or 1"),
            Choice { key, value, allowed } => {
                write!(f, "invalid {key}=: {value} is not one of {allowed}")
            }
            Scheduler { value } => write!(
                f,
                "invalid netboot.scheduler=: {value} is not a scheduler name (1..15 of a-z 0-9 - _)"
            ),
            Events(e) => write!(f, "invalid {e}"),
            Config { value } => write!(
                f,
                "invalid netboot.config=: {value} is not rxrpc:HOST[:PORT] with PORT 1..65535"
            ),
            Param { key, value, why } => write!(f, "invalid {}=: {value} {why}", show_key(key)),
            Path { key, value } => write!(f, "invalid {key}=: {value} is not an absolute path"),
            FsType { value } => write!(
                f,
                "invalid rootfstype=: {value} is not a file system type list like ext4 or ext4,xfs"
            ),
            UnknownNetboot { key } => write!(
                f,
                "unknown key {}=: netboot.* keys are {NETBOOT_KEYS}",
                show_key(key)
            ),
        }
    }
}

impl std::error::Error for CmdlineError {}

/// Parse a whole kernel command line into a plan with every default filled
/// in. The first invalid argument (in cmdline order) is the error.
pub fn parse_plan(cmdline: &str) -> Result<BootPlan, CmdlineError> {
    let tokens = tokenize::tokenize(cmdline);
    let mut plan = BootPlan::default();
    let mut creds = Creds::default();
    for arg in &tokens.args {
        apply(&mut plan, &mut creds, arg)?;
    }
    plan.init.args = tokens.init_args;

    // rd.iscsi.username & co. and the TPGT apply to every path, wherever
    // they appear on the line (dracut reads them before any root path).
    plan.iscsi.chap = creds.build()?;
    for p in &mut plan.paths {
        if p.chap.is_none() {
            p.chap = plan.iscsi.chap.clone();
        }
        p.tpgt = plan.iscsi.tpgt;
    }
    Ok(plan)
}

/// The separate CHAP keys, each with the name it was given under.
#[derive(Default)]
struct Creds {
    user: Option<(String, String)>,
    pass: Option<(String, String)>,
    in_user: Option<(String, String)>,
    in_pass: Option<(String, String)>,
}

impl Creds {
    fn build(self) -> Result<Option<Chap>, CmdlineError> {
        let incomplete = |given: &(String, String), missing| CmdlineError::ChapIncomplete {
            given: given.0.clone(),
            missing,
        };
        let mutual = match (&self.in_user, &self.in_pass) {
            (None, None) => None,
            (Some(u), None) => return Err(incomplete(u, "rd.iscsi.in.password")),
            (None, Some(p)) => return Err(incomplete(p, "rd.iscsi.in.username")),
            (Some(u), Some(p)) => Some(MutualChap {
                username: u.1.clone(),
                secret: Secret::new(p.1.as_str()),
            }),
        };
        match (&self.user, &self.pass) {
            (Some(u), Some(p)) => Ok(Some(Chap {
                username: u.1.clone(),
                secret: Secret::new(p.1.as_str()),
                mutual,
            })),
            (Some(u), None) => Err(incomplete(u, "rd.iscsi.password")),
            (None, Some(p)) => Err(incomplete(p, "rd.iscsi.username")),
            (None, None) => match (&self.in_user, &self.in_pass) {
                // Mutual CHAP needs the initiator side too (RFC 7143 §12.1.3).
                (Some(u), _) | (_, Some(u)) => Err(incomplete(u, "rd.iscsi.username")),
                _ => Ok(None),
            },
        }
    }
}

fn apply(plan: &mut BootPlan, creds: &mut Creds, arg: &Arg) -> Result<(), CmdlineError> {
    let raw = || arg.raw.clone();
    let value = arg.value.as_deref().unwrap_or("");
    let root_path =
        |v: &str| rootpath::parse(v).map_err(|error| CmdlineError::RootPath { key: raw(), error });
    // An empty CHAP value counts as not given.
    let cred = || (!value.is_empty()).then(|| (raw(), value.to_string()));
    match arg.key.as_str() {
        // Ours, plus dracut's legacy spelling.
        "iscsi" | "iscsiroot" => plan.paths.push(root_path(value)?),
        "netroot" => match value {
            "dhcp" | "iscsi" => plan.root_path_from_dhcp = true,
            v if v.starts_with("iscsi:") => plan.paths.push(root_path(v)?),
            v => return Err(CmdlineError::Netroot { value: quote(v) }),
        },
        "root" => plan.root.device = root_device(value, plan, root_path)?,
        "rd.iscsi.initiator" | "iscsi_initiator" | "netboot.initiator" => {
            plan.initiator = Some(initiator(arg, value)?)
        }
        "rd.iscsi.username" | "iscsi_username" => creds.user = cred(),
        "rd.iscsi.password" | "iscsi_password" => creds.pass = cred(),
        "rd.iscsi.in.username" | "iscsi_in_username" => creds.in_user = cred(),
        "rd.iscsi.in.password" | "iscsi_in_password" => creds.in_pass = cred(),
        "rd.iscsi.target.group" | "iscsi_target_group" => {
            plan.iscsi.tpgt = number(arg, 0, u64::from(u16::MAX))? as u16
        }
        "rd.iscsi.login_retry_max" => {
            plan.iscsi.login_retry_max = number(arg, 0, LOGIN_RETRY_MAX)? as u32
        }
        "rd.iscsi.param" | "iscsi_param" => plan.iscsi.node_params.push(node_param(arg, value)?),
        "rd.iscsi.firmware" | "iscsi_firmware" => plan.iscsi.firmware = boolean(arg)?,
        "rd.iscsi.ibft" => plan.iscsi.ibft = boolean(arg)?,
        "ip" => {
            let c = ip::parse(value).map_err(|error| CmdlineError::Ip { error })?;
            if plan.network.ip.iter().any(|o| o.iface == c.iface) {
                let iface = c.iface.as_deref().map_or("(any)".to_string(), quote);
                return Err(CmdlineError::IpDuplicate { iface });
            }
            plan.network.ip.push(c);
        }
        "ifname" => {
            let bad = || CmdlineError::Ifname {
                value: quote(value),
            };
            let (name, mac) = value.split_once(':').ok_or_else(bad)?;
            let mac = ip::parse_mac(mac)
                .filter(|_| ip::valid_iface(name))
                .ok_or_else(bad)?;
            plan.network.ifnames.push(IfName {
                name: name.to_string(),
                mac,
            });
        }
        // pxelinux IPAPPEND 2: `01-` (ARP type Ethernet) then the MAC.
        "BOOTIF" => {
            let mac = value
                .strip_prefix("01-")
                .filter(|m| m.len() == 17)
                .unwrap_or(value);
            plan.network.bootif = Some(ip::parse_mac(mac).ok_or_else(|| CmdlineError::Bootif {
                value: quote(value),
            })?);
        }
        "nameserver" => plan
            .network
            .nameservers
            .push(
                ip::parse_addr(value).ok_or_else(|| CmdlineError::Nameserver {
                    value: quote(value),
                })?,
            ),
        "rd.neednet" => plan.network.neednet = boolean(arg)?,
        "rootfstype" => {
            let ok = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b',' | b'.' | b'_' | b'-'));
            if !ok {
                return Err(CmdlineError::FsType {
                    value: quote(value),
                });
            }
            plan.root.fstype = Some(value.to_string());
        }
        "rootflags" => plan.root.flags = (!value.is_empty()).then(|| value.to_string()),
        "ro" => plan.root.read_only = true,
        "rw" => plan.root.read_only = false,
        "init" => plan.init.path = Some(abs_path(arg, value)?),
        k if k.starts_with("netboot.") => netboot_key(plan, arg, value)?,
        // rdinit= names us; everything else belongs to the kernel or others.
        _ => {}
    }
    Ok(())
}

fn root_device(
    value: &str,
    plan: &mut BootPlan,
    root_path: impl Fn(&str) -> Result<crate::plan::RootPath, CmdlineError>,
) -> Result<RootDevice, CmdlineError> {
    let bad = || CmdlineError::RootDevice {
        value: quote(value),
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string()).ok_or_else(bad);
    let uuid = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| s.to_string())
            .ok_or_else(bad)
    };
    if let Some(v) = value.strip_prefix("iscsi:") {
        plan.paths.push(root_path(&format!("iscsi:{v}"))?);
        return Ok(RootDevice::Lun);
    }
    Ok(match value {
        "dhcp" => {
            plan.root_path_from_dhcp = true;
            RootDevice::Lun
        }
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

fn number(arg: &Arg, min: u64, max: u64) -> Result<u64, CmdlineError> {
    let value = arg.value.as_deref().unwrap_or("");
    parse_dec(value)
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| CmdlineError::Number {
            key: arg.raw.clone(),
            value: quote(value),
            min,
            max,
        })
}

/// A bare flag is true (`rd.neednet`); else 0/1 and the usual spellings.
fn boolean(arg: &Arg) -> Result<bool, CmdlineError> {
    match arg.value.as_deref() {
        None | Some("1" | "yes" | "true" | "on") => Ok(true),
        Some("0" | "no" | "false" | "off") => Ok(false),
        Some(v) => Err(CmdlineError::Bool {
            key: arg.raw.clone(),
            value: quote(v),
        }),
    }
}

/// RFC 7143 §4.2.7: iqn., eui. or naa. names, at most 223 bytes.
fn initiator(arg: &Arg, value: &str) -> Result<String, CmdlineError> {
    let lower = value.get(..4).map(str::to_ascii_lowercase);
    let ok = matches!(lower.as_deref(), Some("iqn." | "eui." | "naa."))
        && value.len() > 4
        && value.len() <= MAX_NAME_LEN
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value.to_string())
    } else {
        Err(CmdlineError::Initiator {
            key: arg.raw.clone(),
            value: quote(value),
        })
    }
}

fn abs_path(arg: &Arg, value: &str) -> Result<String, CmdlineError> {
    if value.starts_with('/') && value.len() > 1 && !value.chars().any(char::is_control) {
        Ok(value.to_string())
    } else {
        Err(CmdlineError::Path {
            key: arg.raw.clone(),
            value: quote(value),
        })
    }
}

/// `rd.iscsi.param=KEY=VALUE` (open-iscsi node key, e.g.
/// `node.session.timeo.replacement_timeout=30`).
fn node_param(arg: &Arg, value: &str) -> Result<Param, CmdlineError> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()) => Ok(Param {
            key: k.to_string(),
            value: v.to_string(),
        }),
        _ => Err(CmdlineError::Param {
            key: arg.raw.clone(),
            // Only the key part: a value here may be a password.
            value: quote(value.split('=').next().unwrap_or("")),
            why: "is not NODE.KEY=VALUE",
        }),
    }
}

fn netboot_key(plan: &mut BootPlan, arg: &Arg, value: &str) -> Result<(), CmdlineError> {
    let raw = || arg.raw.clone();
    match arg.key.as_str() {
        "netboot.scheduler" => {
            let ok = !value.is_empty()
                && value.len() <= 15
                && value.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(CmdlineError::Scheduler {
                    value: quote(value),
                });
            }
            plan.tuning.scheduler = Some(value.to_string());
        }
        "netboot.nr_requests" => {
            plan.tuning.nr_requests = Some(number(arg, 1, NR_REQUESTS_MAX)? as u32)
        }
        "netboot.queue_depth" => plan.tuning.queue_depth = number(arg, 1, QUEUE_DEPTH_MAX)? as u32,
        "netboot.cmds_max" => {
            plan.tuning.cmds_max = parse_dec(value)
                .filter(|n| (CMDS_MAX_MIN..=CMDS_MAX_MAX).contains(n) && n.is_power_of_two())
                .ok_or_else(|| CmdlineError::CmdsMax {
                    value: quote(value),
                })? as u32
        }
        "netboot.timeout" => {
            plan.timeout_ms = timeout_ms(value).ok_or_else(|| CmdlineError::Timeout {
                value: quote(value),
            })?
        }
        "netboot.on_fail" => {
            plan.on_fail = FailurePolicy::parse(value).ok_or_else(|| CmdlineError::Choice {
                key: raw(),
                value: quote(value),
                allowed: "shell, reboot, halt",
            })?
        }
        "netboot.log" => {
            plan.log = match value {
                "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                "trace" => LogLevel::Trace,
                v => {
                    return Err(CmdlineError::Choice {
                        key: raw(),
                        value: quote(v),
                        allowed: "error, warn, info, debug, trace",
                    })
                }
            }
        }
        "netboot.events" => {
            // The events module owns the syntax and the rules (groups and
            // ids clear of kernel connector users).
            plan.events = crate::events::parse_events_target(value).map_err(CmdlineError::Events)?
        }
        "netboot.config" => plan
            .config
            .servers
            .push(config_server(value).ok_or_else(|| CmdlineError::Config {
                value: quote(value),
            })?),
        "netboot.config.required" => plan.config.required = boolean(arg)?,
        "netboot.secrets" => plan.config.credentials_file = Some(abs_path(arg, value)?),
        k if k.starts_with("netboot.param.") => {
            // The raw name keeps the key's own `-` (`X-com.example-key`);
            // folding `-`/`_` never changes byte offsets.
            let key = arg.raw.get("netboot.param.".len()..).unwrap_or("");
            plan.iscsi.login_params.push(login_param(arg, key, value)?);
        }
        _ => return Err(CmdlineError::UnknownNetboot { key: raw() }),
    }
    Ok(())
}

/// RFC 7143 §6.1: key names are letters, digits and `.-+@_`, at most 63
/// bytes; values at most 255 bytes of printable text.
fn login_param(arg: &Arg, key: &str, value: &str) -> Result<Param, CmdlineError> {
    let err = |why| CmdlineError::Param {
        key: arg.raw.clone(),
        value: quote(value),
        why,
    };
    let key_ok = !key.is_empty()
        && key.len() <= 63
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'@' | b'_'));
    if !key_ok {
        return Err(CmdlineError::Param {
            key: arg.raw.clone(),
            value: quote(key),
            why: "is not an iSCSI key name (letters, digits, . - + @ _; at most 63)",
        });
    }
    let p = Param {
        key: key.to_string(),
        value: value.to_string(),
    };
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        let mut e = err("is not an iSCSI value (1..255 printable ASCII characters)");
        if p.is_sensitive() {
            if let CmdlineError::Param { value, .. } = &mut e {
                *value = "\"***\"".to_string();
            }
        }
        return Err(e);
    }
    Ok(p)
}

/// `D[.DDD]` seconds → milliseconds, 1 ms ..= 1 day.
fn timeout_ms(value: &str) -> Option<u64> {
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
    let ms = secs.checked_mul(1000)?.checked_add(frac_ms)?;
    (1..=TIMEOUT_MAX_MS).contains(&ms).then_some(ms)
}

/// `rxrpc:HOST[:PORT]`, HOST a name, IPv4 or `[IPv6]`.
fn config_server(value: &str) -> Option<ConfigServer> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(timeout_ms("30"), Some(30_000));
        assert_eq!(timeout_ms("0.5"), Some(500));
        assert_eq!(timeout_ms("1.25"), Some(1250));
        assert_eq!(timeout_ms("0"), None);
        assert_eq!(timeout_ms("1."), None);
        assert_eq!(timeout_ms("1.0001"), None);
        assert_eq!(timeout_ms("86401"), None);
        assert_eq!(timeout_ms("99999999999999999999"), None);
    }

    #[test]
    fn quote_truncates_on_char_boundary() {
        let s = "é".repeat(200);
        let q = quote(&s);
        assert!(q.ends_with('…'));
        assert_eq!(q.chars().filter(|&c| c == 'é').count(), QUOTE_MAX);
    }
}
