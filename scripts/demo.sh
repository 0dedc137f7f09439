#!/usr/bin/env bash
# The demo (README "Run the demo"): builds netboot, starts a real tgt target
# inside a private network namespace (address 198.18.0.1 on the namespace's
# own loopback, nothing routed out), then runs `netboot discover` and
# `netboot probe` against it. Everything started here is stopped by PID and
# the namespace deleted on exit. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
nb="$PWD/$(bash scripts/build.sh | tail -n 1)"

ns="nbdemo-$$"
work=$(mktemp -d)
addr=198.18.0.1
iqn=iqn.2026-11.org.netboot:demo
# shellcheck source=scripts/tgt.sh
. scripts/tgt.sh

cleanup() {
    set +e
    tgt_stop
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$addr/32" dev lo
tgt_start "$addr:3260" "$iqn" "$work" "$ns"

echo "\$ netboot discover $addr"
ip netns exec "$ns" "$nb" discover "$addr"
echo
echo "\$ netboot probe iscsi:$addr:::1:$iqn"
ip netns exec "$ns" "$nb" probe "iscsi:$addr:::1:$iqn"
