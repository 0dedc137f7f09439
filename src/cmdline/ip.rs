//! `ip=` in the kernel's form (Documentation/admin-guide/nfs/nfsroot.rst)
//! and dracut's (dracut.cmdline(7), network-legacy), plus the MAC syntaxes
//! used by `ifname=` and `BOOTIF=`.
//!
//! - `ip=METHOD`: `dhcp|on|any` (DHCPv4), `dhcp6`, `auto6`, `off|none`;
//! - `ip=IFACE:METHOD[:MTU[:MAC]]` (dracut);
//! - `ip=CLIENT:[PEER]:[GW]:[NETMASK]:[HOSTNAME]:[IFACE]:[METHOD]` followed by
//!   `[:MTU[:MAC]]` (dracut; recognised by a numeric or empty 8th field) or
//!   `[:DNS0[:DNS1[:NTP0]]]` (kernel / dracut).
//!
//! IPv6 addresses are in brackets. NETMASK is dotted (contiguous) or a prefix
//! length; when empty the kernel's classful default is used for IPv4
//! (net/ipv4/ipconfig.c `ic_defaults`) and /64 for IPv6. An empty METHOD with
//! a client address means static: that is what every such line intends,
//! although the kernel itself would still try autoconfiguration.
//! Not supported (rejected, not ignored): `bootp`, `rarp`, `both`, `ibft`
//! (use `rd.iscsi.ibft`), dracut's `either6`, `link6`, `single-dhcp`, and the
//! kernel's `dhcp,<client-id>` suffix.

use super::quote;
use super::rootpath::{parse_dec, valid_host};
use crate::plan::{IpConfig, IpMethod};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpError {
    Fields {
        value: String,
    },
    Method {
        method: String,
        value: String,
    },
    Bracket {
        value: String,
    },
    Address {
        field: &'static str,
        addr: String,
        value: String,
    },
    Netmask {
        mask: String,
        value: String,
    },
    NoAddress {
        value: String,
    },
    Hostname {
        name: String,
        value: String,
    },
    Iface {
        iface: String,
        value: String,
    },
    Mtu {
        mtu: String,
        value: String,
    },
    Mac {
        mac: String,
        value: String,
    },
}

impl fmt::Display for IpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use IpError::*;
        match self {
            Fields { value } => write!(
                f,
                "{value} is not METHOD, IFACE:METHOD[:MTU[:MAC]] or \
                 CLIENT:[PEER]:[GW]:[NETMASK]:[HOSTNAME]:[IFACE]:[METHOD][:DNS0[:DNS1[:NTP0]]]"
            ),
            Method { method, value } => write!(
                f,
                "method {method} in {value} is not one of dhcp, on, any, dhcp6, auto6, off, none"
            ),
            Bracket { value } => write!(f, "unclosed \"[\" in {value}"),
            Address { field, addr, value } => {
                write!(f, "{field} {addr} in {value} is not an IP address (IPv6 in [ ])")
            }
            Netmask { mask, value } => write!(
                f,
                "netmask {mask} in {value} is not a contiguous dotted mask or a prefix length"
            ),
            NoAddress { value } => write!(
                f,
                "no client address in {value}; give one or use a dhcp method"
            ),
            Hostname { name, value } => write!(f, "hostname {name} in {value} is not a host name"),
            Iface { iface, value } => write!(
                f,
                "interface {iface} in {value} is not an interface name (1..15 characters, no / : or spaces)"
            ),
            Mtu { mtu, value } => write!(f, "MTU {mtu} in {value} is not 68..65535"),
            Mac { mac, value } => write!(
                f,
                "MAC {mac} in {value} is not six hex bytes like 52:54:00:12:34:56"
            ),
        }
    }
}

impl std::error::Error for IpError {}

/// `None` = not a method word; `Some(Off)` for off/none.
fn method(word: &str) -> Option<IpMethod> {
    Some(match word {
        "dhcp" | "on" | "any" => IpMethod::Dhcp,
        "dhcp6" => IpMethod::Dhcp6,
        "auto6" => IpMethod::Auto6,
        "off" | "none" => IpMethod::Off,
        _ => return None,
    })
}

/// Split on `:` outside `[...]`; `None` if a bracket is left open.
fn split_fields(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut in_br = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => in_br = true,
            ']' => in_br = false,
            ':' if !in_br => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_br {
        return None;
    }
    out.push(s.get(start..).unwrap_or(""));
    Some(out)
}

/// An IP literal: IPv4, `[IPv6]`, or (outside `ip=`) bare IPv6.
pub fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    s.parse::<Ipv4Addr>()
        .ok()
        .map(IpAddr::V4)
        .or_else(|| s.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

/// Six hex bytes separated by `:` or `-`, normalized to `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<String> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let groups: Vec<&str> = s.split(sep).collect();
    if groups.len() != 6 {
        return None;
    }
    let mut out = Vec::with_capacity(6);
    for g in groups {
        if g.is_empty() || g.len() > 2 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        out.push(format!("{:02x}", u8::from_str_radix(g, 16).ok()?));
    }
    Some(out.join(":"))
}

/// dracut's `vlan=NAME:PARENT` (35network-legacy/parse-vlan.sh: exactly
/// two fields). The VLAN id comes from the name as dracut's `get_vid`
/// takes it: after a leading `vlan` (`vlan0042`, `vlan42`), else after the
/// last `.` (`eth0.42`, `eth0.0042`); read as decimal (iproute2 would read
/// a zero-padded `010` as octal 8), 1..4094 (0 is priority tagging only,
/// 4095 reserved: the kernel refuses it).
pub fn parse_vlan(value: &str) -> Option<crate::plan::Vlan> {
    let (name, parent) = value.split_once(':')?;
    if !valid_iface(name) || !valid_iface(parent) || name == parent {
        return None;
    }
    let digits = match name.strip_prefix("vlan") {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => d,
        _ => name.rsplit_once('.')?.1,
    };
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u16 = digits.parse().ok()?;
    (1..=crate::net::rtnl::VLAN_VID_MAX)
        .contains(&id)
        .then(|| crate::plan::Vlan {
            name: name.to_string(),
            parent: parent.to_string(),
            id,
        })
}

/// IFNAMSIZ is 16 with the NUL; `dev_valid_name()` forbids `/`, `:` and
/// whitespace (net/core/dev.c).
pub fn valid_iface(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Parse one `ip=` value.
pub fn parse(value: &str) -> Result<IpConfig, IpError> {
    let v = || quote(value);
    let fields = split_fields(value).ok_or_else(|| IpError::Bracket { value: v() })?;
    let field = |i: usize| fields.get(i).copied().unwrap_or("");

    if fields.len() == 1 {
        return match method(value) {
            Some(m) => Ok(IpConfig::method_only(None, m)),
            None if value.is_empty() || parse_addr(value).is_none() => Err(IpError::Method {
                method: quote(value),
                value: v(),
            }),
            None => static_config(&fields, value),
        };
    }
    if let Some(m) = method(field(1)) {
        // IFACE:METHOD[:MTU[:MAC]]; the MAC's own colons were split too.
        if !valid_iface(field(0)) {
            return Err(IpError::Iface {
                iface: quote(field(0)),
                value: v(),
            });
        }
        let mut c = IpConfig::method_only(Some(field(0).to_string()), m);
        c.mtu = mtu(field(2), value)?;
        let mac = fields.get(3..).map(|f| f.join(":")).unwrap_or_default();
        c.mac = opt_mac(&mac, value)?;
        return Ok(c);
    }
    static_config(&fields, value)
}

fn mtu(s: &str, value: &str) -> Result<Option<u32>, IpError> {
    if s.is_empty() {
        return Ok(None);
    }
    // RFC 791: every IPv4 host must handle 68; 65535 is the IP maximum.
    match parse_dec(s) {
        Some(n @ 68..=65535) => Ok(Some(n as u32)),
        _ => Err(IpError::Mtu {
            mtu: quote(s),
            value: quote(value),
        }),
    }
}

fn opt_mac(s: &str, value: &str) -> Result<Option<String>, IpError> {
    if s.is_empty() {
        return Ok(None);
    }
    parse_mac(s).map(Some).ok_or_else(|| IpError::Mac {
        mac: quote(s),
        value: quote(value),
    })
}

fn static_config(fields: &[&str], value: &str) -> Result<IpConfig, IpError> {
    let v = || quote(value);
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let addr = |i: usize, name: &'static str| -> Result<Option<IpAddr>, IpError> {
        let s = field(i);
        if s.is_empty() {
            return Ok(None);
        }
        parse_addr(s).map(Some).ok_or_else(|| IpError::Address {
            field: name,
            addr: quote(s),
            value: v(),
        })
    };
    let client = addr(0, "client")?;
    let peer = addr(1, "peer")?;
    let gateway = addr(2, "gateway")?;
    let m = match field(6) {
        "" => IpMethod::Static,
        w => match method(w) {
            Some(IpMethod::Off) => IpMethod::Static,
            Some(m) => m,
            None => {
                return Err(IpError::Method {
                    method: quote(w),
                    value: v(),
                })
            }
        },
    };
    if m == IpMethod::Static && client.is_none() {
        return Err(IpError::NoAddress { value: v() });
    }
    let prefix_len = match client {
        None => None,
        Some(c) => Some(prefix(field(3), c).ok_or_else(|| IpError::Netmask {
            mask: quote(field(3)),
            value: v(),
        })?),
    };
    let hostname = match field(4) {
        "" => None,
        h if valid_host(h) => Some(h.to_string()),
        h => {
            return Err(IpError::Hostname {
                name: quote(h),
                value: v(),
            })
        }
    };
    let iface = match field(5) {
        "" => None,
        i if valid_iface(i) => Some(i.to_string()),
        i => {
            return Err(IpError::Iface {
                iface: quote(i),
                value: v(),
            })
        }
    };
    let mut c = IpConfig::method_only(iface, m);
    c.address = client;
    c.prefix_len = prefix_len;
    c.peer = peer;
    c.gateway = gateway;
    c.hostname = hostname;
    let extra = fields.get(7..).unwrap_or(&[]);
    match extra.first() {
        None => {}
        Some(f) if f.is_empty() || f.bytes().all(|b| b.is_ascii_digit()) => {
            c.mtu = mtu(f, value)?;
            c.mac = opt_mac(&extra.get(1..).unwrap_or(&[]).join(":"), value)?;
        }
        Some(_) => {
            if extra.len() > 3 {
                return Err(IpError::Fields { value: v() });
            }
            for (i, name) in [(7, "dns0"), (8, "dns1")] {
                if let Some(a) = addr(i, name)? {
                    c.dns.push(a);
                }
            }
            c.ntp = addr(9, "ntp0")?;
        }
    }
    Ok(c)
}

/// Prefix length from a dotted mask or a number; classful default if empty.
fn prefix(mask: &str, client: IpAddr) -> Option<u8> {
    let max = if client.is_ipv4() { 32 } else { 128 };
    if mask.is_empty() {
        return Some(match client {
            IpAddr::V4(a) => match a.octets()[0] {
                0..=127 => 8,
                128..=191 => 16,
                _ => 24,
            },
            IpAddr::V6(_) => 64,
        });
    }
    if let Some(n) = parse_dec(mask) {
        return (n <= max).then_some(n as u8);
    }
    if !client.is_ipv4() {
        return None;
    }
    let bits = u32::from(mask.parse::<Ipv4Addr>().ok()?);
    let len = bits.leading_ones();
    // Contiguous: nothing set after the leading ones.
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(prefix("255.255.255.0", c), Some(24));
        assert_eq!(prefix("255.255.255.255", c), Some(32));
        assert_eq!(prefix("0.0.0.0", c), Some(0));
        assert_eq!(prefix("255.0.255.0", c), None);
        assert_eq!(prefix("", c), Some(8));
        assert_eq!(prefix("33", c), None);
    }

    #[test]
    fn vlan_names_give_the_id_in_decimal() {
        let v = |s: &str| parse_vlan(s).map(|v| (v.name, v.parent, v.id));
        let t = |n: &str, p: &str, id| Some((n.to_string(), p.to_string(), id));
        assert_eq!(v("eth0.42:eth0"), t("eth0.42", "eth0", 42));
        assert_eq!(v("eth0.0010:eth0"), t("eth0.0010", "eth0", 10));
        assert_eq!(v("vlan0005:ens3"), t("vlan0005", "ens3", 5));
        assert_eq!(v("vlan5:ens3"), t("vlan5", "ens3", 5));
        assert_eq!(v("ibft0.4094:ibft0"), t("ibft0.4094", "ibft0", 4094));
        for bad in [
            "eth0.42",
            "eth0.42:eth0:x",
            "eth0.4095:eth0",
            "eth0.0:eth0",
            "eth0:eth0",
            "eth0.x:eth0",
            "vlan:eth0",
            "eth0.42:",
            ":eth0",
            "eth0.00042:eth0",
            "averyveryverylongname.42:eth0",
        ] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }

    #[test]
    fn iface_form_with_mac() {
        let c = parse("eth0:dhcp:1500:52:54:00:AB:cd:ef").expect("valid");
        assert_eq!(c.iface.as_deref(), Some("eth0"));
        assert_eq!(c.mtu, Some(1500));
        assert_eq!(c.mac.as_deref(), Some("52:54:00:ab:cd:ef"));
    }
}
