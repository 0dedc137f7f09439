//! The logger: `/dev/kmsg` as PID 1, `/dev/console` until devtmpfs exists,
//! stderr for the command-line tools. Every line passes the secret guard,
//! then has its control characters escaped (`\n` → `\\n`, ESC → `\\u{1b}`):
//! a message is one record, whatever a target, a DHCP server or a config
//! server put into the text it carries, so none can forge a second line
//! ("netboot: … all good") or drive the console. The only newline is the
//! one ending each record.
//!
//! kmsg format (Documentation/ABI/testing/dev-kmsg): one record per write,
//! `<N>` = syslog priority; without a facility the kernel files it as
//! LOG_USER (printk.c devkmsg_write). Records are capped at
//! PRINTKRB_RECORD_MAX (1024 B; older kernels 1024 − 32), so we split longer
//! lines at character boundaries under [`KMSG_LINE_MAX`].
//!
//! Rate limit: unless `printk.devkmsg=on`, writes are limited per open file
//! to a burst of 10 per 5 s (printk.c devkmsg_open: `ratelimit_default_init`)
//! and the rest are silently dropped. A boot writes a bounded number of lines
//! (a few per step) that are worth keeping, so the kmsg file is reopened
//! every [`KMSG_BURST`] records; `printk.devkmsg=off` is respected (the open
//! fails with EPERM and we use the console).

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock, RwLock};

use crate::escape::escape_controls;
use crate::plan::secret::Redactor;
use crate::plan::LogLevel;

/// Longest kmsg record we write, prefix and newline included.
pub const KMSG_LINE_MAX: usize = 976;
/// Records per open of /dev/kmsg (the kernel's default ratelimit burst).
pub const KMSG_BURST: u32 = 10;
const TAG: &str = "netboot: ";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// PID 1: kmsg, falling back to the console; otherwise stderr.
    Auto,
    /// /dev/kmsg, falling back to /dev/console, then stderr.
    Kmsg,
    Stderr,
}

/// A `NETBOOT_LOG` value that is not a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevelError {
    pub value: String,
}

impl fmt::Display for LogLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NETBOOT_LOG={:?} is not one of {}",
            self.value,
            LogLevel::ALLOWED
        )
    }
}

impl std::error::Error for LogLevelError {}

/// `NETBOOT_LOG=LEVEL` for the tools: [`LogLevel::parse`], the parser of
/// `netboot.log=` too, with surrounding white space ignored (a value from a
/// shell or a unit file may carry some).
pub fn parse_log_level(value: &str) -> Result<LevelFilter, LogLevelError> {
    LogLevel::parse(value.trim())
        .map(LevelFilter::from)
        .ok_or_else(|| LogLevelError {
            value: value.to_string(),
        })
}

/// syslog priority for a level: err 3, warning 4, info 6, debug 7.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Largest prefix of `s` of at most `max` bytes ending on a char boundary.
fn split_at_char(s: &str, max: usize) -> (&str, &str) {
    if s.len() <= max {
        return (s, "");
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.split_at(end)
}

/// `msg` as it may be written: secrets replaced (before escaping, so a
/// secret holding a control character is still found), then every control
/// character escaped, newlines included: one message, one line.
fn one_line(msg: &str, redactor: &Redactor) -> String {
    escape_controls(&redactor.redact(msg)).into_owned()
}

/// kmsg records for one message: `<N>netboot: …\n`, split only where the
/// message is longer than a record. Secrets are replaced and control
/// characters escaped before splitting.
pub fn kmsg_records(level: Level, msg: &str, redactor: &Redactor) -> Vec<String> {
    let prefix = format!("<{}>{TAG}", syslog_priority(level));
    let room = KMSG_LINE_MAX - prefix.len() - 1;
    let msg = one_line(msg, redactor);
    let mut out = Vec::new();
    let mut rest = msg.as_str();
    loop {
        let (head, tail) = split_at_char(rest, room);
        out.push(format!("{prefix}{head}\n"));
        if tail.is_empty() {
            break;
        }
        rest = tail;
    }
    out
}

/// The console/stderr line: `netboot: LEVEL: msg`, secrets replaced and
/// control characters escaped.
pub fn text_lines(level: Level, msg: &str, redactor: &Redactor) -> String {
    format!("{TAG}{level}: {}\n", one_line(msg, redactor))
}

enum Sink {
    Kmsg { file: File, written: u32 },
    Console(File),
    Stderr,
}

fn open_w(path: &str) -> Option<File> {
    OpenOptions::new().write(true).open(path).ok()
}

impl Sink {
    fn open(target: LogTarget) -> Sink {
        let kmsg = match target {
            LogTarget::Stderr => false,
            LogTarget::Kmsg => true,
            LogTarget::Auto => rustix::process::getpid().is_init(),
        };
        if !kmsg {
            return Sink::Stderr;
        }
        if let Some(file) = open_w("/dev/kmsg") {
            return Sink::Kmsg { file, written: 0 };
        }
        match open_w("/dev/console") {
            Some(f) => Sink::Console(f),
            None => Sink::Stderr,
        }
    }
}

/// The `log::Log` implementation; see the module docs.
pub struct KLogger {
    level: RwLock<LevelFilter>,
    redactor: RwLock<Redactor>,
    sink: Mutex<Sink>,
    kmsg_wanted: bool,
}

impl KLogger {
    pub fn new(target: LogTarget, level: LevelFilter, secrets: Vec<String>) -> KLogger {
        let sink = Sink::open(target);
        let kmsg_wanted = !matches!(sink, Sink::Stderr) || target == LogTarget::Kmsg;
        KLogger {
            level: RwLock::new(level),
            redactor: RwLock::new(Redactor::new(secrets)),
            sink: Mutex::new(sink),
            kmsg_wanted,
        }
    }

    /// From now on also redact `secrets` (e.g. the CHAP secrets of a
    /// fetched config) and log at `level`.
    pub fn update(&self, level: LevelFilter, secrets: Vec<String>) {
        if let Ok(mut l) = self.level.write() {
            *l = level;
        }
        if let Ok(mut r) = self.redactor.write() {
            *r = r.with(secrets);
        }
    }

    fn write(&self, level: Level, msg: &str) {
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        let Ok(redactor) = self.redactor.read() else {
            return;
        };
        let redactor = &*redactor;
        // Before devtmpfs is mounted there is no /dev/kmsg: retry each time
        // (a failing open is cheap) so we move to kmsg as soon as it exists.
        if self.kmsg_wanted && matches!(*sink, Sink::Console(_) | Sink::Stderr) {
            if let Some(file) = open_w("/dev/kmsg") {
                *sink = Sink::Kmsg { file, written: 0 };
            }
        }
        match &mut *sink {
            Sink::Kmsg { file, written } => {
                for rec in kmsg_records(level, msg, redactor) {
                    if *written >= KMSG_BURST {
                        if let Some(f) = open_w("/dev/kmsg") {
                            *file = f;
                        }
                        *written = 0;
                    }
                    // One write() per record: kmsg takes each write as one record.
                    let _ = file.write(rec.as_bytes());
                    *written += 1;
                }
            }
            Sink::Console(f) => {
                let _ = f.write_all(text_lines(level, msg, redactor).as_bytes());
            }
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(text_lines(level, msg, redactor).as_bytes());
            }
        }
    }
}

impl Log for KLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.level.read().is_ok_and(|l| metadata.level() <= *l)
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            self.write(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Install the logger for the whole process. A second call does nothing
/// (the `log` crate allows one logger per process).
pub fn init(target: LogTarget, level: LevelFilter, secrets: Vec<String>) {
    let logger: &'static KLogger = Box::leak(Box::new(KLogger::new(target, level, secrets)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
        let _ = INSTALLED.set(logger);
    }
}

/// The logger [`init`] installed, for [`update`].
static INSTALLED: OnceLock<&'static KLogger> = OnceLock::new();

/// Change the installed logger's level and add secrets to redact (a
/// fetched config may bring both). Without [`init`] only the level moves.
pub fn update(level: LevelFilter, secrets: Vec<String>) {
    if let Some(l) = INSTALLED.get() {
        l.update(level, secrets);
    }
    log::set_max_level(level);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_with_exact_errors() {
        assert_eq!(parse_log_level("DEBUG"), Ok(LevelFilter::Debug));
        assert_eq!(parse_log_level("warning"), Ok(LevelFilter::Warn));
        assert_eq!(parse_log_level("off"), Ok(LevelFilter::Off));
        assert_eq!(parse_log_level(" trace\n"), Ok(LevelFilter::Trace));
        assert_eq!(
            parse_log_level("loud").unwrap_err().to_string(),
            r#"NETBOOT_LOG="loud" is not one of off, error, warn, warning, info, debug, trace"#
        );
    }

    #[test]
    fn kmsg_records_have_priority_tag_and_fit() {
        let r = Redactor::new(vec!["hunter2".into()]);
        assert_eq!(
            kmsg_records(Level::Error, "a\nb hunter2", &r),
            ["<3>netboot: a\\nb ***\n"]
        );
        assert_eq!(kmsg_records(Level::Warn, "", &r), ["<4>netboot: \n"]);
        assert_eq!(kmsg_records(Level::Info, "x", &r)[0], "<6>netboot: x\n");
        assert_eq!(kmsg_records(Level::Trace, "x", &r)[0], "<7>netboot: x\n");
        let long = "€".repeat(1000); // 3000 bytes, 3-byte chars
        let recs = kmsg_records(Level::Debug, &long, &r);
        assert!(recs.len() >= 4);
        assert!(recs
            .iter()
            .all(|x| x.len() <= KMSG_LINE_MAX && x.starts_with("<7>netboot: ")));
        let joined: String = recs
            .iter()
            .map(|x| &x["<7>netboot: ".len()..x.len() - 1])
            .collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn text_lines_redact() {
        let r = Redactor::new(vec!["hunter2".into()]);
        assert_eq!(
            text_lines(Level::Warn, "pw hunter2\nnext", &r),
            "netboot: WARN: pw ***\\nnext\n"
        );
        assert_eq!(text_lines(Level::Warn, "", &r), "netboot: WARN: \n");
    }

    /// Text a target, a DHCP server or a config server chose (a CHAP_A
    /// value, a TargetName, a host name, an abort message) reaches the log
    /// inside a message: its newline must not start a record of its own
    /// that reads like ours, nor its escape sequences reach the console.
    #[test]
    fn forged_lines_stay_inside_their_record() {
        let r = Redactor::new(vec!["s3cr\u{1}t".into()]);
        let forged = "login to t failed: unsupported CHAP_A 5\n<6>netboot: \
                      logged in to iqn.x, all good\r\u{1b}[2K secret s3cr\u{1}t";
        let recs = kmsg_records(Level::Warn, forged, &r);
        assert_eq!(
            recs,
            [
                "<4>netboot: login to t failed: unsupported CHAP_A 5\\n<6>netboot: \
              logged in to iqn.x, all good\\r\\u{1b}[2K secret ***\n"
            ]
        );
        let line = text_lines(
            Level::Warn,
            "portal 198.18.0.1:3260,1 t\n198.18.0.66:3260,1 evil",
            &r,
        );
        assert_eq!(
            line,
            "netboot: WARN: portal 198.18.0.1:3260,1 t\\n198.18.0.66:3260,1 evil\n"
        );
        for rec in recs.iter().chain([&line]) {
            assert_eq!(rec.matches('\n').count(), 1, "{rec:?}");
            assert!(!rec.contains('\u{1b}') && !rec.contains('\r'), "{rec:?}");
        }
    }
}
