//! What is on the iSCSI disk: partition tables ([`part`]), file system
//! superblocks ([`fs`]) and the choice of the root device ([`resolve`]).
//! `part` and `fs` are pure decoders with fuzz targets; only
//! `resolve::scan`/`resolve::resolve` read a device.

pub mod fs;
pub mod part;
pub mod resolve;
pub mod scsi;
