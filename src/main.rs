//! The `netboot` binary: command dispatch only; every command lives in `cli`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = netboot::cli::main(&args);
    std::process::exit(code);
}
