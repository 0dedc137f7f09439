//! netboot: boot a machine whose root filesystem lives on an iSCSI target.
//!
//! Layout (see DESIGN.md §2): pure code — command line, plan, wire codecs,
//! login negotiation — lives apart from the few modules that make syscalls,
//! so that everything above the syscall seam is tested without root.

pub mod backoff;
pub mod boot;
pub mod bounded;
pub mod cli;
pub mod cmdline;
pub mod config;
pub mod disk;
pub mod entropy;
pub mod escape;
pub mod events;
pub mod hostport;
pub mod ibft;
pub mod iscsi;
pub mod klog;
pub mod kmod;
pub mod net;
pub mod netlink;
pub mod plan;
pub mod recovery;
pub mod rxkad;
pub mod rxrpc;
pub mod sys;
