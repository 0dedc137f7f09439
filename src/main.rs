//! The `netboot` binary: command dispatch only; every command lives in `cli`.

fn main() {
    // Rust ignores SIGPIPE, which turns `netboot probe | head` into a panic on
    // the next print. Restore the default so a closed pipe ends us quietly,
    // as it does any C tool.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // argv[0] "@netboot-resident": the recovery process PID 1 left behind
    // before switch_root (systemd spares "@" processes at shutdown).
    if std::env::args_os()
        .next()
        .is_some_and(|a| a.as_encoded_bytes().first() == Some(&b'@'))
    {
        std::process::exit(netboot::recovery::resident::main());
    }
    // As /init (PID 1) the binary is the boot agent: it reads the kernel
    // command line itself and never returns.
    if rustix::process::getpid().is_init() {
        netboot::boot::pid1_main();
    }
    // OsString: an argument that is not UTF-8 is the command's to refuse
    // (or to use as a path), never a panic in `std::env::args`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code = netboot::cli::main(&args);
    std::process::exit(code);
}
