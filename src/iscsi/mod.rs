//! iSCSI: PDU codec, key negotiation, CHAP, the login state machine and the
//! channels it runs over (userspace TCP, and the kernel's NETLINK_ISCSI channel).

pub mod channel;
pub mod chap;
pub mod client;
pub mod connect;
pub mod kernel;
pub mod login;
pub mod netlink;
pub mod node;
pub mod pdu;
pub mod scsi;
pub mod sysfs;
pub mod text;

/// Initiator name used when none is configured: an IQN under the project's
/// naming authority with the host name as the unique part (RFC 3720 §3.2.6.3.1).
pub fn default_initiator_name() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    initiator_for(&host, None)
}

/// The generated initiator name: the host name when there is a real one,
/// else (an initramfs has none: the kernel's `(none)`) the boot NIC's MAC,
/// which is unique per machine and stable across boots — what a target ACL
/// can be written against.
pub fn initiator_for(host: &str, mac: Option<&str>) -> String {
    let unset = host.is_empty() || host == "-none-" || host == "localhost";
    match (unset, mac) {
        (true, Some(mac)) => format!("iqn.2026-11.org.netboot:{}", mac.replace(':', "")),
        (true, None) => "iqn.2026-11.org.netboot:localhost".to_string(),
        (false, _) => format!("iqn.2026-11.org.netboot:{host}"),
    }
}
