#!/usr/bin/env bash
# Build the REFERENCE initramfs for the benchmark (qemu/bench): the same
# kernel modules as initramfs/build.sh, static busybox, Debian's iscsistart
# (dynamically linked: its ldd libraries and the loader are copied) and
# initramfs/iscsistart-init.sh as /init.
#
#   initramfs/build-iscsistart.sh --kernel KROOT|6.1|6.12 [--kver KVER] --out FILE
#       [--nic MOD,...] [--fs ext4,xfs,...] [--add SRC:DEST ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=initramfs/common.sh
. "$here/common.sh"

kernel="" kver="" out="" nics=$ir_default_nics fss=ext4
adds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --kver) kver=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --nic) nics=$2; shift 2 ;;
        --fs) fss=$2; shift 2 ;;
        --add) adds+=("$2"); shift 2 ;;
        *) ir_die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || ir_die "--kernel KROOT|6.1|6.12 is required"
[ -n "$out" ] || ir_die "--out FILE is required"
iscsistart=/usr/sbin/iscsistart
[ -x "$iscsistart" ] || ir_die "$iscsistart missing (apt-get install open-iscsi)"

ir_kernel "$kernel" "$kver"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ir_base "$staging"
IFS=, read -r -a nic_list <<<"$nics"
IFS=, read -r -a fs_list <<<"$fss"
ir_modules "$staging" crc32c iscsi_tcp sd_mod "${fs_list[@]}" "${nic_list[@]}"
# busybox insmod does not resolve dependencies: the init loads this list,
# dependencies first, as modprobe --show-depends ordered it.
printf '%s\n' "${ir_load_order[@]}" >"$staging/lib/modules/load.list"

ir_busybox "$staging"
for applet in $("$staging/bin/busybox" --list); do
    [ -e "$staging/bin/$applet" ] || ln -s busybox "$staging/bin/$applet"
done
mkdir -p "$staging/usr/sbin"
cp "$iscsistart" "$staging/usr/sbin/iscsistart"
# ldd prints "name => /path (addr)" and "/lib64/ld-linux… (addr)".
while read -r lib; do
    mkdir -p "$staging$(dirname "$lib")"
    cp -L "$lib" "$staging$lib"
done < <(ldd "$iscsistart" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
install -m 755 "$here/iscsistart-init.sh" "$staging/init"
for a in "${adds[@]}"; do
    src=${a%%:*} dest=${a#*:}
    [ -e "$src" ] || ir_die "--add $a: $src does not exist"
    mkdir -p "$staging/$(dirname "$dest")"
    cp -a "$src" "$staging/$dest"
done

mkdir -p "$(dirname "$out")"
ir_pack "$staging" "$out"
