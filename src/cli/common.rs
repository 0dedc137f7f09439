//! Argument handling shared by every command of both binaries.
//!
//! One table per command ([`Spec`]) drives parsing, `--help` and the usage
//! hint, so the help cannot list an option the parser does not know, and no
//! command spells `-h` itself. Arguments arrive as `OsString`
//! (`std::env::args_os`): a byte string that is not UTF-8 is an error naming
//! the argument where text is needed ([`text`]), and passes untouched where a
//! path will do. Numbers are parsed with a cap ([`number`], [`seconds`]),
//! and anything echoed back is escaped ([`quote_os`], [`escape_controls`]),
//! so an error stays one line whatever was typed.

use super::Exit;
use crate::iscsi::channel::{ChannelError, Deadline, TcpChannel};
use crate::iscsi::connect::{establish, Connector, Established, RetryPolicy};
use crate::iscsi::default_initiator_name;
use crate::iscsi::login::{LoginConfig, Portal, SessionType};
use crate::plan::Chap;
use std::ffi::{OsStr, OsString};
use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;
use std::time::Duration;

/// Default connect / receive timeout of the iSCSI tools, in seconds.
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
/// Bounds of every `--timeout S` (and other seconds) option: 1 ms .. 1 day,
/// the same range as `netboot.timeout=` on the kernel command line.
pub const TIMEOUT_MIN_SECS: f64 = 0.001;
pub const TIMEOUT_MAX_SECS: f64 = 86_400.0;
/// Longest echoed value, in characters of its escaped form; the rest is
/// elided (`…`), so an error stays one readable line for hostile input.
const QUOTE_MAX: usize = 120;

/// One option of a command, as `--help` shows it and the parser knows it.
pub struct Opt {
    /// `--timeout`.
    pub name: &'static str,
    /// Placeholder of its value (`S`); `None` for a flag.
    pub value: Option<&'static str>,
    /// What it does, its default and its range. `\n` continues the text on
    /// the next line, aligned.
    pub help: &'static str,
}

/// A command's interface: what `--help` prints and what [`Spec::parse`]
/// accepts. `-h`/`--help` are implied.
pub struct Spec {
    /// As typed, and the prefix of every message: `netboot events`.
    pub prog: &'static str,
    /// Arguments after `prog`, for the usage line.
    pub synopsis: &'static str,
    /// One line: what the command does.
    pub summary: &'static str,
    /// Printed after the options: positionals, output, exit codes. May be
    /// empty.
    pub about: &'static str,
    pub opts: &'static [Opt],
}

/// One parsed argument. Option names are the `&'static str` of the table,
/// so commands match them as literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Flag(&'static str),
    Value(&'static str, &'a OsStr),
    Pos(&'a OsStr),
}

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// `-h` or `--help`: print the help, exit 0.
    Help,
    /// One line without the program prefix; exit 2 with a usage hint.
    Usage(String),
}

impl From<String> for ArgError {
    fn from(m: String) -> Self {
        ArgError::Usage(m)
    }
}

impl From<&str> for ArgError {
    fn from(m: &str) -> Self {
        ArgError::Usage(m.to_string())
    }
}

/// Iterator over a command's arguments: options looked up in the table
/// (`--name VALUE` or `--name=VALUE`), `--` ends the options, `-` and
/// anything not starting with `-` is positional.
pub struct Parser<'s, 'a> {
    spec: &'s Spec,
    args: std::slice::Iter<'a, OsString>,
    only_positional: bool,
    /// `-h`/`--help` stands somewhere in the arguments: it is the first and
    /// only item, so help wins over an error before it.
    help: bool,
}

impl<'a> Iterator for Parser<'_, 'a> {
    type Item = Result<Arg<'a>, ArgError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.help {
            self.help = false;
            self.args = [].iter();
            return Some(Err(ArgError::Help));
        }
        loop {
            let os = self.args.next()?;
            let bytes = os.as_bytes();
            if self.only_positional || bytes == b"-" || !bytes.starts_with(b"-") {
                return Some(Ok(Arg::Pos(os.as_os_str())));
            }
            if bytes == b"--" {
                self.only_positional = true;
                continue;
            }
            return Some(self.option(os));
        }
    }
}

impl<'a> Parser<'_, 'a> {
    fn option(&mut self, os: &'a OsStr) -> Result<Arg<'a>, ArgError> {
        // Split `--name=value` on the bytes, so a value that is not UTF-8
        // still reaches the command (which decides whether it needs text).
        let bytes = os.as_bytes();
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(i) if bytes.starts_with(b"--") => (
                bytes.get(..i).unwrap_or(bytes),
                bytes.get(i + 1..).map(OsStr::from_bytes),
            ),
            _ => (bytes, None),
        };
        if inline.is_none() && matches!(name, b"-h" | b"--help") {
            return Err(ArgError::Help);
        }
        // Only the name is ever echoed: the value of a mistyped option may be
        // a command line with a CHAP secret.
        let Some(opt) = self.spec.opts.iter().find(|o| o.name.as_bytes() == name) else {
            return Err(format!("unknown option {}", quote_os(OsStr::from_bytes(name))).into());
        };
        match (opt.value, inline) {
            (None, None) => Ok(Arg::Flag(opt.name)),
            (None, Some(_)) => Err(format!("{} takes no value", opt.name).into()),
            (Some(_), Some(v)) => Ok(Arg::Value(opt.name, v)),
            (Some(ph), None) => match self.args.next() {
                Some(v) => Ok(Arg::Value(opt.name, v.as_os_str())),
                None => Err(format!("{} needs a value ({ph})", opt.name).into()),
            },
        }
    }
}

impl Spec {
    pub fn parse<'s, 'a>(&'s self, args: &'a [OsString]) -> Parser<'s, 'a> {
        let scan = |help| Parser {
            spec: self,
            args: args.iter(),
            only_positional: false,
            help,
        };
        // The same walk, so a `--help` that is the value of an option
        // (`--cmdline --help`) or follows `--` does not count.
        let help = scan(false).any(|a| a == Err(ArgError::Help));
        scan(help)
    }

    /// `usage: PROG SYNOPSIS`.
    pub fn usage(&self) -> String {
        format!("usage: {} {}", self.prog, self.synopsis)
    }

    /// The full `--help` text: summary, usage, options, about.
    pub fn help(&self) -> String {
        let help_opt = Opt {
            name: "-h, --help",
            value: None,
            help: "print this help and exit",
        };
        let label = |o: &Opt| match o.value {
            Some(v) => format!("{} {v}", o.name),
            None => o.name.to_string(),
        };
        let opts: Vec<&Opt> = self.opts.iter().chain([&help_opt]).collect();
        let width = opts.iter().map(|o| label(o).len()).max().unwrap_or(0);
        let mut s = format!(
            "{}: {}\n\n{}\n\noptions:\n",
            self.prog,
            self.summary,
            self.usage()
        );
        for o in opts {
            let mut lines = o.help.lines();
            let first = lines.next().unwrap_or("");
            let _ = writeln!(s, "  {:<width$}  {first}", label(o));
            for l in lines {
                let _ = writeln!(s, "  {:<width$}  {l}", "");
            }
        }
        if !self.about.is_empty() {
            let _ = write!(s, "\n{}", self.about);
            if !self.about.ends_with('\n') {
                s.push('\n');
            }
        }
        s
    }

    /// Print a usage error (`PROG: message` and the usage line) to stderr.
    pub fn usage_error(&self, msg: impl Display) -> i32 {
        eprintln!(
            "{}: {}\n{} (--help for details)",
            self.prog,
            escape_controls(&msg.to_string()),
            self.usage()
        );
        Exit::Usage as i32
    }

    /// What a parse error means: help on stdout (exit 0), or the error and
    /// usage on stderr (exit 2).
    pub fn exit(&self, e: ArgError) -> i32 {
        match e {
            ArgError::Help => print_stdout(&self.help()),
            ArgError::Usage(m) => self.usage_error(m),
        }
    }
}

/// Write `text` to stdout; exit code 0, or 1 when stdout cannot be written
/// (`> /dev/full`), where `print!` would panic.
pub fn print_stdout(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Exit::Ok as i32,
        Err(e) => {
            eprintln!("netboot: cannot write to stdout: {e}");
            Exit::Failure as i32
        }
    }
}

/// The error for an argument the command did not expect: a positional
/// (quoted, escaped) or, if a table lists an option its command does not
/// handle, that option.
pub fn unexpected(a: Arg<'_>) -> ArgError {
    match a {
        Arg::Pos(p) => format!("unexpected argument {}", quote_os(p)).into(),
        Arg::Flag(n) | Arg::Value(n, _) => format!("unknown option {}", quote(n)).into(),
    }
}

/// `s` with every control character escaped (`\n`, `\u{1b}`…), so text
/// echoed from the user or a peer cannot break a line or drive the terminal
/// (the one helper, in the leaf [`crate::escape`], which the logger and the
/// events renderers use too).
pub use crate::escape::escape_controls;

/// `v` quoted for a message: `"…"`, with Rust's escapes for `"`, `\` and
/// control characters, `\xNN` for bytes that are not UTF-8, and elided past
/// [`QUOTE_MAX`] characters.
pub fn quote_os(v: &OsStr) -> String {
    let mut out = String::from("\"");
    let mut n = 0;
    for chunk in v.as_bytes().utf8_chunks() {
        // As `{:?}` of a str: `'` stays, `"` `\` and controls are escaped.
        let valid = chunk.valid().chars().map(|c| match c {
            '\'' => c.to_string(),
            _ => c.escape_debug().to_string(),
        });
        let invalid = chunk.invalid().iter().map(|b| format!("\\x{b:02X}"));
        for piece in valid.chain(invalid) {
            if n == QUOTE_MAX {
                out.push_str("\"…");
                return out;
            }
            n += 1;
            out.push_str(&piece);
        }
    }
    out.push('"');
    out
}

/// [`quote_os`] for text.
pub fn quote(v: &str) -> String {
    quote_os(OsStr::new(v))
}

/// The argument as text, or `WHAT "…": not valid UTF-8`.
pub fn text<'a>(what: &str, v: &'a OsStr) -> Result<&'a str, String> {
    v.to_str()
        .ok_or_else(|| format!("{what} {}: not valid UTF-8", quote_os(v)))
}

/// [`text`] for an argument that may carry CHAP credentials (a root path,
/// a portal): only what follows its last `@` is shown (`"***@host…"`), and
/// that masked too, by the argument's `Masker` (a secret may hold `@`);
/// without `@` nothing is shown, since the whole value may be
/// `USER:SECRET` with its `@HOST` forgotten. (Valid text goes to the
/// command's parser, whose errors are masked the same way.)
/// `reading` is the argument's masker (`Masker::for_root_path`,
/// `Masker::for_portal`).
pub fn text_secret<'a>(
    what: &str,
    v: &'a OsStr,
    reading: fn(&str) -> crate::cmdline::mask::Masker,
) -> Result<&'a str, String> {
    v.to_str().ok_or_else(|| {
        let b = v.as_bytes();
        match b.iter().rposition(|&c| c == b'@') {
            Some(at) => {
                let rest = quote_os(OsStr::from_bytes(b.get(at + 1..).unwrap_or_default()));
                reading(&String::from_utf8_lossy(b)).mask(&format!(
                    "{what} \"***@{}: not valid UTF-8",
                    rest.get(1..).unwrap_or_default()
                ))
            }
            None => format!("{what} is not valid UTF-8 (not shown: it may hold a secret)"),
        }
    })
}

/// A decimal number within `min..=max`; the error names option and value.
pub fn number<T>(name: &str, v: &OsStr, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let t = text(name, v)?;
    t.parse::<T>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{name} {}: expected a number {min}..{max}", quote(t)))
}

/// Seconds, fractions allowed, within [`TIMEOUT_MIN_SECS`]..=[`TIMEOUT_MAX_SECS`].
/// NaN, infinities and `1e19` are errors, never a `Duration` panic.
pub fn seconds(name: &str, v: &OsStr) -> Result<Duration, String> {
    let t = text(name, v)?;
    t.parse::<f64>()
        .ok()
        .filter(|s| (TIMEOUT_MIN_SECS..=TIMEOUT_MAX_SECS).contains(s))
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!(
                "{name} {}: expected seconds {TIMEOUT_MIN_SECS}..{TIMEOUT_MAX_SECS}",
                quote(t)
            )
        })
}

/// Options of the iSCSI tools (`discover`, `probe`).
pub const TOOL_OPTS: &[Opt] = &[
    Opt {
        name: "--timeout",
        value: Some("S"),
        help: "deadline of the whole command (connect, login, every SCSI\n\
               command or text exchange, logout), in seconds,\n\
               0.001..86400, fractions allowed (default 10)",
    },
    Opt {
        name: "--initiator",
        value: Some("IQN"),
        help: "initiator name, iqn./eui./naa., at most 223 bytes\n\
               (default iqn.2026-11.org.netboot:HOSTNAME)",
    },
    Opt {
        name: "--json",
        value: None,
        help: "print JSON instead of text (default text)",
    },
];

pub struct ToolArgs {
    pub timeout: Duration,
    pub initiator: Option<String>,
    pub json: bool,
    pub positional: Vec<OsString>,
}

/// [`TOOL_OPTS`], then positionals.
pub fn parse(spec: &Spec, args: &[OsString]) -> Result<ToolArgs, ArgError> {
    let mut out = ToolArgs {
        timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
        initiator: None,
        json: false,
        positional: Vec::new(),
    };
    for a in spec.parse(args) {
        match a? {
            Arg::Flag("--json") => out.json = true,
            Arg::Value("--timeout", v) => out.timeout = seconds("--timeout", v)?,
            Arg::Value("--initiator", v) => out.initiator = Some(iscsi_name("--initiator", v)?),
            Arg::Pos(p) => out.positional.push(p.to_os_string()),
            a => return Err(unexpected(a)),
        }
    }
    Ok(out)
}

/// RFC 7143 §4.2.7: an `iqn.`, `eui.` or `naa.` name of at most 223 bytes,
/// without spaces or control characters (the rule of `netboot.initiator=`).
fn iscsi_name(name: &str, v: &OsStr) -> Result<String, String> {
    let t = text(name, v)?;
    let prefix = t.get(..4).map(str::to_ascii_lowercase);
    let ok = matches!(prefix.as_deref(), Some("iqn." | "eui." | "naa."))
        && t.len() > 4
        && t.len() <= crate::cmdline::rootpath::MAX_NAME_LEN
        && !t.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "{name} {}: expected an iqn., eui. or naa. name of at most {} bytes without spaces",
            quote(t),
            crate::cmdline::rootpath::MAX_NAME_LEN
        ))
    }
}

/// Plain TCP connections for the userspace tools; the run's deadline
/// bounds each connect and everything on the channel after it.
pub struct TcpConnector {
    pub timeout: Duration,
    pub deadline: Deadline,
}

impl Connector for TcpConnector {
    type Channel = TcpChannel;
    fn connect(&mut self, portal: &Portal) -> Result<TcpChannel, ChannelError> {
        TcpChannel::connect_by(portal, self.timeout, self.deadline)
    }
}

/// `--initiator`, or the default IQN derived from the host name.
pub fn initiator(a: &ToolArgs) -> String {
    a.initiator.clone().unwrap_or_else(default_initiator_name)
}

/// Connect and log in for a tool. Errors: the ISID could not be drawn, or
/// connect/login failed (the error already names target and portal).
pub fn login(
    a: &ToolArgs,
    initiator: &str,
    portal: &Portal,
    target: Option<&str>,
    chap: Option<Chap>,
) -> Result<Established<TcpChannel>, Box<dyn std::error::Error>> {
    let kind = if target.is_some() {
        SessionType::Normal
    } else {
        SessionType::Discovery
    };
    let mut cfg = LoginConfig::new(initiator, target, kind);
    cfg.chap = chap;
    cfg.random_isid()?;
    // `--timeout` is the deadline of the whole command: it starts here and
    // travels with the channel into the session (probe, discover).
    let deadline = Deadline::after(a.timeout);
    let mut conn = TcpConnector {
        timeout: a.timeout,
        deadline,
    };
    // A tool run by hand fails fast on connect errors; target-side transient
    // errors and redirects are still handled (RetryPolicy::default()), and a
    // backoff never sleeps past the deadline.
    Ok(establish(
        &mut conn,
        portal,
        &cfg,
        &RetryPolicy::default(),
        &mut |pause| std::thread::sleep(pause.min(deadline.left())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::COMMANDS;
    use crate::cmdline::mask::Masker;
    use std::borrow::Cow;

    static T: Spec = Spec {
        prog: "netboot t",
        synopsis: "[--flag] [--val V] ARG",
        summary: "a test command",
        about: "",
        opts: &[
            Opt {
                name: "--flag",
                value: None,
                help: "a flag",
            },
            Opt {
                name: "--val",
                value: Some("V"),
                help: "a value\nsecond line",
            },
        ],
    };

    fn os(v: &[&[u8]]) -> Vec<OsString> {
        v.iter()
            .map(|b| OsStr::from_bytes(b).to_os_string())
            .collect()
    }

    /// Every argument as the parser sees it, or the error that stopped it.
    fn parsed(v: &[&[u8]]) -> Parsed {
        let args = os(v);
        T.parse(&args)
            .map(|a| {
                a.map(|a| match a {
                    Arg::Flag(n) => n.to_string(),
                    Arg::Value(n, v) => format!("{n}={}", quote_os(v)),
                    Arg::Pos(p) => format!("pos {}", quote_os(p)),
                })
            })
            .collect()
    }

    type Parsed = Result<Vec<String>, ArgError>;

    fn usage(m: &str) -> Parsed {
        Err(ArgError::Usage(m.to_string()))
    }

    #[test]
    fn parser_table() {
        let ok = |v: &[&str]| Ok(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let cases: &[(&[&[u8]], Parsed)] = &[
            (&[], ok(&[])),
            (&[b"--flag", b"a"], ok(&["--flag", "pos \"a\""])),
            (
                &[b"--val", b"1", b"--val=2"],
                ok(&["--val=\"1\"", "--val=\"2\""]),
            ),
            (&[b"--val="], ok(&["--val=\"\""])),
            // A value is taken as it comes, even one that looks like an option.
            (&[b"--val", b"--flag"], ok(&["--val=\"--flag\""])),
            (&[b"--val", b"\xff"], ok(&["--val=\"\\xFF\""])),
            (
                &[b"--", b"--flag", b"-h"],
                ok(&["pos \"--flag\"", "pos \"-h\""]),
            ),
            (&[b"-", b"\xfe-"], ok(&["pos \"-\"", "pos \"\\xFE-\""])),
            (&[b"a", b"-h", b"--bogus"], Err(ArgError::Help)),
            (&[b"--help"], Err(ArgError::Help)),
            // Help wins over an error before it, but not as a value.
            (&[b"--bogus", b"--flag=1", b"-h"], Err(ArgError::Help)),
            (&[b"--val", b"-h"], ok(&["--val=\"-h\""])),
            (
                &[b"--val", b"-h", b"--bogus"],
                usage("unknown option \"--bogus\""),
            ),
            // The value of a mistyped option is never echoed.
            (&[b"--vla=user:secret@h"], usage("unknown option \"--vla\"")),
            (&[b"-x"], usage("unknown option \"-x\"")),
            (&[b"--\xff\x1b"], usage("unknown option \"--\\xFF\\u{1b}\"")),
            (&[b"--help=1"], usage("unknown option \"--help\"")),
            (&[b"--flag=1"], usage("--flag takes no value")),
            (&[b"--val"], usage("--val needs a value (V)")),
        ];
        for (args, want) in cases {
            assert_eq!(&parsed(args), want, "{args:?}");
        }
    }

    #[test]
    fn quote_escapes_and_elides() {
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"plain text", r#""plain text""#),
            (b"it's \"q\" \\", r#""it's \"q\" \\""#),
            (b"a\nb\tc\x1b[31m", r#""a\nb\tc\u{1b}[31m""#),
            (b"caf\xc3\xa9 \xff\xfe", r#""café \xFF\xFE""#),
            // A truncated UTF-8 sequence is one invalid chunk of bytes.
            (b"\xe2\x82", r#""\xE2\x82""#),
        ];
        for (raw, want) in cases {
            assert_eq!(quote_os(OsStr::from_bytes(raw)), *want, "{raw:?}");
        }
        let long = "x".repeat(QUOTE_MAX + 1);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(QUOTE_MAX)));
        assert_eq!(quote(&long[1..]), format!("\"{}\"", "x".repeat(QUOTE_MAX)));
        // An escape is never cut in half.
        let bytes = [b'\xff'; QUOTE_MAX + 5];
        assert_eq!(
            quote_os(OsStr::from_bytes(&bytes)),
            format!("\"{}\"…", "\\xFF".repeat(QUOTE_MAX))
        );
    }

    #[test]
    fn escape_controls_only_touches_controls() {
        assert!(matches!(
            escape_controls("a \"b\" é"),
            Cow::Borrowed("a \"b\" é")
        ));
        assert_eq!(
            escape_controls("a\nb\r\u{7f}\u{85}é"),
            "a\\nb\\r\\u{7f}\\u{85}é"
        );
    }

    #[test]
    fn text_names_the_argument() {
        let v = OsStr::from_bytes(b"a\xffb");
        assert_eq!(
            text("--mac", v),
            Err("--mac \"a\\xFFb\": not valid UTF-8".into())
        );
        assert_eq!(text("--mac", OsStr::new("ok")), Ok("ok"));
        let secret = OsStr::from_bytes(b"iscsi:u:pw\xff@x@h\xfe::::iqn.x");
        assert_eq!(
            text_secret("ROOT-PATH", secret, Masker::for_root_path),
            Err("ROOT-PATH \"***@h\\xFE::::iqn.x\": not valid UTF-8".into())
        );
        assert_eq!(
            text_secret(
                "portal",
                OsStr::from_bytes(b"user:S3cret\xff"),
                Masker::for_portal
            ),
            Err("portal is not valid UTF-8 (not shown: it may hold a secret)".into())
        );
    }

    #[test]
    fn numbers_and_seconds_are_capped() {
        let n = |v: &str| number::<u32>("--n", OsStr::new(v), 1, 100);
        assert_eq!(n("1"), Ok(1));
        assert_eq!(n("100"), Ok(100));
        for bad in [
            "0",
            "101",
            "-1",
            "1.5",
            "",
            " 1",
            "0x10",
            "99999999999999999999",
        ] {
            assert_eq!(
                n(bad),
                Err(format!("--n {}: expected a number 1..100", quote(bad))),
                "{bad:?}"
            );
        }
        let s = |v: &str| seconds("--timeout", OsStr::new(v));
        assert_eq!(s("0.001"), Ok(Duration::from_millis(1)));
        assert_eq!(s("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(s("86400"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "0",
            "0.0009",
            "86400.001",
            "1e19",
            "-1",
            "nan",
            "inf",
            "-inf",
            "",
            "5s",
            "1e400",
        ] {
            assert_eq!(
                s(bad),
                Err(format!(
                    "--timeout {}: expected seconds 0.001..86400",
                    quote(bad)
                )),
                "{bad:?}"
            );
        }
        assert_eq!(
            seconds("--timeout", OsStr::from_bytes(b"1\xff")),
            Err("--timeout \"1\\xFF\": not valid UTF-8".into())
        );
    }

    #[test]
    fn initiator_names_are_checked() {
        let args = |v: &str| os(&[b"--initiator", v.as_bytes()]);
        let spec = &crate::cli::probe::SPEC;
        let got = parse(spec, &args("iqn.2026-11.test:a")).map(|a| a.initiator);
        assert_eq!(got, Ok(Some("iqn.2026-11.test:a".to_string())));
        for bad in [
            "iqn.",
            "foo.bar",
            "iqn.a b",
            &format!("iqn.{}", "x".repeat(220)),
        ] {
            let want = format!(
                "--initiator {}: expected an iqn., eui. or naa. name of at most 223 bytes without spaces",
                quote(bad)
            );
            assert_eq!(
                parse(spec, &args(bad)).map(|a| a.initiator),
                Err(ArgError::Usage(want)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn help_lists_every_option_aligned() {
        assert_eq!(
            T.help(),
            "netboot t: a test command\n\n\
             usage: netboot t [--flag] [--val V] ARG\n\n\
             options:\n\
             \x20 --flag      a flag\n\
             \x20 --val V     a value\n\
             \x20             second line\n\
             \x20 -h, --help  print this help and exit\n"
        );
    }

    /// Every option a table lists is handled by its command (no "unknown
    /// option" for it) and appears in the synopsis; prog matches the name.
    #[test]
    fn tables_match_the_commands() {
        for c in COMMANDS {
            assert_eq!(c.spec.prog, format!("netboot {}", c.name));
            assert!(!c.spec.summary.is_empty() && !c.spec.summary.contains('\n'));
            for o in c.spec.opts {
                assert!(
                    c.spec.synopsis.contains(o.name),
                    "{}: {} not in the synopsis",
                    c.name,
                    o.name
                );
                // Parse the option (with a value that is certainly invalid
                // for most) and look only at whether the command knew it.
                let mut args = vec![OsString::from(o.name)];
                if o.value.is_some() {
                    args.push(OsString::from("\u{1}"));
                }
                let out = c.spec.parse(&args).collect::<Result<Vec<_>, _>>();
                assert!(out.is_ok(), "{}: {:?}", c.name, out);
                let err = capture_usage(c, &args);
                assert!(
                    !err.contains("unknown option"),
                    "{} {}: {err}",
                    c.name,
                    o.name
                );
            }
        }
    }

    /// The command's own parse error for `args`, as text ("" if it parsed).
    fn capture_usage(c: &crate::cli::Command, args: &[OsString]) -> String {
        use crate::cli::{config, discover, events, plan, probe, report};
        let e = match c.name {
            "plan" => plan::parse(args).err(),
            "discover" => parse(&discover::SPEC, args).err(),
            "probe" => parse(&probe::SPEC, args).err(),
            "events" => events::parse(args).err(),
            "report" => report::parse(args).err(),
            "config-fetch" => config::parse(args).err(),
            other => Some(ArgError::Usage(format!("no parser for {other}"))),
        };
        match e {
            Some(ArgError::Usage(m)) => m,
            Some(ArgError::Help) => "help".into(),
            None => String::new(),
        }
    }

    /// Defaults and ranges in the help texts are literals; keep them equal
    /// to the constants the code uses.
    #[test]
    fn help_defaults_match_the_constants() {
        use crate::cli::{config, events};
        use crate::events::{DEFAULT_GROUP, DEFAULT_ID};
        let range = format!("{TIMEOUT_MIN_SECS}..{TIMEOUT_MAX_SECS}");
        assert_eq!(range, "0.001..86400");
        for c in COMMANDS {
            if let Some(o) = c.spec.opts.iter().find(|o| o.name == "--timeout") {
                assert!(o.help.contains(&range), "{}: {}", c.name, o.help);
            }
        }
        let help = |s: &Spec, name: &str| {
            s.opts
                .iter()
                .find(|o| o.name == name)
                .map_or(String::new(), |o| o.help.replace('\n', " "))
        };
        assert!(help(&crate::cli::probe::SPEC, "--timeout")
            .contains(&format!("(default {DEFAULT_TIMEOUT_SECS})")));
        assert!(help(&events::SPEC, "--group").contains(&format!("(default {DEFAULT_GROUP})")));
        assert!(help(&events::SPEC, "--id").contains(&format!(
            "(default {:#x}.{})",
            DEFAULT_ID.idx, DEFAULT_ID.val
        )));
        assert!(help(&config::SPEC, "--timeout").contains(&format!(
            "(default {})",
            config::DEFAULT_TIMEOUT.as_secs_f64()
        )));
    }
}
