//! Any bytes → text key parse; every parsed pair goes through negotiation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::iscsi::{chap, text};

fuzz_target!(|data: &[u8]| {
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
