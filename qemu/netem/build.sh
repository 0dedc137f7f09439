#!/usr/bin/env bash
# Build the netem initramfs (issue 5): RxRPC config fetches under real
# `tc netem` loss, duplication and reordering, inside a QEMU guest (the
# build machine's kernel has no sch_netem; Debian's guest kernels do).
# Contents: static busybox, iproute2's ip and tc (dynamically linked: their
# ldd libraries and the loader are copied, as initramfs/build-iscsistart.sh
# does), the static target/dist/netboot and netboot-configd, the modules
# sch_netem, fcrypt, pcbc, rxrpc with their dependencies, a config store
# /cfg and qemu/netem/init.sh as /init.
#
#   qemu/netem/build.sh --kernel 6.1|6.12|KROOT [--kver KVER] --out FILE
#       [--dist DIR] [--n FETCHES]
#
# --dist: where netboot and netboot-configd are (default target/dist, built
# by scripts/build.sh). --n: fetches per transport and qdisc (default 30),
# written to /etc/netem.conf for the guest's init.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=initramfs/common.sh
. "$repo/initramfs/common.sh"

kernel="" kver="" out="" dist="$repo/target/dist" n=30
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --kver) kver=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --dist) dist=$2; shift 2 ;;
        --n) n=$2; shift 2 ;;
        *) ir_die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || ir_die "--kernel KROOT|6.1|6.12 is required"
[ -n "$out" ] || ir_die "--out FILE is required"
case "$n" in
    '' | *[!0-9]*) ir_die "--n '$n' is not a number" ;;
esac
for b in netboot netboot-configd; do
    [ -x "$dist/$b" ] || ir_die "$dist/$b missing (run scripts/build.sh)"
    file -b "$dist/$b" | grep -q 'statically linked' || ir_die "$dist/$b is not statically linked"
done
for b in /usr/sbin/ip /usr/sbin/tc; do
    [ -x "$b" ] || ir_die "$b missing (apt-get install iproute2)"
done

ir_kernel "$kernel" "$kver"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ir_base "$staging"
# rxrpc's init allocates its fcrypt/pcbc transforms (net/rxrpc/rxkad.c
# rxkad_init): both must be loaded first, and busybox insmod resolves
# nothing, so they lead the list.
ir_modules "$staging" fcrypt pcbc sch_netem rxrpc
printf '%s\n' "${ir_load_order[@]}" >"$staging/lib/modules/load.list"

ir_busybox "$staging"
# Busybox's own ip and tc know no netns and no netem: iproute2's are used.
for applet in $("$staging/bin/busybox" --list); do
    case "$applet" in ip | tc) continue ;; esac
    [ -e "$staging/bin/$applet" ] || ln -s busybox "$staging/bin/$applet"
done
mkdir -p "$staging/usr/sbin" "$staging/usr/bin" "$staging/var"
# iproute2 keeps named netns under /var/run/netns (its NETNS_RUN_DIR).
ln -s ../run "$staging/var/run"
for b in /usr/sbin/ip /usr/sbin/tc; do
    cp "$b" "$staging$b"
    # ldd prints "name => /path (addr)" and "/lib64/ld-linux… (addr)".
    while read -r lib; do
        [ -e "$staging$lib" ] && continue
        mkdir -p "$staging$(dirname "$lib")"
        cp -L "$lib" "$staging$lib"
    done < <(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
done
cp "$dist/netboot" "$dist/netboot-configd" "$staging/usr/bin/"

# The config every fetch gets (default.json: the guest asks with a MAC that
# has no file of its own); the init checks the plan names this initiator.
mkdir -p "$staging/cfg"
printf '%s\n' '{"version":1,"initiator":"iqn.2026-11.test:netem","tuning":{"queue_depth":64}}' \
    >"$staging/cfg/default.json"
printf 'N=%s\n' "$n" >"$staging/etc/netem.conf"
install -m 755 "$here/init.sh" "$staging/init"

mkdir -p "$(dirname "$out")"
ir_pack "$staging" "$out"
