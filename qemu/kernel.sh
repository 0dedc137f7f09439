#!/usr/bin/env bash
# Fetch and cache a Debian kernel for the VM rig (DESIGN.md §4, reference §8.2).
#
#   qemu/kernel.sh 6.1|6.12
#
# Resolves the versioned package behind the Debian meta package
# (linux-image-amd64 for 6.1, linux-image-6.12-amd64 from bookworm-backports
# for 6.12), downloads it with `apt-get download` into
# target/vm/kernels/<package>_<version>/, extracts it, builds the module index
# with depmod and extracts the uncompressed ELF vmlinux from the bzImage so
# QEMU can boot it through PVH (saves the real-mode stub and the in-guest
# decompression, reference §8.3). Idempotent: a second call downloads nothing.
#
# Prints shell assignments (also written to <cache>/kernel.env):
#   KVER=6.1.0-56-amd64  VMLINUX=/…/vmlinux  KROOT=/…/kroot
# VMLINUX is the bzImage itself when the ELF has no PVH note.
set -euo pipefail

die() { echo "kernel.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 6.1|6.12"
case "$1" in
    6.1) meta=linux-image-amd64 ;;
    6.12) meta=linux-image-6.12-amd64 ;;
    *) die "unknown kernel version '$1' (want 6.1 or 6.12)" ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
base="$repo/target/vm/kernels"
mkdir -p "$base"

# The meta package depends on exactly one versioned image package.
resolve() {
    apt-cache depends "$meta" 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(resolve || true)
if [ -z "$pkg" ]; then
    echo "kernel.sh: $meta not in the package lists; running apt-get update" >&2
    apt-get update -q >&2
    pkg=$(resolve || true)
fi
[ -n "$pkg" ] || die "cannot resolve $meta to a versioned linux-image package (is bookworm-backports in sources.list?)"
ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2; exit }')
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
    die "no candidate version for $pkg"
fi

cache="$base/${pkg}_${ver}"
envfile="$cache/kernel.env"
if [ -f "$envfile" ]; then
    # Paths are re-rooted at the cache as it is now, so a moved or copied
    # checkout keeps working.
    sed -e "s|^VMLINUX=.*/|VMLINUX=$cache/|" -e "s|^KROOT=.*|KROOT=$cache/kroot|" "$envfile"
    exit 0
fi

rm -rf "$cache.tmp"
mkdir -p "$cache.tmp"
# apt drops privileges to _apt for the download; let it write here.
chown _apt "$cache.tmp" 2>/dev/null || true
(cd "$cache.tmp" && apt-get download -q "$pkg=$ver" >&2) \
    || die "apt-get download $pkg=$ver failed"
deb=$(find "$cache.tmp" -maxdepth 1 -name '*.deb' | head -n 1)
[ -n "$deb" ] || die "apt-get download left no .deb in $cache.tmp"
kroot="$cache.tmp/kroot"
dpkg-deb -x "$deb" "$kroot"
rm -f "$deb"

kver=$(find "$kroot/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
[ -n "$kver" ] || die "$pkg has no lib/modules/<kver> directory"
# The package ships no modules.dep (reference §8.2).
depmod -b "$kroot" "$kver"

vmlinuz="$kroot/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || die "missing $vmlinuz"

# The bzImage carries the compressed vmlinux after the setup code. Try each
# magic the kernel's Kconfig can select (arch/x86/boot/compressed/Makefile):
# the first offset that decompresses to an ELF file is the payload.
extract() {
    local magic=$1 out=$2 off
    shift 2
    while read -r off; do
        if tail -c +"$((off + 1))" "$vmlinuz" | "$@" >"$out" 2>/dev/null \
            || [ -s "$out" ]; then
            if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                return 0
            fi
        fi
    done < <(grep -aboP "$magic" "$vmlinuz" | cut -d: -f1)
    rm -f "$out"
    return 1
}
vmlinux="$cache.tmp/vmlinux"
export LC_ALL=C
extract '\xfd\x37\x7a\x58\x5a\x00' "$vmlinux" xz -dc \
    || extract '\x28\xb5\x2f\xfd' "$vmlinux" zstd -dcq \
    || extract '\x1f\x8b\x08' "$vmlinux" gzip -dc \
    || die "no XZ/zstd/gzip stream in $vmlinuz decompresses to an ELF vmlinux"

# PVH entry = XEN_ELFNOTE_PHYS32_ENTRY (18 = 0x12, include/xen/interface/elfnote.h).
if readelf -n "$vmlinux" | grep -Eq '^ *Xen .*(\(0x00000012\)|PHYS32_ENTRY)'; then
    boot_image="$cache/vmlinux"
else
    echo "kernel.sh: $vmlinux has no PVH note; QEMU will boot the bzImage" >&2
    rm -f "$vmlinux"
    boot_image="$cache/kroot/boot/vmlinuz-$kver"
fi

# Facts the initramfs builder needs: module compression and in-kernel decompression.
config="$kroot/boot/config-$kver"
compress=$(grep -E '^CONFIG_MODULE_COMPRESS_[A-Z]+=y' "$config" | head -n 1 || true)
decompress=$(grep -E '^CONFIG_MODULE_DECOMPRESS=y' "$config" || echo "CONFIG_MODULE_DECOMPRESS unset")
nmods=$(find "$kroot/lib/modules/$kver" -name '*.ko*' | wc -l)

{
    echo "KVER=$kver"
    echo "VMLINUX=$boot_image"
    echo "KROOT=$cache/kroot"
    echo "# $pkg $ver: $nmods modules; ${compress:-no CONFIG_MODULE_COMPRESS_*}; $decompress"
} >"$cache.tmp/kernel.env"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
cat "$envfile"
