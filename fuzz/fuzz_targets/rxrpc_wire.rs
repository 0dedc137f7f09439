//! Any bytes → Rx packet decode → re-encode: never panics, and what decodes
//! re-encodes to the same bytes; DATA also splits into jumbo sub-packets and
//! rebuilds identically; request/reply XDR, config JSON and the AF_RXRPC
//! control-message parser are total.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::config::{proto, Config};
use netboot::rxrpc::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = wire::Packet::decode(data) {
        let again = p.encode().expect("decoded packet re-encodes");
        assert_eq!(again, data);
        if let wire::Body::Data(d) = &p.body {
            if let Ok(subs) = wire::split_jumbo(&p.header, d) {
                let rebuilt = wire::build_jumbo(&subs).expect("rebuild");
                assert_eq!(rebuilt.len(), data.len());
                // Equal except the jumbo headers' pad bytes, which are not kept.
                let pad = |i: usize| {
                    i >= wire::HEADER_LEN + wire::JUMBO_DATALEN
                        && (i - wire::HEADER_LEN) % (wire::JUMBO_DATALEN + wire::JUMBO_HEADER_LEN)
                            == wire::JUMBO_DATALEN + 1
                };
                for (i, (a, b)) in rebuilt.iter().zip(data).enumerate() {
                    assert!(a == b || pad(i), "byte {i} differs");
                }
            }
        }
    }
    let _ = proto::decode_request(data);
    let _ = proto::decode_reply(data);
    let _ = Config::from_json(data);
    let _ = netboot::rxrpc::kernel::parse_control(data);
});
