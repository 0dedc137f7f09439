//! IPv6 autoconfiguration for the boot — `ip=auto6` (SLAAC, RFC 4862) and
//! `ip=dhcp6` (RFC 8415) — and the VLAN links of `vlan=NAME:PARENT`.
//!
//! SLAAC is the kernel's: the link goes up (accept_ra and autoconf are on
//! by default while forwarding is off), the kernel solicits a router and
//! forms its addresses; we wait, bounded by the boot's deadline, until a
//! global address has finished duplicate address detection
//! (IFA_F_TENTATIVE clear; IFA_F_DADFAILED is an error) and a default route
//! learnt from a router advertisement (RTPROT_RA) exists on the link — what
//! dracut's `wait_for_ipv6_auto` waits for.
//!
//! DHCPv6 needs the link-local address out of DAD first (the source of its
//! datagrams, RFC 8415 §18.2); its address is installed as a /128 (DHCPv6
//! carries no prefix length, RFC 8415 §21.6) and the on-link prefix and
//! default routes come from the router advertisements, as NetworkManager
//! and dhclient do. We wait a bounded time for those routes after the
//! lease; without any router on the link only the /128 is configured (a
//! warning says so).

use super::dhcp6_sock;
use super::rtnl::{self, Addr, Link, Message, Route};
use super::{find_link, first_with_carrier, wait_carrier, LinkReport, NetError, Rtnl, Want};
use crate::plan::{IpConfig, Network, Vlan};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How often the address and route tables are re-read while waiting: DAD
/// and router solicitation run on 1 s timers (RFC 4862, RFC 4861), a tenth
/// of that is fine-grained enough and costs one dump each.
const POLL: Duration = Duration::from_millis(100);
/// After a DHCPv6 lease, how long to wait for the RA's routes at most.
const RA_ROUTE_WAIT: Duration = Duration::from_secs(10);
/// RT_SCOPE_LINK (rtnetlink.h).
const RT_SCOPE_LINK: u8 = 253;

impl Rtnl {
    /// Every route of `family` (RTM_GETROUTE dump until NLMSG_DONE).
    pub fn routes(&mut self, family: u8) -> Result<Vec<Route>, NetError> {
        self.dump(
            &|seq| rtnl::get_routes(seq, family),
            "RTM_GETROUTE dump",
            |m| match m {
                Message::Route { route, .. } => Some(route),
                _ => None,
            },
        )
    }

    /// Create VLAN `vlan` on link `parent`; an existing link of that name
    /// (EEXIST) is taken as it is.
    pub fn add_vlan(&mut self, vlan: &Vlan, parent: &Link) -> Result<(), NetError> {
        let what = || {
            format!(
                "creating VLAN {} (id {}) on {} (8021q loaded?)",
                vlan.name, vlan.id, parent.name
            )
        };
        self.must(
            &|s| rtnl::new_vlan(s, &vlan.name, parent.index, vlan.id),
            &what,
            true,
        )
    }
}

/// What the SLAAC wait sees on one link (pure, from the dumps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auto6State {
    /// A global address that finished DAD.
    pub address: Option<Addr>,
    /// The default route from a router advertisement: its gateway.
    pub router: Option<Ipv6Addr>,
    /// An address whose DAD failed.
    pub dad_failed: Option<Ipv6Addr>,
    /// Every IPv6 address on the link, for the timeout error.
    pub seen: Vec<String>,
}

fn v6(a: &IpAddr) -> Option<Ipv6Addr> {
    match a {
        IpAddr::V6(v) => Some(*v),
        IpAddr::V4(_) => None,
    }
}

/// [`Auto6State`] of link `index` from an AF_INET6 address dump and route
/// dump.
pub fn auto6_state(index: i32, addrs: &[Addr], routes: &[Route]) -> Auto6State {
    let mine: Vec<&Addr> = addrs.iter().filter(|a| a.index == index).collect();
    let seen = mine
        .iter()
        .map(|a| {
            let mut s = format!("{}/{}", a.address, a.prefix_len);
            if a.dad_failed() {
                s.push_str(" dadfailed");
            } else if a.is_tentative() {
                s.push_str(" tentative");
            }
            s
        })
        .collect();
    Auto6State {
        address: mine
            .iter()
            .find(|a| {
                a.scope == rtnl::RT_SCOPE_UNIVERSE
                    && a.address.is_ipv6()
                    && !a.is_tentative()
                    && !a.dad_failed()
            })
            .map(|a| (*a).clone()),
        router: default_router(index, routes),
        dad_failed: mine
            .iter()
            .find(|a| a.dad_failed())
            .and_then(|a| v6(&a.address)),
        seen,
    }
}

/// The gateway of an RA-learnt IPv6 default route out of link `index`.
pub fn default_router(index: i32, routes: &[Route]) -> Option<Ipv6Addr> {
    routes
        .iter()
        .find(|r| {
            r.family == rtnl::AF_INET6
                && r.dst_len == 0
                && r.oif == Some(index)
                && r.protocol == rtnl::RTPROT_RA
                && r.kind == rtnl::RTN_UNICAST
        })
        .and_then(|r| r.gateway.as_ref().and_then(v6))
}

/// A route on link `index` whose prefix holds `addr` (the RA's on-link
/// prefix, or any other route but a /128 of the address itself).
pub fn on_link(index: i32, addr: Ipv6Addr, routes: &[Route]) -> bool {
    routes.iter().any(|r| {
        let Some(IpAddr::V6(dst)) = r.dst else {
            return false;
        };
        r.family == rtnl::AF_INET6
            && r.oif == Some(index)
            && (1..128).contains(&r.dst_len)
            && r.kind == rtnl::RTN_UNICAST
            && prefix_holds(dst, r.dst_len, addr)
    })
}

fn prefix_holds(net: Ipv6Addr, len: u8, addr: Ipv6Addr) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(net) & mask == u128::from(addr) & mask
}

/// The link an IPv6 entry names, raised, with carrier; and the ms from
/// "set up" to carrier.
fn up_link(
    rt: &mut Rtnl,
    ip: &IpConfig,
    net: &Network,
    deadline: Instant,
) -> Result<(Link, u64), NetError> {
    let started = Instant::now();
    let want = super::want_for(ip, net.bootif.as_deref());
    let up_at;
    let link = if want == Want::AnyEthernet {
        up_at = Instant::now();
        first_with_carrier(rt, net, deadline)?
    } else {
        let link = find_link(rt, &want, &net.ifnames, started, deadline)?;
        up_at = Instant::now();
        if let Some(m) = ip.mtu {
            if link.mtu != Some(m) {
                rt.set_link(&link, None, Some(m))?;
            }
        }
        if !link.is_up() {
            super::remember_before_up(&link);
            rt.set_link(&link, Some(true), None)?;
        }
        wait_carrier(rt, &link, deadline)?
    };
    Ok((link, up_at.elapsed().as_millis() as u64))
}

fn sleep_until(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(left.min(POLL));
}

/// `ip=auto6`: wait for SLAAC (module docs).
pub fn configure_auto6(
    rt: &mut Rtnl,
    ip: &IpConfig,
    net: &Network,
    deadline: Instant,
) -> Result<LinkReport, NetError> {
    let (link, carrier_ms) = up_link(rt, ip, net, deadline)?;
    let started = Instant::now();
    loop {
        let addrs = rt.addresses(rtnl::AF_INET6)?;
        let routes = rt.routes(rtnl::AF_INET6)?;
        let st = auto6_state(link.index, &addrs, &routes);
        if let Some(a) = st.dad_failed {
            return Err(NetError::DadFailed {
                iface: link.name.clone(),
                address: a,
            });
        }
        if let (Some(addr), Some(router)) = (&st.address, st.router) {
            log::info!(
                "auto6: {} got {}/{} (router {router}) in {} ms",
                link.name,
                addr.address,
                addr.prefix_len,
                started.elapsed().as_millis()
            );
            return Ok(report(
                &link,
                addr.address,
                addr.prefix_len,
                Some(IpAddr::V6(router)),
                carrier_ms,
            ));
        }
        if Instant::now() >= deadline {
            return Err(NetError::NoSlaac {
                iface: link.name.clone(),
                waited: started.elapsed(),
                address: st.address.is_some(),
                router: st.router.is_some(),
                seen: st.seen,
            });
        }
        sleep_until(deadline);
    }
}

fn report(
    link: &Link,
    address: IpAddr,
    prefix_len: u8,
    gateway: Option<IpAddr>,
    carrier_ms: u64,
) -> LinkReport {
    LinkReport {
        iface: link.name.clone(),
        mac: link.mac_string(),
        address,
        prefix_len,
        gateway,
        mtu: link.mtu,
        carrier_ms,
        dhcp_server: None,
        lease_s: None,
        root_path: None,
        hostname: None,
        dns: Vec::new(),
        dhcp_ms: None,
    }
}

/// The link-local address of link `index` once its DAD is done.
fn wait_link_local(rt: &mut Rtnl, link: &Link, deadline: Instant) -> Result<Ipv6Addr, NetError> {
    let started = Instant::now();
    loop {
        let addrs = rt.addresses(rtnl::AF_INET6)?;
        let mine = addrs
            .iter()
            .filter(|a| a.index == link.index && a.scope == RT_SCOPE_LINK);
        let mut failed = None;
        for a in mine {
            if a.dad_failed() {
                failed = v6(&a.address);
            } else if !a.is_tentative() {
                if let Some(v) = v6(&a.address) {
                    return Ok(v);
                }
            }
        }
        if let Some(address) = failed {
            return Err(NetError::DadFailed {
                iface: link.name.clone(),
                address,
            });
        }
        if Instant::now() >= deadline {
            return Err(NetError::NoLinkLocal {
                iface: link.name.clone(),
                waited: started.elapsed(),
            });
        }
        sleep_until(deadline);
    }
}

/// `ip=dhcp6`: the DHCPv6 exchange, the address as /128, then (bounded)
/// the RA's routes (module docs). Option 59 becomes the root path when it
/// is an `iscsi:` URL; option 23 the name servers.
pub fn configure_dhcp6(
    rt: &mut Rtnl,
    ip: &IpConfig,
    net: &Network,
    deadline: Instant,
) -> Result<LinkReport, NetError> {
    let (link, carrier_ms) = up_link(rt, ip, net, deadline)?;
    let Some(mac) = super::dhcp_sock::mac6(&link.mac) else {
        return Err(NetError::NotEthernet {
            iface: link.name.clone(),
            mac: link.mac_string(),
        });
    };
    let ll = wait_link_local(rt, &link, deadline)?;
    let lease = dhcp6_sock::obtain(&link.name, link.index, mac, ll, deadline)?;
    let addr = lease.addr.addr;
    rt.add_address(&link, IpAddr::V6(addr), 128)?;
    // The routes come from the router advertisement (usually there by now:
    // RS/RA run alongside the exchange).
    let until = deadline.min(Instant::now() + RA_ROUTE_WAIT);
    let mut gateway = None;
    loop {
        let routes = rt.routes(rtnl::AF_INET6)?;
        gateway = gateway.or(default_router(link.index, &routes));
        if on_link(link.index, addr, &routes) && gateway.is_some() {
            break;
        }
        if Instant::now() >= until {
            log::warn!(
                "dhcp6: no router advertisement with {} on {} within {} s: {addr}/128 has {}",
                if gateway.is_some() {
                    "an on-link prefix"
                } else {
                    "a default route"
                },
                link.name,
                RA_ROUTE_WAIT.as_secs(),
                if gateway.is_some() {
                    "only the default route"
                } else {
                    "no route beyond itself"
                }
            );
            break;
        }
        sleep_until(until);
    }
    let reply = &lease.reply;
    let esc = crate::escape::escape_controls;
    let root_path = match &reply.bootfile_url {
        Some(u) if u.starts_with("iscsi:") => Some(u.clone()),
        Some(u) => {
            log::info!(
                "dhcp6: boot file URL {:?} is not an iscsi: root path; not used",
                esc(&crate::cmdline::rootpath::mask(u))
            );
            None
        }
        None => None,
    };
    let valid = lease.addr.valid;
    log::info!(
        "dhcp6: {} got {addr}/128 from {} (router {}, valid {}, {} sent, {} ms)",
        link.name,
        lease.server.map_or("?".to_string(), |s| s.to_string()),
        gateway.map_or("none".to_string(), |g| g.to_string()),
        if valid == u32::MAX {
            "infinite".to_string()
        } else {
            format!("{valid}s")
        },
        lease.sent,
        lease.took.as_millis()
    );
    let mut r = report(
        &link,
        IpAddr::V6(addr),
        128,
        gateway.map(IpAddr::V6),
        carrier_ms,
    );
    r.lease_s = Some(valid);
    r.root_path = root_path;
    r.dns = reply.dns.iter().map(|a| IpAddr::V6(*a)).collect();
    r.dhcp_ms = Some(lease.took.as_millis() as u64);
    Ok(r)
}

/// Create every `vlan=` link (its parent found by name, raised first: the
/// kernel refuses to raise a VLAN on a down parent, ENETDOWN), before any
/// `ip=` entry names it. The 8021q module is loaded by the modules step
/// when the plan has VLANs.
pub fn create_vlans(rt: &mut Rtnl, net: &Network, deadline: Instant) -> Result<(), NetError> {
    let started = Instant::now();
    for v in &net.vlans {
        let parent = find_link(
            rt,
            &Want::Name(v.parent.clone()),
            &net.ifnames,
            started,
            deadline,
        )?;
        if !parent.is_up() {
            rt.set_link(&parent, Some(true), None)?;
        }
        let links = rt.links()?;
        if !links.iter().any(|l| l.name == v.name) {
            rt.add_vlan(v, &parent)?;
            log::info!("vlan: created {} (id {}) on {}", v.name, v.id, v.parent);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(index: i32, s: &str, plen: u8, scope: u8, flags: u32) -> Addr {
        Addr {
            index,
            prefix_len: plen,
            scope,
            address: s.parse().unwrap(),
            flags,
        }
    }

    fn r(dst: Option<&str>, len: u8, oif: i32, gw: Option<&str>, proto: u8) -> Route {
        Route {
            family: rtnl::AF_INET6,
            dst_len: len,
            dst: dst.map(|d| d.parse().unwrap()),
            oif: Some(oif),
            gateway: gw.map(|g| g.parse().unwrap()),
            protocol: proto,
            table: 254,
            kind: rtnl::RTN_UNICAST,
        }
    }

    #[test]
    fn auto6_waits_for_dad_and_an_ra_default_route() {
        let addrs = [
            a(2, "fe80::5054:ff:fe12:3456", 64, RT_SCOPE_LINK, 0),
            a(
                2,
                "fd00:198:18::5054:ff:fe12:3456",
                64,
                0,
                rtnl::IFA_F_TENTATIVE,
            ),
            a(3, "fd00:1::1", 64, 0, 0),
        ];
        let st = auto6_state(2, &addrs, &[]);
        assert_eq!(st.address, None);
        assert_eq!(st.router, None);
        assert_eq!(
            st.seen,
            [
                "fe80::5054:ff:fe12:3456/64",
                "fd00:198:18:0:5054:ff:fe12:3456/64 tentative"
            ]
        );
        let mut done = addrs.clone();
        done[1].flags = 0;
        let routes = [
            r(Some("fd00:198:18::"), 64, 2, None, 2),
            r(None, 0, 3, Some("fe80::1"), rtnl::RTPROT_RA),
            r(None, 0, 2, Some("fe80::2"), rtnl::RTPROT_STATIC),
        ];
        let st = auto6_state(2, &done, &routes);
        assert!(st.address.is_some());
        assert_eq!(st.router, None, "only RA routes on our link count");
        let ra = [r(None, 0, 2, Some("fe80::1"), rtnl::RTPROT_RA)];
        assert_eq!(
            auto6_state(2, &done, &ra).router,
            Some("fe80::1".parse().unwrap())
        );
        let mut dup = addrs;
        dup[1].flags = rtnl::IFA_F_DADFAILED | rtnl::IFA_F_TENTATIVE;
        assert_eq!(
            auto6_state(2, &dup, &[]).dad_failed,
            Some("fd00:198:18::5054:ff:fe12:3456".parse().unwrap())
        );
    }

    #[test]
    fn on_link_prefix_holds_the_address() {
        let addr: Ipv6Addr = "fd00:198:18::100".parse().unwrap();
        let routes = [r(Some("fd00:198:18::"), 64, 2, None, 2)];
        assert!(on_link(2, addr, &routes));
        assert!(!on_link(3, addr, &routes));
        assert!(!on_link(2, "fd00:198:19::1".parse().unwrap(), &routes));
        let host = [r(Some("fd00:198:18::100"), 128, 2, None, 2)];
        assert!(!on_link(2, addr, &host));
        assert!(prefix_holds(
            "::".parse().unwrap(),
            1,
            "::1".parse().unwrap()
        ));
    }
}
