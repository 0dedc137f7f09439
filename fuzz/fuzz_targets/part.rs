//! Fuzz the MBR/GPT parser with arbitrary bytes as a disk. It must not
//! panic or loop; partitions it reports follow the kernel's numbering
//! (≥ 1, unique).
//!
//! Raw input rarely carries the 0x55AA signature, let alone valid GPT
//! CRCs, so besides the raw bytes each input is also tried as a 64 KiB disk
//! with the MBR signature and valid boot indicators set and, when the first
//! byte is odd, as a GPT: protective entry, "EFI PART", and both CRC32s
//! fixed up over whatever the fuzzer put there. That reaches the EBR chain
//! and GPT entry decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::disk::part::{crc32, parse};

fn check(disk: &[u8], sector: u32) {
    if let Ok(Some(t)) = parse(&mut &disk[..], sector) {
        let mut nums: Vec<u32> = t.parts.iter().map(|p| p.number).collect();
        assert!(nums.iter().all(|&n| n >= 1));
        nums.sort_unstable();
        nums.dedup();
        assert_eq!(nums.len(), t.parts.len());
    }
}

fuzz_target!(|data: &[u8]| {
    for sector in [512, 4096] {
        check(data, sector);
    }
    let mut disk = vec![0u8; 64 * 1024];
    let n = data.len().min(disk.len());
    disk[..n].copy_from_slice(&data[..n]);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    for slot in 0..4 {
        disk[446 + slot * 16] &= 0x80; // a boot indicator msdos.c accepts
    }
    if data.first().is_some_and(|b| b & 1 == 1) {
        disk[446 + 4] = 0xee;
        disk[512..520].copy_from_slice(b"EFI PART");
        disk[512 + 12..512 + 16].copy_from_slice(&92u32.to_le_bytes());
        disk[512 + 24..512 + 32].copy_from_slice(&1u64.to_le_bytes());
        disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        let count = u32::from_le_bytes(disk[512 + 80..512 + 84].try_into().unwrap()) % 129;
        disk[512 + 80..512 + 84].copy_from_slice(&count.to_le_bytes());
        let lba = u64::from_le_bytes(disk[512 + 72..512 + 80].try_into().unwrap()) % 64;
        disk[512 + 72..512 + 80].copy_from_slice(&lba.to_le_bytes());
        let (s, e) = (lba as usize * 512, lba as usize * 512 + count as usize * 128);
        if let Some(entries) = disk.get(s..e) {
            let c = crc32(entries);
            disk[512 + 88..512 + 92].copy_from_slice(&c.to_le_bytes());
        }
        disk[512 + 16..512 + 20].fill(0);
        let c = crc32(&disk[512..512 + 92]);
        disk[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
    }
    check(&disk, 512);
});
