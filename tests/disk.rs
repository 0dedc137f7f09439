//! Disk discovery on the host, without loop devices:
//!
//! - partition tables and superblocks from real images built with
//!   `truncate` + `sfdisk` + `mkfs.*`, cross-checked against util-linux
//!   (`partx`, `blkid -p`), an independent implementation;
//! - root resolution end to end on those images (the image stands in for
//!   `/dev/sda` in a temp dir) and as tables of made-up contents with the
//!   exact error texts;
//! - session → disk mapping, waiting and queue tuning on fake sysfs trees
//!   laid out like drivers/scsi/scsi_transport_iscsi.c makes them;
//! - the uevent socket against the real kernel (root: writes `add` to
//!   `/sys/devices/virtual/mem/null/uevent`).
//!
//! Tools needed: sfdisk, partx, blkid, mkfs.ext4, mkswap, mkfs.xfs
//! (xfsprogs), mkfs.btrfs (btrfs-progs); `scripts/setup.sh` installs them.
//! Missing tools or root print `SKIPPED: <test>: …` (a failure with
//! `NETBOOT_REQUIRE_TARGETS=1`).
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::disk::fs::{FsInfo, PROBE_LEN};
use netboot::disk::part::{self, Partition, Table, TableKind};
use netboot::disk::resolve::{self, select, DiskContents};
use netboot::disk::scsi::{self as block, Attrs, BlockError, ScsiDisk, ScsiLun};
use netboot::netlink::uevent::{Action, Received, UeventSocket};
use netboot::plan::{RootDevice, Tuning};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// helpers

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(support::unique_name(&format!("netboot-disk-{tag}")));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn have_tools(tools: &[&str]) -> bool {
    for t in tools {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            support::skip::<()>(&format!("{t} not installed (run scripts/setup.sh)"));
            return false;
        }
    }
    true
}

/// Run a tool, feeding `stdin`; panic with its output if it fails.
fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `KEY="value"` pairs per line (partx -P, blkid -o export style).
fn pairs(line: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut rest = line.trim();
    while let Some((k, v)) = rest.split_once("=\"") {
        let end = v.find('"').unwrap();
        m.insert(k.trim().to_string(), v[..end].to_string());
        rest = &v[end + 1..];
    }
    m
}

/// Build a file system of `bytes` in its own file and copy it into `img`
/// at `offset` (conv=notrunc keeps the rest of the image).
fn mkfs_into(dir: &Path, img: &Path, offset: u64, bytes: u64, mkfs: &str, args: &[&str]) {
    let f = dir.join(format!("fs-{offset}"));
    run(
        "truncate",
        &["-s", &bytes.to_string(), f.to_str().unwrap()],
        None,
    );
    let mut a: Vec<&str> = args.to_vec();
    a.push(f.to_str().unwrap());
    run(mkfs, &a, None);
    run(
        "dd",
        &[
            &format!("if={}", f.display()),
            &format!("of={}", img.display()),
            "bs=64K",
            &format!("seek={offset}"),
            "oflag=seek_bytes",
            "conv=notrunc,sparse",
            "status=none",
        ],
        None,
    );
    fs::remove_file(&f).unwrap();
}

/// What blkid (low-level probe, at `offset`) says: (TYPE, UUID, LABEL).
fn blkid_at(img: &Path, offset: u64, size: u64) -> (String, String, String) {
    let out = run(
        "blkid",
        &[
            "-p",
            "-o",
            "export",
            "-O",
            &offset.to_string(),
            "-S",
            &size.to_string(),
            img.to_str().unwrap(),
        ],
        None,
    );
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    (get("TYPE"), get("UUID"), get("LABEL"))
}

fn probe_file(img: &Path, offset: u64, len: u64) -> Option<FsInfo> {
    let data = fs::read(img).unwrap();
    let start = offset as usize;
    let end = (offset + len.min(PROBE_LEN as u64)) as usize;
    netboot::disk::fs::probe(&data[start..end.min(data.len())])
}

/// Compare our table with `partx` on the same image, field by field.
fn cross_check_partx(img: &Path, t: &Table) {
    let out = run(
        "partx",
        &[
            "-g",
            "-P",
            "-o",
            "NR,START,SECTORS,UUID,NAME",
            img.to_str().unwrap(),
        ],
        None,
    );
    let theirs: Vec<HashMap<String, String>> = out.lines().map(pairs).collect();
    assert_eq!(theirs.len(), t.parts.len(), "partx: {out}");
    for (p, x) in t.parts.iter().zip(&theirs) {
        assert_eq!(p.number.to_string(), x["NR"], "number; partx: {out}");
        assert_eq!(
            (p.start / 512).to_string(),
            x["START"],
            "start of {}",
            p.number
        );
        if !p.extended {
            // libblkid reports an extended container's full table size too;
            // only data partitions matter for us, but both should agree.
            assert_eq!(
                (p.len / 512).to_string(),
                x["SECTORS"],
                "size of {}",
                p.number
            );
        }
        assert_eq!(
            p.uuid,
            x["UUID"].to_ascii_lowercase(),
            "PARTUUID of {}",
            p.number
        );
        assert_eq!(
            p.label.clone().unwrap_or_default(),
            x["NAME"],
            "PARTLABEL of {}",
            p.number
        );
    }
}

// ---------------------------------------------------------------------------------------------
// real images

const GPT_DISK_GUID: &str = "0b1d3c4e-5f60-4172-8394-a5b6c7d8e9f0";
const P1_UUID: &str = "11111111-2222-4333-8444-555555555555";
const P2_UUID: &str = "21111111-2222-4333-8444-555555555555";
const P4_UUID: &str = "41111111-2222-4333-8444-555555555555";
const EXT4_UUID: &str = "e4e4e4e4-0000-4000-8000-000000000001";
const XFS_UUID: &str = "cafef00d-0000-4000-8000-000000000002";
const BTRFS_UUID: &str = "b7f5b7f5-0000-4000-8000-000000000003";

/// GPT image: slot 1 ext4 "boot", slot 2 xfs "data", slot 3 empty, slot 4
/// btrfs "root" — the empty slot checks index-based numbering.
fn gpt_image(dir: &Path) -> PathBuf {
    let img = dir.join("gpt.img");
    run("truncate", &["-s", "560M", img.to_str().unwrap()], None);
    let script = format!(
        "label: gpt\nlabel-id: {GPT_DISK_GUID}\n\
         start=2048, size=32M, name=\"boot part\", uuid={P1_UUID}\n\
         size=300M, name=data, uuid={P2_UUID}\n\
         gpt.img4 : size=160M, name=root, uuid={P4_UUID}\n"
    );
    run("sfdisk", &["-q", img.to_str().unwrap()], Some(&script));
    let mib = 1024 * 1024;
    let p1 = 2048 * 512;
    let p2 = p1 + 32 * mib;
    let p4 = p2 + 300 * mib;
    mkfs_into(
        dir,
        &img,
        p1,
        32 * mib,
        "mkfs.ext4",
        &["-q", "-F", "-L", "boot", "-U", EXT4_UUID],
    );
    mkfs_into(
        dir,
        &img,
        p2,
        300 * mib,
        "mkfs.xfs",
        &["-q", "-f", "-L", "data", "-m", &format!("uuid={XFS_UUID}")],
    );
    mkfs_into(
        dir,
        &img,
        p4,
        160 * mib,
        "mkfs.btrfs",
        &["-q", "-f", "-L", "root", "-U", BTRFS_UUID],
    );
    img
}

#[test]
fn gpt_image_matches_partx_and_blkid() {
    if !have_tools(&[
        "sfdisk",
        "partx",
        "blkid",
        "mkfs.ext4",
        "mkfs.xfs",
        "mkfs.btrfs",
    ]) {
        return;
    }
    let dir = TempDir::new("gpt");
    let img = gpt_image(&dir.0);
    let mut f = fs::File::open(&img).unwrap();
    let t = part::parse(&mut f, 512).unwrap().expect("a table");
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.id, GPT_DISK_GUID);
    let nums: Vec<u32> = t.parts.iter().map(|p| p.number).collect();
    assert_eq!(nums, [1, 2, 4]);
    assert_eq!(t.parts[0].uuid, P1_UUID);
    assert_eq!(t.parts[0].label.as_deref(), Some("boot part"));
    assert_eq!(t.parts[0].ptype, "0fc63daf-8483-4772-8e79-3d69d8477de4");
    cross_check_partx(&img, &t);

    // Damage: one byte in the entry array, then one in the header.
    let mut head = vec![0u8; 34 * 512];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0).unwrap();
    head[1024 + 56] ^= 0xff; // first byte of entry 1's name
    let e = part::parse(&mut &head[..], 512).unwrap_err().to_string();
    assert!(
        e.starts_with("GPT partition entry array CRC32 mismatch: header says 0x"),
        "{e}"
    );
    head[512 + 56] ^= 0xff; // disk GUID
    let e = part::parse(&mut &head[..], 512).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "protective MBR found but the GPT header at LBA 1 is invalid: header CRC32 mismatch"
        ),
        "{e}"
    );

    let want = [
        ("ext4", EXT4_UUID, "boot"),
        ("xfs", XFS_UUID, "data"),
        ("btrfs", BTRFS_UUID, "root"),
    ];
    for (p, (ty, uuid, label)) in t.parts.iter().zip(want) {
        let ours =
            probe_file(&img, p.start, p.len).unwrap_or_else(|| panic!("no fs in {}", p.number));
        assert_eq!(
            (ours.fstype, ours.uuid.as_deref(), ours.label.as_deref()),
            (ty, Some(uuid), Some(label))
        );
        let (bt, bu, bl) = blkid_at(&img, p.start, p.len);
        assert_eq!(
            (ours.fstype, ours.uuid.unwrap(), ours.label.unwrap()),
            (bt.as_str(), bu, bl),
            "blkid on partition {}",
            p.number
        );
    }
}

#[test]
fn mbr_image_with_logicals_matches_partx_and_blkid() {
    if !have_tools(&[
        "sfdisk",
        "partx",
        "blkid",
        "mkfs.ext4",
        "mkfs.ext2",
        "mkswap",
    ]) {
        return;
    }
    let dir = TempDir::new("mbr");
    let img = dir.0.join("mbr.img");
    run("truncate", &["-s", "64M", img.to_str().unwrap()], None);
    // 1: ext4, 2: extended over the rest with logicals 5 (ext3) and 6 (swap).
    let script = "label: dos\nlabel-id: 0x1234abcd\n\
                  start=2048, size=16M, type=83\n\
                  size=40M, type=5\n\
                  mbr.img5 : size=20M, type=83\n\
                  mbr.img6 : type=82\n";
    run("sfdisk", &["-q", img.to_str().unwrap()], Some(script));
    let mut f = fs::File::open(&img).unwrap();
    let t = part::parse(&mut f, 512).unwrap().expect("a table");
    assert_eq!(t.kind, TableKind::Mbr);
    assert_eq!(t.id, "1234abcd");
    let got: Vec<(u32, &str, bool)> = t
        .parts
        .iter()
        .map(|p| (p.number, p.uuid.as_str(), p.extended))
        .collect();
    assert_eq!(
        got,
        [
            (1, "1234abcd-01", false),
            (2, "1234abcd-02", true),
            (5, "1234abcd-05", false),
            (6, "1234abcd-06", false)
        ]
    );
    cross_check_partx(&img, &t);

    let p1 = &t.parts[0];
    let p5 = &t.parts[2];
    let p6 = &t.parts[3];
    mkfs_into(
        &dir.0,
        &img,
        p1.start,
        p1.len,
        "mkfs.ext4",
        &["-q", "-F", "-L", "one", "-U", EXT4_UUID],
    );
    mkfs_into(
        &dir.0,
        &img,
        p5.start,
        p5.len,
        "mkfs.ext2",
        &["-q", "-F", "-j", "-L", "five"],
    );
    mkfs_into(
        &dir.0,
        &img,
        p6.start,
        p6.len,
        "mkswap",
        &["-L", "six", "-U", XFS_UUID],
    );
    // mkfs wrote nothing outside the partitions: the chain still parses.
    let mut f = fs::File::open(&img).unwrap();
    assert_eq!(part::parse(&mut f, 512).unwrap().unwrap(), t);
    for (p, ty, mountable) in [(p1, "ext4", true), (p5, "ext3", true), (p6, "swap", false)] {
        let ours = probe_file(&img, p.start, p.len).unwrap();
        assert_eq!(
            (ours.fstype, ours.mountable),
            (ty, mountable),
            "partition {}",
            p.number
        );
        let (bt, bu, bl) = blkid_at(&img, p.start, p.len);
        assert_eq!(
            (
                ours.fstype.to_string(),
                ours.uuid.unwrap_or_default(),
                ours.label.unwrap_or_default()
            ),
            (bt, bu, bl),
            "blkid on partition {}",
            p.number
        );
    }
}

/// A fake /sys and /dev where the image is `sda`, for `resolve::resolve`.
fn image_as_sda(dir: &Path, img: &Path, t: &Table) -> (PathBuf, PathBuf, ScsiDisk) {
    let sys = dir.join("sys");
    let dev = dir.join("dev");
    fs::create_dir_all(sys.join("block/sda/queue")).unwrap();
    fs::write(sys.join("block/sda/queue/logical_block_size"), "512\n").unwrap();
    fs::create_dir_all(&dev).unwrap();
    fs::rename(img, dev.join("sda")).unwrap();
    for p in &t.parts {
        // Stand-ins for the nodes devtmpfs would create.
        fs::write(dev.join(format!("sda{}", p.number)), "").unwrap();
    }
    let size = fs::metadata(dev.join("sda")).unwrap().len() / 512;
    let disk = ScsiDisk {
        name: "sda".into(),
        lun: 1,
        hctl: "0:0:0:1".into(),
        major: 8,
        minor: 0,
        size_sectors: size,
    };
    (sys, dev, disk)
}

#[test]
fn resolve_on_a_gpt_image() {
    if !have_tools(&["sfdisk", "mkfs.ext4", "mkfs.xfs", "mkfs.btrfs"]) {
        return;
    }
    let dir = TempDir::new("resolve");
    let img = gpt_image(&dir.0);
    let t = part::parse(&mut fs::File::open(&img).unwrap(), 512)
        .unwrap()
        .unwrap();
    let (sys, dev, disk) = image_as_sda(&dir.0, &img, &t);
    let iqn = "iqn.2026-11.test:root";
    let cases: Vec<(RootDevice, &str, Option<&str>)> = vec![
        (RootDevice::Lun, "sda1", Some("ext4")),
        (RootDevice::Label("root".into()), "sda4", Some("btrfs")),
        (
            RootDevice::Uuid(XFS_UUID.to_uppercase()),
            "sda2",
            Some("xfs"),
        ),
        (RootDevice::PartUuid(P1_UUID.into()), "sda1", Some("ext4")),
        (
            RootDevice::PartUuid(format!("{P1_UUID}/PARTNROFF=3")),
            "sda4",
            Some("btrfs"),
        ),
        (RootDevice::PartLabel("data".into()), "sda2", Some("xfs")),
        (RootDevice::Path("/dev/sda4".into()), "sda4", Some("btrfs")),
    ];
    for (root, name, fstype) in cases {
        let r = resolve::resolve(&sys, &dev, &root, std::slice::from_ref(&disk), iqn)
            .unwrap_or_else(|e| panic!("{root:?}: {e}"));
        assert_eq!(
            (r.name.as_str(), r.fstype.as_deref()),
            (name, fstype),
            "{root:?}"
        );
        assert_eq!(r.dev_path, dev.join(name));
    }
    let e =
        resolve::resolve(&sys, &dev, &RootDevice::Label("nope".into()), &[disk], iqn).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no file system with LABEL=nope on sda (iqn.2026-11.test:root): found \
         sda1 ext4 LABEL=boot, sda2 xfs LABEL=data, sda4 btrfs LABEL=root"
    );
}

// ---------------------------------------------------------------------------------------------
// root selection tables

fn fs(t: &'static str, uuid: &str, label: &str) -> Option<FsInfo> {
    Some(FsInfo {
        fstype: t,
        uuid: Some(uuid.into()),
        label: (!label.is_empty()).then(|| label.into()),
        mountable: t != "swap",
    })
}

fn gpt_part(n: u32, uuid: &str, label: &str) -> Partition {
    Partition {
        number: n,
        start: u64::from(n) * 1_048_576,
        len: 1_048_576,
        uuid: uuid.into(),
        label: Some(label.into()),
        ptype: "0fc63daf-8483-4772-8e79-3d69d8477de4".into(),
        extended: false,
    }
}

fn contents() -> Vec<DiskContents> {
    vec![DiskContents {
        disk: "sda".into(),
        target: "iqn.2026-11.test:root".into(),
        whole: None,
        table: Some(Table {
            kind: TableKind::Gpt,
            id: GPT_DISK_GUID.into(),
            parts: vec![
                gpt_part(1, "aaaaaaaa-0000-0000-0000-000000000001", "swap"),
                gpt_part(2, "aaaaaaaa-0000-0000-0000-000000000002", "boot"),
                gpt_part(3, "aaaaaaaa-0000-0000-0000-000000000003", "data"),
                gpt_part(5, "aaaaaaaa-0000-0000-0000-000000000005", "empty"),
            ],
        }),
        table_error: None,
        part_fs: vec![
            fs("swap", "5a5a5a5a-0000-0000-0000-000000000001", ""),
            fs("ext4", "e4e4e4e4-0000-0000-0000-000000000002", "boot"),
            fs("xfs", "cafecafe-0000-0000-0000-000000000003", "data"),
            None,
        ],
    }]
}

#[test]
fn select_table() {
    let d = contents();
    let ok: Vec<(RootDevice, &str, Option<u32>)> = vec![
        // Lun: the whole disk has no fs, partition 1 is swap → partition 2.
        (RootDevice::Lun, "sda2", Some(2)),
        (RootDevice::Label("data".into()), "sda3", Some(3)),
        (
            RootDevice::Uuid("E4E4E4E4-0000-0000-0000-000000000002".into()),
            "sda2",
            Some(2),
        ),
        (
            RootDevice::PartUuid("AAAAAAAA-0000-0000-0000-000000000003".into()),
            "sda3",
            Some(3),
        ),
        (
            RootDevice::PartUuid("aaaaaaaa-0000-0000-0000-000000000003/PARTNROFF=-1".into()),
            "sda2",
            Some(2),
        ),
        (
            RootDevice::PartUuid("aaaaaaaa-0000-0000-0000-000000000003/PARTNROFF=2".into()),
            "sda5",
            Some(5),
        ),
        (RootDevice::PartLabel("empty".into()), "sda5", Some(5)),
        (RootDevice::Path("/dev/sda".into()), "sda", None),
        (RootDevice::Path("sda3".into()), "sda3", Some(3)),
    ];
    for (root, name, partn) in ok {
        let c = select(&root, &d).unwrap_or_else(|e| panic!("{root:?}: {e}"));
        assert_eq!((c.name.as_str(), c.partn), (name, partn), "{root:?}");
    }
    // A whole-disk file system wins for Lun.
    let mut whole = d.clone();
    whole[0].whole = fs("ext4", "00000000-0000-0000-0000-0000000000aa", "all");
    assert_eq!(select(&RootDevice::Lun, &whole).unwrap().name, "sda");

    let on = "on sda (iqn.2026-11.test:root): found";
    let errs: Vec<(RootDevice, String)> = vec![
        (
            RootDevice::Label("root".into()),
            format!("no file system with LABEL=root {on} sda1 swap LABEL=, sda2 ext4 LABEL=boot, sda3 xfs LABEL=data, sda5 (no file system)"),
        ),
        (
            RootDevice::Uuid("1".into()),
            format!("no file system with UUID=1 {on} sda1 swap UUID=5a5a5a5a-0000-0000-0000-000000000001, sda2 ext4 UUID=e4e4e4e4-0000-0000-0000-000000000002, sda3 xfs UUID=cafecafe-0000-0000-0000-000000000003, sda5 (no file system)"),
        ),
        (
            RootDevice::PartUuid("aaaaaaaa-0000-0000-0000-000000000003/PARTNROFF=1".into()),
            format!("no partition with PARTUUID=aaaaaaaa-0000-0000-0000-000000000003/PARTNROFF=1 {on} sda1 swap PARTUUID=aaaaaaaa-0000-0000-0000-000000000001, sda2 ext4 PARTUUID=aaaaaaaa-0000-0000-0000-000000000002, sda3 xfs PARTUUID=aaaaaaaa-0000-0000-0000-000000000003, sda5 (no file system) PARTUUID=aaaaaaaa-0000-0000-0000-000000000005"),
        ),
        (
            RootDevice::PartUuid("x/PARTNROFF=one".into()),
            "root=PARTUUID=x/PARTNROFF=one: expected UUID/PARTNROFF=<number>".into(),
        ),
        (
            RootDevice::PartLabel("Boot".into()),
            format!("no partition with PARTLABEL=Boot {on} sda1 swap PARTLABEL=swap, sda2 ext4 PARTLABEL=boot, sda3 xfs PARTLABEL=data, sda5 (no file system) PARTLABEL=empty"),
        ),
        (
            RootDevice::Path("/dev/sdb1".into()),
            "root=/dev/sdb1 does not exist; sda (iqn.2026-11.test:root) has sda1 swap, sda2 ext4, sda3 xfs, sda5 (no file system) (hint: use root=LABEL=, UUID= or PARTUUID=, names can differ between boots)".into(),
        ),
    ];
    for (root, want) in errs {
        assert_eq!(select(&root, &d).unwrap_err().to_string(), want, "{root:?}");
    }
    // Lun with nothing mountable, and a disk whose table is broken.
    let mut bad = d.clone();
    bad[0].part_fs = vec![
        fs("swap", "5a5a5a5a-0000-0000-0000-000000000001", ""),
        None,
        None,
        None,
    ];
    bad[0].table_error = None;
    assert_eq!(
        select(&RootDevice::Lun, &bad).unwrap_err().to_string(),
        format!("no mountable file system {on} sda1 swap, sda2 (no file system), sda3 (no file system), sda5 (no file system)")
    );
    let broken = vec![DiskContents {
        disk: "sda".into(),
        target: "iqn.2026-11.test:root".into(),
        whole: None,
        table: None,
        table_error: Some("GPT partition entry array CRC32 mismatch: header says 0x00000001, entries hash to 0x00000002".into()),
        part_fs: vec![],
    }];
    assert_eq!(
        select(&RootDevice::Lun, &broken).unwrap_err().to_string(),
        format!("no mountable file system {on} sda (no file system), sda partition table unreadable: GPT partition entry array CRC32 mismatch: header says 0x00000001, entries hash to 0x00000002")
    );
}

// ---------------------------------------------------------------------------------------------
// fake sysfs

/// A sysfs tree for iSCSI session 7 on host 3, target `iqn…:disk`: LUN 0 is
/// the target's controller (no block device), LUN 1 is `sdb` (8:16) with
/// partition 1. Symlinks as in the real tree (class dirs and /sys/block
/// point into /sys/devices).
fn fake_sys(dir: &Path) -> PathBuf {
    let sys = dir.join("sys");
    let sess = sys.join("devices/platform/host3/session7");
    let lun0 = sess.join("target3:0:0/3:0:0:0");
    let lun1 = sess.join("target3:0:0/3:0:0:1");
    let sdb = lun1.join("block/sdb");
    for d in [
        lun0.clone(),
        sdb.join("sdb1"),
        sdb.join("queue"),
        sess.join("iscsi_session/session7"),
        sys.join("class/iscsi_session"),
        sys.join("class/block"),
        sys.join("class/scsi_host/host3"),
        sys.join("block"),
    ] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(lun0.join("queue_depth"), "32\n").unwrap();
    fs::write(lun1.join("queue_depth"), "32\n").unwrap();
    fs::write(sdb.join("dev"), "8:16\n").unwrap();
    fs::write(sdb.join("size"), "131072\n").unwrap();
    fs::write(sdb.join("sdb1/dev"), "8:17\n").unwrap();
    fs::write(sdb.join("sdb1/partition"), "1\n").unwrap();
    fs::write(sdb.join("queue/scheduler"), "[mq-deadline] kyber none\n").unwrap();
    fs::write(sdb.join("queue/nr_requests"), "64\n").unwrap();
    symlink("../../../3:0:0:1", sdb.join("device")).unwrap();
    fs::write(
        sess.join("iscsi_session/session7/targetname"),
        "iqn.2026-11.test:disk\n",
    )
    .unwrap();
    symlink(
        "../../../session7",
        sess.join("iscsi_session/session7/device"),
    )
    .unwrap();
    symlink(
        "../../devices/platform/host3/session7/iscsi_session/session7",
        sys.join("class/iscsi_session/session7"),
    )
    .unwrap();
    let rel = "../devices/platform/host3/session7/target3:0:0/3:0:0:1/block/sdb";
    symlink(rel, sys.join("block/sdb")).unwrap();
    symlink(format!("../{rel}"), sys.join("class/block/sdb")).unwrap();
    symlink(format!("../{rel}/sdb1"), sys.join("class/block/sdb1")).unwrap();
    fs::write(sys.join("class/scsi_host/host3/scan"), "").unwrap();
    sys
}

#[test]
fn session_to_disk_in_a_fake_sysfs() {
    let dir = TempDir::new("sysfs");
    let sys = fake_sys(&dir.0);
    block::scan_host(&sys, 3).unwrap();
    assert_eq!(
        fs::read_to_string(sys.join("class/scsi_host/host3/scan")).unwrap(),
        "- - -"
    );
    let e = block::scan_host(&sys, 9).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "rescanning SCSI host: writing \"- - -\" to {}/class/scsi_host/host9/scan: ",
            sys.display()
        )),
        "{e}"
    );

    let sdb = ScsiDisk {
        name: "sdb".into(),
        lun: 1,
        hctl: "3:0:0:1".into(),
        major: 8,
        minor: 16,
        size_sectors: 131072,
    };
    assert_eq!(
        block::session_luns(&sys, 7).unwrap(),
        [
            ScsiLun {
                hctl: "3:0:0:0".into(),
                lun: 0,
                disk: None
            },
            ScsiLun {
                hctl: "3:0:0:1".into(),
                lun: 1,
                disk: Some(sdb.clone())
            },
        ]
    );
    assert_eq!(block::session_disks(&sys, 7).unwrap(), [sdb]);
    assert_eq!(block::partitions(&sys, "sdb").unwrap(), [1]);
    assert_eq!(
        block::session_target(&sys, 7).as_deref(),
        Some("iqn.2026-11.test:disk")
    );
    let e = block::session_disks(&sys, 8).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("reading {}/class/iscsi_session/session8/device: No such file or directory (os error 2)", sys.display())
    );
    // A `dev` file that is not MAJOR:MINOR.
    fs::write(sys.join("block/sdb/dev"), "8-16\n").unwrap();
    let e = block::session_disks(&sys, 7).unwrap_err().to_string();
    assert!(
        e.ends_with("/3:0:0:1/block/sdb/dev holds \"8-16\", which is not a valid value"),
        "{e}"
    );
}

#[test]
fn wait_for_disk_settles_times_out_and_sees_late_disks() {
    let dir = TempDir::new("wait");
    let sys = fake_sys(&dir.0);
    let mut sock = UeventSocket::open().unwrap();
    // Present in sysfs, its add event not seen: accepted after SETTLE.
    let t = Instant::now();
    let d = block::wait_for_disk(&sys, 7, 1, t + Duration::from_secs(5), &mut sock).unwrap();
    assert_eq!(d.name, "sdb");
    // No upper bound: how long a loaded host takes says nothing about the code.
    let took = t.elapsed();
    assert!(took >= block::SETTLE, "{took:?}");

    // LUN 2 never comes.
    let t = Instant::now();
    let e = block::wait_for_disk(&sys, 7, 2, t + Duration::from_millis(200), &mut sock)
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() >= Duration::from_millis(200));
    // The message states the time waited: at least the 200 ms, however
    // late a loaded host noticed the deadline.
    let waited = e
        .strip_prefix("LUN 2 of session 7 (iqn.2026-11.test:disk) did not appear within ")
        .and_then(|r| {
            r.strip_suffix(" s; the session has LUNs 0 (no block device, e.g. sg only), 1 (sdb)")
        })
        .and_then(|secs| secs.parse::<f32>().ok());
    assert!(waited.is_some_and(|s| s >= 0.2), "{e}");

    // LUN 2 appears 150 ms into the wait. `t` is taken before the maker
    // starts its sleep, so the disk appears no sooner than t + 150 ms.
    let lun2 = sys.join("devices/platform/host3/session7/target3:0:0/3:0:0:2");
    let t = Instant::now();
    let maker = {
        let lun2 = lun2.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            fs::create_dir_all(lun2.join("block/sdc")).unwrap();
            fs::write(lun2.join("block/sdc/size"), "2048\n").unwrap();
            fs::write(lun2.join("block/sdc/dev"), "8:32\n").unwrap();
        })
    };
    let d = block::wait_for_disk(&sys, 7, 2, t + Duration::from_secs(5), &mut sock).unwrap();
    maker.join().unwrap();
    assert_eq!(
        (d.name.as_str(), d.major, d.minor, d.size_sectors),
        ("sdc", 8, 32, 2048)
    );
    assert!(t.elapsed() >= Duration::from_millis(150) + block::SETTLE);
}

#[test]
fn dev_path_uses_devtmpfs_node_or_makes_one() {
    let dir = TempDir::new("dev");
    let sys = fake_sys(&dir.0);
    let dev = dir.0.join("dev");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("sdb"), "").unwrap();
    assert_eq!(block::dev_path(&sys, &dev, "sdb").unwrap(), dev.join("sdb"));
    let e = block::dev_path(&sys, &dev, "sdz").unwrap_err().to_string();
    assert!(
        e.ends_with("/class/block/sdz/dev: No such file or directory (os error 2)"),
        "{e}"
    );
    if !support::root_or_skip("NETBOOT_REQUIRE_TARGETS", "mknod") {
        return;
    }
    let p = block::dev_path(&sys, &dev, "sdb1").unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = fs::metadata(&p).unwrap();
    assert!(m.file_type().is_block_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(8, 17));
}

/// Attribute files that behave like the kernel's: writing a scheduler
/// brackets it if offered (else EINVAL, block/elevator.c
/// `elv_iosched_store`), queue_depth is capped at `max_depth`
/// (scsi_change_queue_depth), nr_requests below 4 is EINVAL
/// (block/blk-sysfs.c `queue_requests_store` clamps to BLKDEV_MIN_RQ… we
/// model a refusal to test the error text).
struct KernelAttrs {
    max_depth: u32,
    writes: Vec<(String, String)>,
}

impl Attrs for KernelAttrs {
    fn read(&mut self, path: &Path) -> std::io::Result<String> {
        fs::read_to_string(path)
    }
    fn write(&mut self, path: &Path, value: &str) -> std::io::Result<()> {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        self.writes.push((name.clone(), value.to_string()));
        let einval = || Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        match name.as_str() {
            "scheduler" => {
                let (_, offered) = block::parse_scheduler(&fs::read_to_string(path)?);
                if !offered.iter().any(|o| o == value) {
                    return einval();
                }
                let line: Vec<String> = offered
                    .iter()
                    .map(|o| {
                        if o == value {
                            format!("[{o}]")
                        } else {
                            o.clone()
                        }
                    })
                    .collect();
                fs::write(path, line.join(" ") + "\n")
            }
            "queue_depth" => {
                let v: u32 = value.parse().unwrap();
                fs::write(path, format!("{}\n", v.min(self.max_depth)))
            }
            "nr_requests" => {
                let v: u32 = value.parse().unwrap();
                if v < 4 {
                    return einval();
                }
                fs::write(path, format!("{v}\n"))
            }
            _ => fs::write(path, value),
        }
    }
}

fn tuning(scheduler: Option<&str>, nr: Option<u32>, depth: u32) -> Tuning {
    Tuning {
        scheduler: scheduler.map(str::to_string),
        nr_requests: nr,
        queue_depth: depth,
        cmds_max: 128,
    }
}

#[test]
fn tuning_on_a_fake_sysfs() {
    let dir = TempDir::new("tune");
    let sys = fake_sys(&dir.0);
    let sched = sys.join("block/sdb/queue/scheduler");
    let mut a = KernelAttrs {
        max_depth: 64,
        writes: vec![],
    };

    // Default: `none` is offered, so it is chosen; depth 128 is capped to 64.
    let r = block::tune_with(&mut a, &sys, "sdb", &tuning(None, None, 128)).unwrap();
    assert_eq!(r.scheduler, "none");
    assert_eq!(r.offered, ["mq-deadline", "kyber", "none"]);
    assert_eq!((r.nr_requests, r.queue_depth), (Some(64), Some(64)));
    assert_eq!(
        r.warnings,
        ["sdb: queue_depth 128 requested, the kernel capped it to 64"]
    );
    assert_eq!(
        fs::read_to_string(&sched).unwrap(),
        "mq-deadline kyber [none]\n"
    );

    // Requested scheduler not offered: warning, the kernel's is kept.
    fs::write(&sched, "[mq-deadline] kyber none\n").unwrap();
    a.writes.clear();
    let r = block::tune_with(&mut a, &sys, "sdb", &tuning(Some("bfq"), Some(32), 16)).unwrap();
    assert_eq!(r.scheduler, "mq-deadline");
    assert_eq!(
        r.warnings,
        ["sdb: scheduler \"bfq\" is not offered by the kernel (offered: mq-deadline kyber none); keeping \"mq-deadline\""]
    );
    assert_eq!((r.nr_requests, r.queue_depth), (Some(32), Some(16)));
    assert_eq!(
        a.writes,
        [
            ("nr_requests".to_string(), "32".to_string()),
            ("queue_depth".to_string(), "16".to_string())
        ]
    );

    // Default, but `none` not offered: the kernel's choice stays, silently.
    fs::write(&sched, "[mq-deadline] kyber\n").unwrap();
    let r = block::tune_with(&mut a, &sys, "sdb", &tuning(None, None, 32)).unwrap();
    assert_eq!((r.scheduler.as_str(), r.warnings.len()), ("mq-deadline", 0));

    // An explicit offered scheduler is written.
    let r = block::tune_with(&mut a, &sys, "sdb", &tuning(Some("kyber"), None, 32)).unwrap();
    assert_eq!(r.scheduler, "kyber");

    // A refused value names the file and the value.
    let e = block::tune_with(&mut a, &sys, "sdb", &tuning(None, Some(1), 32)).unwrap_err();
    assert!(matches!(e, BlockError::Write { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "writing \"1\" to {}: Invalid argument (os error 22) (the kernel refused the value)",
            sys.join("block/sdb/queue/nr_requests").display()
        )
    );

    // The real-file seam: plain files, no queue_depth for a non-SCSI disk.
    fs::remove_file(sys.join("devices/platform/host3/session7/target3:0:0/3:0:0:1/queue_depth"))
        .unwrap();
    let r = block::tune(&sys, "sdb", &tuning(Some("kyber"), None, 32)).unwrap();
    assert_eq!((r.scheduler.as_str(), r.queue_depth), ("kyber", None));
}

// ---------------------------------------------------------------------------------------------
// real kernel uevents

#[test]
fn uevent_socket_receives_a_synthetic_add() {
    if !support::root_or_skip("NETBOOT_REQUIRE_TARGETS", "writing /sys/…/uevent") {
        return;
    }
    let mut sock = UeventSocket::open().unwrap();
    // A synthetic event for /dev/null: harmless, no driver reacts to it
    // (drivers/base/core.c uevent_store → kobject_synth_uevent).
    fs::write("/sys/devices/virtual/mem/null/uevent", "add").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sock.recv(left).unwrap() {
            Received::Event(ev) if ev.devpath == "/devices/virtual/mem/null" => {
                assert_eq!(ev.action, Action::Add);
                assert_eq!(ev.subsystem.as_deref(), Some("mem"));
                assert_eq!(ev.devname.as_deref(), Some("null"));
                assert_eq!((ev.major, ev.minor), (Some(1), Some(3)));
                assert!(ev.seqnum.is_some());
                assert_eq!(ev.get("ACTION"), Some("add"));
                return;
            }
            Received::Event(ev) => seen.push(format!("{}@{}", ev.action.as_str(), ev.devpath)),
            Received::Lost => seen.push("(lost)".into()),
            Received::Timeout => panic!("no uevent for /dev/null within 5 s; received: {seen:?}"),
        }
    }
}
