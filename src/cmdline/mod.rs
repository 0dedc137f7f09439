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
//!
//! Which key sets which plan field, and the one validator of each field
//! (shared with the fetched config), are the table in [`keys`].

pub mod events;
pub mod ip;
pub mod keys;
pub mod mask;
pub mod rootpath;
pub mod secrets;
pub mod supported;
pub mod tokenize;

use crate::plan::{BootPlan, Chap, MutualChap, RootDevice, Secret};
use keys::{Dur, Num, PlanField, ValueError};
use mask::Masker;
use std::fmt;
use tokenize::Arg;

pub use keys::{
    CMDS_MAX_MAX, CMDS_MAX_MIN, LOGIN_RETRY_MAX, NR_REQUESTS_MAX, QUEUE_DEPTH_MAX,
    REBOOT_DELAY_MAX_MS, TIMEOUT_MAX_MS,
};

/// Longest value echoed in a message; the rest is elided so an error stays
/// one readable line even for hostile input.
const QUOTE_MAX: usize = 120;

/// Largest command line read from a file (`/proc/cmdline`, `netboot plan
/// --cmdline-file`). The kernel's own bound is COMMAND_LINE_SIZE: 2048
/// bytes on x86 (arch/x86/include/asm/setup.h) and arm64, 4096 by default
/// on s390, where CONFIG_COMMAND_LINE_SIZE goes up to 1 MiB (arch/s390/
/// Kconfig, "range 896 1048576"), the largest any architecture allows. A
/// file beyond that is not a kernel command line; the cap also bounds the
/// parser's work and memory.
pub const MAX_CMDLINE_LEN: u64 = 1 << 20;

/// Why reading a command line file stopped at [`MAX_CMDLINE_LEN`], for the
/// message after `longer than N bytes`.
pub const CMDLINE_CAP_WHY: &str = "no kernel command line is longer (COMMAND_LINE_SIZE is \
     2048 bytes on x86 and arm64, at most 1 MiB on s390)";

/// A command line from a file, at most [`MAX_CMDLINE_LEN`] bytes. Like
/// /proc/cmdline it is bytes, not promised UTF-8 (the parser only cares
/// about ASCII delimiters): other bytes become U+FFFD.
pub fn read_cmdline(path: &std::path::Path) -> Result<String, crate::bounded::BoundedReadError> {
    let b = crate::bounded::read_file(path, MAX_CMDLINE_LEN)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// The message for a failed [`read_cmdline`] of `shown` (the path, quoted).
pub fn read_cmdline_error(shown: &str, e: &crate::bounded::BoundedReadError) -> String {
    match e {
        crate::bounded::BoundedReadError::TooLarge { .. } => {
            format!("cannot read {shown}: {e}; {CMDLINE_CAP_WHY}")
        }
        crate::bounded::BoundedReadError::Io(_) => format!("cannot read {shown}: {e}"),
    }
}

/// `value` as a quoted, escaped, length-limited string for messages
/// (escaping keeps control characters from breaking the one-line rule).
pub(crate) fn quote(value: &str) -> String {
    crate::escape::quote_max(value, QUOTE_MAX)
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

/// Why a command line is refused: one line, `invalid KEY=: what is wrong
/// with which value`, values quoted, and every credential the line holds
/// anywhere replaced by `***` ([`Masker`]). `Debug` shows the same line.
#[derive(Clone, PartialEq, Eq)]
pub struct CmdlineError {
    message: String,
}

impl CmdlineError {
    fn masked(invalid: &Invalid, masker: &Masker) -> CmdlineError {
        CmdlineError {
            message: masker.mask(&invalid.to_string()),
        }
    }
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CmdlineError({:?})", self.message)
    }
}

impl std::error::Error for CmdlineError {}

/// One variant per failing key or rule, before masking.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Invalid {
    /// A value its field's validator ([`keys`]) refuses; `key` as typed.
    Value {
        key: String,
        error: ValueError,
    },
    /// One half of a CHAP pair without the other.
    ChapIncomplete {
        given: String,
        missing: &'static str,
    },
    UnknownNetboot {
        key: String,
    },
    /// The plan is valid but asks for what the boot cannot do
    /// ([`supported::check`], the boot's own gate).
    Unsupported(supported::Unsupported),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `events::EventsError` names the key and value itself.
            Invalid::Value {
                error: ValueError::Events(e),
                ..
            } => write!(f, "invalid {e}"),
            Invalid::Value { key, error } => write!(f, "invalid {}=: {error}", show_key(key)),
            Invalid::ChapIncomplete { given, missing } => {
                write!(f, "invalid {given}=: given without {missing}=")
            }
            Invalid::UnknownNetboot { key } => write!(
                f,
                "unknown key {}=: netboot.* keys are {}",
                show_key(key),
                keys::netboot_keys()
            ),
            Invalid::Unsupported(e) => e.fmt(f),
        }
    }
}

/// Parse a whole kernel command line into a plan with every default filled
/// in. The first invalid argument (in cmdline order) is the error; a valid
/// plan the boot could not execute ([`supported::check`]) is one too.
pub fn parse_plan(cmdline: &str) -> Result<BootPlan, CmdlineError> {
    parse_plan_with(cmdline, &[])
}

/// [`parse_plan`] with `before` applied ahead of the command line's own
/// arguments (a `netboot.secrets=` file's credentials): single-valued keys
/// given on the command line as well keep the command line's value.
pub fn parse_plan_with(cmdline: &str, before: &[Arg]) -> Result<BootPlan, CmdlineError> {
    // The masker walks the whole line again: only on the error path.
    build_plan(cmdline, before)
        .map_err(|e| CmdlineError::masked(&e, &Masker::for_cmdline(cmdline, before)))
}

fn build_plan(cmdline: &str, before: &[Arg]) -> Result<BootPlan, Invalid> {
    let tokens = tokenize::tokenize(cmdline);
    let mut plan = BootPlan::default();
    let mut seen = Seen::default();
    for arg in before.iter().chain(&tokens.args) {
        apply(&mut plan, &mut seen, arg)?;
    }
    plan.init.args = tokens.init_args;

    // rd.iscsi.username & co. and the TPGT apply to every path, wherever
    // they appear on the line (dracut reads them before any root path).
    plan.iscsi.chap = seen.creds.build()?;
    for p in &mut plan.paths {
        if p.chap.is_none() {
            p.chap = plan.iscsi.chap.clone();
        }
    }
    plan.apply_tpgt();
    supported::check(&plan).map_err(Invalid::Unsupported)?;
    Ok(plan)
}

/// What parsing has seen so far, beyond the plan itself.
#[derive(Default)]
struct Seen {
    creds: Creds,
    /// The `ip=` entries' interfaces: one entry per interface, checked in
    /// a set so that a line of many `ip=` parses in linear time.
    ip: keys::IpEntries,
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
    fn build(self) -> Result<Option<Chap>, Invalid> {
        let incomplete = |given: &(String, String), missing| Invalid::ChapIncomplete {
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

/// One argument into the plan, by its field in the key table.
fn apply(plan: &mut BootPlan, seen: &mut Seen, arg: &Arg) -> Result<(), Invalid> {
    let Some(field) = PlanField::of_key(&arg.key) else {
        if arg.key.starts_with("netboot.") {
            return Err(Invalid::UnknownNetboot {
                key: arg.raw.clone(),
            });
        }
        // rdinit= names us; everything else belongs to the kernel or others.
        return Ok(());
    };
    set(plan, seen, field, arg).map_err(|error| Invalid::Value {
        key: arg.raw.clone(),
        error,
    })
}

fn set(
    plan: &mut BootPlan,
    seen: &mut Seen,
    field: PlanField,
    arg: &Arg,
) -> Result<(), ValueError> {
    let creds = &mut seen.creds;
    let value = arg.value.as_deref().unwrap_or("");
    // An empty CHAP value counts as not given.
    let cred = || (!value.is_empty()).then(|| (arg.raw.clone(), value.to_string()));
    match field {
        PlanField::Paths => match arg.key.as_str() {
            "netroot" => match keys::netroot(value)? {
                Some(p) => plan.paths.push(p),
                None => plan.root_path_from_dhcp = true,
            },
            // Ours, plus dracut's legacy `iscsiroot=`.
            _ => plan.paths.push(keys::root_path(value)?),
        },
        PlanField::RootDevice => {
            plan.root.device = if value.starts_with("iscsi:") {
                plan.paths.push(keys::root_path(value)?);
                RootDevice::Lun
            } else if value == "dhcp" || value == "dhcp6" {
                plan.root_path_from_dhcp = true;
                RootDevice::Lun
            } else {
                keys::root_device(value)?
            }
        }
        PlanField::Initiator => plan.initiator = Some(keys::initiator(value)?),
        PlanField::ChapUsername => creds.user = cred(),
        PlanField::ChapPassword => creds.pass = cred(),
        PlanField::MutualUsername => creds.in_user = cred(),
        PlanField::MutualPassword => creds.in_pass = cred(),
        PlanField::Tpgt => plan.iscsi.tpgt = keys::tpgt(Num::Text(value))?,
        PlanField::LoginRetryMax => {
            plan.iscsi.login_retry_max = keys::login_retry_max(Num::Text(value))?
        }
        PlanField::NodeParams => plan.iscsi.node_params.push(keys::node_param_kv(value)?),
        PlanField::Firmware => plan.iscsi.firmware = keys::flag(arg.value.as_deref())?,
        PlanField::Ibft => plan.iscsi.ibft = keys::flag(arg.value.as_deref())?,
        PlanField::Ip => {
            let c = seen.ip.add(value)?;
            plan.network.ip.push(c);
        }
        PlanField::Ifnames => plan.network.ifnames.push(keys::ifname(value)?),
        PlanField::Vlans => plan.network.vlans.push(keys::vlan(value)?),
        PlanField::Bootif => plan.network.bootif = Some(keys::bootif(value)?),
        PlanField::Nameservers => plan.network.nameservers.push(keys::nameserver(value)?),
        PlanField::Neednet => plan.network.neednet = keys::flag(arg.value.as_deref())?,
        PlanField::RootFstype => plan.root.fstype = Some(keys::root_fstype(value)?),
        PlanField::RootFlags => plan.root.flags = keys::root_flags(value),
        PlanField::ReadOnly => plan.root.read_only = arg.key == "ro",
        PlanField::InitPath => plan.init.path = Some(keys::abs_path(value)?),
        // After `--`: taken from the tokens, never a key.
        PlanField::InitArgs => {}
        PlanField::Scheduler => plan.tuning.scheduler = Some(keys::scheduler(value)?),
        PlanField::NrRequests => {
            plan.tuning.nr_requests = Some(keys::nr_requests(Num::Text(value))?)
        }
        PlanField::QueueDepth => plan.tuning.queue_depth = keys::queue_depth(Num::Text(value))?,
        PlanField::CmdsMax => plan.tuning.cmds_max = keys::cmds_max(Num::Text(value))?,
        PlanField::Timeout => plan.timeout_ms = keys::timeout_ms(Dur::Seconds(value))?,
        PlanField::OnFail => plan.on_fail = keys::on_fail(value)?,
        PlanField::RebootDelay => {
            plan.reboot_delay_ms = keys::reboot_delay_ms(Dur::Seconds(value))?
        }
        PlanField::Log => plan.log = keys::log_level(value)?,
        PlanField::Recovery => plan.recovery = keys::recovery(value)?,
        PlanField::Events => plan.events = keys::events(value)?,
        PlanField::ConfigServers => plan.config.servers.push(keys::config_server(value)?),
        PlanField::ConfigRequired => plan.config.required = keys::flag(arg.value.as_deref())?,
        PlanField::ConfigSecurity => plan.config.security = keys::config_security(value)?,
        PlanField::ConfigToken => plan.config.token = Some(keys::abs_path(value)?),
        PlanField::CredentialsFile => plan.config.credentials_file = Some(keys::abs_path(value)?),
        PlanField::LoginParams => {
            // The raw name keeps the key's own `-` (`X-com.example-key`);
            // folding `-`/`_` never changes byte offsets.
            let key = arg.raw.get("netboot.param.".len()..).unwrap_or("");
            plan.iscsi.login_params.push(keys::login_param(key, value)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_truncates_on_char_boundary() {
        let s = "é".repeat(200);
        let q = quote(&s);
        assert!(q.ends_with('…'));
        assert_eq!(q.chars().filter(|&c| c == 'é').count(), QUOTE_MAX);
    }
}
