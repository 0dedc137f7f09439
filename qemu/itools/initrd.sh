#!/usr/bin/env bash
# Make a Debian initramfs the Debian way, in a throw-away copy of a chroot
# from qemu/itools/chroot.sh.
#
#   qemu/itools/initrd.sh --chroot TAR --out FILE [--deb DEB] [--file SRC:DEST]...
#                         [--update]
#
# The tarball is unpacked under ${TMPDIR:-/var/tmp}; each --file copies SRC to
# DEST inside the chroot (configuration, e.g. /etc/iscsi/iscsi.initramfs);
# then, in a private mount namespace with /proc, /sys and /dev mounted in the
# chroot (they vanish with the namespace):
#   --deb DEB   `dpkg -i DEB`: the package's trigger runs initramfs-tools'
#               `update-initramfs -u`, which rebuilds /boot/initrd.img-KVER
#               with mkinitramfs and the chroot's default initramfs.conf;
#   --update    `update-initramfs -u` (after --deb, if both);
# without either, the initrd the chroot already holds is taken as it is.
# /boot/initrd.img-KVER is copied to FILE and its file list (lsinitramfs) to
# FILE.list; the dpkg/update-initramfs output goes to FILE.log. The copy of
# the chroot is deleted. Prints KVER=, INITRD=, INITRD_BYTES= and BUILD_S=
# (seconds for dpkg/update-initramfs).
set -euo pipefail

die() { echo "itools/initrd.sh: $*" >&2; exit 1; }

tarball="" out="" deb="" update=0 files=()
while [ $# -gt 0 ]; do
    case "$1" in
        --chroot) tarball=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --deb) deb=$2; shift 2 ;;
        --file) files+=("$2"); shift 2 ;;
        --update) update=1; shift ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -f "$tarball" ] || die "--chroot '$tarball': no such file"
[ -n "$out" ] || die "--out FILE is required"
[ -z "$deb" ] || [ -f "$deb" ] || die "--deb '$deb': no such file"
[ "$(id -u)" = 0 ] || die "needs root (chroot, mounts)"

root=$(mktemp -d "${TMPDIR:-/var/tmp}/itools-root.XXXXXX")
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    # The mounts lived in the unshare'd namespace only; never cross into
    # anything still mounted here all the same.
    if findmnt -rn -o TARGET | grep -qF "$root"; then
        echo "itools/initrd.sh: $root still has mounts; not deleting it" >&2
    else
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tar -xpf "$tarball" --numeric-owner -C "$root"
kver=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
[ -n "$kver" ] || die "$tarball has no /lib/modules/KVER"
for f in "${files[@]}"; do
    src=${f%%:*} dest=${f#*:}
    [ -f "$src" ] || die "--file $f: no such file $src"
    install -D -m 0644 "$src" "$root$dest"
done
if [ -n "$deb" ]; then
    cp "$deb" "$root/tmp/package.deb"
fi

log="$out.log"
: >"$log"
start=$(date +%s.%N)
if [ -n "$deb" ] || [ "$update" = 1 ]; then
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount --propagation private -- sh -euc '
        root=$1 deb=$2 update=$3
        mount -t proc proc "$root/proc"
        mount -t sysfs sysfs "$root/sys"
        mount --rbind /dev "$root/dev"
        if [ -n "$deb" ]; then
            chroot "$root" dpkg -i /tmp/package.deb
        fi
        if [ "$update" = 1 ]; then
            chroot "$root" update-initramfs -u
        fi
    ' sh "$root" "$deb" "$update" >>"$log" 2>&1 || {
        tail -n 30 "$log" >&2
        die "dpkg -i / update-initramfs in the chroot failed (log: $log)"
    }
fi
end=$(date +%s.%N)
initrd="$root/boot/initrd.img-$kver"
[ -f "$initrd" ] || die "no /boot/initrd.img-$kver in the chroot (log: $log)"
if [ -n "$deb" ]; then
    grep -q "update-initramfs: Generating /boot/initrd.img-$kver" "$log" \
        || die "dpkg -i did not run update-initramfs (no trigger?); log: $log"
fi
chroot "$root" lsinitramfs "/boot/initrd.img-$kver" >"$out.list" 2>>"$log" \
    || die "lsinitramfs failed (log: $log)"
cp "$initrd" "$out"
echo "KVER=$kver"
echo "INITRD=$out"
echo "INITRD_BYTES=$(stat -c %s "$out")"
echo "BUILD_S=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
