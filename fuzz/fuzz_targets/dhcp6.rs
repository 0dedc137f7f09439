//! Fuzz the DHCPv6 decoder (src/net/dhcp6.rs): arbitrary bytes as a
//! server's datagram must decode or fail, never panic, also behind a valid
//! ADVERTISE header for our transaction (so IA_NA, IAADDR and status
//! options are reached), and the offer check must never panic on what
//! decodes. Our own SOLICIT and REQUEST built from fuzzed values decode
//! back to what went in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::net::dhcp6::{self, IaAddr};

fuzz_target!(|data: &[u8]| {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let duid = dhcp6::duid_ll(mac);
    if let Ok(m) = dhcp6::decode(data) {
        let _ = dhcp6::offered(&m, m.xid, &duid, 1);
    }
    if data.len() < 32 {
        return;
    }
    let xid = [data[0], data[1], data[2]];
    let iaid = u32::from_be_bytes([data[3], data[4], data[5], data[6]]);
    // An ADVERTISE for us whose remaining options are the fuzzer's.
    let mut adv = vec![dhcp6::ADVERTISE, xid[0], xid[1], xid[2], 0, 1, 0, 10];
    adv.extend_from_slice(&duid);
    adv.extend_from_slice(&data[7..]);
    if let Ok(m) = dhcp6::decode(&adv) {
        assert_eq!(m.xid, xid);
        let _ = dhcp6::offered(&m, xid, &duid, iaid);
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&data[7..23]);
    let addr = IaAddr {
        addr: a.into(),
        preferred: u32::from_be_bytes([data[23], data[24], data[25], data[26]]),
        valid: u32::from_be_bytes([data[27], data[28], data[29], data[30]]),
        status: None,
    };
    let server = &data[31..data.len().min(31 + dhcp6::DUID_MAX)];
    let elapsed = u16::from(data[0]);
    let s = dhcp6::decode(&dhcp6::solicit(xid, &duid, iaid, elapsed)).expect("our solicit decodes");
    assert_eq!(
        (s.msg_type, s.xid, s.ia_na[0].iaid),
        (dhcp6::SOLICIT, xid, iaid)
    );
    let r = dhcp6::decode(&dhcp6::request(xid, &duid, server, iaid, &addr, elapsed))
        .expect("our request decodes");
    assert_eq!(r.server_id.as_deref(), Some(server));
    assert_eq!(r.ia_na[0].addrs, [addr]);
});
