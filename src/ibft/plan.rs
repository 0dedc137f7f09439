//! The table into the boot plan (pure).
//!
//! - every usable target becomes a root path, boot-selected first
//!   ([`Table::boot_targets`]), with the table's CHAP and mutual CHAP;
//! - each NIC those targets use becomes an `ip=` entry bound to the NIC's
//!   MAC (the link the table names): its static address, prefix, gateway,
//!   DNS and host name, or DHCP when the table says DHCP
//!   ([`super::Nic::uses_dhcp`]; DHCPv6 for an IPv6 address, as dracut);
//! - the initiator's name becomes the initiator.
//!
//! Explicit command-line keys win, field by field as in the config merge
//! (`config::merge`): root paths given on the command line (or
//! `root=dhcp`) keep the table's targets out; `ip=` keeps the table's NICs
//! out; `rd.iscsi.initiator=` its initiator; any of the CHAP keys its
//! credentials (the paths then use the command line's). [`merge`] returns
//! the fields it set, so a fetched config does not override them either.
//!
//! A NIC with a VLAN ID is refused: this build cannot create VLAN links
//! (see [`vlan_unsupported`]).

use super::{IbftError, Nic, Table, Target};
use crate::cmdline::keys::PlanField;
use crate::plan::{BootPlan, Chap, IpConfig, IpMethod, MutualChap, RootPath};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What [`merge`] did: the fields it set, and one line per decision for
/// the log (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merged {
    pub fields: BTreeSet<PlanField>,
    pub notes: Vec<String>,
}

/// The VLAN message: a table NIC on a tagged VLAN.
pub fn vlan_unsupported(nic: &Nic) -> IbftError {
    IbftError {
        at: format!("{}/vlan", nic.entry),
        what: format!(
            "VLAN {} is set, but this netboot cannot configure VLANs yet; give ip= (and a root path) on the command line instead",
            nic.vlan
        ),
    }
}

/// The `ip=` entry of one table NIC.
pub fn ip_config(nic: &Nic) -> Result<IpConfig, IbftError> {
    if nic.vlan != 0 {
        return Err(vlan_unsupported(nic));
    }
    let v6 = matches!(nic.address, Some(IpAddr::V6(_)));
    let mut c = IpConfig::method_only(None, IpMethod::Static);
    c.mac = Some(nic.mac.clone());
    c.hostname = nic.hostname.clone();
    if nic.uses_dhcp() {
        c.method = if v6 { IpMethod::Dhcp6 } else { IpMethod::Dhcp };
        return Ok(c);
    }
    let Some(address) = nic.address else {
        return Err(IbftError {
            at: format!("{}/ip-addr", nic.entry),
            what: "missing, and the entry does not say DHCP (origin 3 or a dhcp attribute)"
                .to_string(),
        });
    };
    c.address = Some(address);
    // dracut's default without a prefix: a host address.
    c.prefix_len = Some(nic.prefix_len.unwrap_or(if v6 { 128 } else { 32 }));
    c.gateway = nic.gateway;
    c.dns = [nic.primary_dns, nic.secondary_dns]
        .into_iter()
        .flatten()
        .collect();
    Ok(c)
}

/// The root path of one table target.
pub fn root_path(t: &Target) -> Result<RootPath, IbftError> {
    let target = t.name.clone().ok_or_else(|| IbftError {
        at: format!("{}/target-name", t.entry),
        what: "missing: the target has no name".to_string(),
    })?;
    let chap = t.chap.as_ref().map(|c| Chap {
        username: c.name.clone(),
        secret: c.secret.clone(),
        mutual: t.reverse_chap.as_ref().map(|r| MutualChap {
            username: r.name.clone(),
            secret: r.secret.clone(),
        }),
    });
    Ok(RootPath {
        server: t.address.to_string(),
        port: t.port,
        lun: t.lun,
        target,
        tpgt: crate::plan::DEFAULT_TPGT,
        own_tpgt: false,
        chap,
        iface: None,
        netdev: None,
    })
}

/// Merge the table into `plan` (module docs). `explicit`: the fields the
/// command line set (`cmdline::keys::explicit_fields`).
pub fn merge(
    table: &Table,
    plan: &mut BootPlan,
    explicit: &BTreeSet<PlanField>,
) -> Result<Merged, IbftError> {
    let mut m = Merged::default();
    let chap_explicit = [
        PlanField::ChapUsername,
        PlanField::ChapPassword,
        PlanField::MutualUsername,
        PlanField::MutualPassword,
    ]
    .iter()
    .any(|f| explicit.contains(f));
    let targets = table.boot_targets();
    if !plan.paths.is_empty() || plan.root_path_from_dhcp {
        m.notes.push(format!(
            "{} target(s) not used: the command line gives the root path",
            targets.len()
        ));
    } else {
        if targets.is_empty() {
            return Err(IbftError {
                at: "target*".to_string(),
                what: format!(
                    "no usable target (flags bit 0 or 1 set) among {} target entr{}",
                    table.targets.len(),
                    if table.targets.len() == 1 { "y" } else { "ies" }
                ),
            });
        }
        for t in &targets {
            let mut p = root_path(t)?;
            if chap_explicit {
                // The command line's rd.iscsi.username/password apply.
                p.chap = None;
            }
            m.notes.push(format!(
                "{}: {} {}{}{}",
                t.entry,
                p.portal(),
                crate::escape::escape_controls(&p.target),
                if super::boot_selected(t.flags) {
                    " (boot selected)"
                } else {
                    ""
                },
                match (&p.chap, chap_explicit && t.chap.is_some()) {
                    (Some(c), _) if c.mutual.is_some() => ", mutual CHAP",
                    (Some(_), _) => ", CHAP",
                    (None, true) => ", CHAP from the command line",
                    (None, false) => "",
                }
            ));
            plan.paths.push(p);
        }
        plan.apply_tpgt();
        m.fields.insert(PlanField::Paths);
    }
    if explicit.contains(&PlanField::Ip) {
        m.notes
            .push("NIC entries not used: the command line gives ip=".to_string());
    } else {
        let nics = table.boot_nics();
        if nics.is_empty() {
            return Err(IbftError {
                at: "ethernet*".to_string(),
                what: format!(
                    "no usable NIC entry (flags bit 0 or 1 set) among {}; give ip= on the command line",
                    table.nics.len()
                ),
            });
        }
        let mut ips = Vec::new();
        for n in nics {
            let c = ip_config(n)?;
            m.notes.push(format!(
                "{}: {} on the link with MAC {}",
                n.entry,
                match (c.method, c.address, c.prefix_len) {
                    (IpMethod::Static, Some(a), Some(p)) => format!(
                        "{a}/{p}{}",
                        c.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
                    ),
                    (IpMethod::Dhcp6, ..) => "DHCPv6".to_string(),
                    _ => "DHCP".to_string(),
                },
                n.mac
            ));
            ips.push(c);
        }
        plan.network.ip = ips;
        m.fields.insert(PlanField::Ip);
    }
    match table.initiator_name() {
        Some(_) if explicit.contains(&PlanField::Initiator) => m
            .notes
            .push("initiator name not used: the command line gives one".to_string()),
        Some(name) => {
            let name = crate::cmdline::keys::initiator(name).map_err(|e| IbftError {
                at: "initiator/initiator-name".to_string(),
                what: e.to_string(),
            })?;
            m.notes.push(format!(
                "initiator {}",
                crate::escape::escape_controls(&name)
            ));
            plan.initiator = Some(name);
            m.fields.insert(PlanField::Initiator);
        }
        None => {}
    }
    Ok(m)
}
