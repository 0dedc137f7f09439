# shellcheck shell=bash
# netboot-configd and a packet capture on the rig's bridge (sourced by
# shellcheck disable=SC2154 # rig_ns, rig_target_addr, rig_workdir, rig_log: qemu/rig.sh
# qemu/boot.sh after qemu/rig.sh). configd listens on the bridge address,
# 198.18.0.1:7260 (the service's port, src/rxrpc/proto.rs), inside the
# rig's private netns only; both are stopped by PID.

rig_configd_pid=""
rig_configd_log=""
rig_capture_pid=""

# rig_configd_start BIN DIR
rig_configd_start() {
    local bin=$1 dir=$2 _
    rig_configd_log="${rig_workdir:-/tmp}/configd.log"
    ip netns exec "$rig_ns" "$bin" --dir "$dir" --listen "$rig_target_addr:7260" >"$rig_configd_log" 2>&1 &
    rig_configd_pid=$!
    for _ in $(seq 50); do
        grep -q "listening on" "$rig_configd_log" 2>/dev/null && return 0
        kill -0 "$rig_configd_pid" 2>/dev/null || break
        sleep 0.1
    done
    rig_log "netboot-configd did not start:"
    cat "$rig_configd_log" >&2
    return 1
}

# rig_capture_start FILE: every UDP packet of the RxRPC port on br0.
rig_capture_start() {
    local file=$1 _
    ip netns exec "$rig_ns" tcpdump --immediate-mode -Z root -i br0 -U -s 0 -w "$file" udp port 7260 2>"$file.log" &
    rig_capture_pid=$!
    for _ in $(seq 50); do
        grep -q "listening on" "$file.log" 2>/dev/null && return 0
        sleep 0.1
    done
    rig_log "tcpdump did not start:"
    cat "$file.log" >&2
    return 1
}

rig_configd_stop() {
    local pid
    for pid in "$rig_capture_pid" "$rig_configd_pid"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rig_capture_pid="" rig_configd_pid=""
}
