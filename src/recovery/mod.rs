//! Life after switch_root: the resident recovery process.
//!
//! Before switch_root PID 1 leaves one small process behind (argv[0]
//! `@netboot-resident`: systemd spares processes whose argv[0] starts with
//! `@` at shutdown, its convention for root-storage daemons). It runs from
//! a copy of the binary in /run (no file of the initramfs stays open), gets
//! the session's parameters — CHAP secrets included — through a pipe, never
//! a file, and then only listens on NETLINK_ISCSI. When the kernel reports
//! a connection error on the root session it reconnects it the way
//! iscsid's session reopen does (ERL 0): STOP_CONN(recover), a new TCP
//! connection (failover over the portals of the same target), BIND_CONN,
//! the login (same ISID, the session's TSIH: reinstatement), SET_PARAM,
//! START_CONN — with bounded backoff, one kmsg line per attempt, events on
//! the connector and the history in /run/netboot/recovery.json.
//!
//! Two initiators must never answer the same session's events: when iscsid
//! runs (its abstract socket `@ISCSIADM_ABSTRACT_NAMESPACE` is bound and a
//! process named `iscsid` exists: systemd's iscsid.socket alone binds the
//! socket long before iscsid starts) the resident steps aside and exits;
//! iscsid adopts the session at start-up.

pub mod handoff;
pub mod history;
pub mod resident;

pub use handoff::Handoff;

/// argv[0] of the resident process.
pub const ARGV0: &str = "@netboot-resident";
/// Where PID 1 copies the binary for the resident (the initramfs is
/// deleted at switch_root; /run moves into the new root).
pub const BINARY: &str = "/run/netboot/netboot";
/// The recovery history, for `netboot status`.
pub const HISTORY: &str = "/run/netboot/recovery.json";
/// The file descriptor the handoff arrives on.
pub const HANDOFF_FD: i32 = 3;
