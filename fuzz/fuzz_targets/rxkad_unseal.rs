//! Any bytes → ConnSecurity::unseal at every level: never panics, never
//! returns more bytes than it was given; seal → unseal is the identity.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::rxkad::packet::ConnSecurity;
use netboot::rxkad::Level;

const KS: [u8; 8] = [0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87];

fuzz_target!(|data: &[u8]| {
    let (call, seq) = match data.first_chunk::<8>() {
        Some(b) => (
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ),
        None => (1, 1),
    };
    for level in [Level::Clear, Level::Auth, Level::Encrypt] {
        let s = ConnSecurity::new(KS, 0x8000_0001, 0x40, level);
        if let Ok(d) = s.unseal(call, seq, data) {
            assert!(d.len() <= data.len());
        }
        let _ = s.header_cksum(call, 0x41, seq);
        if data.len() <= 0xffff {
            let sealed = s.seal(call, seq, data);
            assert_eq!(s.unseal(call, seq, &sealed).as_deref(), Ok(data));
        }
    }
});
