//! Any bytes → PDU decode → typed view → re-encode: never panics, and what
//! decodes re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::iscsi::pdu::{Message, Pdu};

fuzz_target!(|data: &[u8]| {
    if let Ok((pdu, used)) = Pdu::decode(data) {
        let again = pdu.encode().expect("decoded PDU re-encodes");
        // Padding bytes are not kept: compare the unpadded prefix.
        let n = 48 + pdu.ahs.len() + pdu.data.len();
        assert_eq!(&again[..n], &data[..n]);
        assert!(used >= n);
        if let Ok(m) = Message::from_pdu(&pdu) {
            let _ = m.to_pdu().encode();
        }
    }
});
