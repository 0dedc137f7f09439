//! iSCSI: PDU codec, key negotiation, CHAP, the login state machine and the
//! channels it runs over (userspace TCP; the kernel channel comes later).
