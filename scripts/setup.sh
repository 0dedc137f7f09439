#!/usr/bin/env bash
# Install everything the build and the tests need on a fresh Debian 12
# machine: Debian packages, the Rust musl target, cargo-fuzz. Idempotent:
# packages already present are not fetched again.
set -euo pipefail

# btrfs-progs: tests/disk.rs builds partitioned images with ext4, xfs and btrfs.
need_pkgs=(tgt istgt open-iscsi libiscsi-bin iproute2 tcpdump shellcheck python3 file e2fsprogs cpio kmod btrfs-progs)
# The VM rig (qemu/, initramfs/): TCG QEMU, busybox for the root images and
# the reference initramfs, module decompression, sfdisk for partitioned
# images, mkfs.xfs for XFS roots, dnsmasq for the DHCP scenarios and tests/net.rs.
need_pkgs+=(qemu-system-x86 busybox-static xz-utils zstd xfsprogs fdisk dnsmasq)
# The distributions' initramfs generators our integrations are tested with
# (dracut/, initramfs-tools/; the .deb is built with dpkg-deb), and
# mmdebstrap for the Debian chroot in which mkinitramfs runs.
need_pkgs+=(dracut-core initramfs-tools mmdebstrap udev)
# fio for the I/O benchmark's root image (qemu/bench-fio; not run by the tests).
need_pkgs+=(fio)
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The static binary we ship is built for musl. If rustup cannot add the
# target, fall back to a static glibc build (crt-static) and say so.
if rustup target list --installed 2>/dev/null | grep -q '^x86_64-unknown-linux-musl$' \
    || rustup target add x86_64-unknown-linux-musl; then
    echo "setup: rust target x86_64-unknown-linux-musl ready"
else
    echo "setup: WARNING: cannot install the musl target; building static glibc instead" >&2
    echo "x86_64-unknown-linux-gnu" > "$(dirname "$0")/../target-fallback"
fi

# rust-src lets scripts/build.sh rebuild std with the immediate-abort panic
# strategy (the shipped binary's size budget). Without it the build falls
# back to the ordinary std, which is larger.
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src \
        || echo "setup: WARNING: cannot install rust-src; the release binary will be larger" >&2
fi

if [ "${NETBOOT_SKIP_FUZZ:-0}" != 1 ] && ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
