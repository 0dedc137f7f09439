//! Fuzz the shared netlink framing (`netlink::hdr`): arbitrary bytes as a
//! datagram must walk, classify and split into attributes without
//! panicking; every message and attribute found must re-encode to the
//! bytes it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::netlink::hdr::{self, NlMsgBuilder, NLMSG_HDRLEN, RTA_HDRLEN};

fuzz_target!(|data: &[u8]| {
    let mut end = 0;
    for m in hdr::messages(data) {
        let Ok(m) = m else { break };
        // The walk is in order and inside the datagram.
        assert!(m.offset >= end && m.offset + m.hdr.len as usize <= data.len());
        let raw = &data[m.offset..m.offset + m.hdr.len as usize];
        assert_eq!(&m.hdr.encode()[..], &raw[..NLMSG_HDRLEN]);
        assert_eq!(m.body, &raw[NLMSG_HDRLEN..]);
        // Rebuilt from its parts, the message is the same bytes, padded.
        let again = NlMsgBuilder::new(m.hdr.ty, m.hdr.flags, m.hdr.seq, m.hdr.pid)
            .bytes(m.body)
            .finish();
        assert_eq!(&again[..raw.len()], raw);
        assert_eq!(again.len(), hdr::align(raw.len()));
        let _ = m.payload();
        end = m.offset + m.hdr.len as usize;
    }
    // The same bytes as attributes: each one found re-encodes to its prefix.
    let mut at = 0;
    for a in hdr::attrs(data) {
        let len = RTA_HDRLEN + a.data.len();
        let built = NlMsgBuilder::new(0, 0, 0, 0)
            .attr(a.raw_type, a.data)
            .finish();
        assert_eq!(
            &built[NLMSG_HDRLEN..NLMSG_HDRLEN + len],
            &data[at..at + len]
        );
        at += hdr::align(len);
    }
});
