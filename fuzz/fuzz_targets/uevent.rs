//! Fuzz the uevent parser: arbitrary bytes as a NETLINK_KOBJECT_UEVENT
//! datagram. It must not panic; whatever parses must re-encode to bytes that
//! parse to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::netlink::uevent::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(ev)) = parse(data) {
        let again = ev.encode();
        assert_eq!(parse(&again).ok().flatten().as_ref(), Some(&ev));
    }
});
