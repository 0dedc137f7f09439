//! `netboot-configd` as a child of a host test: started on 127.0.0.1 with
//! an ephemeral port, its log lines collected on a thread, killed and
//! waited for on drop. Used by tests/rxrpc.rs and the rxkad tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

pub const CONFIGD: &str = env!("CARGO_BIN_EXE_netboot-configd");

/// `netboot-configd ARGS…` (a tool subcommand: `key`, `token`, …) run to completion; its
/// stdout. A failure fails the test with configd's stderr.
pub fn run_tool(args: &[&str]) -> String {
    let out = Command::new(CONFIGD)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run netboot-configd: {e}"));
    assert!(
        out.status.success(),
        "netboot-configd {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Configd {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Receiver<String>,
}

impl Drop for Configd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Configd {
    /// `netboot-configd --dir DIR --listen 127.0.0.1:0 EXTRA…`, once it
    /// printed its listening line (10 s at most).
    pub fn start(dir: &Path, extra: &[&str]) -> Configd {
        Self::start_with(Command::new(CONFIGD), dir, extra)
    }

    /// [`Configd::start`] with a prepared command (e.g. under `unshare`).
    // The child is killed and waited for in Drop, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    pub fn start_with(mut cmd: Command, dir: &Path, extra: &[&str]) -> Configd {
        let mut child = cmd
            .arg("--dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn configd");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("configd printed no listening line");
            if let Some(a) = line.strip_prefix("netboot-configd: listening on ") {
                let addr = a.parse().expect("addr");
                return Configd {
                    child,
                    addr,
                    log: rx,
                };
            }
        }
    }

    /// The log lines printed since the last call.
    pub fn logs(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// Wait (5 s at most) until the log lines printed so far satisfy `done`;
    /// returns them all. On timeout the panic lists every line seen.
    pub fn wait_logs(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        super::wait_until(Duration::from_secs(5), what, || {
            seen.extend(self.logs());
            if done(&seen) {
                Ok(seen.clone())
            } else {
                Err(seen.clone())
            }
        })
    }

    /// The log lines until one satisfies `want` (2 s at most; no panic).
    pub fn log_until(&self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(l) = self.log.recv_timeout(Duration::from_millis(50)) {
                let done = want(&l);
                seen.push(l);
                if done {
                    break;
                }
            }
        }
        seen
    }
}
