//! Argument handling shared by the userspace iSCSI tools.

use crate::iscsi::channel::{ChannelError, TcpChannel};
use crate::iscsi::connect::{establish, Connector, Established, RetryPolicy};
use crate::iscsi::default_initiator_name;
use crate::iscsi::login::{LoginConfig, Portal, SessionType};
use crate::plan::Chap;
use std::time::Duration;

/// Default connect / receive timeout of the tools, in seconds.
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

pub struct ToolArgs {
    pub timeout: Duration,
    pub initiator: Option<String>,
    pub json: bool,
    pub positional: Vec<String>,
}

/// `--timeout S`, `--initiator IQN`, `--json`, then positionals.
pub fn parse(args: &[String]) -> Result<ToolArgs, String> {
    let mut out = ToolArgs {
        timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
        initiator: None,
        json: false,
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => out.json = true,
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a value in seconds")?;
                let s: f64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: {v:?} is not a number of seconds"))?;
                if !(s > 0.0 && s <= 3600.0) {
                    return Err(format!("--timeout: {v:?} must be in (0, 3600] seconds"));
                }
                out.timeout = Duration::from_secs_f64(s);
            }
            "--initiator" => {
                out.initiator = Some(it.next().ok_or("--initiator needs an IQN")?.clone());
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s:?}")),
            _ => out.positional.push(a.clone()),
        }
    }
    Ok(out)
}

/// Plain TCP connections for the userspace tools.
pub struct TcpConnector {
    pub timeout: Duration,
}

impl Connector for TcpConnector {
    type Channel = TcpChannel;
    fn connect(&mut self, portal: &Portal) -> Result<TcpChannel, ChannelError> {
        TcpChannel::connect(portal, self.timeout)
    }
}

/// `--initiator`, or the default IQN derived from the host name.
pub fn initiator(a: &ToolArgs) -> String {
    a.initiator.clone().unwrap_or_else(default_initiator_name)
}

/// Connect and log in for a tool. Errors: the ISID could not be drawn, or
/// connect/login failed (the error already names target and portal).
pub fn login(
    a: &ToolArgs,
    initiator: &str,
    portal: &Portal,
    target: Option<&str>,
    chap: Option<Chap>,
) -> Result<Established<TcpChannel>, Box<dyn std::error::Error>> {
    let kind = if target.is_some() {
        SessionType::Normal
    } else {
        SessionType::Discovery
    };
    let mut cfg = LoginConfig::new(initiator, target, kind);
    cfg.chap = chap;
    cfg.random_isid()?;
    let mut conn = TcpConnector { timeout: a.timeout };
    // A tool run by hand fails fast on connect errors; target-side transient
    // errors and redirects are still handled (RetryPolicy::default()).
    Ok(establish(
        &mut conn,
        portal,
        &cfg,
        &RetryPolicy::default(),
        &mut std::thread::sleep,
    )?)
}
