#!/usr/bin/env bash
# Userspace login+logout latency on loopback: libiscsi `iscsi-inq` vs `netboot probe`, N runs
# each against one private tgtd; prints medians (ms) and the ratio netboot / iscsi-inq
# (DESIGN.md §5 target: <= 1.0). Needs root, tgt, libiscsi-bin.
#
# Usage: bench/login.sh [N] [NETBOOT-BINARY]
#   default N=20, binary target/x86_64-unknown-linux-musl/release/netboot
set -euo pipefail

n=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
netboot=${2:-$root/target/x86_64-unknown-linux-musl/release/netboot}
iqn=iqn.2026-11.test:root
port=13270
ctl=13270 # tgtd --control-port (unix socket /var/run/tgtd/socket.N)
work=$(mktemp -d /tmp/netboot-bench.XXXXXX)
tgtd_pid=""

cleanup() {
	if [ -n "$tgtd_pid" ]; then
		# tgtd ignores SIGTERM: delete the target, then the system; SIGKILL the PID last.
		tgtadm -C "$ctl" --lld iscsi --mode target --op delete --force --tid 1 >/dev/null 2>&1 || true
		tgtadm -C "$ctl" --op delete --mode system >/dev/null 2>&1 || true
		local i
		for i in $(seq 100); do kill -0 "$tgtd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$tgtd_pid" 2>/dev/null && { echo "killing tgtd after $i checks" >&2; kill -KILL "$tgtd_pid"; }
		wait "$tgtd_pid" 2>/dev/null || true
		rm -f "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock"
	fi
	rm -rf "$work"
}
trap cleanup EXIT

[ -x "$netboot" ] || { echo "no netboot binary at $netboot (cargo build --release?)" >&2; exit 1; }
if ss -Htln "sport = :$port" | grep -q .; then echo "port $port in use" >&2; exit 1; fi

truncate -s 64M "$work/disk.img"
tgtd -f --control-port "$ctl" --iscsi "portal=127.0.0.1:$port" >"$work/tgtd.log" 2>&1 &
tgtd_pid=$!
for _ in $(seq 100); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.1; done
tgt() { tgtadm -C "$ctl" --lld iscsi "$@"; }
tgt --mode target --op new --tid 1 --targetname "$iqn"
tgt --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$work/disk.img"
tgt --mode target --op bind --tid 1 --initiator-address ALL

# time_runs NAME CMD...: run CMD n times, one wall time in ns per line into $work/NAME.
time_runs() {
	local name=$1 i t0 t1
	shift
	"$@" >/dev/null 2>&1 || { echo "$name failed: $*" >&2; "$@"; exit 1; }
	: >"$work/$name"
	for i in $(seq "$n"); do
		t0=$(date +%s%N)
		"$@" >/dev/null 2>&1 || { echo "$name run $i failed" >&2; exit 1; }
		t1=$(date +%s%N)
		echo $((t1 - t0)) >>"$work/$name"
	done
}

median() { sort -n "$1" | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print m}'; }

time_runs iscsi-inq iscsi-inq "iscsi://127.0.0.1:$port/$iqn/1"
time_runs netboot "$netboot" probe "iscsi:127.0.0.1::$port::$iqn"

a=$(median "$work/iscsi-inq")
b=$(median "$work/netboot")
awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN {
	printf "runs each:          %d\n", n
	printf "iscsi-inq median:   %.2f ms\n", a / 1e6
	printf "netboot probe med.: %.2f ms\n", b / 1e6
	printf "ratio netboot/iscsi-inq: %.2f (target <= 1.0)\n", b / a
}'
