#!/usr/bin/env bash
# Build the shipped binaries (netboot, netboot-configd) into target/dist/:
# static (musl, crt-static, non-PIE) and small.
#
# Size: the std the toolchain ships carries the panic-message and backtrace
# machinery (gimli, addr2line, libunwind, miniz: ~380 KB of a 1.15 MB
# binary). We rebuild std for our target with the `immediate-abort` panic
# strategy (-Zbuild-std; stable rustc accepts the unstable flags with
# RUSTC_BOOTSTRAP=1, as the fuzz build does): a panic then aborts at once.
# The shipped code has no unwrap/expect/panic! (Cargo.toml's [lints.clippy]
# deny them outside tests) and every decoder is fuzzed; PID 1 reports its
# failures itself, never by panic. Nothing unwinds, so the unwind tables
# go too (-C force-unwind-tables=no, no .eh_frame_hdr: 165 KB of 1.14 MB);
# the crash guard works from signals, not from unwinding. std is built with
# its `optimize_for_size` feature (smaller sort, formatting and collection
# code paths; 45 KB of 1.05 MB, measured 2026-12-02).
# If rust-src is unavailable, fall back to the ordinary release build.
#
# Prints the path of the netboot binary on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
if [ -f target-fallback ]; then
    target=$(cat target-fallback)
fi
mkdir -p target/dist
sysroot=$(rustc --print sysroot)
if [ "$target" = x86_64-unknown-linux-musl ] && [ -d "$sysroot/lib/rustlib/src/rust/library" ]; then
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/min \
        RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort -C force-unwind-tables=no -C link-arg=-Wl,--no-eh-frame-hdr" \
        cargo build --release --locked --bins --target "$target" -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size >&2
    out=target/min/$target/release
else
    echo "build.sh: rust-src not installed; ordinary release build (larger)" >&2
    flags=()
    if [ "$target" != x86_64-unknown-linux-musl ]; then
        flags=(--target "$target")
        export RUSTFLAGS="-C target-feature=+crt-static"
    fi
    cargo build --release --locked --bins "${flags[@]}" >&2
    out=target/$target/release
fi
cp "$out/netboot" "$out/netboot-configd" target/dist/
echo "target/dist/netboot"
