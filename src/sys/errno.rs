//! Errno in error lines: one spelling for every syscall failure we report,
//! followed by what it usually means at that call site.

use rustix::io::Errno;

/// `errno` as the C library words it, with its number — as `std::io::Error`
/// prints it: `Operation not permitted (os error 1)` — then ` (hint: …)`
/// from the first entry of `hints` for it. Each caller keeps its own table,
/// written with rustix's [`Errno`] constants.
///
/// Takes the raw number because most come from the kernel as data
/// (nlmsgerr, iscsi_uevent, finit_module) and need not be in range: rustix's
/// `Errno::from_raw_os_error` asserts 1..=4095 and would panic PID 1 on
/// anything else; this is total.
pub fn errno_text(errno: i32, hints: &[(Errno, &str)]) -> String {
    let text = std::io::Error::from_raw_os_error(errno);
    match hints.iter().find(|(e, _)| e.raw_os_error() == errno) {
        Some((_, hint)) => format!("{text} (hint: {hint})"),
        None => text.to_string(),
    }
}

/// The calling thread's errno, right after a libc call returned -1 (for
/// the few calls made without rustix, such as `sendmsg` with SOL_RXRPC
/// control messages).
pub fn last_errno() -> i32 {
    // `last_os_error` always carries a raw errno; EIO only keeps this total.
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HINTS: &[(Errno, &str)] = &[
        (Errno::PERM, "needs CAP_NET_ADMIN"),
        (Errno::PERM, "never shown: the first entry wins"),
        (Errno::BUSY, "the interface must be down"),
    ];

    #[test]
    fn text_then_the_first_matching_hint() {
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM).to_string();
        assert_eq!(eperm, "Operation not permitted (os error 1)");
        assert_eq!(
            errno_text(libc::EPERM, HINTS),
            "Operation not permitted (os error 1) (hint: needs CAP_NET_ADMIN)"
        );
        assert_eq!(errno_text(libc::EPERM, &[]), eperm);
        assert_eq!(
            errno_text(libc::EBUSY, HINTS),
            format!(
                "{} (hint: the interface must be down)",
                std::io::Error::from_raw_os_error(libc::EBUSY)
            )
        );
        assert_eq!(
            errno_text(libc::EINVAL, HINTS),
            std::io::Error::from_raw_os_error(libc::EINVAL).to_string()
        );
    }

    #[test]
    fn numbers_out_of_range_do_not_panic() {
        // The same values through rustix's Errno::from_raw_os_error abort.
        for n in [0, -1, -libc::EPERM, 4096, i32::MAX, i32::MIN] {
            assert_eq!(
                errno_text(n, HINTS),
                std::io::Error::from_raw_os_error(n).to_string(),
                "{n}"
            );
        }
    }
}
