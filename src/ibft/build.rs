//! A binary ACPI iBFT (iSCSI Boot Firmware Table, spec 1.03) from a
//! [`Spec`]: for tests and the VM rig (`qemu/boot.sh --acpitable`), not
//! used by the boot. Written from the layout in
//! `shared/reference/ibft-ipv6-vlan.md` §1:
//!
//! - ACPI header (36 bytes) + 12 reserved: signature `iBFT`, length of
//!   the whole table, revision 1, checksum (all bytes sum to 0 mod 256);
//! - every structure starts with `id u8, version u8 = 1, length u16,
//!   index u8, flags u8`; control (id 1, 18 bytes) at byte 48 holds the
//!   offsets of the initiator, NIC0, target0, NIC1, target1;
//! - initiator (id 2, 74 bytes), NIC (id 3, 102 bytes), target (id 4,
//!   54 bytes), each at a 16-byte boundary (iPXE's alignment);
//! - strings in a heap after the structures, referenced by `(u16 length,
//!   u16 offset from byte 0)`, each followed by a NUL not counted;
//! - IP fields 16 bytes: IPv6 as is, IPv4 as `::ffff:a.b.c.d`, zero =
//!   absent; integers little-endian; the boot LUN in SAM byte order.
//!
//! With 2 NICs and 2 targets: control 0x30, initiator 0x50, NIC0 0xA0,
//! NIC1 0x110, target0 0x180, target1 0x1C0, heap 0x200 (the layout the
//! reference saw both kernels parse).

use std::net::IpAddr;

pub const HEADER_LEN: usize = 48;
pub const CONTROL_LEN: usize = 18;
pub const INITIATOR_LEN: usize = 74;
pub const NIC_LEN: usize = 102;
pub const TARGET_LEN: usize = 54;
pub const ALIGN: usize = 16;

pub const ID_CONTROL: u8 = 1;
pub const ID_INITIATOR: u8 = 2;
pub const ID_NIC: u8 = 3;
pub const ID_TARGET: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// ACPI OEM ID (6 bytes, space padded) and OEM table ID (8).
    pub oem_id: String,
    pub oem_table_id: String,
    /// Control flags (bit 0: log in to the boot-selected target only).
    pub control_flags: u8,
    pub initiator: InitiatorSpec,
    /// At most 2 (the 18-byte control structure's slots).
    pub nics: Vec<NicSpec>,
    /// At most 2.
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiatorSpec {
    pub flags: u8,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub flags: u8,
    pub address: Option<IpAddr>,
    pub prefix_len: u8,
    pub origin: u8,
    pub gateway: Option<IpAddr>,
    pub primary_dns: Option<IpAddr>,
    pub secondary_dns: Option<IpAddr>,
    pub dhcp_server: Option<IpAddr>,
    pub vlan: u16,
    pub mac: [u8; 6],
    /// `bus << 8 | dev << 3 | fn` (PCI domain 0).
    pub pci_bdf: u16,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub flags: u8,
    pub address: IpAddr,
    pub port: u16,
    /// The boot LUN's 8 bytes in SAM order ([`sam_lun`]).
    pub lun: [u8; 8],
    pub chap_type: u8,
    pub nic_assoc: u8,
    pub name: String,
    pub chap: Option<(String, String)>,
    pub reverse_chap: Option<(String, String)>,
}

/// A single-level LUN in SAM byte order: peripheral addressing below 256,
/// flat addressing (`0x40 | high 6 bits`) below 16384. `None` above.
pub fn sam_lun(lun: u64) -> Option<[u8; 8]> {
    let mut b = [0u8; 8];
    if lun < 256 {
        b[1] = lun as u8;
    } else if lun < 16384 {
        b[0] = 0x40 | (lun >> 8) as u8;
        b[1] = (lun & 0xff) as u8;
    } else {
        return None;
    }
    Some(b)
}

/// `bus:dev.fn` → the table's u16.
pub fn pci_bdf(bus: u8, dev: u8, func: u8) -> u16 {
    (u16::from(bus) << 8) | (u16::from(dev & 0x1f) << 3) | u16::from(func & 7)
}

/// Why a spec cannot become a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// The 16 bytes of an IP field.
pub fn ip_field(a: Option<IpAddr>) -> [u8; 16] {
    match a {
        None => [0; 16],
        Some(IpAddr::V6(v6)) => v6.octets(),
        Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
    }
}

struct Writer {
    buf: Vec<u8>,
    heap: usize,
}

impl Writer {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        if self.buf.len() < at + bytes.len() {
            self.buf.resize(at + bytes.len(), 0);
        }
        if let Some(dst) = self.buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    fn u8(&mut self, at: usize, v: u8) {
        self.put(at, &[v]);
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    fn header(&mut self, at: usize, id: u8, len: usize, index: u8, flags: u8) {
        self.put(at, &[id, 1]);
        self.u16(at + 2, len as u16);
        self.put(at + 4, &[index, flags]);
    }
    /// A heap string: (length, offset) at `at`, bytes + NUL in the heap.
    fn string(&mut self, at: usize, s: Option<&str>) -> Result<(), BuildError> {
        let Some(s) = s else {
            return Ok(());
        };
        if s.len() > usize::from(u16::MAX) || s.as_bytes().contains(&0) {
            return Err(BuildError(format!("string {s:?} too long or has NUL")));
        }
        let off = self.heap;
        self.u16(at, s.len() as u16);
        self.u16(at + 2, off as u16);
        self.put(off, s.as_bytes());
        self.put(off + s.len(), &[0]);
        self.heap = off + s.len() + 1;
        Ok(())
    }
}

/// The table (module docs).
pub fn build(spec: &Spec) -> Result<Vec<u8>, BuildError> {
    if spec.nics.len() > 2 || spec.targets.len() > 2 {
        return Err(BuildError("at most 2 NICs and 2 targets".into()));
    }
    let control = HEADER_LEN;
    let initiator = align(control + CONTROL_LEN);
    let mut next = align(initiator + INITIATOR_LEN);
    let mut nic_at = Vec::new();
    for _ in &spec.nics {
        nic_at.push(next);
        next = align(next + NIC_LEN);
    }
    let mut tgt_at = Vec::new();
    for _ in &spec.targets {
        tgt_at.push(next);
        next = align(next + TARGET_LEN);
    }
    let mut w = Writer {
        buf: vec![0; next],
        heap: next,
    };
    // ACPI header.
    w.put(0, b"iBFT");
    w.u8(8, 1);
    let pad = |s: &str, n: usize| {
        let mut b: Vec<u8> = s.bytes().take(n).collect();
        b.resize(n, b' ');
        b
    };
    w.put(10, &pad(&spec.oem_id, 6));
    w.put(16, &pad(&spec.oem_table_id, 8));
    w.u32(24, 1);
    w.put(28, b"NBT ");
    w.u32(32, 1);
    // Control.
    w.header(control, ID_CONTROL, CONTROL_LEN, 0, spec.control_flags);
    w.u16(control + 6, 0);
    w.u16(control + 8, initiator as u16);
    for (i, at) in nic_at.iter().enumerate() {
        w.u16(control + if i == 0 { 10 } else { 14 }, *at as u16);
    }
    for (i, at) in tgt_at.iter().enumerate() {
        w.u16(control + if i == 0 { 12 } else { 16 }, *at as u16);
    }
    // Initiator.
    w.header(
        initiator,
        ID_INITIATOR,
        INITIATOR_LEN,
        0,
        spec.initiator.flags,
    );
    w.string(initiator + 70, Some(&spec.initiator.name))?;
    for ((i, n), at) in spec.nics.iter().enumerate().zip(&nic_at) {
        let at = *at;
        w.header(at, ID_NIC, NIC_LEN, i as u8, n.flags);
        w.put(at + 6, &ip_field(n.address));
        w.u8(at + 22, n.prefix_len);
        w.u8(at + 23, n.origin);
        w.put(at + 24, &ip_field(n.gateway));
        w.put(at + 40, &ip_field(n.primary_dns));
        w.put(at + 56, &ip_field(n.secondary_dns));
        w.put(at + 72, &ip_field(n.dhcp_server));
        w.u16(at + 88, n.vlan);
        w.put(at + 90, &n.mac);
        w.u16(at + 96, n.pci_bdf);
        w.string(at + 98, n.hostname.as_deref())?;
    }
    for ((i, t), at) in spec.targets.iter().enumerate().zip(&tgt_at) {
        let at = *at;
        w.header(at, ID_TARGET, TARGET_LEN, i as u8, t.flags);
        w.put(at + 6, &ip_field(Some(t.address)));
        w.u16(at + 22, t.port);
        w.put(at + 24, &t.lun);
        w.u8(at + 32, t.chap_type);
        w.u8(at + 33, t.nic_assoc);
        w.string(at + 34, Some(&t.name))?;
        w.string(at + 38, t.chap.as_ref().map(|c| c.0.as_str()))?;
        w.string(at + 42, t.chap.as_ref().map(|c| c.1.as_str()))?;
        w.string(at + 46, t.reverse_chap.as_ref().map(|c| c.0.as_str()))?;
        w.string(at + 50, t.reverse_chap.as_ref().map(|c| c.1.as_str()))?;
    }
    let len = w.buf.len();
    if len > usize::from(u16::MAX) {
        return Err(BuildError(format!("table of {len} bytes: offsets are u16")));
    }
    w.u32(4, len as u32);
    let sum = w.buf.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    w.u8(9, 0u8.wrapping_sub(sum));
    Ok(w.buf)
}
