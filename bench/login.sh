#!/usr/bin/env bash
# Userspace login latency (DESIGN §5): `netboot probe` against libiscsi's
# `iscsi-inq`, both against one tgtd on loopback, in the same run, runs
# interleaved so drift hits both alike. Prints medians and the ratio.
#
# iscsi-inq:     connect, login, INQUIRY, logout.
# netboot probe: connect, login, REPORT LUNS, INQUIRY on every LUN,
#                READ CAPACITY(16) on the disk, logout — more work, so the
#                ratio is conservative.
#
# Usage: bash bench/login.sh [RUNS]   (default 50). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}

nb="$PWD/$(bash scripts/build.sh | tail -n 1)"
command -v iscsi-inq >/dev/null || { echo "iscsi-inq missing: apt-get install libiscsi-bin" >&2; exit 1; }

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iqn=iqn.2026-11.org.netboot:bench
# shellcheck source=scripts/tgt.sh
. scripts/tgt.sh
cleanup() {
    set +e
    tgt_stop
    rm -rf "$work"
}
trap cleanup EXIT
tgt_start "127.0.0.1:$port" "$iqn" "$work"

ns() { date +%s%N; }
time_one() { # prints elapsed µs of "$@", fails the bench if the command fails
    local a b
    a=$(ns)
    "$@" >"$work/out" 2>"$work/err" || { echo "failed: $*" >&2; cat "$work/err" >&2; exit 1; }
    b=$(ns)
    echo $(((b - a) / 1000))
}
: >"$work/nb"; : >"$work/inq"; : >"$work/login"
for _ in $(seq "$runs"); do
    time_one "$nb" probe --json "iscsi:127.0.0.1::$port::$iqn" >>"$work/nb"
    # netboot's own clock around connect + login (the JSON's login_ms).
    sed -n 's/^ *"login_ms": \([0-9.]*\),$/\1/p' "$work/out" | awk '{printf "%d\n", $1 * 1000}' >>"$work/login"
    time_one iscsi-inq "iscsi://127.0.0.1:$port/$iqn/1" >>"$work/inq"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
m_nb=$(median "$work/nb"); m_inq=$(median "$work/inq")
printf '%-34s %10s\n' "tool ($runs runs, tgtd on loopback)" "median µs"
printf '%-34s %10d\n' "netboot probe" "$m_nb"
printf '%-34s %10d\n' "iscsi-inq (libiscsi)" "$m_inq"
printf '%-34s %10d\n' "netboot connect+login alone" "$(median "$work/login")"
awk -v a="$m_nb" -v b="$m_inq" 'BEGIN {printf "ratio netboot/iscsi-inq: %.2f\n", a / b}'
