//! Reading a whole file with a cap. Every file the agent and the tools
//! read whole (`/proc/cmdline`, `netboot plan --cmdline-file`, the boot
//! report, the secrets file) has a size no real one exceeds; reading
//! `/dev/zero` or a runaway file must fail with a message naming the cap,
//! not grow until the allocation fails. A leaf: std only.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Why a capped read failed; the caller names the file.
#[derive(Debug)]
pub enum BoundedReadError {
    Io(std::io::Error),
    /// More than `cap` bytes: reading stopped at `cap + 1`.
    TooLarge {
        cap: u64,
    },
}

impl fmt::Display for BoundedReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundedReadError::Io(e) => e.fmt(f),
            BoundedReadError::TooLarge { cap } => write!(f, "longer than {cap} bytes"),
        }
    }
}

impl std::error::Error for BoundedReadError {}

/// The bytes of `reader`, at most `cap` of them: one byte more is an
/// error, so the work and the memory are bounded by the cap whatever the
/// source (`Read::take`).
pub fn read_to_end(reader: impl Read, cap: u64) -> Result<Vec<u8>, BoundedReadError> {
    let mut out = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(BoundedReadError::Io)?;
    if out.len() as u64 > cap {
        return Err(BoundedReadError::TooLarge { cap });
    }
    Ok(out)
}

/// The file at `path`, at most `cap` bytes ([`read_to_end`]).
pub fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, BoundedReadError> {
    let f = std::fs::File::open(path).map_err(BoundedReadError::Io)?;
    read_to_end(f, cap)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stops_one_byte_past_the_cap() {
        assert_eq!(read_to_end(&b"abc"[..], 3).unwrap(), b"abc");
        assert_eq!(read_to_end(&b""[..], 0).unwrap(), b"");
        let e = read_to_end(&b"abcd"[..], 3).unwrap_err();
        assert_eq!(e.to_string(), "longer than 3 bytes");
        // An endless source costs cap + 1 bytes, not all memory.
        let e = read_to_end(std::io::repeat(0), 1 << 20).unwrap_err();
        assert!(matches!(e, BoundedReadError::TooLarge { cap } if cap == 1 << 20));
        let e = read_file(Path::new("/nonexistent/x"), 1).unwrap_err();
        assert!(matches!(e, BoundedReadError::Io(_)), "{e}");
    }
}
