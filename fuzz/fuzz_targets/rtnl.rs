//! Fuzz the rtnetlink decoder: arbitrary bytes as a reply datagram must
//! decode or fail, never panic; and an RTM_NEWLINK request built from
//! fuzzed values must decode back to the same index, MTU and name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::net::rtnl::{self, Message};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    if let Ok(msgs) = rtnl::parse(data) {
        for m in msgs {
            if let Message::Link { link, .. } = m {
                let _ = (link.mac_string(), link.has_carrier(), link.is_loopback());
            }
        }
    }
    if data.len() < 24 {
        return;
    }
    let index = i32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
    let mtu = u32::from_ne_bytes([data[4], data[5], data[6], data[7]]);
    let name: String = data[24..]
        .iter()
        .take(rtnl::IFNAME_MAX)
        .map(|&b| char::from(b'a' + b % 26))
        .collect();
    let req = rtnl::set_link(1, index, Some(data[8] & 1 == 1), Some(mtu), Some(&name));
    let msgs = rtnl::parse(&req).expect("our own request decodes");
    let [Message::Link { link, .. }] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    assert_eq!((link.index, link.mtu, link.name.as_str()), (index, Some(mtu), name.as_str()));
    // Address and route requests: well-formed netlink framing.
    let v4 = IpAddr::V4(Ipv4Addr::new(data[9], data[10], data[11], data[12]));
    let mut o = [0u8; 16];
    o.copy_from_slice(&data[8..24]);
    let v6 = IpAddr::V6(Ipv6Addr::from(o));
    for a in [v4, v6] {
        for m in [rtnl::add_address(2, index, a, data[13]), rtnl::add_default_route(3, index, a, rtnl::RTPROT_BOOT)] {
            assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize, m.len());
            assert!(rtnl::parse(&m).is_ok());
        }
    }
});
