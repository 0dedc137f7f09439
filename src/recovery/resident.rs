//! The resident process: spawned by PID 1 just before switch_root
//! ([`spawn`]), then [`main`] in the new process.

use super::handoff::{Handoff, MAX_LEN as HANDOFF_CAP};
use super::history::{History, State};
use super::{ARGV0, BINARY, HANDOFF_FD, HISTORY};
use crate::backoff::Backoff;
use crate::events::{Emitter, Facts};
use crate::iscsi::connect::{establish, EstablishError, RetryPolicy};
use crate::iscsi::kernel::{IscsiNl, ReopenConnector, SessionSetup};
use crate::iscsi::login::{LoginConfig, LoginError, Portal, SessionType};
use crate::iscsi::netlink::{self, Message};
use crate::iscsi::node::NodeSettings;
use crate::sys::clock::boottime_us;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Pauses between reconnect attempts: 0.25 s doubling to 2 s, for as long
/// as the session exists (iscsid also retries without end; the kernel's
/// replacement timeout decides when queued I/O fails meanwhile). The cap
/// bounds how long after the target's return the root stays stalled; an
/// attempt against a refusing portal costs one SYN.
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the resident looks for iscsid and for its session while idle.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// RFC 7143 §11.13.5 login status 0x020a "session does not exist": the
/// target forgot our TSIH (it restarted); log in as a new session instead.
const STATUS_NO_SESSION: u16 = 0x020a;
/// The abstract unix socket iscsid binds (open-iscsi `ISCSIADM_NAMESPACE`).
const ISCSID_SOCKET: &str = "@ISCSIADM_ABSTRACT_NAMESPACE";

/// Why the resident could not be started.
#[derive(Debug)]
pub enum SpawnError {
    Copy(std::io::Error),
    Open(&'static str, rustix::io::Errno),
    TooLarge(usize),
    Pipe(rustix::io::Errno),
    Fork(std::io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Copy(e) => write!(f, "copying the binary to {BINARY}: {e}"),
            SpawnError::Open(what, e) => write!(f, "opening {what}: {e}"),
            SpawnError::TooLarge(n) => write!(f, "handoff of {n} bytes does not fit a pipe"),
            SpawnError::Pipe(e) => write!(f, "pipe: {e}"),
            SpawnError::Fork(e) => write!(f, "fork: {e}"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// Start the resident for the session in `h`. Called by PID 1 after the
/// root is mounted at `new_root` and before switch_root: the child roots
/// itself in `new_root` (the mount object: moving it onto `/` later keeps
/// the child's root valid) and runs from the copy in /run, so it holds no
/// file of the initramfs. The handoff goes through a pipe on fd 3.
pub fn spawn(h: &Handoff, new_root: &str) -> Result<u32, SpawnError> {
    use rustix::fs::{Mode, OFlags};
    let bytes = h.encode();
    if bytes.len() >= HANDOFF_CAP {
        return Err(SpawnError::TooLarge(bytes.len()));
    }
    if let Some(dir) = Path::new(BINARY).parent() {
        std::fs::create_dir_all(dir).map_err(SpawnError::Copy)?;
    }
    std::fs::copy("/proc/self/exe", BINARY).map_err(SpawnError::Copy)?;
    let bin = rustix::fs::open(BINARY, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| SpawnError::Open(BINARY, e))?;
    let root = rustix::fs::open(
        new_root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SpawnError::Open("the new root", e))?;
    let (r, w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(SpawnError::Pipe)?;
    // Fits the pipe's buffer (64 KiB): written whole before the fork.
    let mut off = 0;
    while off < bytes.len() {
        match rustix::io::write(&w, bytes.get(off..).unwrap_or_default()) {
            Ok(0) => return Err(SpawnError::TooLarge(bytes.len())),
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(SpawnError::Pipe(e)),
        }
    }
    drop(w);
    let argv0 = std::ffi::CString::new(ARGV0).unwrap_or_default();
    let argv: [*const libc::c_char; 2] = [argv0.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let empty = c"";
    use std::os::fd::AsRawFd;
    let (bin_fd, root_fd, r_fd) = (bin.as_raw_fd(), root.as_raw_fd(), r.as_raw_fd());
    // SAFETY: PID 1 is single-threaded here (every helper thread of the
    // boot has been joined), so the child may run any code; it still only
    // makes raw syscalls on fds and pointers prepared before the fork
    // (`argv`, `envp`, `empty` outlive the call in the parent and are
    // copied into the child), then execs or exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Fork(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: the child: raw syscalls on valid fds and NUL-terminated
        // strings from above; `_exit` never returns.
        unsafe {
            if libc::dup2(r_fd, HANDOFF_FD) < 0
                || libc::fchdir(root_fd) < 0
                || libc::chroot(c".".as_ptr()) < 0
                || libc::chdir(c"/".as_ptr()) < 0
            {
                libc::_exit(126);
            }
            libc::setsid();
            libc::syscall(
                libc::SYS_execveat,
                bin_fd,
                empty.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::_exit(127);
        }
    }
    Ok(pid as u32)
}

/// Whether iscsid runs: its abstract socket in /proc/net/unix (pure part:
/// [`iscsid_in`]) and a process named `iscsid`. The socket alone is not
/// enough: with socket activation (Debian's `iscsid.socket`, enabled by
/// default) systemd binds it at sockets.target, before — and without —
/// any iscsid; iscsid.service starts only when iscsiadm or udev asks for it
/// (and not at all when its ExecStartPre checks fail).
fn iscsid_running() -> bool {
    crate::bounded::read_file(Path::new("/proc/net/unix"), 16 << 20)
        .map(|b| iscsid_in(&String::from_utf8_lossy(&b)))
        .unwrap_or(false)
        && iscsid_process()
}

/// Some process's /proc/PID/comm is `iscsid` (pure part: [`is_iscsid_comm`]).
fn iscsid_process() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            crate::bounded::read_file(&e.path().join("comm"), 64)
                .map(|c| is_iscsid_comm(&c))
                .unwrap_or(false)
        })
}

/// A /proc/PID/comm content names iscsid (the logger and the daemon it
/// forks both keep the name).
pub fn is_iscsid_comm(comm: &[u8]) -> bool {
    comm.strip_suffix(b"\n").unwrap_or(comm) == b"iscsid"
}

/// `/proc/net/unix` text lists iscsid's listening socket (the path column
/// shows an abstract name with a leading `@`).
pub fn iscsid_in(proc_net_unix: &str) -> bool {
    proc_net_unix
        .lines()
        .any(|l| l.split_whitespace().last() == Some(ISCSID_SOCKET))
}

/// The resident's whole life. Never panics; returns the exit code.
pub fn main() -> i32 {
    let bytes = read_handoff();
    // The parent moves /dev, /proc, /sys and /run into this root right
    // after the fork: wait for them (bounded) before logging or opening
    // NETLINK_ISCSI (it reads the transport handle from sysfs).
    let until = Instant::now() + Duration::from_secs(30);
    while !(Path::new("/dev/kmsg").exists() && Path::new("/sys/class/iscsi_transport").exists())
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let h = match bytes.as_deref().map(Handoff::decode) {
        Some(Ok(h)) => h,
        Some(Err(e)) => return early_fail(&e.to_string()),
        None => return early_fail("no handoff on fd 3"),
    };
    let level = crate::klog::parse_log_level(&h.log).unwrap_or(log::LevelFilter::Info);
    crate::klog::init(crate::klog::LogTarget::Kmsg, level, h.secrets());
    let nl = match IscsiNl::open(Path::new("/sys")) {
        Ok(n) => Rc::new(n),
        Err(e) => {
            log::error!(
                "recovery: session {}: cannot listen on NETLINK_ISCSI: {e}; no recovery",
                h.sid
            );
            return 1;
        }
    };
    let mut r = Resident {
        emitter: Emitter::new(h.events.map(|e| e.to_target()), h.secrets()),
        hist: History::new(h.sid, &h.target, std::process::id()),
        tsih: h.tsih,
        next_portal: 0,
        nl,
        h,
    };
    r.record(
        "started",
        format!(
            "listening for connection errors (pid {})",
            std::process::id()
        ),
    );
    log::info!(
        "recovery: resident for session {} ({}) started",
        r.h.sid,
        r.h.target
    );
    r.run()
}

fn early_fail(why: &str) -> i32 {
    crate::klog::init(
        crate::klog::LogTarget::Kmsg,
        log::LevelFilter::Info,
        Vec::new(),
    );
    log::error!("recovery: resident cannot start: {why}; no recovery after switch_root");
    1
}

/// fd 3 to its end, at most the cap, then closed.
fn read_handoff() -> Option<Vec<u8>> {
    use std::io::Read as _;
    use std::os::fd::FromRawFd;
    if rustix::io::fcntl_getfd(
        // SAFETY: only probes whether fd 3 is open; the borrow ends here.
        unsafe { rustix::fd::BorrowedFd::borrow_raw(HANDOFF_FD) },
    )
    .is_err()
    {
        return None;
    }
    // SAFETY: fd 3 is open (checked above) and nothing else in this
    // process owns it: the parent's dup2 made it for us.
    let f = unsafe { std::fs::File::from_raw_fd(HANDOFF_FD) };
    let mut out = Vec::new();
    f.take(HANDOFF_CAP as u64 + 1).read_to_end(&mut out).ok()?;
    Some(out)
}

struct Resident {
    h: Handoff,
    nl: Rc<IscsiNl>,
    emitter: Emitter,
    hist: History,
    tsih: u16,
    /// Portal to try first: the last one that worked.
    next_portal: usize,
}

enum Outcome {
    Recovered,
    Leave(State),
}

impl Resident {
    fn record(&mut self, event: &str, detail: String) {
        self.hist.push(boottime_us(), event, detail);
        self.save();
    }

    fn save(&self) {
        if let Ok(text) = serde_json::to_string_pretty(&self.hist) {
            let tmp = format!("{HISTORY}.tmp");
            if std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, HISTORY))
                .is_err()
            {
                log::debug!("recovery: cannot write {HISTORY}");
            }
        }
    }

    fn session_exists(&self) -> bool {
        Path::new(&format!("/sys/class/iscsi_session/session{}", self.h.sid)).exists()
    }

    /// Checks made while idle and between attempts: someone else owns the
    /// session now, or it is gone.
    fn should_leave(&self) -> Option<State> {
        if iscsid_running() {
            return Some(State::HandedToIscsid);
        }
        if !self.session_exists() {
            return Some(State::Gone);
        }
        None
    }

    fn leave(&mut self, state: State) -> i32 {
        self.hist.state = state;
        let why = match state {
            State::HandedToIscsid => "iscsid runs: it takes the session over; the resident exits",
            _ => "the session is gone; the resident exits",
        };
        log::info!("recovery: session {}: {why}", self.h.sid);
        self.record("exit", why.to_string());
        0
    }

    fn run(&mut self) -> i32 {
        loop {
            if let Some(s) = self.should_leave() {
                return self.leave(s);
            }
            let ev = match self.nl.next_event(Instant::now() + IDLE_CHECK) {
                Ok(ev) => ev,
                Err(e) => {
                    log::warn!("recovery: session {}: NETLINK_ISCSI: {e}", self.h.sid);
                    std::thread::sleep(IDLE_CHECK);
                    continue;
                }
            };
            match ev {
                Some(Message::ConnError { sid, cid, error })
                    if sid == self.h.sid && cid == self.h.cid =>
                {
                    // iscsid may have started and be handling it already.
                    if let Some(s) = self.should_leave() {
                        return self.leave(s);
                    }
                    match self.recover(error) {
                        Outcome::Recovered => {}
                        Outcome::Leave(s) => return self.leave(s),
                    }
                }
                Some(Message::DestroySession { sid, .. }) if sid == self.h.sid => {
                    return self.leave(State::Gone);
                }
                _ => {}
            }
        }
    }

    fn recover(&mut self, code: u32) -> Outcome {
        let sid = self.h.sid;
        let name = netlink::conn_error_name(code);
        log::warn!(
            "recovery: session {sid}: connection error ISCSI_ERR_{name} ({code}); reconnecting"
        );
        self.hist.state = State::Recovering;
        self.record("conn_error", format!("ISCSI_ERR_{name} ({code})"));
        let facts = Facts::new()
            .u64("sid", sid.into())
            .str("error", format!("ISCSI_ERR_{name}"));
        self.emitter.step_start("recovery", &facts);
        let t0 = Instant::now();
        if let Err(e) = self
            .nl
            .stop_conn(sid, self.h.cid, netlink::STOP_CONN_RECOVER)
        {
            log::warn!("recovery: session {sid}: stopping the connection: {e}");
        }
        let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
        let mut attempt: u32 = 0;
        loop {
            if let Some(s) = self.should_leave() {
                self.emitter.step_end(
                    "recovery",
                    t0.elapsed().as_micros() as u64,
                    Err(s.name()),
                    &Facts::new(),
                );
                return Outcome::Leave(s);
            }
            attempt += 1;
            let n = self.h.portals.len().max(1);
            let i = self.next_portal % n;
            let Some(p) = self.h.portals.get(i).cloned() else {
                return Outcome::Leave(State::Gone);
            };
            let portal = Portal {
                host: p.host.clone(),
                port: p.port,
            };
            match self.login(&portal, p.tpgt) {
                Ok(()) => {
                    let took = t0.elapsed();
                    self.hist.recoveries += 1;
                    self.hist.state = State::LoggedIn;
                    log::info!(
                        "recovery: session {sid} recovered in {:.1} s ({attempt} attempt{}) via {portal}",
                        took.as_secs_f64(),
                        if attempt == 1 { "" } else { "s" }
                    );
                    self.record(
                        "recovered",
                        format!(
                            "in {:.3} s, {attempt} attempts, via {portal}",
                            took.as_secs_f64()
                        ),
                    );
                    let f = Facts::new()
                        .u64("sid", sid.into())
                        .u64("attempts", attempt.into())
                        .str("portal", portal.to_string());
                    self.emitter
                        .step_end("recovery", took.as_micros() as u64, Ok(()), &f);
                    return Outcome::Recovered;
                }
                Err(e) => {
                    // Failover: the next portal of the same target next time.
                    self.next_portal = (i + 1) % n;
                    let pause = backoff.next();
                    log::warn!(
                        "recovery: session {sid} attempt {attempt} via {portal} failed: {e}; next in {:.2} s",
                        pause.as_secs_f64()
                    );
                    self.record("attempt", format!("{attempt} via {portal}: {e}"));
                    std::thread::sleep(pause);
                }
            }
        }
    }

    /// One reconnect: new TCP connection bound to the stopped connection,
    /// login with the session's ISID and TSIH, negotiated values, start.
    fn login(&mut self, portal: &Portal, tpgt: u16) -> Result<(), String> {
        let h = &self.h;
        let mut cfg = LoginConfig::new(&h.initiator, Some(&h.target), SessionType::Normal);
        cfg.isid = h.isid;
        cfg.tsih = self.tsih;
        cfg.chap = h.chap.as_ref().map(|c| c.to_chap());
        cfg.apply_overrides(&h.offers).map_err(|e| e.to_string())?;
        let login_timeout = Duration::from_millis(h.login_timeout_ms.clamp(1000, 120_000));
        let node = NodeSettings {
            login_timeout,
            ..NodeSettings::default()
        };
        let mut conn = ReopenConnector {
            nl: self.nl.clone(),
            sid: h.sid,
            cid: h.cid,
            host_no: h.host_no,
            setup: SessionSetup {
                target: h.target.clone(),
                initiator: h.initiator.clone(),
                chap: cfg.chap.clone(),
                cmds_max: 0,
                queue_depth: 0,
                node,
                timeout: login_timeout,
                connect_timeout: CONNECT_TIMEOUT,
                until: Instant::now() + CONNECT_TIMEOUT + login_timeout,
            },
        };
        let policy = RetryPolicy {
            attempts: 1,
            retry_connect: false,
            ..RetryPolicy::default()
        };
        let est = match establish(&mut conn, portal, &cfg, &policy, &mut |_| {}) {
            Ok(est) => est,
            Err(EstablishError::Login {
                error: LoginError::InitiatorError { status, .. },
                ..
            }) if status == STATUS_NO_SESSION && cfg.tsih != 0 => {
                // The target restarted and forgot the session: a new one,
                // same ISID (same I_T nexus), TSIH 0.
                log::info!(
                    "recovery: session {}: {portal} does not know TSIH {}; logging in as a new session",
                    h.sid,
                    cfg.tsih
                );
                cfg.tsih = 0;
                conn.setup.until = Instant::now() + CONNECT_TIMEOUT + login_timeout;
                establish(&mut conn, portal, &cfg, &policy, &mut |_| {})
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let tsih = est.outcome.tsih;
        est.channel
            .commit(&est.outcome, tpgt)
            .map_err(|e| e.to_string())?;
        self.tsih = tsih;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iscsid_is_seen_by_its_abstract_socket_only() {
        let with = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                    0000000000000000: 00000002 00000000 00010000 0001 01 17811 @ISCSIADM_ABSTRACT_NAMESPACE\n\
                    0000000000000000: 00000002 00000000 00010000 0001 01 17812 /run/systemd/notify\n";
        assert!(iscsid_in(with));
        assert!(!iscsid_in(
            "0000: 00000002 0 0 0001 01 1 @ISCSIADM_ABSTRACT_NAMESPACE_X\n"
        ));
        assert!(!iscsid_in(""));
    }

    #[test]
    fn iscsid_process_is_seen_by_its_comm() {
        assert!(is_iscsid_comm(b"iscsid\n"));
        assert!(is_iscsid_comm(b"iscsid"));
        assert!(!is_iscsid_comm(b"iscsiadm\n"));
        assert!(!is_iscsid_comm(b"systemd\n"));
        assert!(!is_iscsid_comm(b""));
    }
}
