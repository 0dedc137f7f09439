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
//! A NIC with a VLAN ID becomes a VLAN link `<nic>.<vid>` over the link
//! with the NIC's MAC (`plan.network.vlans`), and its `ip=` entry names
//! the VLAN link: the address goes on the tagged device, as open-iscsi
//! configures it. The link's current name comes from `link_of_mac` (the
//! boot reads /sys/class/net; the table only knows the MAC).

use super::{IbftError, Nic, Table, Target};
use crate::cmdline::keys::PlanField;
use crate::plan::{BootPlan, Chap, IpConfig, IpMethod, MutualChap, RootPath, Vlan};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What [`merge`] did: the fields it set, and one line per decision for
/// the log (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merged {
    pub fields: BTreeSet<PlanField>,
    pub notes: Vec<String>,
}

/// The longest link name (IFNAMSIZ − 1).
const IFNAME_MAX: usize = 15;

/// The VLAN link of a tagged table NIC: `<parent>.<vid>` over the link
/// with the NIC's MAC.
pub fn vlan_link(
    nic: &Nic,
    link_of_mac: &dyn Fn(&str) -> Option<String>,
) -> Result<Vlan, IbftError> {
    let at = format!("{}/vlan", nic.entry);
    if !(1..=4094).contains(&nic.vlan) {
        return Err(IbftError {
            at,
            what: format!("{} is not a VLAN id in 1..4094", nic.vlan),
        });
    }
    let parent = link_of_mac(&nic.mac).ok_or_else(|| IbftError {
        at: format!("{}/mac", nic.entry),
        what: format!(
            "no network link has MAC {} (needed for VLAN {}; is the NIC's driver in the initramfs?)",
            nic.mac, nic.vlan
        ),
    })?;
    let name = format!("{parent}.{}", nic.vlan);
    if name.len() > IFNAME_MAX {
        return Err(IbftError {
            at,
            what: format!(
                "the VLAN link name {} is longer than {IFNAME_MAX} bytes",
                crate::escape::escape_controls(&name)
            ),
        });
    }
    Ok(Vlan {
        name,
        parent,
        id: nic.vlan,
    })
}

/// The `ip=` entry of one table NIC (and its VLAN link, if tagged).
pub fn ip_config(
    nic: &Nic,
    link_of_mac: &dyn Fn(&str) -> Option<String>,
) -> Result<(IpConfig, Option<Vlan>), IbftError> {
    let v6 = matches!(nic.address, Some(IpAddr::V6(_)));
    let mut c = IpConfig::method_only(None, IpMethod::Static);
    let vlan = if nic.vlan != 0 {
        let v = vlan_link(nic, link_of_mac)?;
        c.iface = Some(v.name.clone());
        Some(v)
    } else {
        c.mac = Some(nic.mac.clone());
        None
    };
    c.hostname = nic.hostname.clone();
    if nic.uses_dhcp() {
        c.method = if v6 { IpMethod::Dhcp6 } else { IpMethod::Dhcp };
        return Ok((c, vlan));
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
    Ok((c, vlan))
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
/// command line set (`cmdline::keys::explicit_fields`); `link_of_mac`:
/// the name of the link with a MAC (for VLANs only).
pub fn merge(
    table: &Table,
    plan: &mut BootPlan,
    explicit: &BTreeSet<PlanField>,
    link_of_mac: &dyn Fn(&str) -> Option<String>,
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
        let mut vlans = Vec::new();
        for n in nics {
            let (c, vlan) = ip_config(n, link_of_mac)?;
            m.notes.push(format!(
                "{}: {} on {}",
                n.entry,
                match (c.method, c.address, c.prefix_len) {
                    (IpMethod::Static, Some(a), Some(p)) => format!(
                        "{a}/{p}{}",
                        c.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
                    ),
                    (IpMethod::Dhcp6, ..) => "DHCPv6".to_string(),
                    _ => "DHCP".to_string(),
                },
                match &vlan {
                    Some(v) => format!(
                        "VLAN link {} (id {}) over {} (MAC {})",
                        v.name, v.id, v.parent, n.mac
                    ),
                    None => format!("the link with MAC {}", n.mac),
                }
            ));
            ips.push(c);
            vlans.extend(vlan);
        }
        plan.network.ip = ips;
        m.fields.insert(PlanField::Ip);
        if !vlans.is_empty() {
            if explicit.contains(&PlanField::Vlans) {
                // vlan= on the command line: its links come first.
                plan.network
                    .vlans
                    .retain(|v| !vlans.iter().any(|o| o.name == v.name));
            }
            plan.network.vlans.extend(vlans);
            m.fields.insert(PlanField::Vlans);
        }
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
