//! Fuzz the connector decoders and the listener: arbitrary bytes as a
//! netlink datagram (nlmsghdr + cn_msg), as a bare cn_msg and as event JSON.
//! None of them may panic; whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::netlink::connector::{decode_nl, messages, CbId, CnMsg, CN_MSG_HDRLEN};
use netboot::events::listen::{human_line, Listener};
use netboot::events::{EventRecord, DEFAULT_ID};

fuzz_target!(|data: &[u8]| {
    // Every message in the datagram; errors are fine, panics are not.
    for m in messages(data) {
        let _ = m.map(|(h, cn)| (h.len, cn.data.len()));
    }
    if let Ok((_, cn)) = decode_nl(data) {
        // Round trip: what decoded re-encodes to the same cn_msg bytes.
        let again = cn.encode().expect("decoded data fits");
        assert_eq!(CnMsg::decode(&again).as_ref(), Ok(&cn));
    }
    if let Ok(cn) = CnMsg::decode(data) {
        let again = cn.encode().expect("decoded data fits");
        assert_eq!(&again[..], &data[..CN_MSG_HDRLEN + cn.data.len()]);
    }
    // The listener on the same bytes, for our id and for any id.
    let _ = Listener::new(DEFAULT_ID).feed(data, 1);
    let _ = Listener::new(CbId { idx: 0, val: 0 }).feed(data, 1);
    // The bytes as an event payload, and its human rendering.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = human_line(&v);
        let _ = serde_json::from_value::<EventRecord>(v);
    }
});
