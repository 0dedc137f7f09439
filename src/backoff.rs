//! Capped exponential backoff: the pause schedule every retry loop uses —
//! the login retry (`iscsi::connect`), the config fetch rounds
//! (`config::fetch`), DHCP retransmission (`net::dhcp_sock`) and root-path
//! failover (`boot::failover`). Pure: it only counts; the caller sleeps or
//! sets its timer, and cuts the pause to its deadline.

use std::time::Duration;

/// Pauses of `initial`, then twice the last, never above `cap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// The first pause is `initial` (or `cap`, if that is smaller).
    pub const fn new(initial: Duration, cap: Duration) -> Backoff {
        Backoff {
            initial,
            cap,
            next: initial,
        }
    }

    /// The pause to take now; the next one doubles, up to the cap.
    #[allow(clippy::should_implement_trait)] // endless, so no Iterator: no None to handle
    pub fn next(&mut self) -> Duration {
        let now = self.next.min(self.cap);
        self.next = now.saturating_mul(2).min(self.cap);
        now
    }

    /// Start again from `initial` (DHCP does on each new exchange).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    fn take(b: &mut Backoff, n: usize) -> Vec<Duration> {
        (0..n).map(|_| b.next()).collect()
    }

    #[test]
    fn doubles_up_to_the_cap_and_stays_there() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        assert_eq!(
            take(&mut b, 7),
            ms(&[500, 1000, 2000, 4000, 8000, 8000, 8000])
        );
    }

    #[test]
    fn a_cap_between_doublings_is_reached_exactly() {
        let mut b = Backoff::new(Duration::from_millis(300), Duration::from_secs(1));
        assert_eq!(take(&mut b, 4), ms(&[300, 600, 1000, 1000]));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(take(&mut b, 3), ms(&[1000, 2000, 4000]));
        b.reset();
        assert_eq!(take(&mut b, 2), ms(&[1000, 2000]));
    }

    #[test]
    fn degenerate_settings_are_total() {
        // initial above the cap: the cap from the first pause on.
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(4));
        assert_eq!(take(&mut b, 2), ms(&[4000, 4000]));
        // Zero stays zero; no overflow near Duration::MAX.
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(take(&mut b, 2), ms(&[0, 0]));
        let mut b = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        assert_eq!(b.next(), Duration::MAX / 2 + Duration::from_secs(1));
        assert_eq!(b.next(), Duration::MAX);
        assert_eq!(b.next(), Duration::MAX);
    }
}
