//! Randomness for identifiers that must differ between runs but are not
//! secrets (Rx epoch and connection ids, the events' ack cookie), drawn
//! without ever blocking the boot: under TCG the CRNG may take a second or
//! more to initialise, and a blocking `getrandom` is that long at PID 1.

use rustix::io;
use rustix::rand::{getrandom, GetRandomFlags};

/// A u32 from GRND_INSECURE (Linux ≥ 5.6), else GRND_NONBLOCK, else the
/// boot clock mixed with our pid.
pub fn unique_u32() -> u32 {
    unique_u32_from(
        |b, flags| getrandom(b, flags),
        crate::sys::clock::boottime_us,
        rustix::process::getpid().as_raw_nonzero().get() as u32,
    )
}

/// [`unique_u32`] with its sources passed in, so that tests can take the
/// fallback a CRNG-less guest takes. `clock` is read only if `random`
/// yields 4 bytes for neither flag (EINVAL from a kernel before 5.6 for
/// INSECURE, EAGAIN before the CRNG is ready for NONBLOCK, or a short read).
fn unique_u32_from(
    mut random: impl FnMut(&mut [u8; 4], GetRandomFlags) -> io::Result<usize>,
    clock: impl FnOnce() -> u64,
    pid: u32,
) -> u32 {
    let mut b = [0u8; 4];
    for flags in [GetRandomFlags::INSECURE, GetRandomFlags::NONBLOCK] {
        if let Ok(4) = random(&mut b, flags) {
            return u32::from_ne_bytes(b);
        }
    }
    clock_fallback(clock(), pid)
}

/// Both halves of the boot clock (µs) folded together, then the pid: two
/// boots differ as soon as they reach this point at a different µs.
fn clock_fallback(boottime_us: u64, pid: u32) -> u32 {
    (boottime_us as u32) ^ ((boottime_us >> 32) as u32) ^ pid
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    /// No CRNG: INSECURE unknown (EINVAL, Linux < 5.6), NONBLOCK not ready
    /// (EAGAIN). Both are tried, in that order, then the clock is used.
    #[test]
    fn without_a_crng_the_clock_and_pid_decide() {
        let mut tried = Vec::new();
        let v = unique_u32_from(
            |_, flags| {
                tried.push(flags);
                Err(if flags == GetRandomFlags::INSECURE {
                    Errno::INVAL
                } else {
                    Errno::AGAIN
                })
            },
            || 0x0000_0012_3456_789a,
            0x4242,
        );
        assert_eq!(tried, [GetRandomFlags::INSECURE, GetRandomFlags::NONBLOCK]);
        assert_eq!(v, 0x3456_789a ^ 0x12 ^ 0x4242);
    }

    /// A short read is no draw: it falls through to the next source.
    #[test]
    fn short_reads_fall_through_to_the_clock() {
        let v = unique_u32_from(|_, _| Ok(2), || 7, 1);
        assert_eq!(v, 7 ^ 1);
    }

    #[test]
    fn nonblock_is_used_when_insecure_is_unknown() {
        let v = unique_u32_from(
            |b, flags| {
                if flags == GetRandomFlags::INSECURE {
                    return Err(Errno::INVAL);
                }
                *b = [1, 2, 3, 4];
                Ok(4)
            },
            || unreachable!("the clock is not read when getrandom works"),
            1,
        );
        assert_eq!(v, u32::from_ne_bytes([1, 2, 3, 4]));
    }

    /// Each µs of boot time, in either half of the clock, and each pid gives
    /// another value: two boots that reach the draw at different times, or
    /// with different pids, get different ids.
    #[test]
    fn clock_fallback_moves_with_time_and_pid() {
        let t = 0x0000_0001_0000_0000u64;
        let base = clock_fallback(t, 1);
        for (what, v) in [
            ("1 us later", clock_fallback(t + 1, 1)),
            ("2^32 us later", clock_fallback(t + (1 << 32), 1)),
            ("another pid", clock_fallback(t, 2)),
        ] {
            assert_ne!(v, base, "{what}");
        }
    }
}
