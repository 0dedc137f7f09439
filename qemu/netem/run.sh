#!/usr/bin/env bash
# Boot the netem guest (qemu/netem/build.sh, qemu/netem/init.sh) once under
# QEMU TCG and print its serial console. The guest has no NIC: everything
# runs on the loopback of a netns inside it, so the host needs no network
# setup at all. Exit 0 when the guest printed NETEM-DONE, 1 otherwise
# (NETEM-FAIL, timeout, QEMU error).
#
#   qemu/netem/run.sh --kernel 6.1|6.12 [--initrd FILE] [--n FETCHES]
#       [--timeout SECONDS] [--log FILE]
#
# Without --initrd it builds target/vm/netem/netem-<kernel>.cpio.gz.
# --timeout (default 240) bounds the whole boot; QEMU is then killed by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "netem/run.sh: $*" >&2; exit 1; }

kernel="" initrd="" n=30 timeout=240 log=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --initrd) initrd=$2; shift 2 ;;
        --n) n=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --log) log=$2; shift 2 ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || die "--kernel 6.1|6.12 is required"
case "$timeout" in
    '' | *[!0-9]*) die "--timeout '$timeout' is not a number of seconds" ;;
esac
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"

env=$("$repo/qemu/kernel.sh" "$kernel") || die "qemu/kernel.sh $kernel failed"
vmlinux=$(sed -n 's/^VMLINUX=//p' <<<"$env")
[ -f "$vmlinux" ] || die "no VMLINUX from qemu/kernel.sh $kernel"
work="$repo/target/vm/netem"
mkdir -p "$work"
if [ -z "$initrd" ]; then
    initrd="$work/netem-$kernel.cpio.gz"
    "$here/build.sh" --kernel "$kernel" --n "$n" --out "$initrd" >&2
fi
[ -n "$log" ] || log="$work/serial-$kernel-$$.log"
: >"$log"

# No NIC (-nic none), no disk, no monitor; the guest's init powers off and
# -no-reboot turns a panic (panic=-1) into an exit as well.
qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot -monitor none \
    -nic none -serial "file:$log" -kernel "$vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet" </dev/null >"$log.qemu" 2>&1 &
qpid=$!
cleanup() { kill "$qpid" 2>/dev/null || true; }
trap cleanup EXIT
start=$SECONDS
while kill -0 "$qpid" 2>/dev/null; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
        kill "$qpid" 2>/dev/null || true
        echo "netem/run.sh: guest still running after ${timeout}s; killed QEMU (pid $qpid)" >&2
        break
    fi
    sleep 0.5
done
wait "$qpid" 2>/dev/null || true
trap - EXIT
cat "$log"
if [ -s "$log.qemu" ]; then
    sed 's/^/qemu: /' "$log.qemu" >&2
fi
echo "netem/run.sh: kernel $kernel, $((SECONDS - start)) s wall, serial log $log" >&2
grep -q '^NETEM-DONE' "$log"
