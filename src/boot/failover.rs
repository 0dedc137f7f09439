//! Failover under one deadline: try every root path in order, round after
//! round, with capped exponential backoff between rounds, until one works,
//! every path has failed for good, or the boot's deadline passes.
//!
//! Pure: the clock and the sleep are injected ([`Clock`]) and an attempt is
//! a closure, so the policy is unit-tested without a network or a target.
//! The executor runs the real login through it.

use super::error::ErrorKind;
use crate::backoff::Backoff;
use std::fmt;
use std::time::{Duration, Instant};

/// Time as the failover loop sees it.
pub trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// How paths are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Pause after the first round in which every remaining path failed.
    pub initial_backoff: Duration,
    /// The pause doubles up to this cap: a target that comes up late is
    /// found within one cap of its start.
    pub max_backoff: Duration,
    /// Upper bound of one attempt (connect plus login); an attempt also
    /// never runs past the deadline.
    pub attempt_timeout: Duration,
    /// Attempts per path (`rd.iscsi.login_retry_max`); `None` = until the
    /// deadline.
    pub max_attempts: Option<u32>,
}

/// The default backoff: 0.25 s doubling to 4 s.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// What one attempt on one path is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the path (failover order).
    pub path: usize,
    /// 1-based attempt number on this path.
    pub number: u32,
    /// Time this attempt may take: min(attempt_timeout, time left).
    pub timeout: Duration,
}

/// Why the loop gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// `netboot.timeout` passed with paths still failing transiently.
    Deadline,
    /// Every path failed fatally or used up its attempts.
    NoPathLeft,
}

/// One path's record when the loop gave up.
#[derive(Debug)]
pub struct PathRecord<E> {
    pub attempts: u32,
    pub last: Option<(ErrorKind, E)>,
}

/// The loop gave up: why, and every path's last error.
#[derive(Debug)]
pub struct Exhausted<E> {
    pub why: GaveUp,
    pub paths: Vec<PathRecord<E>>,
    /// Time from the loop's start to giving up.
    pub after: Duration,
}

impl<E> Exhausted<E> {
    /// Fatal if any path failed fatally and none is merely late: the boot
    /// cannot succeed by trying again.
    pub fn kind(&self) -> ErrorKind {
        match self.why {
            GaveUp::Deadline => ErrorKind::Transient,
            GaveUp::NoPathLeft => ErrorKind::Fatal,
        }
    }
}

/// Run `attempt` over `n` paths until one succeeds (returns its index and
/// value) or the loop gives up. An error marked [`ErrorKind::Fatal`] takes
/// its path out of the rotation at once.
pub fn run<T, E>(
    n: usize,
    policy: &Policy,
    deadline: Instant,
    clock: &mut dyn Clock,
    mut attempt: impl FnMut(Attempt) -> Result<T, (ErrorKind, E)>,
) -> Result<(usize, T), Exhausted<E>> {
    let start = clock.now();
    let mut paths: Vec<PathRecord<E>> = (0..n)
        .map(|_| PathRecord {
            attempts: 0,
            last: None,
        })
        .collect();
    let mut out = vec![false; n];
    let mut backoff = Backoff::new(policy.initial_backoff, policy.max_backoff);
    let give_up = |why, paths, clock: &dyn Clock| Exhausted {
        why,
        paths,
        after: clock.now().saturating_duration_since(start),
    };
    loop {
        for i in 0..n {
            if out[i] {
                continue;
            }
            let left = deadline.saturating_duration_since(clock.now());
            if left.is_zero() {
                return Err(give_up(GaveUp::Deadline, paths, clock));
            }
            let rec = &mut paths[i];
            rec.attempts += 1;
            let a = Attempt {
                path: i,
                number: rec.attempts,
                timeout: policy.attempt_timeout.min(left),
            };
            match attempt(a) {
                Ok(v) => return Ok((i, v)),
                Err((kind, e)) => {
                    rec.last = Some((kind, e));
                    let capped = policy.max_attempts.is_some_and(|m| rec.attempts >= m);
                    if kind == ErrorKind::Fatal || capped {
                        out[i] = true;
                    }
                }
            }
        }
        if out.iter().all(|o| *o) {
            return Err(give_up(GaveUp::NoPathLeft, paths, clock));
        }
        let left = deadline.saturating_duration_since(clock.now());
        if left.is_zero() {
            return Err(give_up(GaveUp::Deadline, paths, clock));
        }
        clock.sleep(backoff.next().min(left));
    }
}

/// `Duration` as `1.5 s` for error lines.
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{} s", ms / 1000)
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::cell::Cell;
    use std::rc::Rc;

    /// A clock that moves when slept on, or when an attempt "takes" time
    /// through the shared cell.
    struct Fake {
        t: Rc<Cell<Instant>>,
        slept: Vec<Duration>,
    }

    impl Clock for Fake {
        fn now(&self) -> Instant {
            self.t.get()
        }
        fn sleep(&mut self, d: Duration) {
            self.slept.push(d);
            self.t.set(self.t.get() + d);
        }
    }

    fn policy(max_attempts: Option<u32>) -> Policy {
        Policy {
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            attempt_timeout: Duration::from_secs(5),
            max_attempts,
        }
    }

    fn fake() -> Fake {
        Fake {
            t: Rc::new(Cell::new(Instant::now())),
            slept: Vec::new(),
        }
    }

    #[test]
    fn a_late_target_is_found_within_one_backoff_cap_of_coming_up() {
        let mut c = fake();
        let t = c.t.clone();
        let t0 = t.get();
        let up = t0 + Duration::from_secs(30);
        let deadline = t0 + Duration::from_secs(120);
        let (i, when) = run(1, &policy(None), deadline, &mut c, |_| {
            // A refused connect costs 1 ms.
            t.set(t.get() + Duration::from_millis(1));
            if t.get() >= up {
                Ok(t.get())
            } else {
                Err((ErrorKind::Transient, "refused"))
            }
        })
        .unwrap();
        assert_eq!(i, 0);
        let late = when.saturating_duration_since(up);
        assert!(
            late <= MAX_BACKOFF,
            "found {late:?} after the target came up"
        );
    }

    #[test]
    fn a_black_holed_first_path_costs_one_attempt_timeout() {
        let mut c = fake();
        let t = c.t.clone();
        let t0 = t.get();
        let deadline = t0 + Duration::from_secs(120);
        let (i, ()) = run(2, &policy(None), deadline, &mut c, |a| {
            if a.path == 0 {
                t.set(t.get() + a.timeout);
                Err((ErrorKind::Transient, "timed out"))
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(i, 1);
        assert_eq!(t.get() - t0, Duration::from_secs(5));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_never_sleeps_past_the_deadline() {
        let mut c = fake();
        let deadline = c.t.get() + Duration::from_secs(20);
        let r: Result<(usize, ()), _> = run(1, &policy(None), deadline, &mut c, |_| {
            Err((ErrorKind::Transient, "refused"))
        });
        let e = r.unwrap_err();
        assert_eq!(e.why, GaveUp::Deadline);
        let ms: Vec<u128> = c.slept.iter().map(|d| d.as_millis()).collect();
        // 0.25+0.5+1+2 = 3.75, then 4 s each: 7.75, 11.75, 15.75, 19.75, and
        // the last pause is cut to the 0.25 s left.
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 4000, 4000, 4000, 250]);
        assert_eq!(e.after, Duration::from_secs(20));
        assert_eq!(e.paths[0].attempts, 9);
        assert_eq!(e.kind(), ErrorKind::Transient);
    }

    #[test]
    fn every_path_is_tried_in_order_each_round() {
        let mut c = fake();
        let deadline = c.t.get() + Duration::from_secs(1);
        let mut seen = Vec::new();
        let _ = run::<(), _>(3, &policy(None), deadline, &mut c, |a| {
            seen.push((a.path, a.number));
            Err((ErrorKind::Transient, ()))
        });
        assert_eq!(
            seen,
            [
                (0, 1),
                (1, 1),
                (2, 1),
                (0, 2),
                (1, 2),
                (2, 2),
                (0, 3),
                (1, 3),
                (2, 3)
            ]
        );
    }

    #[test]
    fn a_fatal_error_takes_the_path_out_and_the_next_one_boots() {
        let mut c = fake();
        let deadline = c.t.get() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let r = run(2, &policy(None), deadline, &mut c, |a| {
            seen.push(a.path);
            match (a.path, a.number) {
                (0, _) => Err((ErrorKind::Fatal, "wrong secret")),
                (1, 1) => Err((ErrorKind::Transient, "refused")),
                _ => Ok("up"),
            }
        });
        assert_eq!(r.unwrap(), (1, "up"));
        assert_eq!(
            seen,
            [0, 1, 1],
            "path 0 is not retried after its fatal error"
        );
    }

    #[test]
    fn all_fatal_fails_at_once_without_sleeping() {
        let mut c = fake();
        let deadline = c.t.get() + Duration::from_secs(60);
        let e = run::<(), _>(2, &policy(None), deadline, &mut c, |a| {
            Err((ErrorKind::Fatal, a.path))
        })
        .unwrap_err();
        assert_eq!(e.why, GaveUp::NoPathLeft);
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(c.slept.is_empty());
        let last: Vec<_> = e
            .paths
            .iter()
            .map(|p| p.last.as_ref().map(|l| l.1))
            .collect();
        assert_eq!(last, [Some(0), Some(1)]);
    }

    #[test]
    fn login_retry_max_caps_attempts_per_path() {
        let mut c = fake();
        let deadline = c.t.get() + Duration::from_secs(600);
        let e = run::<(), _>(2, &policy(Some(3)), deadline, &mut c, |_| {
            Err((ErrorKind::Transient, ()))
        })
        .unwrap_err();
        assert_eq!(e.why, GaveUp::NoPathLeft);
        assert_eq!(
            e.paths.iter().map(|p| p.attempts).collect::<Vec<_>>(),
            [3, 3]
        );
        assert_eq!(c.slept.len(), 2);
    }

    #[test]
    fn attempt_timeout_is_bounded_by_what_is_left() {
        let mut c = fake();
        let deadline = c.t.get() + Duration::from_millis(1300);
        let mut timeouts = Vec::new();
        let _ = run::<(), _>(1, &policy(None), deadline, &mut c, |a| {
            timeouts.push(a.timeout.as_millis());
            Err((ErrorKind::Transient, ()))
        });
        // 1300, then after 250: 1050, after 500 more: 550; then 1 s pause is
        // cut to the 550 ms left and the deadline has passed.
        assert_eq!(timeouts, [1300, 1050, 550]);
    }

    #[test]
    fn secs_format() {
        assert_eq!(Secs(Duration::from_secs(20)).to_string(), "20 s");
        assert_eq!(Secs(Duration::from_millis(1500)).to_string(), "1.5 s");
    }
}
