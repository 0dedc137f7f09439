//! Randomness for identifiers that must differ between runs but are not
//! secrets (Rx epoch and connection ids, the events' ack cookie), drawn
//! without ever blocking the boot: under TCG the CRNG may take a second or
//! more to initialise, and a blocking `getrandom` is that long at PID 1.

use rustix::rand::{getrandom, GetRandomFlags};

/// A u32 from GRND_INSECURE (Linux ≥ 5.6), else GRND_NONBLOCK, else the
/// boot clock mixed with our pid.
pub fn unique_u32() -> u32 {
    let mut b = [0u8; 4];
    for flags in [GetRandomFlags::INSECURE, GetRandomFlags::NONBLOCK] {
        if let Ok(4) = getrandom(&mut b, flags) {
            return u32::from_ne_bytes(b);
        }
    }
    let t = crate::events::boottime_us();
    (t as u32) ^ ((t >> 32) as u32) ^ rustix::process::getpid().as_raw_nonzero().get() as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ() {
        let v: Vec<u32> = (0..8).map(|_| super::unique_u32()).collect();
        assert!(v.windows(2).any(|w| w[0] != w[1]));
    }
}
