#!/usr/bin/env bash
# Build the fio root image for qemu/bench-fio: the busybox root of
# qemu/mkroot.sh (static busybox, /bin/sh) with qemu/fio/init.sh as
# /sbin/init, Debian's fio (dynamically linked: its ldd libraries and the
# loader are copied to the same paths) and /fio/data, a DATA_MIB file of
# non-zero bytes (mke2fs -d leaves all-zero blocks out as holes, and a hole
# reads as zeros without any I/O), all in one ext4 image labelled nbfio.
#
#   qemu/fio/build-root.sh [--data-mib N] [--out FILE]
#
# Without --out the image is cached as
# ${NETBOOT_CACHE:-/var/cache/netboot}/fio-root-<hash>/root.img (hash of
# this script, the init, fio, its libraries, busybox and N); if the cache
# cannot be written it is built under target/vm/bench-fio instead. Prints
# the image's path on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "fio/build-root.sh: $*" >&2; exit 1; }

data_mib=256 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --data-mib) data_mib=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
case "$data_mib" in '' | *[!0-9]* | 0) die "--data-mib $data_mib: want a positive number of MiB" ;; esac
fio=$(command -v fio || true)
[ -n "$fio" ] || die "fio missing (apt-get install fio)"
[ -x /usr/bin/busybox ] || die "/usr/bin/busybox missing (apt-get install busybox-static)"
file -b /usr/bin/busybox | grep -q 'statically linked' \
    || die "/usr/bin/busybox is not static (install busybox-static, not busybox)"

# ldd prints "name => /path (addr)" and "/lib64/ld-linux… (addr)".
mapfile -t libs < <(ldd "$fio" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ "${#libs[@]}" -gt 0 ] || die "ldd $fio listed no libraries"

if [ -z "$out" ]; then
    hash=$( {
        echo "data_mib=$data_mib"
        sha256sum "$here/build-root.sh" "$here/init.sh" "$fio" /usr/bin/busybox
        for l in "${libs[@]}"; do
            echo "$l $(sha256sum <"$(readlink -f "$l")")"
        done
    } | sha256sum | cut -c1-16)
    cache=${NETBOOT_CACHE:-/var/cache/netboot}/fio-root-$hash
    if [ -f "$cache/root.img" ]; then
        echo "fio-root: cached $cache/root.img" >&2
        echo "$cache/root.img"
        exit 0
    fi
    if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
        out=$cache/root.img
    else
        mkdir -p "$repo/target/vm/bench-fio"
        out=$repo/target/vm/bench-fio/fio-root-$hash.img
        [ -f "$out" ] && { echo "$out"; exit 0; }
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir -p "$tree"/{bin,sbin,usr/bin,dev,proc,sys,run,tmp,etc,newroot,fio}
cp /usr/bin/busybox "$tree/bin/busybox"
for applet in $("$tree/bin/busybox" --list); do
    [ -e "$tree/bin/$applet" ] || ln -s busybox "$tree/bin/$applet"
done
install -m 755 "$here/init.sh" "$tree/sbin/init"
cp "$fio" "$tree/usr/bin/fio"
for l in "${libs[@]}"; do
    mkdir -p "$tree$(dirname "$l")"
    cp -L "$l" "$tree$l"
done
# "yes" output: every block non-zero, the same bytes on every build.
{ yes 'netboot fio data' || true; } | head -c "$((data_mib * 1024 * 1024))" >"$tree/fio/data"

tree_mib=$(du -sm "$tree" | cut -f1)
size=$((tree_mib + tree_mib / 8 + 48))
truncate -s "${size}M" "$work/fs.img"
mkfs.ext4 -q -F -L nbfio -d "$tree" "$work/fs.img" || die "mkfs.ext4 -d $tree failed"
mkdir -p "$(dirname "$out")"
mv "$work/fs.img" "$out.tmp"
mv "$out.tmp" "$out"
echo "fio-root: $out: ext4 label nbfio, ${size} MiB, /fio/data ${data_mib} MiB, fio $("$fio" --version)" >&2
echo "$out"
