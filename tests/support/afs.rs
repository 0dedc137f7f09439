//! The OpenAFS side of the interop tests (tests/rxrpc_interop.rs,
//! tests/rxkad_interop.rs): the binaries, a private network namespace with
//! its processes torn down on drop, and running code inside it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rxrpc");

/// The OpenAFS 1.8.9 binaries (tests/fixtures/rxrpc/openafs.sh extracts
/// them into target/openafs): the directory they are in.
pub fn openafs() -> Result<PathBuf, String> {
    let out = Command::new("bash")
        .arg(format!("{FIXTURES}/openafs.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("openafs.sh: {e}"))?;
    if !out.status.success() {
        return Err("openafs.sh failed (apt-get download needs Debian 12 sources)".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The namespace `ns` and what runs in it: deleted and ended on drop.
pub struct Guard {
    pub ns: String,
    pub children: Vec<Child>,
    pub tcpdump: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.tcpdump.take() {
            // SIGTERM, not SIGKILL: tcpdump flushes the pcap on exit.
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(&c),
                rustix::process::Signal::TERM,
            );
            let _ = c.wait();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

pub fn ip(args: &[&str]) -> Result<(), String> {
    let st = Command::new("ip")
        .args(args)
        .status()
        .map_err(|e| format!("ip: {e}"))?;
    st.success()
        .then_some(())
        .ok_or(format!("ip {args:?} failed"))
}

/// Run `f` on a thread inside the namespace (setns is per thread).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        use std::os::fd::AsFd;
        // setns changes only this thread's namespace.
        rustix::thread::move_into_link_name_space(
            fd.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
    .join()
    .expect("netns thread")
}
