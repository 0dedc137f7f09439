//! Any bytes → Ticket::open: never panics. The bytes are tried both as a
//! sealed ticket and as a plaintext (sealed here first, so the field parser
//! sees chosen input); whatever opens re-seals and opens to the same ticket,
//! and check_times is total.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::rxkad::ticket::{ServerKey, Ticket};

const KEY: ServerKey = ServerKey {
    kvno: 7,
    key: [0x4A, 0x5B, 0x6D, 0x7C, 0x8F, 0x9E, 0xA1, 0xB0],
};

fn check(t: &Ticket, now: u32) {
    let _ = t.check_times(now);
    let _ = t.end();
    if let Ok(sealed) = t.seal(&KEY) {
        assert_eq!(Ticket::open(&sealed, &KEY).as_ref(), Ok(t));
    }
}

fuzz_target!(|data: &[u8]| {
    let now = data
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_be_bytes(*b));
    if let Ok(t) = Ticket::open(data, &KEY) {
        check(&t, now);
    }
    // As plaintext, sealed with the key, so that the field parser sees it.
    let mut plain = data.to_vec();
    plain.resize(plain.len().next_multiple_of(8).max(32), 0);
    if let Ok(sealed) = netboot::rxkad::ticket::seal_plaintext(&plain, &KEY) {
        if let Ok(t) = Ticket::open(&sealed, &KEY) {
            check(&t, now);
        }
    }
});
