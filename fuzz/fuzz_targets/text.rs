//! Any bytes → text key parse; every parsed pair goes through negotiation;
//! any bytes split for the C bit join back within the limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::iscsi::{chap, text};

fuzz_target!(|data: &[u8]| {
    // Splitting for the C bit: pieces within the limit that join back.
    let limit = data.first().map_or(1, |&b| usize::from(b) + 1);
    let pieces = text::split_segments(data, limit);
    assert!(pieces.iter().all(|p| p.len() <= limit));
    assert_eq!(pieces.concat(), data);
    if let Ok(pairs) = text::parse(data) {
        let _ = text::encode(&pairs);
        for (k, v) in &pairs {
            let _ = text::answer(k, v, None);
            let _ = text::settle(k, "262144", v);
            let _ = text::settle(k, "Yes", v);
            let _ = text::validate(k, v);
            let _ = chap::decode_binary("CHAP_C", v);
        }
    }
});
