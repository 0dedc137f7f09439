//! Real-target test rig: start tgtd or istgt on 127.0.0.1 (free port, private control
//! channel, sparse backing file), a black-hole network namespace, and a subprocess runner
//! with a hard timeout. Std only (plus the package's own `serde_json` in the tests).
//!
//! Everything started here is owned by a guard whose `Drop` stops it by PID and removes its
//! files, so a panicking test leaves nothing behind and tests can run in parallel.
//!
//! Root and the tools are needed. Without them a test prints `SKIPPED: <test>: <reason>`
//! (straight to the process's stderr, past libtest's capture) and returns; with
//! `NETBOOT_REQUIRE_TARGETS=1` a missing tool or lack of root is a failure instead, so CI
//! cannot silently skip. The other test files skip through the same helpers, each with its
//! own `NETBOOT_REQUIRE_*` variable.
#![allow(dead_code)] // each test binary uses a different part of this module
#![allow(clippy::panic)] // a failing rig step fails the test by panicking

pub mod afs;
pub mod configd;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a target may take to start listening before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times to retry start-up when a port or control channel turned out to be taken
/// between our probe bind and the daemon's bind.
const START_ATTEMPTS: u32 = 5;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique within this machine for this test process: `<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// Skipping

/// The running test's name: libtest runs each test on a thread named after it.
pub fn test_name() -> String {
    thread::current().name().unwrap_or("?").to_string()
}

/// Print `SKIPPED: <test>: reason` where the user sees it, or panic if skips are forbidden.
/// Returns `None` so callers can write `let Some(x) = … else { return };`.
pub fn skip<T>(reason: &str) -> Option<T> {
    skip_unless_required("NETBOOT_REQUIRE_TARGETS", "the real-target rig", reason);
    None
}

/// Print `SKIPPED: <test>: reason`, or panic if `require_var=1` (CI sets it so that `what`
/// cannot silently skip).
pub fn skip_unless_required(require_var: &str, what: &str, reason: &str) {
    if std::env::var(require_var).as_deref() == Ok("1") {
        panic!(
            "{}: {require_var}=1 but {what} cannot run: {reason}",
            test_name()
        );
    }
    note_skip(reason);
}

/// Print `SKIPPED: <test>: reason` for a skip that no `NETBOOT_REQUIRE_*` turns into a
/// failure (e.g. a kernel feature the host may lack, covered elsewhere too).
pub fn note_skip(reason: &str) {
    // libtest captures print!/eprint! of passing tests; a skip must be visible, so write to
    // the real stderr handle, which the capture does not intercept.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {}: {reason}", test_name());
}

/// Whether the effective UID is 0.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `true` if we are root; otherwise skip (see [`skip_unless_required`]) and return `false`.
/// `needs` says what root is for, e.g. "network namespaces, tap".
pub fn root_or_skip(require_var: &str, needs: &str) -> bool {
    if is_root() {
        return true;
    }
    skip_unless_required(
        require_var,
        "this test",
        &format!("not root (needed for {needs})"),
    );
    false
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Poll `probe` every 10 ms until it returns `Ok(value)`, for at most `timeout`: the tests'
/// substitute for sleeping and hoping. On timeout, panic naming what was awaited and what
/// the last probe saw (its `Err`), never a bare "timed out".
pub fn wait_until<T, S: std::fmt::Debug>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Full path of `tool` on PATH (plus the sbin directories, which a non-login PATH may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// `Some(())` if we are root and every tool exists; otherwise skip (or fail, see [`skip`]).
pub fn require(tools: &[&str]) -> Option<()> {
    if !is_root() {
        return skip("not root (targets and network namespaces need root)");
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        return skip(&format!("missing tools: {}", missing.join(", ")));
    }
    Some(())
}

// ---------------------------------------------------------------------------------------------
// Subprocesses

/// What a finished (or killed) subprocess left behind.
#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// The command line, for messages.
    pub command: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Everything a failure message needs: command, exit, time, both streams.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {}{}\nelapsed: {:.3} s\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            self.status.map_or_else(|| "none".to_string(), |s| s.to_string()),
            if self.timed_out { " (KILLED: timed out)" } else { "" },
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` with stdin closed and both outputs captured; SIGKILL it (by its PID, via
/// `Child::kill`) if it is still running after `timeout`. Never panics on the command's
/// behaviour — the caller decides what is a failure.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let command = describe_command(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start `{command}`: {e}"),
    };
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() >= timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let elapsed = start.elapsed();
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed,
        timed_out,
        command,
    }
}

/// Run a setup command that must succeed (tgtadm, ip, tc); panic with its output otherwise.
fn must(cmd: Command, what: &str, context: &dyn Fn() -> String) {
    let out = run(cmd, Duration::from_secs(10));
    if out.code() != Some(0) {
        panic!("{what} failed\n{}\n{}", out.describe(), context());
    }
}

/// Send SIGTERM by PID. std only offers SIGKILL (`Child::kill`), so use kill(1).
fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Wait up to `limit` for `child` to exit; SIGKILL it (its PID only) if it does not.
/// Returns false if it had to be killed.
fn reap(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A port on 127.0.0.1 that was free a moment ago (bind port 0, read it, release it). The
/// caller must cope with losing the race to someone else (see the retries below).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local_addr of a bound socket").port()
}

/// True once something accepts TCP on `addr`.
fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Targets

/// How the target authenticates initiators (RFC 7143 §12.1.3, CHAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// The target challenges the initiator.
    Chap {
        user: String,
        secret: String,
    },
    /// Also the initiator challenges the target, which answers as `target_user`.
    MutualChap {
        user: String,
        secret: String,
        target_user: String,
        target_secret: String,
    },
}

impl Auth {
    /// Handy fixed credentials for tests. Secrets are 12–16 characters: istgt's sample config
    /// says so for the MS initiator, and tgt/libiscsi accept that length.
    pub fn chap() -> Auth {
        Auth::Chap {
            user: "chapuser".into(),
            secret: "chapsecret1234".into(),
        }
    }
    pub fn mutual() -> Auth {
        Auth::MutualChap {
            user: "chapuser".into(),
            secret: "chapsecret1234".into(),
            target_user: "targetuser".into(),
            target_secret: "tgtsecret56789".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TargetOpts {
    /// Target IQN, `iqn.2026-11.test:root` by default.
    pub iqn: String,
    /// Size of the sparse backing file in bytes (64 MiB by default).
    pub size: u64,
    pub auth: Auth,
    /// Listen on [::1] instead of 127.0.0.1.
    pub ipv6: bool,
    /// istgt only: discovery sessions need the same CHAP as the target.
    pub discovery_auth: bool,
}

impl Default for TargetOpts {
    fn default() -> Self {
        TargetOpts {
            iqn: "iqn.2026-11.test:root".into(),
            size: 64 << 20,
            auth: Auth::None,
            ipv6: false,
            discovery_auth: false,
        }
    }
}

impl TargetOpts {
    pub fn with_auth(auth: Auth) -> Self {
        TargetOpts {
            auth,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tgtd,
    Istgt,
}

impl Kind {
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Kind::Tgtd => &["tgtd", "tgtadm"],
            Kind::Istgt => &["istgt", "kill"],
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tgtd => "tgtd",
            Kind::Istgt => "istgt",
        }
    }
}

/// A running target. Dropping it stops the daemon by PID and deletes its files.
pub struct Target {
    kind: Kind,
    child: Option<Child>,
    port: u16,
    /// tgtd only: the `--control-port` number (its unix socket is /var/run/tgtd/socket.N).
    control: u16,
    /// tgtd only: a target (tid 1) exists and must be deleted before tgtd will exit.
    has_tid: bool,
    iqn: String,
    size: u64,
    dir: PathBuf,
    log: PathBuf,
    ipv6: bool,
}

impl Target {
    /// Start `kind` with `opts`, or `None` (after printing why) if the rig cannot run here.
    pub fn start(kind: Kind, opts: &TargetOpts) -> Option<Target> {
        require(kind.tools())?;
        Some(match kind {
            Kind::Tgtd => Self::start_tgtd(opts),
            Kind::Istgt => Self::start_istgt(opts),
        })
    }

    pub fn tgtd(opts: &TargetOpts) -> Option<Target> {
        Self::start(Kind::Tgtd, opts)
    }

    pub fn istgt(opts: &TargetOpts) -> Option<Target> {
        Self::start(Kind::Istgt, opts)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// `127.0.0.1:PORT`, or `[::1]:PORT` for an IPv6 target.
    pub fn portal(&self) -> String {
        format!("{}:{}", self.host_literal(), self.port)
    }
    fn socket_addr(&self) -> SocketAddr {
        let ip: std::net::IpAddr = if self.ipv6 {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, self.port)
    }
    /// The address as it goes into a portal or root path (`[::1]` bracketed).
    pub fn host_literal(&self) -> &'static str {
        if self.ipv6 {
            "[::1]"
        } else {
            "127.0.0.1"
        }
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn iqn(&self) -> &str {
        &self.iqn
    }
    pub fn backing_size(&self) -> u64 {
        self.size
    }
    /// The LUN at which the backing file appears: tgt reserves LUN 0 for its controller
    /// ("RAID IET Controller", device type 0x0c) so the disk is LUN 1; istgt maps `LUN0
    /// Storage` straight to LUN 0.
    pub fn disk_lun(&self) -> u64 {
        match self.kind {
            Kind::Tgtd => 1,
            Kind::Istgt => 0,
        }
    }
    /// The daemon's captured stdout+stderr so far (for failure messages).
    pub fn log(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        // istgt's trace repeats a NOP-In line every NopInInterval; keep the tail readable.
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.len().saturating_sub(80);
        let mut s = format!(
            "--- {} log ({}), last {} of {} lines ---\n",
            self.kind.name(),
            self.log.display(),
            lines.len() - tail,
            lines.len()
        );
        for l in &lines[tail..] {
            let _ = writeln!(s, "{l}");
        }
        s
    }

    fn new_dir(kind: Kind, opts: &TargetOpts) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(unique_name(&format!("netboot-{}", kind.name())));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let disk = dir.join("disk.img");
        // Sparse: set_len allocates no blocks, so a big LUN costs nothing.
        let f =
            fs::File::create(&disk).unwrap_or_else(|e| panic!("create {}: {e}", disk.display()));
        f.set_len(opts.size)
            .unwrap_or_else(|e| panic!("set_len {} on {}: {e}", opts.size, disk.display()));
        (dir, disk)
    }

    fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
        let f = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let f2 = f.try_clone().expect("dup log file handle");
        let what = describe_command(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"))
    }

    // --- tgtd -------------------------------------------------------------------------------

    fn tgtadm(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tgtadm");
        c.args(["-C", &self.control.to_string(), "--lld", "iscsi"])
            .args(args);
        c
    }

    fn start_tgtd(opts: &TargetOpts) -> Target {
        let (dir, disk) = Self::new_dir(Kind::Tgtd, opts);
        let log = dir.join("tgtd.log");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            // The control channel is a unix socket /var/run/tgtd/socket.N guarded by a lock
            // file; tgtd accepts N <= 32767 and 0 is the system tgtd's. Derive N from the
            // (random, ephemeral) port into 10000..=31999 and skip numbers in use.
            let control = 10_000 + port % 22_000;
            if Path::new(&format!("/var/run/tgtd/socket.{control}.lock")).exists() {
                continue;
            }
            let mut cmd = Command::new("tgtd");
            cmd.args(["-f", "--control-port", &control.to_string()])
                .arg("--iscsi")
                .arg(format!(
                    "portal={}:{port}",
                    if opts.ipv6 { "[::1]" } else { "127.0.0.1" }
                ));
            let child = Self::spawn_logged(cmd, &log);
            let mut t = Target {
                kind: Kind::Tgtd,
                child: Some(child),
                port,
                control,
                has_tid: false,
                iqn: opts.iqn.clone(),
                size: opts.size,
                dir: dir.clone(),
                log: log.clone(),
                ipv6: opts.ipv6,
            };
            match t.wait_tgtd_ready() {
                Ready::Yes => {
                    t.configure_tgtd(opts, &disk);
                    t.wait_listening();
                    return t;
                }
                Ready::Collision => {
                    last_log = t.log();
                    if last_log.contains("another tgtd is using") {
                        // The control socket is someone else's: ours exits by itself; never
                        // send that control channel a command or remove its files.
                        if let Some(mut c) = t.child.take() {
                            reap(&mut c, Duration::from_secs(5));
                        }
                    }
                    // Otherwise only the portal was taken and Drop stops our tgtd through our
                    // own control channel (tgtd ignores SIGTERM even without targets).
                    t.dir = PathBuf::new(); // keep the dir and disk for the next attempt
                    drop(t);
                }
            }
        }
        panic!("tgtd: no free port/control channel after {START_ATTEMPTS} attempts\n{last_log}");
    }

    /// tgtd binds its portal and control socket during start-up and keeps running even if the
    /// portal bind failed ("failed to create/bind to portal"), so readiness = the control
    /// channel answers AND the log shows no bind/lock failure.
    fn wait_tgtd_ready(&mut self) -> Ready {
        let start = Instant::now();
        loop {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("failed to create/bind to portal")
                || log.contains("another tgtd is using")
                || log.contains("Address already in use")
            {
                return Ready::Collision;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("tgtd exited during start-up ({st})\n{}", self.log());
                }
            }
            let out = run(
                self.tgtadm(&["--mode", "target", "--op", "show"]),
                Duration::from_secs(5),
            );
            if out.code() == Some(0) {
                // Re-read: the portal line is logged before the control loop runs.
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                if log.contains("failed to create/bind") || log.contains("another tgtd") {
                    return Ready::Collision;
                }
                if !out.stdout.trim().is_empty() {
                    // A fresh tgtd has no targets: this is someone else's daemon.
                    return Ready::Collision;
                }
                return Ready::Yes;
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "tgtd control channel {} did not answer within {:?}\n{}\n{}",
                    self.control,
                    START_TIMEOUT,
                    out.describe(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn configure_tgtd(&mut self, opts: &TargetOpts, disk: &Path) {
        let ctx = || self.log();
        let iqn = opts.iqn.clone();
        must(
            self.tgtadm(&[
                "--mode",
                "target",
                "--op",
                "new",
                "--tid",
                "1",
                "--targetname",
                &iqn,
            ]),
            "tgtadm target new",
            &ctx,
        );
        self.has_tid = true;
        let ctx = || self.log();
        let disk = disk.to_string_lossy().into_owned();
        // LUN 0 is tgt's controller; the backing store goes to LUN 1.
        must(
            self.tgtadm(&[
                "--mode",
                "logicalunit",
                "--op",
                "new",
                "--tid",
                "1",
                "--lun",
                "1",
                "--backing-store",
                &disk,
            ]),
            "tgtadm logicalunit new",
            &ctx,
        );
        // Open ACL: only loopback reaches this portal anyway.
        must(
            self.tgtadm(&[
                "--mode",
                "target",
                "--op",
                "bind",
                "--tid",
                "1",
                "--initiator-address",
                "ALL",
            ]),
            "tgtadm target bind ALL",
            &ctx,
        );
        let (incoming, outgoing) = match &opts.auth {
            Auth::None => (None, None),
            Auth::Chap { user, secret } => (Some((user, secret)), None),
            Auth::MutualChap {
                user,
                secret,
                target_user,
                target_secret,
            } => (Some((user, secret)), Some((target_user, target_secret))),
        };
        // Accounts are per tgtd instance, which is ours alone. Binding an incoming account
        // makes CHAP mandatory for logins to tid 1 (discovery stays open); an `--outgoing`
        // account is what tgt answers with when the initiator challenges it (mutual CHAP).
        if let Some((u, s)) = incoming {
            must(
                self.tgtadm(&[
                    "--mode",
                    "account",
                    "--op",
                    "new",
                    "--user",
                    u,
                    "--password",
                    s,
                ]),
                "tgtadm account new",
                &ctx,
            );
            must(
                self.tgtadm(&[
                    "--mode", "account", "--op", "bind", "--tid", "1", "--user", u,
                ]),
                "tgtadm account bind",
                &ctx,
            );
        }
        if let Some((u, s)) = outgoing {
            must(
                self.tgtadm(&[
                    "--mode",
                    "account",
                    "--op",
                    "new",
                    "--user",
                    u,
                    "--password",
                    s,
                ]),
                "tgtadm account new (outgoing)",
                &ctx,
            );
            must(
                self.tgtadm(&[
                    "--mode",
                    "account",
                    "--op",
                    "bind",
                    "--tid",
                    "1",
                    "--user",
                    u,
                    "--outgoing",
                ]),
                "tgtadm account bind --outgoing",
                &ctx,
            );
        }
    }

    // --- istgt ------------------------------------------------------------------------------

    fn istgt_conf(&self, opts: &TargetOpts, disk: &Path) -> (String, String) {
        let (method, auth_line) = match &opts.auth {
            Auth::None => ("None", String::new()),
            Auth::Chap { user, secret } => ("CHAP", format!("  Auth \"{user}\" \"{secret}\"\n")),
            // "CHAP Mutual" makes istgt insist that the initiator challenges it back.
            Auth::MutualChap {
                user,
                secret,
                target_user,
                target_secret,
            } => (
                "CHAP Mutual",
                format!("  Auth \"{user}\" \"{secret}\" \"{target_user}\" \"{target_secret}\"\n"),
            ),
        };
        let d = self.dir.display();
        let discovery = if opts.discovery_auth {
            format!("{method}\n  DiscoveryAuthGroup AuthGroup1")
        } else {
            "None".to_string()
        };
        let host = self.host_literal();
        let netmask = if self.ipv6 {
            "[::1]/128"
        } else {
            "127.0.0.0/8"
        };
        // Keys from /usr/share/doc/istgt/examples/istgt.conf. No [UnitControl] portal, so
        // istgtcontrol is unreachable and nothing else listens. PidFile in our dir keeps
        // instances apart (the default is /var/run/istgt.pid).
        let conf = format!(
            r#"[Global]
  NodeBase "iqn.2026-11.test"
  PidFile {d}/istgt.pid
  AuthFile {d}/auth.conf
  MediaDirectory {d}
  LogFacility "local7"
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod {discovery}
  MaxSessions 16
  MaxConnections 4
  MaxR2T 32
  MaxOutstandingR2T 16
  DefaultTime2Wait 2
  DefaultTime2Retain 60
  FirstBurstLength 262144
  MaxBurstLength 1048576
  MaxRecvDataSegmentLength 262144
  InitialR2T Yes
  ImmediateData Yes
  DataPDUInOrder Yes
  DataSequenceInOrder Yes
  ErrorRecoveryLevel 0

[UnitControl]
  AuthMethod CHAP Mutual
  AuthGroup AuthGroup10000

[PortalGroup1]
  Portal DA1 {host}:{port}

[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask {netmask}

[LogicalUnit1]
  TargetName {iqn}
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod {method}
  AuthGroup AuthGroup1
  UseDigest Auto
  UnitType Disk
  LUN0 Storage {disk} Auto
"#,
            port = self.port,
            iqn = opts.iqn,
            disk = disk.display(),
        );
        let auth = format!(
            "[AuthGroup1]\n{auth_line}\n[AuthGroup10000]\n  Auth \"ctluser\" \"ctlsecret12345\"\n"
        );
        (conf, auth)
    }

    fn start_istgt(opts: &TargetOpts) -> Target {
        let (dir, disk) = Self::new_dir(Kind::Istgt, opts);
        let log = dir.join("istgt.log");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut t = Target {
                kind: Kind::Istgt,
                child: None,
                port,
                control: 0,
                has_tid: false,
                iqn: opts.iqn.clone(),
                size: opts.size,
                dir: dir.clone(),
                log: log.clone(),
                ipv6: opts.ipv6,
            };
            let (conf, auth) = t.istgt_conf(opts, &disk);
            let conf_path = dir.join("istgt.conf");
            fs::write(&conf_path, conf).expect("write istgt.conf");
            fs::write(dir.join("auth.conf"), auth).expect("write auth.conf");
            // -D: stay in the foreground (so the PID is ours); -t iscsi: trace the iSCSI layer to
            // stderr, which is the only place its errors (e.g. "auth failed (user …)") appear
            // without syslog.
            let mut cmd = Command::new("istgt");
            cmd.arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(dir.join("istgt.pid"))
                .args(["-D", "-t", "iscsi"]);
            t.child = Some(Self::spawn_logged(cmd, &log));
            let start = Instant::now();
            loop {
                if let Some(Ok(Some(_))) = t.child.as_mut().map(|c| c.try_wait()) {
                    // istgt exits when it cannot bind its portal; anything else is fatal.
                    last_log = t.log();
                    let text = fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("in use") || text.contains("bind") {
                        break;
                    }
                    panic!("istgt exited during start-up\n{last_log}");
                }
                if accepts(t.socket_addr()) {
                    return t;
                }
                if start.elapsed() > START_TIMEOUT {
                    panic!(
                        "istgt did not listen on {} within {START_TIMEOUT:?}\n{}",
                        t.portal(),
                        t.log()
                    );
                }
                thread::sleep(Duration::from_millis(50));
            }
            // Collision: keep the dir (and the disk) for the next attempt.
            t.child = None;
            t.dir = PathBuf::new();
            drop(t);
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("istgt: no free port after {START_ATTEMPTS} attempts\n{last_log}");
    }

    fn wait_listening(&self) {
        let start = Instant::now();
        while !accepts(self.socket_addr()) {
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "{} did not listen on {} within {START_TIMEOUT:?}\n{}",
                    self.kind.name(),
                    self.portal(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the daemon by PID and remove every file we created. Idempotent.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            match self.kind {
                Kind::Tgtd => {
                    // tgtd ignores SIGTERM while a target exists: delete the target, then
                    // ask the daemon itself to exit; SIGKILL only as a last resort.
                    if self.has_tid {
                        let _ = run(
                            self.tgtadm(&[
                                "--mode", "target", "--op", "delete", "--force", "--tid", "1",
                            ]),
                            Duration::from_secs(5),
                        );
                        self.has_tid = false;
                    }
                    let mut c = Command::new("tgtadm");
                    c.args([
                        "-C",
                        &self.control.to_string(),
                        "--op",
                        "delete",
                        "--mode",
                        "system",
                    ]);
                    let _ = run(c, Duration::from_secs(5));
                    if !reap(&mut child, Duration::from_secs(5)) {
                        let _ = writeln!(
                            std::io::stderr(),
                            "warning: tgtd {} had to be SIGKILLed",
                            child.id()
                        );
                    }
                    // tgtd leaves its control socket and lock file behind.
                    for suffix in ["", ".lock"] {
                        let _ = fs::remove_file(format!(
                            "/var/run/tgtd/socket.{}{suffix}",
                            self.control
                        ));
                    }
                }
                Kind::Istgt => {
                    // istgt exits on SIGTERM, but only after its poll loop notices (~2–4 s).
                    sigterm(child.id());
                    if !reap(&mut child, Duration::from_secs(8)) {
                        let _ = writeln!(
                            std::io::stderr(),
                            "warning: istgt {} had to be SIGKILLed",
                            child.id()
                        );
                    }
                }
            }
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

enum Ready {
    Yes,
    Collision,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Black hole

/// A private network namespace whose `lo` carries [`BlackHole::ADDR`] and silently drops every
/// packet, so a TCP connect to that address gets no answer at all (not even RST) and only a
/// timeout can end it. The host kernel has no netem, so the drop is a `pfifo limit 0` root
/// qdisc: every packet is dropped at enqueue and counted in `tc -s qdisc`.
pub struct BlackHole {
    name: String,
}

impl BlackHole {
    /// The address inside the namespace (TEST-NET benchmarking range, RFC 2544).
    pub const ADDR: &'static str = "198.18.0.1";

    pub fn new() -> Option<BlackHole> {
        require(&["ip", "tc"])?;
        let name = unique_name("nbtest");
        let mut c = Command::new("ip");
        c.args(["netns", "add", &name]);
        must(c, "ip netns add", &String::new);
        // From here on Drop deletes the namespace, even if a step below panics.
        let bh = BlackHole { name };
        let ctx = String::new;
        let ipn = |args: &[&str]| {
            let mut c = Command::new("ip");
            c.args(["-n", &bh.name]).args(args);
            c
        };
        must(ipn(&["link", "set", "lo", "up"]), "ip link set lo up", &ctx);
        must(
            ipn(&["addr", "add", &format!("{}/32", Self::ADDR), "dev", "lo"]),
            "ip addr add",
            &ctx,
        );
        must(
            bh.exec(
                "tc",
                &["qdisc", "add", "dev", "lo", "root", "pfifo", "limit", "0"],
            ),
            "tc qdisc add pfifo limit 0",
            &ctx,
        );
        Some(bh)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ADDR:port` for a portal inside the hole.
    pub fn portal(&self, port: u16) -> String {
        format!("{}:{port}", Self::ADDR)
    }

    /// A command that runs `program args…` inside the namespace (`ip netns exec` execs it, so
    /// the PID the runner kills is the program's own).
    pub fn exec(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }

    /// `tc -s qdisc` inside the namespace: shows how many packets were dropped.
    pub fn stats(&self) -> String {
        run(
            self.exec("tc", &["-s", "qdisc", "show", "dev", "lo"]),
            Duration::from_secs(5),
        )
        .stdout
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        let mut c = Command::new("ip");
        c.args(["netns", "del", &self.name]);
        let out = run(c, Duration::from_secs(10));
        if out.code() != Some(0) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not delete netns {}\n{}",
                self.name,
                out.describe()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A silent target

/// A TCP listener on 127.0.0.1 that accepts connections and never says a word: a login that
/// reaches it can only end by the initiator's own timeout. Needs no root.
pub struct Silent {
    listener: TcpListener,
    held: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Silent {
    pub fn new() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let l2 = listener.try_clone().expect("clone listener");
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, s) = (held.clone(), stop.clone());
        // Accept and keep every connection open (dropping it would send FIN, which is not
        // silence), until dropped.
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l2.accept() {
                    Ok((c, _)) => h.lock().map(|mut v| v.push(c)).unwrap_or(()),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Silent {
            listener,
            held,
            stop,
            thread: Some(thread),
        }
    }

    pub fn portal(&self) -> String {
        format!(
            "127.0.0.1:{}",
            self.listener.local_addr().expect("local_addr").port()
        )
    }
}

impl Default for Silent {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(mut v) = self.held.lock() {
            v.clear();
        }
    }
}
