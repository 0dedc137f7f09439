//! The boot clock.

/// Monotonic time in µs (CLOCK_BOOTTIME: counts from kernel start, like the
/// kernel log's timestamps, and keeps counting across suspend).
pub fn boottime_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (ts.tv_sec as u64).saturating_mul(1_000_000) + (ts.tv_nsec as u64) / 1000
}
