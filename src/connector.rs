//! Kernel connector (NETLINK_CONNECTOR): cn_msg codec, emitter, listener.
