# shellcheck shell=bash
# A throwaway tgtd with one target and one sparse 64 MiB LUN (LUN 1), for
# the demo and the benchmarks. Source it, then:
#   tgt_start PORTAL IQN WORKDIR [NETNS]   # PORTAL = ADDR:PORT
#   tgt_stop                               # from the caller's EXIT trap
# tgtd ignores SIGTERM while targets exist (reference §8.4): the target and
# the daemon are deleted through tgtadm, the PID is waited for, and SIGKILL
# is the last resort. Only the PID we started is ever signalled.

tgt_pid=""
# tgtd accepts control ports up to 32767; 0 is the system daemon's.
tgt_ctl=$((12000 + $$ % 20000))

tgt_start() {
    local portal=$1 iqn=$2 work=$3 ns=${4:-}
    local run=()
    [ -n "$ns" ] && run=(ip netns exec "$ns")
    truncate -s 64M "$work/disk.img"
    "${run[@]}" tgtd -f --iscsi "portal=$portal" --control-port "$tgt_ctl" >"$work/tgtd.log" 2>&1 &
    tgt_pid=$!
    local i
    for i in $(seq 100); do
        tgtadm -C "$tgt_ctl" --lld iscsi --mode target --op show >/dev/null 2>&1 && break
        [ "$i" = 100 ] && { echo "tgtd did not start:" >&2; cat "$work/tgtd.log" >&2; return 1; }
        sleep 0.1
    done
    tgtadm -C "$tgt_ctl" --lld iscsi --mode target --op new --tid 1 --targetname "$iqn"
    tgtadm -C "$tgt_ctl" --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$work/disk.img"
    tgtadm -C "$tgt_ctl" --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
}

tgt_stop() {
    [ -n "$tgt_pid" ] || return 0
    tgtadm -C "$tgt_ctl" --lld iscsi --mode target --op delete --force --tid 1 >/dev/null 2>&1
    tgtadm -C "$tgt_ctl" --op delete --mode system >/dev/null 2>&1
    local _
    for _ in $(seq 50); do kill -0 "$tgt_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$tgt_pid" 2>/dev/null
    # tgtd leaves its control socket and lock file behind.
    rm -f "/var/run/tgtd/socket.$tgt_ctl" "/var/run/tgtd/socket.$tgt_ctl.lock"
    tgt_pid=""
}
