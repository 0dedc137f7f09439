#!/usr/bin/env bash
# Build (once) and cache the Debian 12 chroots the initramfs-tools VM test and
# bench/itools-compare.sh make their initramfs in.
#
#   qemu/itools/chroot.sh 6.1|6.12
#
# One mmdebstrap run (--variant=minbase, the host's configured Debian archive:
# /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list) installs
# initramfs-tools, kmod, udev, busybox, zstd and the very kernel package the
# rig boots (qemu/kernel.sh's package and version: same vmlinux, same modules),
# whose postinst makes the chroot's first /boot/initrd.img-KVER, so
# /var/lib/initramfs-tools knows the version and a later `update-initramfs -u`
# (our .deb's trigger) rebuilds it. A customize hook tars that state (the
# "base"), then installs open-iscsi (Debian's own iSCSI initramfs hook) on top:
# the second tarball. Recommends are not installed (mmdebstrap's default);
# docs, man pages and locales are left out (they never reach an initramfs).
#
# Cached as ${NETBOOT_CACHE:-/var/cache/netboot}/itools-chroot-<hash>.tar and
# itools-chroot-open-iscsi-<hash>.tar; <hash> covers this script, the kernel
# package and version, the apt sources and the candidate versions of every
# package named above, so an archive update or a new kernel builds new ones.
#
# Prints shell assignments (values without spaces):
#   ITOOLS_BASE=/…/itools-chroot-<hash>.tar
#   ITOOLS_OPEN_ISCSI=/…/itools-chroot-open-iscsi-<hash>.tar
#   KVER=6.1.0-57-amd64  VMLINUX=/…/vmlinux
set -euo pipefail

die() { echo "itools/chroot.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 6.1|6.12"
here=$(cd "$(dirname "$0")" && pwd)
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap root mode, chroot)"

kenv=$("$here/../kernel.sh" "$1") || die "qemu/kernel.sh $1 failed"
kver=$(sed -n 's/^KVER=//p' <<<"$kenv")
vmlinux=$(sed -n 's/^VMLINUX=//p' <<<"$kenv")
kroot=$(sed -n 's/^KROOT=//p' <<<"$kenv")
# kernel.sh caches under target/vm/kernels/<package>_<version>/kroot.
kdir=$(basename "$(dirname "$kroot")")
kpkg=${kdir%%_*}
kpkgver=${kdir#*_}
if [ -z "$kver" ] || [ -z "$kpkg" ] || [ -z "$kpkgver" ]; then
    die "cannot read the kernel package from: $kenv"
fi

sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
[ -f "$sources" ] || die "no apt sources (looked for /etc/apt/sources.list.d/debian.sources, /etc/apt/sources.list)"

pkgs=(initramfs-tools kmod udev busybox zstd)
candidates() {
    local p
    for p in "${pkgs[@]}" open-iscsi; do
        echo "$p $(apt-cache policy "$p" | awk '$1 == "Candidate:" { print $2; exit }')"
    done
}
cache=${NETBOOT_CACHE:-/var/cache/netboot}
hash=$({
    cat "$0"
    echo "$kpkg=$kpkgver"
    grep -v '^#' "$sources"
    candidates
} | sha256sum | cut -c1-16)
base="$cache/itools-chroot-$hash.tar"
oiscsi="$cache/itools-chroot-open-iscsi-$hash.tar"

report() {
    echo "ITOOLS_BASE=$base"
    echo "ITOOLS_OPEN_ISCSI=$oiscsi"
    echo "KVER=$kver"
    echo "VMLINUX=$vmlinux"
}
if [ -f "$base" ] && [ -f "$oiscsi" ]; then
    report
    exit 0
fi

mkdir -p "$cache"
tmpbase="$base.tmp.$$"
tmpo="$oiscsi.tmp.$$"
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() { rm -f "$tmpbase" "$tmpo"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

include=$(IFS=,; echo "${pkgs[*]},$kpkg=$kpkgver")
start=$(date +%s)
echo "itools/chroot.sh: mmdebstrap bookworm (minbase, $include) → $base" >&2
# The first customize hook runs with the chroot's /proc, /sys, /dev mounted
# by mmdebstrap: --one-file-system keeps their contents out of the tarball
# (the mount points stay). Package lists and the apt cache are left out of
# the base (they are there only until mmdebstrap's cleanup).
# shellcheck disable=SC2016 # "$1" is expanded by mmdebstrap's hook shell
hook_open_iscsi='chroot "$1" apt-get install -y -q --no-install-recommends open-iscsi'
mmdebstrap --variant=minbase --mode=root --format=tar \
    --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="tar -C \"\$1\" --one-file-system --exclude=./var/lib/apt/lists/* \
        --exclude=./var/cache/apt/* --exclude=./etc/resolv.conf --exclude=./etc/hostname \
        -cf '$tmpbase' ." \
    --customize-hook="$hook_open_iscsi" \
    bookworm "$tmpo" "$sources" >&2 \
    || die "mmdebstrap failed"
[ -s "$tmpbase" ] || die "the base tarball $tmpbase was not written by the customize hook"
tar -tf "$tmpbase" "./boot/initrd.img-$kver" >/dev/null 2>&1 \
    || die "the chroot has no /boot/initrd.img-$kver (did the kernel's postinst run update-initramfs?)"
mv "$tmpbase" "$base"
mv "$tmpo" "$oiscsi"
echo "itools/chroot.sh: chroots built in $(($(date +%s) - start)) s ($(du -m "$base" | cut -f1) MiB, $(du -m "$oiscsi" | cut -f1) MiB)" >&2
report
