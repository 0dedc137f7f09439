//! Any bytes → Challenge::decode, SealedResponse::decode + open: never
//! panic; a decoded challenge re-encodes to its first 12 bytes; fields
//! built into a RESPONSE decode and open to the same fields.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::rxkad::handshake::{build_response, Challenge, ResponseFields, SealedResponse};

const KS: [u8; 8] = [0x13, 0x57, 0x9B, 0xDF, 0x02, 0x46, 0x8A, 0xCE];

fn word(d: &[u8], i: usize) -> u32 {
    d.get(i * 4..i * 4 + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Challenge::decode(data) {
        // The spare word (12..16) is not kept.
        assert_eq!(&c.encode()[..12], &data[..12]);
    }
    if let Ok(r) = SealedResponse::decode(data) {
        let _ = r.open(KS);
        let _ = format!("{r:?}");
    }
    let f = ResponseFields {
        epoch: word(data, 0),
        cid: word(data, 1) & !3,
        call_ids: [word(data, 2), word(data, 3), word(data, 4), word(data, 5)],
        inc_nonce: word(data, 6),
        level: word(data, 7),
    };
    let ticket = data.get(32..).unwrap_or(&[]);
    let b = build_response(&f, KS, word(data, 8), ticket);
    if (32..=12_000).contains(&ticket.len()) {
        let r = SealedResponse::decode(&b).expect("built response decodes");
        assert_eq!(r.ticket, ticket);
        assert_eq!(r.open(KS), Ok(f));
    }
});
