//! Typed step errors: which step failed, whether trying again can help
//! (transient) or not (fatal), and the error itself with its whole chain.
//! The executor retries transient failures within the one deadline and
//! hands fatal ones to the failure policy at once.

use std::error::Error;
use std::fmt;

/// Whether a failure may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The network, the target or a server is not there yet (refused, no
    /// route, timeout, target 0x03xx): retry until the deadline.
    Transient,
    /// Nothing will change by trying again (wrong CHAP secret, unknown
    /// target, missing LUN, bad config): fail now.
    Fatal,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Fatal => "fatal",
        }
    }
}

/// An error that knows its [`ErrorKind`]. Most errors of the boot path are
/// fatal; the network and login ones say otherwise.
pub trait Classify {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Fatal
    }
}

/// A failed step: its name, the kind, and the typed error.
#[derive(Debug)]
pub struct StepError {
    pub step: &'static str,
    pub kind: ErrorKind,
    pub source: Box<dyn Error + 'static>,
}

impl StepError {
    pub fn new<E: Error + Classify + 'static>(step: &'static str, e: E) -> StepError {
        StepError {
            step,
            kind: e.kind(),
            source: Box::new(e),
        }
    }

    /// The error chain on one line: the error, then each `source()` not
    /// already spelled out in its parent's text.
    pub fn chain(&self) -> String {
        let mut text = self.source.to_string();
        let mut next = self.source.source();
        while let Some(e) = next {
            let s = e.to_string();
            if !text.contains(&s) {
                text.push_str(": ");
                text.push_str(&s);
            }
            next = e.source();
        }
        text
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} failed ({}): {}",
            self.step,
            self.kind.name(),
            self.chain()
        )
    }
}

impl Error for StepError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// A boot-level condition that is not some module's error (no root path,
/// iBFT asked for): a fixed text and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootError {
    pub text: String,
    pub kind: ErrorKind,
}

impl BootError {
    pub fn fatal(text: impl Into<String>) -> BootError {
        BootError {
            text: text.into(),
            kind: ErrorKind::Fatal,
        }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Error for BootError {}

impl Classify for BootError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

// The steps' own error types. Module loading, disk, root and mount
// failures do not heal by waiting once the step has run its own bounded
// wait: fatal.
impl Classify for crate::kmod::ModulesError {}
impl Classify for crate::disk::scsi::BlockError {}
impl Classify for crate::disk::resolve::ResolveError {}
impl Classify for super::pid1::Pid1Error {}
impl Classify for crate::iscsi::kernel::KernelError {}
impl Classify for crate::netlink::uevent::UeventError {}
// The network step waits for carrier and DHCP within the deadline itself;
// when it gives up, the deadline is spent.
impl Classify for crate::net::NetError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading /sys/x")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
    impl Classify for Outer {}

    #[test]
    fn chain_and_kind_in_one_line() {
        let e = StepError::new("disk.wait", Outer(std::io::Error::other("gone")));
        assert_eq!(
            e.to_string(),
            "step disk.wait failed (fatal): reading /sys/x: gone"
        );
        let b = StepError::new(
            "net.link",
            BootError {
                text: "no carrier on eth0".into(),
                kind: ErrorKind::Transient,
            },
        );
        assert_eq!(b.kind, ErrorKind::Transient);
        assert_eq!(b.chain(), "no carrier on eth0");
    }
}
