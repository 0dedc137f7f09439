#!/usr/bin/env bash
# Build a VM test root image (DESIGN.md §4): static busybox and
# qemu/root-init.sh as /sbin/init, without loop devices or mounts.
#
#   qemu/mkroot.sh OUT [--label L] [--partitioned gpt|mbr] [--fs ext4|xfs] [--size MIB]
#
# Plain: the filesystem fills OUT. --partitioned: OUT is a disk with a
# partition table made by sfdisk: partition 1 a 1 MiB dummy, partition 2
# (named "root" on GPT) holds the filesystem, so root=LABEL=… has to find it
# on a partition. Defaults: --label nbroot, --fs ext4, --size 64 (xfs: 300,
# the smallest size mkfs.xfs accepts since xfsprogs 5.19).
set -euo pipefail

die() { echo "mkroot.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 OUT [--label L] [--partitioned gpt|mbr] [--fs ext4|xfs] [--size MIB]"
out=$1
shift
label=nbroot part="" fs=ext4 size=""
while [ $# -gt 0 ]; do
    case "$1" in
        --label) label=$2; shift 2 ;;
        --partitioned) part=$2; shift 2 ;;
        --fs) fs=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        *) die "unknown option '$1'" ;;
    esac
done
case "$part" in "" | gpt | mbr) ;; *) die "--partitioned $part: want gpt or mbr" ;; esac
case "$fs" in
    ext4) size=${size:-64} ;;
    xfs) size=${size:-300} ;;
    *) die "--fs $fs: want ext4 or xfs" ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
[ -x /usr/bin/busybox ] || die "/usr/bin/busybox missing (apt-get install busybox-static)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir -p "$tree"/{bin,sbin,dev,proc,sys,run,tmp,etc,newroot}
cp /usr/bin/busybox "$tree/bin/busybox"
ln -s busybox "$tree/bin/sh"
install -m 755 "$here/root-init.sh" "$tree/sbin/init"

fsimg="$work/fs.img"
truncate -s "${size}M" "$fsimg"
case "$fs" in
    ext4)
        mkfs.ext4 -q -F -L "$label" -d "$tree" "$fsimg" || die "mkfs.ext4 -d $tree failed"
        ;;
    xfs)
        # mkfs.xfs has no -d DIR; it populates from a proto file
        # (mkfs.xfs(8) "-p protofile").
        proto="$work/proto"
        {
            echo "bootimage"
            echo "0 0"
            echo "d--755 0 0"
            echo "bin d--755 0 0"
            echo "busybox ---755 0 0 $tree/bin/busybox"
            echo "sh l--777 0 0 busybox"
            echo '$'
            echo "sbin d--755 0 0"
            echo "init ---755 0 0 $tree/sbin/init"
            echo '$'
            for d in dev proc sys run tmp etc newroot; do
                echo "$d d--755 0 0"
                echo '$'
            done
            echo '$'
        } >"$proto"
        mkfs.xfs -q -f -L "$label" -p "$proto" "$fsimg" || die "mkfs.xfs -p $proto failed"
        ;;
esac

if [ -z "$part" ]; then
    mv "$fsimg" "$out"
    echo "mkroot: $out: $fs label $label, ${size} MiB"
    exit 0
fi

# 1 MiB alignment; partition 1 = 1 MiB dummy at 1 MiB, partition 2 = the
# filesystem at 2 MiB; 1 MiB left at the end for the GPT backup header.
sectors=$((size * 2048))
rm -f "$out"
truncate -s "$((size + 3))M" "$out"
if [ "$part" = gpt ]; then
    table="label: gpt
start=2048, size=2048, type=linux, name=dummy
start=4096, size=$sectors, type=linux, name=root"
else
    table="label: dos
start=2048, size=2048, type=83
start=4096, size=$sectors, type=83"
fi
sfdisk -q "$out" <<<"$table" || die "sfdisk on $out failed"
dd if="$fsimg" of="$out" bs=1M seek=2 conv=notrunc,sparse status=none || die "dd into $out failed"
echo "mkroot: $out: $part disk, partition 2 = $fs label $label, ${size} MiB"
