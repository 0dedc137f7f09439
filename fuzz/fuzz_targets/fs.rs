//! Fuzz the superblock prober: arbitrary bytes as the head of a device,
//! also placed at the btrfs superblock offset so that path is reached. It
//! must not panic; UUIDs it reports are lowercase.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::disk::fs::{probe, PROBE_LEN};

fuzz_target!(|data: &[u8]| {
    let check = |b: &[u8]| {
        if let Some(fs) = probe(b) {
            if let Some(u) = fs.uuid {
                assert_eq!(u, u.to_ascii_lowercase());
            }
        }
    };
    check(data);
    let mut at_btrfs = vec![0u8; 0x10000];
    at_btrfs.extend_from_slice(data);
    at_btrfs.truncate(PROBE_LEN);
    check(&at_btrfs);
});
