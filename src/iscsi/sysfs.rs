//! The iSCSI sessions the kernel has, read from sysfs (scsi_transport_iscsi's
//! `iscsi_session` and `iscsi_connection` classes), and which of their disks
//! are mounted. Reads a tree under a given root so tests use a fake one.
//! Unreadable attributes are `None`/empty: a session that is going away
//! loses its files one by one.

use std::collections::HashSet;
use std::path::Path;

/// One kernel session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub sid: u32,
    pub target: Option<String>,
    /// Connection ids (`connection<sid>:<cid>`), sorted.
    pub cids: Vec<u32>,
    /// The SCSI host (`hostN` in the session's device path).
    pub host_no: Option<u32>,
    /// Block devices of the session's LUNs and their partitions
    /// (`sda`, `sda1`), sorted.
    pub block: Vec<String>,
}

/// A cap on directory entries read per directory: sysfs is the kernel's,
/// but the tree may be a test's or a hostile file system's.
const MAX_ENTRIES: usize = 4096;

fn entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .take(MAX_ENTRIES)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

fn attr(path: &Path) -> Option<String> {
    let b = crate::bounded::read_file(path, 4096).ok()?;
    let s = String::from_utf8_lossy(&b).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// Every session under `sys` (normally `/sys`), by sid.
pub fn sessions(sys: &Path) -> Vec<SessionInfo> {
    let class = sys.join("class/iscsi_session");
    let conns = entries(&sys.join("class/iscsi_connection"));
    let mut out: Vec<SessionInfo> = entries(&class)
        .iter()
        .filter_map(|name| {
            let sid: u32 = name.strip_prefix("session")?.parse().ok()?;
            let dir = class.join(name);
            let mut cids: Vec<u32> = conns
                .iter()
                .filter_map(|c| {
                    let (s, cid) = c.strip_prefix("connection")?.split_once(':')?;
                    (s.parse::<u32>().ok()? == sid).then(|| cid.parse().ok())?
                })
                .collect();
            cids.sort_unstable();
            let device = dir.join("device");
            let host_no = std::fs::canonicalize(&device).ok().and_then(|p| {
                p.components().find_map(|c| {
                    c.as_os_str()
                        .to_str()?
                        .strip_prefix("host")?
                        .parse::<u32>()
                        .ok()
                })
            });
            Some(SessionInfo {
                sid,
                target: attr(&dir.join("targetname")),
                cids,
                host_no,
                block: block_devices(&device),
            })
        })
        .collect();
    out.sort_by_key(|s| s.sid);
    out
}

/// `device/target*/H:C:T:L/block/sdX` and the partitions under each.
fn block_devices(device: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for t in entries(device).iter().filter(|t| t.starts_with("target")) {
        let tdir = device.join(t);
        for lun in entries(&tdir).iter().filter(|l| l.contains(':')) {
            let bdir = tdir.join(lun).join("block");
            for disk in entries(&bdir) {
                let ddir = bdir.join(&disk);
                for part in entries(&ddir)
                    .into_iter()
                    .filter(|p| p.starts_with(disk.as_str()) && ddir.join(p).join("dev").exists())
                {
                    out.push(part);
                }
                out.push(disk);
            }
        }
    }
    out.sort();
    out
}

/// `major:minor` of each block device name, from `/sys/class/block/NAME/dev`.
pub fn dev_numbers(sys: &Path, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|n| {
            Some((
                n.clone(),
                attr(&sys.join("class/block").join(n).join("dev"))?,
            ))
        })
        .collect()
}

/// Mount points of the devices `devs` (name, `major:minor`) in a
/// `/proc/self/mountinfo` text (pure): (device name, mount point).
pub fn mounted(mountinfo: &str, devs: &[(String, String)]) -> Vec<(String, String)> {
    let by_num: HashSet<&str> = devs.iter().map(|(_, n)| n.as_str()).collect();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let mut f = line.split(' ');
        let (Some(_), Some(_), Some(num), Some(_), Some(point)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if by_num.contains(num) {
            if let Some((name, _)) = devs.iter().find(|(_, n)| n == num) {
                out.push((name.clone(), unescape_octal(point)));
            }
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let oct = &b[i + 1..(i + 4).min(b.len())];
            if oct.len() == 3 && oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn sessions_connections_hosts_and_disks_from_a_tree() {
        let t = std::env::temp_dir().join(format!("netboot-sysfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        let sys = t.as_path();
        let dev = sys.join("devices/platform/host2/session1");
        let lun = dev.join("target2:0:0/2:0:0:1/block/sda");
        fs::create_dir_all(lun.join("sda1")).unwrap();
        fs::write(lun.join("dev"), "8:0\n").unwrap();
        fs::write(lun.join("sda1/dev"), "8:1\n").unwrap();
        fs::create_dir_all(lun.join("queue")).unwrap();
        let class = sys.join("class/iscsi_session/session1");
        fs::create_dir_all(&class).unwrap();
        fs::write(class.join("targetname"), "iqn.2026-11.test:root\n").unwrap();
        std::os::unix::fs::symlink(&dev, class.join("device")).unwrap();
        fs::create_dir_all(sys.join("class/iscsi_connection/connection1:0")).unwrap();
        fs::create_dir_all(sys.join("class/iscsi_connection/connection10:0")).unwrap();
        fs::create_dir_all(sys.join("class/iscsi_session/sessionx")).unwrap();
        let got = sessions(sys);
        assert_eq!(
            got,
            [SessionInfo {
                sid: 1,
                target: Some("iqn.2026-11.test:root".into()),
                cids: vec![0],
                host_no: Some(2),
                block: vec!["sda".into(), "sda1".into()],
            }]
        );
        assert!(sessions(&sys.join("nothing")).is_empty());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn mounted_devices_by_number_with_escaped_mount_points() {
        let info = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                    23 22 8:2 / /mnt/a\\040b rw - ext4 /dev/sda2 rw\n\
                    24 22 0:5 / /proc rw - proc proc rw\n\
                    garbage\n";
        let devs = vec![
            ("sda1".to_string(), "8:1".to_string()),
            ("sda2".to_string(), "8:2".to_string()),
            ("sda".to_string(), "8:0".to_string()),
        ];
        assert_eq!(
            mounted(info, &devs),
            [
                ("sda1".to_string(), "/".to_string()),
                ("sda2".to_string(), "/mnt/a b".to_string())
            ]
        );
        assert_eq!(unescape_octal("a\\134b\\0"), "a\\b\\0");
        assert_eq!(unescape_octal("\\777x"), "\\777x");
    }
}
