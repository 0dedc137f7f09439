#!/usr/bin/env bash
# configd next to an independent Rx server under the same client load
# (issue 15 item 4; a benchmark, not a test).
#
#   bash bench/configd-fleet.sh [SECONDS [LEVELS [BURST]]]
#
# Inside a private network namespace (10.99.0.1/32 on its lo: ubik refuses
# a loopback-only host, rxrpc.md §3.3): OpenAFS 1.8.9 `vlserver -noauth`
# (UDP 7003, its own mount+UTS namespace so the host name resolves through
# a bind-mounted /etc/hosts; binaries from tests/fixtures/rxrpc/openafs.sh)
# and netboot-configd (release build, default limits) on 127.0.0.1:7260.
# examples/configd_bench.rs --compare then runs, in the namespace, the same
# closed-loop load against both (VL_ProbeServer vs GetConfig; LEVELS client
# threads, default 1,10,100; SECONDS per run, default 5) and prints each
# server's calls/s and the ratio, then BURST (default 1000) clients
# starting within one second against each. Needs root. CONFIGD=PATH runs
# another configd binary (e.g. an older build) in place of the fresh one.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
secs="${1:-5}"
levels="${2:-1,10,100}"
burst="${3:-1000}"
if [ "$(id -u)" != 0 ]; then
    echo "configd-fleet.sh: needs root (a private network namespace)" >&2
    exit 1
fi
cargo build --release --bin netboot-configd --example configd_bench >&2
bin="$top/target/x86_64-unknown-linux-musl/release"
root="$(bash tests/fixtures/rxrpc/openafs.sh)"
libs="$root/usr/lib/x86_64-linux-gnu"
ns="nbfleet-$$"
work="$(mktemp -d)"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" addr add 10.99.0.1/32 dev lo
ip -n "$ns" link set lo up

printf 'test.local\n' >"$work/ThisCell"
printf '>test.local #test cell\n10.99.0.1 #afstest\n' >"$work/CellServDB"
printf '127.0.0.1 localhost\n10.99.0.1 afstest\n' >"$work/hosts"
# ip netns exec, unshare and sh all exec: the PID is vlserver's.
ip netns exec "$ns" unshare -m -u sh -c "hostname afstest && mount --bind '$work/hosts' /etc/hosts && \
    exec env LD_LIBRARY_PATH='$libs' '$root/usr/lib/openafs/vlserver' -noauth -config '$work' \
    -database '$work/vldb' -logfile '$work/VLLog'" &
pids+=("$!")

mkdir "$work/conf"
cat >"$work/conf/default.json" <<'EOF'
{"version":1,"initiator":"iqn.2024-01.org.example:bench","paths":[{"server":"198.18.0.1","target":"iqn.2024-01.org.example:root"}],"tuning":{"queue_depth":64}}
EOF
ip netns exec "$ns" "${CONFIGD:-$bin/netboot-configd}" --dir "$work/conf" --listen 127.0.0.1:7260 \
    2>"$work/configd.log" &
pids+=("$!")

echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); vlserver: OpenAFS $(
    ip netns exec "$ns" env LD_LIBRARY_PATH="$libs" "$root/usr/bin/rxdebug" 127.0.0.1 7003 -version 2>/dev/null |
        sed -n 's/^AFS version: *//p' | head -n 1)"
ip netns exec "$ns" "$bin/examples/configd_bench" --compare 127.0.0.1:7003 127.0.0.1:7260 \
    "$secs" "$levels" "$burst" "${pids[0]}" "${pids[1]}"
echo
echo "configd: $(grep -c ' ok (' "$work/configd.log" || true) calls logged ok; $(grep -c '^netboot-configd: BUSY' "$work/configd.log" || true) BUSY log lines"
echo "vlserver log (last lines):"
tail -n 3 "$work/VLLog" 2>/dev/null || true
