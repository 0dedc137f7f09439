//! The syscall layer: small wrappers that everything above may use and that
//! import nothing from the rest of the crate (DESIGN.md §2 "one `sys/`
//! layer"; the review's target layout puts the mount seam, the entropy
//! source and the poll deadline here too).

pub mod clock;
pub mod errno;
pub mod poll;
