#!/usr/bin/env bash
# What a crate from the product card would cost in bytes of the shipped
# binary (README "Dependencies"). Builds one tiny static program several
# times, each variant swapping one piece of what netboot does by hand (or
# with rustix) for the crate, and prints each size and its delta against
# the baseline:
#
#   base                rustix mount + socket + finit_module, a 15-line
#                       log::Log to stderr, a 20-line uevent parser
#   nix                 the three syscalls through nix instead (rustix
#                       stays for the clock, as it would in netboot)
#   env_logger          env_logger (default-features = false) instead of
#                       the 15-line logger, initialised, one line logged
#   env_logger_default  the same with env_logger's default features
#   kobject             kobject-uevent's parser instead of ours
#
# and, for the crates netboot does use, what the job they do costs (base
# has no such job, so the delta is the whole price):
#
#   serde_json          serde derive + serde_json: a small config document
#                       with deny_unknown_fields parsed and printed back
#   serde_path_to_error the same through serde_path_to_error (the error
#                       names the field path); compare with serde_json
#   md5                 md5::compute of one buffer (the CHAP digest)
#
# Target x86_64-unknown-linux-musl, [profile.release] copied from
# Cargo.toml, RUSTFLAGS as .cargo/config.toml (crt-static, non-PIE). Two
# std builds: `plain` (the toolchain's std, as `cargo build --release`)
# and `min` (std rebuilt with panic=immediate-abort, as scripts/build.sh
# ships; needs rust-src, skipped without it).
#
# Usage: bash bench/depsize.sh [plain|min|both]   (default both)
# Work dir: $DEPSIZE_DIR (default /tmp/depsize), with its own target dir,
# outside the repo. Needs crates.io (cargo's own client) the first time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-both}
dir=${DEPSIZE_DIR:-/tmp/depsize}
target=x86_64-unknown-linux-musl
case "$mode" in plain | min | both) ;; *)
    echo "usage: bash bench/depsize.sh [plain|min|both]" >&2
    exit 2
    ;;
esac

mkdir -p "$dir/src"
{
    cat <<'EOF'
[package]
name = "depsize"
version = "0.0.0"
edition = "2021"
publish = false

# Exact versions: the numbers in the README are for these.
[dependencies]
rustix = { version = "=1.1.6", default-features = false, features = ["std", "fs", "mount", "net", "system", "time"] }
log = { version = "=0.4.35", features = ["std"] }
nix = { version = "=0.31.4", default-features = false, features = ["mount", "socket", "kmod", "fs"], optional = true }
env_logger = { version = "=0.11.12", default-features = false, optional = true }
kobject-uevent = { version = "=0.2.0", optional = true }
serde = { version = "=1.0.229", features = ["derive"], optional = true }
serde_json = { version = "=1.0.154", optional = true }
serde_path_to_error = { version = "=0.1.20", optional = true }
md5 = { version = "=0.8.1", optional = true }

[features]
nix = ["dep:nix"]
env_logger = ["dep:env_logger"]
env_logger_default = ["env_logger", "env_logger/default"]
kobject = ["dep:kobject-uevent"]
serde_json = ["dep:serde", "dep:serde_json"]
serde_path_to_error = ["serde_json", "dep:serde_path_to_error"]
md5 = ["dep:md5"]

EOF
    # The shipped profile, verbatim.
    awk '/^\[profile\.release\]/ {p = 1; print; next} /^\[/ {p = 0} p' "$repo/Cargo.toml"
} >"$dir/Cargo.toml"

cat >"$dir/src/main.rs" <<'EOF'
//! Each piece reads its input from argv so the optimiser keeps it.
use std::ffi::CString;

/// mount + netlink socket + finit_module, the calls nix would wrap.
#[cfg(not(feature = "nix"))]
fn syscalls(a: &str, b: &str) -> String {
    use rustix::net::{netlink, socket, AddressFamily, SocketType};
    let m = rustix::mount::mount(a, b, "tmpfs", rustix::mount::MountFlags::NOSUID, None);
    let s = socket(AddressFamily::NETLINK, SocketType::DGRAM, Some(netlink::KOBJECT_UEVENT));
    let k = match std::fs::File::open(a) {
        Ok(f) => format!("{:?}", rustix::system::finit_module(&f, c"", 0)),
        Err(e) => e.to_string(),
    };
    format!("{m:?} {} {k}", s.is_ok())
}

#[cfg(feature = "nix")]
fn syscalls(a: &str, b: &str) -> String {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    let m = nix::mount::mount(Some(a), b, Some("tmpfs"), nix::mount::MsFlags::MS_NOSUID, None::<&str>);
    let s = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    );
    let k = match std::fs::File::open(a) {
        Ok(f) => format!("{:?}", nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty())),
        Err(e) => e.to_string(),
    };
    format!("{m:?} {} {k}", s.is_ok())
}

#[cfg(not(feature = "env_logger"))]
fn init_log() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record<'_>) {
            use std::io::Write;
            if self.enabled(r.metadata()) {
                let _ = writeln!(std::io::stderr().lock(), "<{}>{}: {}", r.level() as u8 + 2, r.target(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

#[cfg(feature = "env_logger")]
fn init_log() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}

/// One NETLINK_KOBJECT_UEVENT datagram: `ACTION@DEVPATH\0KEY=VALUE\0...`.
#[cfg(not(feature = "kobject"))]
fn uevent(buf: &[u8]) -> String {
    let mut fields = buf.split(|&b| b == 0);
    let Some((action, devpath)) = fields
        .next()
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.split_once('@'))
    else {
        return "bad header".into();
    };
    let (mut major, mut seq) = (None::<u32>, None::<u64>);
    let mut env = Vec::new();
    for f in fields.filter_map(|f| std::str::from_utf8(f).ok()) {
        if let Some((k, v)) = f.split_once('=') {
            match k {
                "MAJOR" => major = v.parse().ok(),
                "SEQNUM" => seq = v.parse().ok(),
                _ => {}
            }
            env.push((k.to_string(), v.to_string()));
        }
    }
    format!("{action} {devpath} {major:?} {seq:?} {}", env.len())
}

#[cfg(feature = "kobject")]
fn uevent(buf: &[u8]) -> String {
    match kobject_uevent::UEvent::from_netlink_packet(buf) {
        Ok(u) => format!(
            "{:?} {} {:?} {} {}",
            u.action,
            u.devpath.display(),
            u.env.get("MAJOR"),
            u.seq,
            u.env.len()
        ),
        Err(e) => e.to_string(),
    }
}

#[cfg(feature = "serde_json")]
fn config(text: &str) -> String {
    #[derive(serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct RootPath {
        server: String,
        port: Option<u16>,
        lun: u64,
        target: String,
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        version: u32,
        paths: Vec<RootPath>,
        nameservers: Vec<String>,
        timeout_ms: Option<u64>,
    }
    #[cfg(not(feature = "serde_path_to_error"))]
    let r = serde_json::from_str::<Config>(text).map_err(|e| e.to_string());
    #[cfg(feature = "serde_path_to_error")]
    let r = serde_path_to_error::deserialize::<_, Config>(&mut serde_json::Deserializer::from_str(text))
        .map_err(|e| format!("{}: {}", e.path(), e.inner()));
    match r {
        Ok(c) => serde_json::to_string_pretty(&c).unwrap_or_default(),
        Err(e) => e,
    }
}

#[cfg(not(feature = "serde_json"))]
fn config(_: &str) -> String {
    String::new()
}

#[cfg(feature = "md5")]
fn digest(b: &[u8]) -> String {
    format!("{:x}", md5::compute(b))
}

#[cfg(not(feature = "md5"))]
fn digest(_: &[u8]) -> String {
    String::new()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a = args.get(1).map_or("/tmp", String::as_str);
    let b = args.get(2).map_or("/mnt", String::as_str);
    init_log();
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    log::info!("up {}.{:09}", t.tv_sec, t.tv_nsec);
    let msg = format!(
        "add@/devices/{a}\0ACTION=add\0DEVPATH=/devices/{a}\0SUBSYSTEM=block\0MAJOR=8\0MINOR=0\0SEQNUM=4711\0"
    );
    let dev = CString::new(b).unwrap_or_default();
    let doc = args.get(3).map_or(
        r#"{"version":1,"paths":[{"server":"198.18.0.1","port":3260,"lun":1,"target":"iqn.x:root"}],"nameservers":[],"timeout_ms":null}"#,
        String::as_str,
    );
    println!(
        "{} | {} | {:?} | {} | {}",
        syscalls(a, b),
        uevent(msg.as_bytes()),
        dev,
        config(doc),
        digest(b.as_bytes())
    );
}
EOF

variants=(base nix env_logger env_logger_default kobject serde_json serde_path_to_error md5)
build() { # build MODE VARIANT -> prints "FILE-BYTES TEXT+DATA-BYTES"
    local m=$1 v=$2 feat=() out
    [ "$v" = base ] || feat=(--features "$v")
    export CARGO_TARGET_DIR="$dir/target-$m"
    if [ "$m" = min ]; then
        RUSTC_BOOTSTRAP=1 \
            RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort" \
            cargo build -q --release --target "$target" "${feat[@]}" -Z build-std=std,panic_abort
    else
        RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
            cargo build -q --release --target "$target" "${feat[@]}"
    fi
    out="$CARGO_TARGET_DIR/$target/release/depsize"
    cp "$out" "$dir/depsize-$m-$v"
    # The file grows in whole pages (its segments are page-aligned); text +
    # data from size(1) shows the change below that step.
    echo "$(stat -c %s "$out") $(size -B "$out" | awk 'NR == 2 { print $1 + $2 }')"
}

cd "$dir"
modes=(plain min)
[ "$mode" = both ] || modes=("$mode")
sysroot=$(rustc --print sysroot)
echo "rustc: $(rustc -V)"
for m in "${modes[@]}"; do
    if [ "$m" = min ] && [ ! -d "$sysroot/lib/rustlib/src/rust/library" ]; then
        echo "$m: skipped (rust-src not installed)"
        continue
    fi
    read -r base base_td <<<"$(build "$m" base)"
    printf '%-6s %-20s %10s %10s %8s %12s\n' std variant bytes delta KiB text+data-Δ
    for v in "${variants[@]}"; do
        size=$base td=$base_td
        [ "$v" = base ] || read -r size td <<<"$(build "$m" "$v")"
        d=$((size - base))
        kib=$(awk -v d="$d" 'BEGIN { printf "%+.1f", d / 1024 }')
        printf '%-6s %-20s %10d %+10d %8s %+12d\n' "$m" "$v" "$size" "$d" "$kib" $((td - base_td))
    done
done
