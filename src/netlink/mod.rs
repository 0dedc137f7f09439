//! Netlink: the one message framing codec ([`hdr`]) and the families that
//! are pure netlink. `connector` is the NETLINK_CONNECTOR `cn_msg` codec
//! (its socket is `events::sock`); `uevent` is NETLINK_KOBJECT_UEVENT, whose
//! datagrams carry no `nlmsghdr` at all. rtnetlink (`net::rtnl`) and
//! NETLINK_ISCSI (`iscsi::netlink`) live with their users and frame their
//! messages with [`hdr`].

pub mod connector;
pub mod hdr;
pub mod uevent;
