#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::build::{self, InitiatorSpec, NicSpec, Spec, TargetSpec};
use super::*;
use crate::cmdline::keys::{explicit_fields, PlanField};
use crate::plan::{BootPlan, IpMethod};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

fn fixture(name: &str) -> Tree {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ibft")
        .join(name);
    sysfs::read_tree(&dir).unwrap()
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The guest's one link.
fn eth0(mac: &str) -> Option<String> {
    (mac == "52:54:00:12:34:56").then(|| "eth0".to_string())
}

fn merged(tree: &Tree, cmdline: &str) -> Result<(BootPlan, plan::Merged), IbftError> {
    let mut p = crate::cmdline::parse_plan(cmdline).unwrap();
    let t = parse(tree)?;
    let m = plan::merge(&t, &mut p, &explicit_fields(cmdline), &eth0)?;
    Ok((p, m))
}

// ---------------------------------------------------------------------------
// fixtures (the tree as 6.1/6.12 show it)

#[test]
fn static_fixture_every_field() {
    let t = parse(&fixture("static")).unwrap();
    let i = t.initiator.as_ref().unwrap();
    assert_eq!(i.flags, 3);
    assert_eq!(t.initiator_name(), Some("iqn.2026-12.test:ibft-static"));
    assert_eq!(t.nics.len(), 2);
    let n = &t.nics[0];
    assert_eq!(n.entry, "ethernet0");
    assert_eq!(n.flags, 7);
    assert_eq!(n.address, Some(v4("198.18.0.2")));
    assert_eq!(n.prefix_len, Some(24));
    assert_eq!(n.origin, 1);
    assert_eq!(n.gateway, Some(v4("198.18.0.1")));
    assert_eq!(n.primary_dns, Some(v4("198.18.0.1")));
    assert_eq!(n.secondary_dns, Some(v4("198.18.0.53")));
    assert_eq!(n.dhcp_server, None);
    assert_eq!(n.vlan, 0);
    assert_eq!(n.mac, "52:54:00:12:34:56");
    assert_eq!(n.hostname.as_deref(), Some("nbguest"));
    assert!(!n.uses_dhcp());
    assert_eq!(t.nics[1].mac, "52:54:00:ab:cd:ef");
    let tg = &t.targets[1];
    assert_eq!(
        (
            tg.index,
            tg.flags,
            tg.port,
            tg.lun,
            tg.chap_type,
            tg.nic_assoc
        ),
        (1, 3, 3260, 1, 2, 0)
    );
    assert_eq!(tg.address, v4("198.18.0.1"));
    let c = tg.chap.as_ref().unwrap();
    assert_eq!(
        (c.name.as_str(), c.secret.expose()),
        ("chapuser", "chapsecret1234")
    );
    let r = tg.reverse_chap.as_ref().unwrap();
    assert_eq!(
        (r.name.as_str(), r.secret.expose()),
        ("tgtuser", "tgtsecret12345")
    );
    // Boot-selected first, then by index; the NIC the targets use.
    let order: Vec<&str> = t.boot_targets().iter().map(|t| t.entry.as_str()).collect();
    assert_eq!(order, ["target1", "target0"]);
    let nics: Vec<&str> = t.boot_nics().iter().map(|n| n.entry.as_str()).collect();
    assert_eq!(nics, ["ethernet0"]);
}

#[test]
fn static_fixture_into_the_plan() {
    let (p, m) = merged(&fixture("static"), "rd.iscsi.firmware=1 root=LABEL=nbroot").unwrap();
    assert_eq!(p.initiator.as_deref(), Some("iqn.2026-12.test:ibft-static"));
    let portals: Vec<String> = p.paths.iter().map(|p| p.portal()).collect();
    assert_eq!(portals, ["198.18.0.1:3260", "198.18.0.9:3260"]);
    let chap = p.paths[0].chap.as_ref().unwrap();
    assert_eq!(chap.username, "chapuser");
    assert_eq!(chap.mutual.as_ref().unwrap().username, "tgtuser");
    assert!(p.paths[1].chap.is_none());
    assert_eq!(p.paths[0].lun, 1);
    assert_eq!(p.paths[0].tpgt, 1);
    assert_eq!(p.network.ip.len(), 1);
    let ip = &p.network.ip[0];
    assert_eq!(ip.method, IpMethod::Static);
    assert_eq!(ip.iface, None);
    assert_eq!(ip.mac.as_deref(), Some("52:54:00:12:34:56"));
    assert_eq!(ip.address, Some(v4("198.18.0.2")));
    assert_eq!(ip.prefix_len, Some(24));
    assert_eq!(ip.gateway, Some(v4("198.18.0.1")));
    assert_eq!(ip.dns, [v4("198.18.0.1"), v4("198.18.0.53")]);
    assert_eq!(ip.hostname.as_deref(), Some("nbguest"));
    assert_eq!(
        m.fields,
        [PlanField::Paths, PlanField::Ip, PlanField::Initiator].into()
    );
    // The plan passes the gate and its secrets are known to the redactor.
    crate::cmdline::supported::check(&p).unwrap();
    assert!(p.secrets().contains(&"tgtsecret12345".to_string()));
    let notes = m.notes.join("\n");
    assert!(
        !notes.contains("chapsecret1234") && !notes.contains("tgtsecret"),
        "{notes}"
    );
    assert!(
        notes.contains(
            "target1: 198.18.0.1:3260 iqn.2026-11.test:root (boot selected), mutual CHAP"
        ),
        "{notes}"
    );
}

#[test]
fn dhcp_fixture_only_boot_bit_and_flat_lun() {
    let (p, _) = merged(&fixture("dhcp"), "rd.iscsi.ibft").unwrap();
    assert_eq!(p.paths.len(), 1);
    // 40 01 00… : flat addressing, LUN 1.
    assert_eq!(p.paths[0].lun, 1);
    let ip = &p.network.ip[0];
    assert_eq!(ip.method, IpMethod::Dhcp);
    assert_eq!(ip.address, None);
    assert_eq!(ip.mac.as_deref(), Some("52:54:00:12:34:56"));
    assert!(p.network.uses_dhcp());
}

#[test]
fn ipv6_fixture_parses_uncompressed_addresses() {
    let t = parse(&fixture("ipv6")).unwrap();
    let n = &t.nics[0];
    assert_eq!(n.address, Some("2001:db8::2".parse().unwrap()));
    assert_eq!(n.prefix_len, Some(64));
    assert_eq!(
        t.targets[0].address,
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(t.targets[0].lun, 10);
    let (ip, vlan) = plan::ip_config(n, &eth0).unwrap();
    assert!(vlan.is_none());
    assert_eq!((ip.method, ip.prefix_len), (IpMethod::Static, Some(64)));
    let p = plan::root_path(&t.targets[0]).unwrap();
    assert_eq!(p.portal(), "[2001:db8::1]:3260");
    assert!(p.chap.as_ref().unwrap().mutual.is_none());
}

#[test]
fn vlan_fixture_becomes_a_vlan_link_over_the_nic() {
    let (p, m) = merged(&fixture("vlan"), "rd.iscsi.firmware").unwrap();
    let v = &p.network.vlans;
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].name.as_str(), v[0].parent.as_str(), v[0].id),
        ("eth0.5", "eth0", 5)
    );
    let ip = &p.network.ip[0];
    assert_eq!(ip.iface.as_deref(), Some("eth0.5"));
    assert_eq!(ip.mac, None);
    assert_eq!(ip.address, Some(v4("198.18.5.2")));
    assert!(m.fields.contains(&PlanField::Vlans));
    // No link with the NIC's MAC: said, with the MAC.
    let t = parse(&fixture("vlan")).unwrap();
    let mut p = BootPlan::default();
    let e = plan::merge(&t, &mut p, &Default::default(), &|_| None).unwrap_err();
    assert_eq!(e.to_string(), "iBFT ethernet0/mac: no network link has MAC 52:54:00:12:34:56 (needed for VLAN 5; is the NIC's driver in the initramfs?)");
    let mut t2 = t.clone();
    t2.nics[0].vlan = 4095;
    let e = plan::merge(&t2, &mut p, &Default::default(), &eth0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "iBFT ethernet0/vlan: 4095 is not a VLAN id in 1..4094"
    );
}

// ---------------------------------------------------------------------------
// explicit command-line keys win

#[test]
fn explicit_keys_win_over_the_table() {
    let line = "rd.iscsi.firmware=1 ip=198.18.0.7::198.18.0.1:255.255.255.0::eth0:off \
                rd.iscsi.initiator=iqn.2026-12.test:cmdline \
                iscsi=198.18.0.1::3260:1:iqn.2026-11.test:other";
    let (p, m) = merged(&fixture("static"), line).unwrap();
    assert_eq!(p.initiator.as_deref(), Some("iqn.2026-12.test:cmdline"));
    assert_eq!(p.paths.len(), 1);
    assert_eq!(p.paths[0].target, "iqn.2026-11.test:other");
    assert_eq!(p.network.ip[0].address, Some(v4("198.18.0.7")));
    assert!(m.fields.is_empty());
    // Only some keys: the rest still comes from the table.
    let (p, m) = merged(
        &fixture("static"),
        "rd.iscsi.firmware=1 netboot.initiator=iqn.2026-12.test:x",
    )
    .unwrap();
    assert_eq!(p.initiator.as_deref(), Some("iqn.2026-12.test:x"));
    assert_eq!(p.paths.len(), 2);
    assert_eq!(m.fields, [PlanField::Paths, PlanField::Ip].into());
}

#[test]
fn command_line_chap_replaces_the_tables() {
    let line = "rd.iscsi.firmware=1 rd.iscsi.username=u rd.iscsi.password=commandlinesecret";
    let (p, m) = merged(&fixture("static"), line).unwrap();
    assert!(p.paths.iter().all(|p| p.chap.is_none()));
    let chap = crate::boot::attach::chap_for(&p, &p.paths[0]).unwrap();
    assert_eq!(chap.username, "u");
    assert!(m.notes.join(" ").contains("CHAP from the command line"));
}

#[test]
fn root_dhcp_keeps_the_targets_out() {
    let (p, m) = merged(&fixture("static"), "rd.iscsi.firmware root=dhcp").unwrap();
    assert!(p.paths.is_empty());
    assert!(!m.fields.contains(&PlanField::Paths));
}

// ---------------------------------------------------------------------------
// what is skipped or refused

fn tree(entries: &[(&str, &str)]) -> Tree {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn target_tree(extra: &[(&str, &str)]) -> Tree {
    let mut t = tree(&[
        ("target0/index", "0\n"),
        ("target0/flags", "3\n"),
        ("target0/ip-addr", "198.18.0.1\n"),
        ("target0/port", "3260\n"),
        ("target0/lun", "01000000\n"),
        ("target0/chap-type", "0\n"),
        ("target0/nic-assoc", "0\n"),
        ("target0/target-name", "iqn.2026-11.test:root\n"),
    ]);
    for (k, v) in extra {
        t.insert(k.to_string(), v.as_bytes().to_vec());
    }
    t
}

#[test]
fn entries_without_flags_are_skipped() {
    let mut t = target_tree(&[("target0/flags", "0\n")]);
    // An unused entry may be empty.
    t.remove("target0/target-name");
    t.remove("target0/ip-addr");
    let table = parse(&t).unwrap();
    assert!(table.boot_targets().is_empty());
    let mut p = BootPlan::default();
    let e = plan::merge(&table, &mut p, &Default::default(), &eth0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "iBFT target*: no usable target (flags bit 0 or 1 set) among 1 target entry"
    );
}

#[test]
fn used_targets_must_be_complete() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("target0/port", "0\n")], "iBFT target0/port: \"0\" is not a port in 1..65535"),
        (&[("target0/port", "70000\n")], "iBFT target0/port: \"70000\" is not an integer in 0..65535"),
        (&[("target0/chap-type", "1\n")], "iBFT target0/chap-name: missing while chap-type is 1 (CHAP)"),
        (&[("target0/chap-type", "7\n"), ("target0/chap-name", "u\n"), ("target0/chap-secret", "s3cr3tvalue\n")],
         "iBFT target0/chap-type: 7 is not 0 (none), 1 (CHAP) or 2 (mutual CHAP)"),
        (&[("target0/chap-name", "u\n")], "iBFT target0/chap-secret: missing while the CHAP name is set"),
        (&[("target0/lun", "1234\n")], "iBFT target0/lun: \"1234\" is not a single-level LUN (the kernel prints its 8 bytes as unpadded hex)"),
        (&[("target0/ip-addr", "198.18.0\n")], "iBFT target0/ip-addr: \"198.18.0\" is not an IP address"),
        (&[("target0/index", "1\n")], "iBFT target0/index: 1 is not the directory's number 0"),
        (&[("target0/target-name", "iqn.x\u{1b}[2J\n")], "iBFT target0/target-name: \"iqn.x\\u{1b}[2J\" is not an iSCSI name (1..223 bytes, no control characters)"),
    ];
    for (extra, want) in cases {
        assert_eq!(
            parse(&target_tree(extra)).unwrap_err().to_string(),
            *want,
            "{extra:?}"
        );
    }
    let mut t = target_tree(&[]);
    t.remove("target0/lun");
    assert_eq!(
        parse(&t).unwrap_err().to_string(),
        "iBFT target0/lun: missing (the kernel always shows it)"
    );
}

#[test]
fn secrets_never_appear_in_errors() {
    let t = target_tree(&[
        ("target0/chap-name", "u\n"),
        ("target0/chap-secret", "topsecret\u{7}value\n"),
    ]);
    let e = parse(&t).unwrap_err().to_string();
    assert!(!e.contains("topsecret"), "{e}");
    assert!(
        e.starts_with("iBFT target0/chap-secret: the secret (not shown, 16 bytes)"),
        "{e}"
    );
}

#[test]
fn unknown_directories_and_deep_paths_are_ignored() {
    let mut t = target_tree(&[]);
    t.insert("acpi_header/signature".into(), b"iBFT\n".to_vec());
    t.insert("target0/device/x".into(), b"junk".to_vec());
    t.insert("target00/port".into(), b"junk".to_vec());
    t.insert("ethernetx/port".into(), b"junk".to_vec());
    t.insert("toplevel".into(), b"junk".to_vec());
    assert_eq!(parse(&t).unwrap().targets.len(), 1);
}

// ---------------------------------------------------------------------------
// decoders

#[test]
fn lun_text_decoding() {
    let d = |s: &str| decode_lun(s.as_bytes());
    assert_eq!(d("00000000\n"), Some(0));
    assert_eq!(d("01000000"), Some(1));
    assert_eq!(d("0f000000"), Some(15));
    assert_eq!(d("010000000"), Some(0x10)); // 00 10 00…
    assert_eq!(d("0ff000000"), Some(0xff));
    assert_eq!(d("401000000"), Some(1)); // 40 01: flat
    assert_eq!(d("4ff000000"), Some(0xf0f)); // 4f 0f (04 ff would be bus 4)
    assert_eq!(d("41ff000000"), Some(0x1ff));
    assert_eq!(d("7fff000000"), Some(0x3fff));
    assert_eq!(d("00100000"), None); // a second level
    assert_eq!(d("81000000"), None); // byte 0 = 8: bus 8
    assert_eq!(d("c01000000"), None); // method 3
    assert_eq!(d(""), None);
    assert_eq!(d("01000000000000000"), None);
    assert_eq!(d("zz000000"), None);
}

#[test]
fn ip_mac_and_number_decoding() {
    assert_eq!(decode_ip(b"198.18.0.2\n"), Some(Some(v4("198.18.0.2"))));
    assert_eq!(decode_ip(b"0.0.0.0\n"), Some(None));
    assert_eq!(
        decode_ip(b"0000:0000:0000:0000:0000:ffff:c612:0002\n"),
        Some(Some(v4("198.18.0.2")))
    );
    assert_eq!(decode_ip(b"::\n"), Some(None));
    assert_eq!(
        decode_ip(b"2001:0db8:0000:0000:0000:0000:0000:0002"),
        Some(Some(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 0, 0, 0, 0, 0, 2
        ))))
    );
    assert_eq!(decode_ip(b"198.18.0.2\n\n"), None);
    assert_eq!(decode_ip(b" 198.18.0.2"), None);
    assert_eq!(
        decode_mac(b"52:54:00:AB:cd:ef\n").as_deref(),
        Some("52:54:00:ab:cd:ef")
    );
    assert_eq!(decode_mac(b"52:54:00:ab:cd\n"), None);
    assert_eq!(decode_mac(b"52:54:00:ab:cd:e\n"), None);
    assert_eq!(decode_uint(b"255\n", 255), Some(255));
    assert_eq!(decode_uint(b"256\n", 255), None);
    assert_eq!(decode_uint(b"-1\n", 255), None);
    assert_eq!(decode_uint(b"99999999999999999999999\n", u64::MAX), None);
    assert_eq!(decode_text(&vec![b'a'; MAX_ATTR_LEN + 1]), None);
    assert_eq!(decode_text(b"\xff"), None);
    assert_eq!(decode_string(b"\n", 10), None);
}

// ---------------------------------------------------------------------------
// the table builder, and the kernel's view of what it builds

fn spec() -> Spec {
    Spec {
        oem_id: "NETBT".into(),
        oem_table_id: "NBTABLE".into(),
        control_flags: 0,
        initiator: InitiatorSpec {
            flags: 3,
            name: "iqn.2026-12.test:builder".into(),
        },
        nics: vec![
            NicSpec {
                flags: 7,
                address: Some(v4("198.18.0.2")),
                prefix_len: 24,
                origin: 1,
                gateway: Some(v4("198.18.0.1")),
                primary_dns: Some(v4("198.18.0.1")),
                secondary_dns: None,
                dhcp_server: None,
                vlan: 0,
                mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                pci_bdf: build::pci_bdf(0, 3, 0),
                hostname: Some("nbguest".into()),
            },
            NicSpec {
                flags: 1,
                address: Some("2001:db8::2".parse().unwrap()),
                prefix_len: 64,
                origin: 1,
                gateway: None,
                primary_dns: None,
                secondary_dns: None,
                dhcp_server: None,
                vlan: 0,
                mac: [0x52, 0x54, 0, 0x12, 0x34, 0x57],
                pci_bdf: build::pci_bdf(0, 4, 0),
                hostname: None,
            },
        ],
        targets: vec![
            TargetSpec {
                flags: 3,
                address: v4("198.18.0.1"),
                port: 3260,
                lun: build::sam_lun(1).unwrap(),
                chap_type: 2,
                nic_assoc: 0,
                name: "iqn.2026-11.test:root".into(),
                chap: Some(("chapuser".into(), "chapsecret1234".into())),
                reverse_chap: Some(("tgtuser".into(), "tgtsecret12345".into())),
            },
            TargetSpec {
                flags: 1,
                address: "2001:db8::1".parse().unwrap(),
                port: 3261,
                lun: build::sam_lun(300).unwrap(),
                chap_type: 0,
                nic_assoc: 1,
                name: "iqn.2026-11.test:second".into(),
                chap: None,
                reverse_chap: None,
            },
        ],
    }
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[test]
fn builder_layout_matches_the_reference_table() {
    let b = build::build(&spec()).unwrap();
    assert_eq!(&b[0..4], b"iBFT");
    assert_eq!(
        u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize,
        b.len()
    );
    assert_eq!(b[8], 1, "revision");
    assert_eq!(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0, "checksum");
    assert_eq!(&b[10..16], b"NETBT ");
    assert_eq!(&b[16..24], b"NBTABLE ");
    assert!(b[36..48].iter().all(|&x| x == 0), "reserved");
    // Control at 48: id 1, version 1, length 18, index 0.
    assert_eq!(&b[48..54], &[1, 1, 18, 0, 0, 0]);
    // The reference's tested layout (16-aligned, 2 NICs + 2 targets).
    let slots: Vec<usize> = (0..5).map(|i| u16_at(&b, 48 + 8 + 2 * i)).collect();
    assert_eq!(
        slots,
        [0x50, 0xA0, 0x180, 0x110, 0x1C0],
        "initiator, nic0, target0, nic1, target1"
    );
    for (at, id, len) in [
        (0x50, 2, 74),
        (0xA0, 3, 102),
        (0x110, 3, 102),
        (0x180, 4, 54),
        (0x1C0, 4, 54),
    ] {
        assert_eq!(
            (b[at], b[at + 1], u16_at(&b, at + 2)),
            (id, 1, len),
            "structure at {at:#x}"
        );
    }
    assert_eq!(b[0xA0 + 4], 0, "NIC0 index");
    assert_eq!(b[0x110 + 4], 1, "NIC1 index");
    // The first heap string (the initiator name) at 0x200, NUL-terminated.
    let (len, off) = (u16_at(&b, 0x50 + 70), u16_at(&b, 0x50 + 72));
    assert_eq!(off, 0x200);
    assert_eq!(&b[off..off + len], b"iqn.2026-12.test:builder");
    assert_eq!(b[off + len], 0);
    // IPv4 as ::ffff:a.b.c.d; prefix, origin, MAC, PCI.
    assert_eq!(
        &b[0xA0 + 6..0xA0 + 22],
        &Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets()
    );
    assert_eq!((b[0xA0 + 22], b[0xA0 + 23]), (24, 1));
    assert_eq!(&b[0xA0 + 90..0xA0 + 96], &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(u16_at(&b, 0xA0 + 96), 0x18, "00:03.0");
    // Target port, SAM LUN, CHAP type, NIC association.
    assert_eq!(u16_at(&b, 0x180 + 22), 3260);
    assert_eq!(&b[0x180 + 24..0x180 + 32], &[0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b[0x1C0 + 24..0x1C0 + 32], &[0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
    assert_eq!((b[0x180 + 32], b[0x180 + 33]), (2, 0));
}

#[test]
fn builder_with_one_nic_and_target_packs_them() {
    let mut s = spec();
    s.nics.truncate(1);
    s.targets.truncate(1);
    let b = build::build(&s).unwrap();
    let slots: Vec<usize> = (0..5).map(|i| u16_at(&b, 48 + 8 + 2 * i)).collect();
    assert_eq!(slots, [0x50, 0xA0, 0x110, 0, 0]);
    assert_eq!(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
    s.targets = vec![s.targets[0].clone(); 3];
    assert!(build::build(&s).is_err());
}

/// What `iscsi_ibft.c` shows for a binary table (its checks and formats,
/// `ibft-ipv6-vlan.md` §1.1 and §1.3), as a tree.
fn kernel_view(b: &[u8]) -> Tree {
    assert_eq!(
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x)),
        0,
        "iBFT has incorrect checksum"
    );
    assert_eq!(b[8], 1, "iBFT module supports only revision 1");
    assert_eq!(
        (b[48], b[52], u16_at(b, 50)),
        (1, 0, 18),
        "Control header is invalid"
    );
    let mut t = Tree::new();
    let mut put = |k: String, v: String| {
        t.insert(k, v.into_bytes());
    };
    let ip = |at: usize| -> Option<String> {
        let o: [u8; 16] = b[at..at + 16].try_into().unwrap();
        let a = Ipv6Addr::from(o);
        if o == [0; 16] || a.to_ipv4_mapped() == Some(Ipv4Addr::UNSPECIFIED) {
            return None;
        }
        Some(match a.to_ipv4_mapped() {
            Some(v4) => format!("{v4}\n"),
            None => {
                let s: Vec<String> = a.segments().iter().map(|g| format!("{g:04x}")).collect();
                format!("{}\n", s.join(":"))
            }
        })
    };
    let string = |at: usize| -> Option<String> {
        let (len, off) = (u16_at(b, at), u16_at(b, at + 2));
        (len != 0).then(|| format!("{}\n", String::from_utf8_lossy(&b[off..off + len])))
    };
    for slot in (48 + 8..48 + 18).step_by(2) {
        let at = u16_at(b, slot);
        if at == 0 || at >= b.len() - 48 {
            continue;
        }
        let (id, len, index, flags) = (b[at], u16_at(b, at + 2), b[at + 4], b[at + 5]);
        match id {
            2 => {
                assert_eq!(len, 74);
                put("initiator/index".into(), format!("{index}\n"));
                put("initiator/flags".into(), format!("{flags}\n"));
                for (off, name) in [
                    (6, "isns-server"),
                    (22, "slp-server"),
                    (38, "pri-radius-server"),
                    (54, "sec-radius-server"),
                ] {
                    if let Some(v) = ip(at + off) {
                        put(format!("initiator/{name}"), v);
                    }
                }
                if let Some(v) = string(at + 70) {
                    put("initiator/initiator-name".into(), v);
                }
            }
            3 => {
                assert_eq!(len, 102);
                let d = format!("ethernet{index}");
                put(format!("{d}/index"), format!("{index}\n"));
                put(format!("{d}/flags"), format!("{flags}\n"));
                for (off, name) in [
                    (6, "ip-addr"),
                    (24, "gateway"),
                    (40, "primary-dns"),
                    (56, "secondary-dns"),
                    (72, "dhcp"),
                ] {
                    if let Some(v) = ip(at + off) {
                        put(format!("{d}/{name}"), v);
                    }
                }
                let prefix = b[at + 22];
                if prefix != 0 {
                    put(format!("{d}/prefix-len"), format!("{prefix}\n"));
                    let mask = u32::MAX
                        .checked_shl(32 - u32::from(prefix.min(32)))
                        .unwrap_or(0);
                    put(format!("{d}/subnet-mask"), Ipv4Addr::from(mask).to_string());
                }
                put(format!("{d}/origin"), format!("{}\n", b[at + 23]));
                put(format!("{d}/vlan"), format!("{}\n", u16_at(b, at + 88)));
                let m = &b[at + 90..at + 96];
                put(
                    format!("{d}/mac"),
                    format!(
                        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
                        m[0], m[1], m[2], m[3], m[4], m[5]
                    ),
                );
                if u16_at(b, at + 100) != 0 {
                    if let Some(v) = string(at + 98) {
                        put(format!("{d}/hostname"), v);
                    }
                }
            }
            4 => {
                assert_eq!(len, 54);
                let d = format!("target{index}");
                put(format!("{d}/index"), format!("{index}\n"));
                put(format!("{d}/flags"), format!("{flags}\n"));
                put(
                    format!("{d}/ip-addr"),
                    ip(at + 6).unwrap_or_else(|| "0.0.0.0\n".into()),
                );
                put(format!("{d}/port"), format!("{}\n", u16_at(b, at + 22)));
                let lun: String = b[at + 24..at + 32]
                    .iter()
                    .map(|x| format!("{x:x}"))
                    .collect();
                put(format!("{d}/lun"), format!("{lun}\n"));
                put(format!("{d}/chap-type"), format!("{}\n", b[at + 32]));
                put(format!("{d}/nic-assoc"), format!("{}\n", b[at + 33]));
                if let Some(v) = string(at + 34) {
                    put(format!("{d}/target-name"), v);
                }
                if u16_at(b, at + 38) != 0 {
                    put(format!("{d}/chap-name"), string(at + 38).unwrap());
                    put(
                        format!("{d}/chap-secret"),
                        string(at + 42).unwrap_or_else(|| "\n".into()),
                    );
                }
                if u16_at(b, at + 46) != 0 {
                    put(format!("{d}/rev-chap-name"), string(at + 46).unwrap());
                    put(
                        format!("{d}/rev-chap-name-secret"),
                        string(at + 50).unwrap_or_else(|| "\n".into()),
                    );
                }
            }
            _ => {}
        }
    }
    t
}

#[test]
fn built_table_reads_back_through_the_kernels_view() {
    let s = spec();
    let tree = kernel_view(&build::build(&s).unwrap());
    assert_eq!(tree["target0/lun"], b"01000000\n");
    assert_eq!(tree["target1/lun"], b"412c000000\n");
    assert_eq!(
        tree["ethernet1/ip-addr"],
        b"2001:0db8:0000:0000:0000:0000:0000:0002\n"
    );
    let t = parse(&tree).unwrap();
    assert_eq!(t.initiator_name(), Some("iqn.2026-12.test:builder"));
    assert_eq!(t.nics.len(), 2);
    assert_eq!(t.nics[0].address, s.nics[0].address);
    assert_eq!(t.nics[0].prefix_len, Some(24));
    assert_eq!(t.nics[0].hostname.as_deref(), Some("nbguest"));
    assert_eq!(t.nics[1].address, s.nics[1].address);
    assert_eq!(t.targets[1].lun, 300);
    assert_eq!(t.targets[1].port, 3261);
    assert_eq!(t.targets[1].address, s.targets[1].address);
    let c = t.targets[0].reverse_chap.as_ref().unwrap();
    assert_eq!(c.secret.expose(), "tgtsecret12345");
    let mut p = BootPlan::default();
    plan::merge(&t, &mut p, &Default::default(), &eth0).unwrap();
    assert_eq!(p.paths.len(), 2);
    assert_eq!(p.network.ip.len(), 2, "each target's NIC");
}

#[test]
fn entries_are_in_index_order_not_name_order() {
    let mut t = Tree::new();
    for i in [10u8, 2] {
        for (k, v) in target_tree(&[]) {
            let k = k.replace("target0", &format!("target{i}"));
            let v = if k.ends_with("/index") {
                format!("{i}\n").into_bytes()
            } else {
                v
            };
            t.insert(k, v);
        }
    }
    let idx: Vec<u8> = parse(&t).unwrap().targets.iter().map(|t| t.index).collect();
    assert_eq!(idx, [2, 10]);
}
