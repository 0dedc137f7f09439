//! Waiting on file descriptors until a deadline: the one poll(2) loop.
//!
//! Every socket the boot reads (rtnetlink, the DHCP packet socket,
//! NETLINK_ISCSI, the connector, uevents, RxRPC) waits on an absolute
//! deadline. Two things each hand-written loop had to get right are done
//! here once:
//!
//! - a signal (EINTR) does not end the wait early and does not restart the
//!   full timeout: the poll is retried with the time left;
//! - the time left becomes a `Timespec` without overflow or panic: rustix's
//!   `Timespec: TryFrom<Duration>` fails above `i64::MAX` seconds, which
//!   saturates here (ppoll(2) accepts any non-negative `tv_sec`; the kernel
//!   clamps it, fs/select.c `poll_select_set_timeout`).
//!
//! A deadline already past still polls once with a zero timeout, so data
//! that is ready is never reported as a timeout.

use rustix::event::{PollFd, PollFlags};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::time::Timespec;
use std::time::{Duration, Instant};

/// About a century: where [`deadline_after`] saturates. The monotonic clock
/// starts near boot, so `now + CENTURY` is always representable.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `left` as a poll timeout, saturating at `i64::MAX` seconds.
pub fn timespec(left: Duration) -> Timespec {
    Timespec::try_from(left).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

/// `Instant::now() + timeout`, saturating instead of panicking when that
/// is not representable (a caller's "wait forever" `Duration::MAX`).
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// Wait until `fd` reports one of `flags` (or an error or hang-up, which
/// poll(2) always reports) or `deadline` passes. `Ok(true)`: ready;
/// `Ok(false)`: the deadline passed first.
pub fn poll_until<Fd: AsFd>(fd: Fd, flags: PollFlags, deadline: Instant) -> Result<bool, Errno> {
    let mut fds = [PollFd::new(&fd, flags)];
    Ok(poll_fds_until(&mut fds, Some(deadline))? > 0)
}

/// Wait on several fds until one is ready or `deadline` passes (`None`: no
/// deadline). Returns how many are ready, 0 when the deadline passed; each
/// fd's `revents` says which.
pub fn poll_fds_until(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> Result<usize, Errno> {
    poll_loop(fds, deadline, Instant::now, rustix::event::poll)
}

/// The loop, with the clock and the syscall passed in so that the tests
/// can replay EINTR and a moving clock.
fn poll_loop<'fd>(
    fds: &mut [PollFd<'fd>],
    deadline: Option<Instant>,
    mut now: impl FnMut() -> Instant,
    mut sys_poll: impl FnMut(&mut [PollFd<'fd>], Option<&Timespec>) -> Result<usize, Errno>,
) -> Result<usize, Errno> {
    loop {
        let ts = deadline.map(|d| timespec(d.saturating_duration_since(now())));
        match sys_poll(fds, ts.as_ref()) {
            Err(Errno::INTR) => {
                // A signal. Retry with the time left; if there is none,
                // that is a timeout (a zero-timeout poll is not interrupted,
                // fs/select.c `do_poll`, but do not rely on it).
                if deadline.is_some_and(|d| now() >= d) {
                    return Ok(0);
                }
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn ms(n: u64) -> Option<Timespec> {
        Some(timespec(Duration::from_millis(n)))
    }

    #[test]
    fn timespec_saturates() {
        let t = timespec(Duration::new(3, 500));
        assert_eq!((t.tv_sec, t.tv_nsec), (3, 500));
        assert_eq!(timespec(Duration::MAX).tv_sec, i64::MAX);
        assert_eq!(timespec(Duration::MAX).tv_nsec, 0);
        assert_eq!(timespec(Duration::ZERO), Timespec::default());
        let d = deadline_after(Duration::MAX);
        assert!(d > Instant::now() + Duration::from_secs(3600));
        assert!(deadline_after(Duration::ZERO) <= Instant::now());
    }

    /// A clock that moves 10 ms per reading, and a poll that records its
    /// timeouts and replays `results`.
    fn run(
        deadline_ms: Option<u64>,
        results: Vec<Result<usize, Errno>>,
    ) -> (Result<usize, Errno>, Vec<Option<Timespec>>) {
        let t0 = Instant::now();
        let ticks = Cell::new(0u64);
        let now = || {
            ticks.set(ticks.get() + 1);
            t0 + Duration::from_millis(10 * (ticks.get() - 1))
        };
        let mut seen = Vec::new();
        let mut results = results.into_iter();
        let r = poll_loop(
            &mut [],
            deadline_ms.map(|ms| t0 + Duration::from_millis(ms)),
            now,
            |_, ts| {
                seen.push(ts.copied());
                results.next().unwrap_or(Ok(0))
            },
        );
        (r, seen)
    }

    #[test]
    fn eintr_is_retried_with_the_time_left() {
        let (r, seen) = run(Some(1000), vec![Err(Errno::INTR), Ok(1)]);
        assert_eq!(r, Ok(1));
        // Readings: 0 ms (first timeout), 10 ms (after EINTR), 20 ms.
        assert_eq!(seen, [ms(1000), ms(980)]);
    }

    #[test]
    fn eintr_after_the_deadline_is_a_timeout() {
        let (r, seen) = run(Some(5), vec![Err(Errno::INTR), Ok(1)]);
        assert_eq!(r, Ok(0));
        assert_eq!(seen, [ms(5)]);
    }

    #[test]
    fn past_deadline_polls_once_without_waiting() {
        let (r, seen) = run(Some(0), vec![Ok(1)]);
        assert_eq!(r, Ok(1));
        assert_eq!(seen, [ms(0)]);
    }

    #[test]
    fn no_deadline_and_errors() {
        let (r, seen) = run(None, vec![Err(Errno::INTR), Err(Errno::INTR), Ok(2)]);
        assert_eq!(r, Ok(2));
        assert_eq!(seen, [None, None, None]);
        let (r, seen) = run(Some(100), vec![Err(Errno::BADF)]);
        assert_eq!(r, Err(Errno::BADF));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn real_socket_times_out_then_becomes_ready() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(20);
        assert_eq!(poll_until(&a, PollFlags::IN, deadline), Ok(false));
        assert!(Instant::now() >= deadline);
        b.write_all(b"x").unwrap();
        assert_eq!(
            poll_until(&a, PollFlags::IN, deadline_after(Duration::from_secs(5))),
            Ok(true)
        );
        // Ready data wins over a deadline already past.
        assert_eq!(poll_until(&a, PollFlags::IN, start), Ok(true));
        let mut fds = [
            PollFd::new(&b, PollFlags::IN),
            PollFd::new(&a, PollFlags::IN),
        ];
        assert_eq!(poll_fds_until(&mut fds, None), Ok(1));
        assert!(fds[0].revents().is_empty());
        assert_eq!(fds[1].revents(), PollFlags::IN);
    }
}
