//! Fuzz the DHCPv4 reply decoder: arbitrary bytes as a received IPv4
//! packet must decode or fail, never panic — also when the fuzzer's bytes
//! are placed behind a valid IPv4/UDP/BOOTP header, so the option parser
//! (pad, end, overload, concatenation) is reached. Our own DISCOVER and
//! REQUEST built from fuzzed values must decode back to the same options.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::net::dhcp::{self, Client};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let _ = dhcp::parse(data, 0x0102_0304, &mac);
    if data.len() < 16 {
        return;
    }
    let xid = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let mut m = [0u8; 6];
    m.copy_from_slice(&data[4..10]);
    let host: String = data[16..]
        .iter()
        .take(40)
        .map(|&b| char::from(b'a' + b % 26))
        .collect();
    let c = Client {
        xid,
        mac: m,
        hostname: (!host.is_empty()).then_some(host.clone()),
        secs: u16::from_be_bytes([data[10], data[11]]),
    };
    let offered = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
    for (pkt, t) in [(dhcp::discover(&c), 1u8), (dhcp::request(&c, offered, offered), 3)] {
        let o = dhcp::request_options(&pkt).expect("our own request decodes");
        assert_eq!(o[0], (53, vec![t]));
        if !host.is_empty() {
            assert!(o.contains(&(12, host.clone().into_bytes())));
        }
        // A reply to this client whose options are the fuzzer's bytes.
        let mut reply = pkt.clone();
        reply.truncate(20 + 8 + 240);
        reply[28] = 2; // BOOTREPLY
        reply[44..48].copy_from_slice(&offered.octets()); // yiaddr
        reply.extend_from_slice(&data[16..]);
        let total = reply.len() as u16;
        reply[2..4].copy_from_slice(&total.to_be_bytes());
        reply[10..12].copy_from_slice(&[0, 0]);
        let mut sum: u32 = reply[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        reply[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        reply[20..24].copy_from_slice(&[0, 67, 0, 68]);
        reply[24..26].copy_from_slice(&(total - 20).to_be_bytes());
        if let Ok(r) = dhcp::parse(&reply, xid, &m) {
            assert_eq!(r.xid, xid);
        }
    }
});
