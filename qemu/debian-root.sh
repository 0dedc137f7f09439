#!/usr/bin/env bash
# Build (once) and cache the Debian 12 root image of tests/vm_debian.rs: a
# real root with systemd as init and open-iscsi, booted by netboot's
# initramfs, so iscsid's start-up adoption of the root session, its recovery
# and systemd's shutdown run for real (issue 14).
#
#   qemu/debian-root.sh            → prints DEBIAN_ROOT=/…/debian-root-<hash>.img
#
# Two steps, each cached under ${NETBOOT_CACHE:-/var/cache/netboot}:
#  1. debian-root-<thash>.tar: one mmdebstrap run (--variant=minbase, suite
#     bookworm, the host's configured Debian archive:
#     /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list) with
#     systemd-sysv, udev, open-iscsi, e2fsprogs, kmod, procps. Recommends are
#     not installed; docs, man pages and locales are left out. open-iscsi's
#     postinst generates /etc/iscsi/initiatorname.iscsi (a random Debian
#     name), as on any installed system. <thash> covers the package list,
#     the mmdebstrap options, the apt sources and every candidate version,
#     so an archive update builds a new tarball.
#  2. debian-root-<ihash>.img: that tree plus qemu/debian/* (the test unit
#     nbtest.service and its script /usr/local/sbin/nbtest, /etc/fstab,
#     hostname, masks of timers and gettys the test does not need) made into
#     an ext4 image with mkfs.ext4 -d (label nbroot, 1 GiB sparse, no loop
#     device, no mount). <ihash> covers <thash>, this script and qemu/debian/*.
# Old entries are not removed (they are small enough; rm them by hand).
set -euo pipefail

die() { echo "debian-root.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap root mode)"

sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
[ -f "$sources" ] || die "no apt sources (looked for /etc/apt/sources.list.d/debian.sources, /etc/apt/sources.list)"

pkgs=(systemd-sysv udev open-iscsi e2fsprogs kmod procps)
mmopts=(--variant=minbase --mode=root --format=tar
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright')
size_mib=1024

candidates() {
    local p
    for p in "${pkgs[@]}"; do
        echo "$p $(apt-cache policy "$p" | awk '$1 == "Candidate:" { print $2; exit }')"
    done
}
cache=${NETBOOT_CACHE:-/var/cache/netboot}
thash=$({
    echo "tar v1 ${pkgs[*]} ${mmopts[*]}"
    grep -v '^#' "$sources"
    candidates
} | sha256sum | cut -c1-16)
tarball="$cache/debian-root-$thash.tar"
ihash=$({
    echo "$thash $size_mib"
    cat "$0"
    (cd "$here/debian" && find . -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -c1-16)
img="$cache/debian-root-$ihash.img"

if [ -f "$img" ]; then
    echo "DEBIAN_ROOT=$img"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.debian-root.XXXXXX")
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
if [ ! -f "$tarball" ]; then
    include=$(IFS=,; echo "${pkgs[*]}")
    echo "debian-root.sh: mmdebstrap bookworm (minbase, $include) → $tarball" >&2
    # shellcheck disable=SC2016 # "$1" is expanded by mmdebstrap's hook shell
    mmdebstrap "${mmopts[@]}" --include="$include" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$work/root.tar" "$sources" >&2 \
        || die "mmdebstrap failed"
    mv "$work/root.tar" "$tarball"
    echo "debian-root.sh: tarball built in $(($(date +%s) - start)) s ($(du -m "$tarball" | cut -f1) MiB)" >&2
fi

tree="$work/tree"
mkdir "$tree"
tar -C "$tree" -xf "$tarball" || die "cannot unpack $tarball"
d="$here/debian"
install -m 0755 "$d/nbtest" "$tree/usr/local/sbin/nbtest"
install -m 0644 "$d/nbtest.service" "$tree/etc/systemd/system/nbtest.service"
install -m 0644 "$d/fstab" "$tree/etc/fstab"
echo nbdebian >"$tree/etc/hostname"
: >"$tree/etc/machine-id"
ln -sf /etc/systemd/system/nbtest.service "$tree/etc/systemd/system/multi-user.target.wants/nbtest.service"
# Units the test does not need and that would only cost TCG time.
while read -r u; do
    [ -n "$u" ] || continue
    ln -sf /dev/null "$tree/etc/systemd/system/$u"
done <"$d/masked"
# The root password is empty (a rescue login on the console, never on a network).
sed -i 's/^root:[^:]*:/root::/' "$tree/etc/shadow"
truncate -s "${size_mib}M" "$work/root.img"
mkfs.ext4 -q -L nbroot -d "$tree" "$work/root.img" || die "mkfs.ext4 -d failed"
mv "$work/root.img" "$img"
echo "debian-root.sh: image built in $(($(date +%s) - start)) s" >&2
echo "DEBIAN_ROOT=$img"
