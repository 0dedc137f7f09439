//! File system superblocks: type, UUID and label, the way blkid reports
//! them (so `root=UUID=…`/`LABEL=…` from `blkid` output match).
//!
//! Pure and total: [`probe`] takes the first [`PROBE_LEN`] bytes of a
//! device (fewer if it is smaller) and never panics. Offsets are from the
//! on-disk structures: ext2/3/4 `struct ext2_super_block` (e2fsprogs
//! lib/ext2fs/ext2_fs.h, libblkid superblocks/ext.c), XFS `struct xfs_sb`
//! (libblkid superblocks/xfs.c), btrfs `struct btrfs_super_block`
//! (libblkid superblocks/btrfs.c), swap `union swap_header`
//! (include/linux/swap.h) and the LUKS1/2 header (cryptsetup docs).

/// How many leading bytes [`probe`] looks at: up to the end of the btrfs
/// superblock at 64 KiB.
pub const PROBE_LEN: usize = BTRFS_SB + 0x1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    /// The mount(2) type (`ext4`, `xfs`, `btrfs`) or blkid's name for the
    /// signatures we only recognise (`swap`, `crypto_LUKS`, `jbd`).
    pub fstype: &'static str,
    /// Lowercase canonical UUID; `None` if all zero.
    pub uuid: Option<String>,
    /// `None` if empty.
    pub label: Option<String>,
    /// False for swap, LUKS and external journals: never a root.
    pub mountable: bool,
}

// ext2/3/4: superblock at 1024 (ext2_fs.h SUPERBLOCK_OFFSET).
const EXT_SB: usize = 1024;
const EXT_MAGIC: usize = EXT_SB + 0x38; // s_magic, le16 0xEF53
const EXT_COMPAT: usize = EXT_SB + 0x5c; // s_feature_compat
const EXT_INCOMPAT: usize = EXT_SB + 0x60; // s_feature_incompat
const EXT_RO_COMPAT: usize = EXT_SB + 0x64; // s_feature_ro_compat
const EXT_UUID: usize = EXT_SB + 0x68; // s_uuid[16]
const EXT_LABEL: usize = EXT_SB + 0x78; // s_volume_name[16]
const EXT3_COMPAT_HAS_JOURNAL: u32 = 0x4;
const EXT3_INCOMPAT_JOURNAL_DEV: u32 = 0x8;
// libblkid ext.c: what ext2/ext3 understand; anything else needs ext4.
const EXT3_INCOMPAT_SUPP: u32 = 0x2 | 0x4 | 0x10; // FILETYPE | RECOVER | META_BG
const EXT2_RO_COMPAT_SUPP: u32 = 0x1 | 0x2 | 0x4; // SPARSE_SUPER | LARGE_FILE | BTREE_DIR

// XFS: superblock at 0, big-endian.
const XFS_MAGIC: &[u8] = b"XFSB";
const XFS_UUID: usize = 32; // sb_uuid, after blocksize, dblocks, rblocks, rextents
const XFS_LABEL: usize = 108; // sb_fname[12]

// btrfs: primary superblock at 64 KiB.
const BTRFS_SB: usize = 0x10000;
const BTRFS_MAGIC: usize = BTRFS_SB + 0x40;
const BTRFS_FSID: usize = BTRFS_SB + 0x20;
const BTRFS_LABEL: usize = BTRFS_SB + 0x12b; // label[256], after dev_item

// swap (4 KiB pages): magic in the last 10 bytes of the first page.
const SWAP_MAGIC: usize = 4096 - 10;
const SWAP_UUID: usize = 1024 + 12; // after bootbits, version, last_page, nr_badpages
const SWAP_LABEL: usize = SWAP_UUID + 16;

const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
const LUKS_UUID: usize = 168; // char uuid[40], same in LUKS1 and LUKS2

fn at(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    at(b, off, 2)?.try_into().ok().map(u16::from_le_bytes)
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    at(b, off, 4)?.try_into().ok().map(u32::from_le_bytes)
}

/// RFC 4122 text form of 16 bytes in stored order (`uuid_unparse`).
pub fn uuid_text(b: &[u8]) -> Option<String> {
    if b.len() != 16 || b.iter().all(|&x| x == 0) {
        return None;
    }
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{x:02x}"));
    }
    Some(s)
}

/// A fixed-size label field: up to the first NUL, trailing spaces dropped
/// (as blkid does), `None` if empty.
fn label(b: Option<&[u8]>) -> Option<String> {
    let b = b?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(b.get(..end)?);
    let s = s.trim_end_matches(' ');
    (!s.is_empty()).then(|| s.to_string())
}

/// Identify the file system whose first bytes are `b`; `None` if no known
/// signature is there.
pub fn probe(b: &[u8]) -> Option<FsInfo> {
    if at(b, 0, LUKS_MAGIC.len()) == Some(LUKS_MAGIC) {
        let uuid = label(at(b, LUKS_UUID, 40)).map(|u| u.to_ascii_lowercase());
        return Some(FsInfo {
            fstype: "crypto_LUKS",
            uuid,
            label: None,
            mountable: false,
        });
    }
    if at(b, 0, 4) == Some(XFS_MAGIC) {
        return Some(FsInfo {
            fstype: "xfs",
            uuid: at(b, XFS_UUID, 16).and_then(uuid_text),
            label: label(at(b, XFS_LABEL, 12)),
            mountable: true,
        });
    }
    if le16(b, EXT_MAGIC) == Some(0xef53) {
        let compat = le32(b, EXT_COMPAT).unwrap_or(0);
        let incompat = le32(b, EXT_INCOMPAT).unwrap_or(0);
        let ro = le32(b, EXT_RO_COMPAT).unwrap_or(0);
        let (fstype, mountable) = if incompat & EXT3_INCOMPAT_JOURNAL_DEV != 0 {
            ("jbd", false)
        } else if incompat & !EXT3_INCOMPAT_SUPP != 0 || ro & !EXT2_RO_COMPAT_SUPP != 0 {
            ("ext4", true)
        } else if compat & EXT3_COMPAT_HAS_JOURNAL != 0 {
            ("ext3", true)
        } else {
            ("ext2", true)
        };
        return Some(FsInfo {
            fstype,
            uuid: at(b, EXT_UUID, 16).and_then(uuid_text),
            label: label(at(b, EXT_LABEL, 16)),
            mountable,
        });
    }
    if at(b, BTRFS_MAGIC, 8) == Some(b"_BHRfS_M".as_slice()) {
        return Some(FsInfo {
            fstype: "btrfs",
            uuid: at(b, BTRFS_FSID, 16).and_then(uuid_text),
            label: label(at(b, BTRFS_LABEL, 256)),
            mountable: true,
        });
    }
    let swap = at(b, SWAP_MAGIC, 10);
    if swap == Some(b"SWAPSPACE2".as_slice()) || swap == Some(b"SWAP-SPACE".as_slice()) {
        return Some(FsInfo {
            fstype: "swap",
            uuid: at(b, SWAP_UUID, 16).and_then(uuid_text),
            label: label(at(b, SWAP_LABEL, 16)),
            mountable: false,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(compat: u32, incompat: u32, ro: u32) -> Vec<u8> {
        let mut b = vec![0u8; 2048];
        b[EXT_MAGIC..EXT_MAGIC + 2].copy_from_slice(&0xef53u16.to_le_bytes());
        b[EXT_COMPAT..EXT_COMPAT + 4].copy_from_slice(&compat.to_le_bytes());
        b[EXT_INCOMPAT..EXT_INCOMPAT + 4].copy_from_slice(&incompat.to_le_bytes());
        b[EXT_RO_COMPAT..EXT_RO_COMPAT + 4].copy_from_slice(&ro.to_le_bytes());
        b[EXT_UUID] = 0xab;
        b[EXT_LABEL..EXT_LABEL + 16].copy_from_slice(b"sixteen-chars-lb");
        b
    }

    #[test]
    fn ext_flavours_by_features() {
        let cases = [
            ((0, 0x2, 0x1), "ext2", true),
            ((0x4, 0x2, 0x1), "ext3", true),
            ((0x4, 0x2 | 0x40, 0x1), "ext4", true), // extents
            ((0x4, 0x2, 0x8), "ext4", true),        // huge_file
            ((0, 0x8, 0), "jbd", false),
        ];
        for ((c, i, r), t, m) in cases {
            let got = probe(&ext(c, i, r)).unwrap();
            assert_eq!((got.fstype, got.mountable), (t, m), "{c:x} {i:x} {r:x}");
            assert_eq!(got.label.as_deref(), Some("sixteen-chars-lb"));
            assert_eq!(
                got.uuid.as_deref(),
                Some("ab000000-0000-0000-0000-000000000000")
            );
        }
    }

    #[test]
    fn short_or_empty_input_is_none() {
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(b"XFS"), None);
        // ext magic present but the buffer ends inside the superblock.
        let b = ext(0, 0, 0);
        let got = probe(&b[..EXT_MAGIC + 2]).unwrap();
        assert_eq!((got.fstype, got.uuid, got.label), ("ext2", None, None));
    }

    #[test]
    fn xfs_and_luks() {
        let mut b = vec![0u8; 512];
        b[..4].copy_from_slice(b"XFSB");
        b[XFS_UUID + 15] = 1;
        b[XFS_LABEL..XFS_LABEL + 4].copy_from_slice(b"data");
        let x = probe(&b).unwrap();
        assert_eq!(x.fstype, "xfs");
        assert_eq!(
            x.uuid.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        assert_eq!(x.label.as_deref(), Some("data"));
        let mut l = vec![0u8; 512];
        l[..6].copy_from_slice(LUKS_MAGIC);
        l[LUKS_UUID..LUKS_UUID + 4].copy_from_slice(b"ABCD");
        let x = probe(&l).unwrap();
        assert_eq!((x.fstype, x.mountable), ("crypto_LUKS", false));
        assert_eq!(x.uuid.as_deref(), Some("abcd"));
    }
}
