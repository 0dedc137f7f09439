#!/usr/bin/env bash
# Userspace login latency (DESIGN §5, issue 15 item 5): `netboot probe` against
# libiscsi's command-line tools, all against one tgtd on loopback, in the same
# run, runs interleaved (the order rotates each round) so drift hits all alike.
# Prints medians and the ratios.
#
# iscsi-inq:             connect, login, INQUIRY, logout.
# iscsi-readcapacity16:  connect, login, READ CAPACITY(16), logout — the
#                        nearest to what probe is for (is the disk there, how
#                        big is it).
# netboot probe:         connect, login, REPORT LUNS, INQUIRY on every LUN,
#                        READ CAPACITY(16) on the disk, logout — more work
#                        than either, so the ratios are conservative.
# Each figure is the whole command, process start included (netboot is
# static; libiscsi's tools load libiscsi and its libraries).
#
# Usage: bash bench/login.sh [RUNS]   (default 50). Needs root and
# libiscsi-bin. NETBOOT_BIN=PATH: measure that binary, do not build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}

# NETBOOT_BIN=PATH measures that binary instead of building the tree first.
if [ -n "${NETBOOT_BIN:-}" ]; then
    nb=$(readlink -f "$NETBOOT_BIN")
else
    nb="$PWD/$(bash scripts/build.sh | tail -n 1)"
fi
for t in iscsi-inq iscsi-readcapacity16; do
    command -v "$t" >/dev/null || { echo "$t missing: apt-get install libiscsi-bin" >&2; exit 1; }
done
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

# µs from bash's own clock (EPOCHREALTIME, no `date` process around each
# command: on a loaded host two extra forks per run swamped the difference).
time_one() { # prints elapsed µs of "$@", fails the bench if the command fails
    local a b
    a=${EPOCHREALTIME/[.,]/}
    "$@" >"$work/out" 2>"$work/err" || { echo "failed: $*" >&2; cat "$work/err" >&2; exit 1; }
    b=${EPOCHREALTIME/[.,]/}
    echo $((b - a))
}
: >"$work/nb"; : >"$work/inq"; : >"$work/rc16"; : >"$work/login"
url="iscsi://127.0.0.1:$port/$iqn/1"
probe() {
    time_one "$nb" probe --json "iscsi:127.0.0.1::$port::$iqn" >>"$work/nb"
    # netboot's own clock around connect + login (the JSON's login_ms).
    sed -n 's/^ *"login_ms": \([0-9.]*\),$/\1/p' "$work/out" | awk '{printf "%d\n", $1 * 1000}' >>"$work/login"
}
inq() { time_one iscsi-inq "$url" >>"$work/inq"; }
rc16() {
    time_one iscsi-readcapacity16 "$url" >>"$work/rc16"
    grep -q 'Total size' "$work/out" || { echo "iscsi-readcapacity16 printed no size:" >&2; cat "$work/out" >&2; exit 1; }
}
for i in $(seq "$runs"); do
    case $((i % 3)) in
        0) probe; inq; rc16 ;;
        1) inq; rc16; probe ;;
        2) rc16; probe; inq ;;
    esac
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
m_nb=$(median "$work/nb"); m_inq=$(median "$work/inq"); m_rc=$(median "$work/rc16")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a / b}'; }
echo "$runs runs each, interleaved; tgtd on loopback; medians of the whole command (µs); load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo
echo "| tool | does | median | netboot probe / tool |"
echo "|---|---|---|---|"
echo "| \`netboot probe\` | login, REPORT LUNS, INQUIRY per LUN, READ CAPACITY(16), logout | $m_nb µs | |"
echo "| \`iscsi-readcapacity16\` (libiscsi $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null || echo '?')) | login, READ CAPACITY(16), logout | $m_rc µs | $(ratio "$m_nb" "$m_rc") |"
echo "| \`iscsi-inq\` (libiscsi) | login, INQUIRY, logout | $m_inq µs | $(ratio "$m_nb" "$m_inq") |"
echo "| netboot connect + login alone (probe's login_ms) | | $(median "$work/login") µs | |"
