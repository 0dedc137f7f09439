//! What this netboot can execute: the one gate between a valid plan and
//! the boot. Every value has passed its field's validator ([`super::keys`])
//! by now; this checks the plan as a whole, with the executor's own rules,
//! so `netboot plan` refuses exactly what the boot would:
//!
//! - a gateway of the other IP version than the address ([`crate::net::refuse_unsupported`], which the network
//!   step runs again);
//! - `rd.iscsi.param=` node keys, applied in order as the executor applies
//!   them ([`NodeSettings::apply`]);
//! - the login-key overrides (the node keys' RFC 7143 keys, then
//!   `netboot.param.KEY`), each through the login's own check
//!   (`iscsi::text::validate`, which `LoginConfig::apply_overrides` runs).
//!
//! Called by `parse_plan` (every plan the command line yields), and by the
//! executor before the network comes up and again after a fetched config
//! is merged; the executor uses the [`Executable`] it returns.

use crate::iscsi::node::{NodeParamError, NodeSettings};
use crate::iscsi::text::NegotiationError;
use crate::net::NetError;
use crate::plan::BootPlan;
use std::fmt;

/// Why a plan cannot be executed. Display is one line and names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// An `ip=` entry the network step would refuse.
    Network(NetError),
    /// An `rd.iscsi.param=` node key (already checked one by one; applied
    /// together here as the executor does).
    NodeParam(NodeParamError),
    /// A login-key override the login would refuse.
    LoginOverride(NegotiationError),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Network(e) => e.fmt(f),
            Unsupported::NodeParam(e) => write!(f, "rd.iscsi.param: {e}"),
            Unsupported::LoginOverride(e) => write!(f, "login key override: {e}"),
        }
    }
}

impl std::error::Error for Unsupported {}

/// What the executor needs from a checked plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// The node settings with every `rd.iscsi.param=` applied.
    pub node: NodeSettings,
}

/// The login-key overrides in the order the login applies them: the node
/// keys' RFC 7143 keys (`rd.iscsi.param=node.session.iscsi.*`), then
/// `netboot.param.KEY` on top.
pub fn login_overrides(node: &NodeSettings, plan: &BootPlan) -> Vec<(String, String)> {
    node.login_keys
        .iter()
        .cloned()
        .chain(
            plan.iscsi
                .login_params
                .iter()
                .map(|p| (p.key.clone(), p.value.clone())),
        )
        .collect()
}

/// The gate (module docs).
pub fn check(plan: &BootPlan) -> Result<Executable, Unsupported> {
    crate::net::refuse_unsupported(&plan.network).map_err(Unsupported::Network)?;
    let mut node = NodeSettings::default();
    node.apply(
        plan.iscsi
            .node_params
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str())),
    )
    .map_err(Unsupported::NodeParam)?;
    // The check `LoginConfig::apply_overrides` makes of each override at
    // attach time, key by key (linear: its merge into the offers is not
    // needed to know that it will succeed).
    for (k, v) in login_overrides(&node, plan) {
        crate::iscsi::text::validate(&k, &v).map_err(Unsupported::LoginOverride)?;
    }
    Ok(Executable { node })
}
