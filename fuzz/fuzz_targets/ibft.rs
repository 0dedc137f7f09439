//! Fuzz the iBFT sysfs reader's pure half: every per-attribute text
//! decoder on the raw bytes, and the assembly of a table from a tree of
//! `name → bytes` (`"target0/port"`, …) followed by the merge into a plan.
//! Input: NUL-separated `name, value, name, value…`; the names are mapped
//! onto the kernel's directory and attribute names so that the parser's
//! paths are reached, and the values are the fuzzer's bytes. Nothing may
//! panic; a table that parses must merge or fail with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::ibft::{self, Tree};

const DIRS: &[&str] = &[
    "initiator",
    "ethernet0",
    "ethernet1",
    "target0",
    "target1",
    "target2",
    "acpi_header",
];
const ATTRS: &[&str] = &[
    "index",
    "flags",
    "ip-addr",
    "prefix-len",
    "subnet-mask",
    "origin",
    "gateway",
    "primary-dns",
    "secondary-dns",
    "dhcp",
    "vlan",
    "mac",
    "hostname",
    "port",
    "lun",
    "chap-type",
    "nic-assoc",
    "target-name",
    "chap-name",
    "chap-secret",
    "rev-chap-name",
    "rev-chap-name-secret",
    "initiator-name",
    "isns-server",
    "slp-server",
    "pri-radius-server",
    "sec-radius-server",
];

fuzz_target!(|data: &[u8]| {
    let _ = ibft::decode_text(data);
    let _ = ibft::decode_uint(data, 65535);
    let _ = ibft::decode_ip(data);
    let _ = ibft::decode_mac(data);
    let _ = ibft::decode_lun(data);
    let _ = ibft::decode_string(data, 255);
    let mut tree = Tree::new();
    let mut parts = data.split(|&b| b == 0);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        let key = match name {
            // Two selector bytes: a known directory and attribute.
            [d, a] => format!(
                "{}/{}",
                DIRS[usize::from(*d) % DIRS.len()],
                ATTRS[usize::from(*a) % ATTRS.len()]
            ),
            // Anything else: the name as given (unknown paths, odd names).
            other => String::from_utf8_lossy(other).into_owned(),
        };
        tree.insert(key, value.to_vec());
    }
    if let Ok(t) = ibft::parse(&tree) {
        let _ = t.boot_targets();
        let _ = t.boot_nics();
        let mut plan = netboot::plan::BootPlan::default();
        let _ = ibft::plan::merge(&t, &mut plan, &Default::default(), &|m: &str| {
            Some(format!("e{}", m.len()))
        });
    }
});
