//! Write an ACPI iBFT for QEMU's `-acpitable file=FILE` (`qemu/boot.sh --acpitable FILE`),
//! with `netboot::ibft::build`:
//!
//! ```text
//! cargo run --example mkibft -- --out ibft.bin --initiator iqn.2026-12.test:guest \
//!     --nic mac=52:54:00:12:34:56,pci=00:03.0,ip=198.18.0.2/24,gw=198.18.0.1[,dns=A][,vlan=N] \
//!     --target 198.18.0.1:3260:1:iqn.2026-11.test:root[,chap=USER:SECRET][,rchap=USER:SECRET][,boot]
//! ```
//!
//! `--nic … ,dhcp` (instead of `ip=`) marks the address as DHCP-assigned (origin 3). At most
//! 2 NICs and 2 targets; every target uses NIC 0 unless `nic=1`. The first target is boot
//! selected unless another has `boot`. IPv6 target addresses go in brackets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netboot::ibft::build::{self, InitiatorSpec, NicSpec, Spec, TargetSpec};
use std::net::IpAddr;

fn usage() -> ! {
    eprintln!("usage: mkibft --out FILE --initiator IQN --nic SPEC [--nic SPEC] --target SPEC [--target SPEC] (see the source's header)");
    std::process::exit(2)
}

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not an IP address"))
}

fn nic(spec: &str) -> NicSpec {
    let mut n = NicSpec {
        flags: 7,
        address: None,
        prefix_len: 0,
        origin: 1,
        gateway: None,
        primary_dns: None,
        secondary_dns: None,
        dhcp_server: None,
        vlan: 0,
        mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        pci_bdf: build::pci_bdf(0, 3, 0),
        hostname: None,
    };
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "mac" => {
                let b: Vec<u8> = v
                    .split(':')
                    .map(|x| u8::from_str_radix(x, 16).unwrap())
                    .collect();
                n.mac = b.try_into().expect("mac: six bytes");
            }
            "pci" => {
                let (bus, df) = v.split_once(':').expect("pci=BUS:DEV.FN");
                let (d, f) = df.split_once('.').expect("pci=BUS:DEV.FN");
                let h = |x: &str| u8::from_str_radix(x, 16).unwrap();
                n.pci_bdf = build::pci_bdf(h(bus), h(d), h(f));
            }
            "ip" => {
                let (a, p) = v.split_once('/').expect("ip=ADDR/PREFIX");
                n.address = Some(ip(a));
                n.prefix_len = p.parse().unwrap();
            }
            "gw" => n.gateway = Some(ip(v)),
            "dns" if n.primary_dns.is_none() => n.primary_dns = Some(ip(v)),
            "dns" => n.secondary_dns = Some(ip(v)),
            "dhcp" => {
                n.origin = 3;
                if !v.is_empty() {
                    n.dhcp_server = Some(ip(v));
                }
            }
            "vlan" => n.vlan = v.parse().unwrap(),
            "host" => n.hostname = Some(v.to_string()),
            _ => panic!("--nic: unknown field {k:?}"),
        }
    }
    n
}

fn target(spec: &str) -> TargetSpec {
    let mut fields = spec.split(',');
    let path = fields.next().unwrap();
    let (addr, rest) = match path.strip_prefix('[') {
        Some(r) => r.split_once("]:").expect("[V6]:PORT:LUN:IQN"),
        None => path.split_once(':').expect("ADDR:PORT:LUN:IQN"),
    };
    let mut parts = rest.splitn(3, ':');
    let port = parts.next().unwrap().parse().unwrap();
    let lun = parts.next().unwrap().parse().unwrap();
    let name = parts.next().expect("ADDR:PORT:LUN:IQN").to_string();
    let mut t = TargetSpec {
        flags: 1,
        address: ip(addr),
        port,
        lun: build::sam_lun(lun).expect("LUN below 16384"),
        chap_type: 0,
        nic_assoc: 0,
        name,
        chap: None,
        reverse_chap: None,
    };
    for kv in fields {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let pair = || {
            let (u, s) = v.split_once(':').expect("USER:SECRET");
            (u.to_string(), s.to_string())
        };
        match k {
            "chap" => {
                t.chap = Some(pair());
                t.chap_type = t.chap_type.max(1);
            }
            "rchap" => {
                t.reverse_chap = Some(pair());
                t.chap_type = 2;
            }
            "nic" => t.nic_assoc = v.parse().unwrap(),
            "boot" => t.flags = 3,
            _ => panic!("--target: unknown field {k:?}"),
        }
    }
    t
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut out, mut initiator, mut nics, mut targets) = (None, None, Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--out" => out = Some(v.clone()),
            "--initiator" => initiator = Some(v.clone()),
            "--nic" => nics.push(nic(v)),
            "--target" => targets.push(target(v)),
            _ => usage(),
        }
    }
    let (Some(out), Some(initiator)) = (out, initiator) else {
        usage()
    };
    if !targets.iter().any(|t: &TargetSpec| t.flags & 2 != 0) {
        if let Some(t) = targets.first_mut() {
            t.flags = 3;
        }
    }
    let spec = Spec {
        oem_id: "NETBT".into(),
        oem_table_id: "NBTABLE".into(),
        control_flags: 0,
        initiator: InitiatorSpec {
            flags: 3,
            name: initiator,
        },
        nics,
        targets,
    };
    let bytes = build::build(&spec).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&out, &bytes).unwrap_or_else(|e| panic!("{out}: {e}"));
    println!("{out}: {} bytes", bytes.len());
}
