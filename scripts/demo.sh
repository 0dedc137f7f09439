#!/usr/bin/env bash
# The demo (README "Run the demo"): builds netboot, starts a real tgt target
# inside a private network namespace (address 198.18.0.1 on the namespace's
# own loopback, nothing routed out), then runs `netboot discover` and
# `netboot probe` against it. Everything started here is stopped by PID and
# the namespace deleted on exit. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
cargo build --release --locked
nb="$PWD/target/x86_64-unknown-linux-musl/release/netboot"

ns="nbdemo-$$"
work=$(mktemp -d)
ctl=$((20000 + $$ % 10000))
addr=198.18.0.1
iqn=iqn.2026-11.org.netboot:demo
tgtd_pid=""

cleanup() {
    set +e
    if [ -n "$tgtd_pid" ]; then
        # tgtd ignores SIGTERM while targets exist (reference §8.4).
        tgtadm -C "$ctl" --lld iscsi --mode target --op delete --force --tid 1 >/dev/null 2>&1
        tgtadm -C "$ctl" --op delete --mode system >/dev/null 2>&1
        for _ in $(seq 50); do kill -0 "$tgtd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$tgtd_pid" 2>/dev/null
        # tgtd leaves its control socket and lock file behind.
        rm -f "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock"
    fi
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$addr/32" dev lo

truncate -s 64M "$work/disk.img"
ip netns exec "$ns" tgtd -f --iscsi "portal=$addr:3260" --control-port "$ctl" >"$work/tgtd.log" 2>&1 &
tgtd_pid=$!
for _ in $(seq 100); do
    tgtadm -C "$ctl" --lld iscsi --mode target --op show >/dev/null 2>&1 && break
    sleep 0.1
done
t() { tgtadm -C "$ctl" --lld iscsi "$@"; }
t --mode target --op new --tid 1 --targetname "$iqn"
t --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$work/disk.img"
t --mode target --op bind --tid 1 --initiator-address ALL

echo "\$ netboot discover $addr"
ip netns exec "$ns" "$nb" discover "$addr"
echo
echo "\$ netboot probe iscsi:$addr:::1:$iqn"
ip netns exec "$ns" "$nb" probe "iscsi:$addr:::1:$iqn"
