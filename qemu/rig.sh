# shellcheck shell=bash
# The VM rig as a sourceable library (DESIGN.md §4, reference §8.3/§8.4).
#
# Layout of one boot:
#   private netns nbvm-<pid>-<random>
#     lo up
#     br0   198.18.0.1/24  (the target portal 198.18.0.1:3260)
#     tap0  attached to br0, QEMU's NIC; the guest is 198.18.0.2/24 on eth0
#     tgtd -f -C <unique control port> --iscsi portal=198.18.0.1:3260
#     dnsmasq (optional) on br0: leases 198.18.0.2/24, router 198.18.0.1,
#       option 17 (root path) when given; DNS server 198.18.0.1 answering
#       only configd.rig and target.rig (= 198.18.0.1), forwarding nothing
#     netboot-configd (optional) on 198.18.0.1:7260; tcpdump (optional) of
#       the RxRPC port on br0
#     black holes (optional): ADDR/32 on br0, whose TCP replies from port
#       3260 are routed to a blackhole route (no process; see
#       rig_blackhole_add)
#   qemu-system-x86_64 (TCG, 1 vCPU, 512 MiB) under `ip netns exec`.
#   probe netns <rig netns>-p (rig_probe only): eth0 198.18.0.3/24, a veth
#     whose peer pv0 is on br0, as a second client on the guest's segment.
#
#   rig_netns_up
#   rig_tgt_start IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]
#   rig_tgt_start_later DELAY IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]
#                        # the same, DELAY seconds from now, in the background
#   rig_blackhole_add ADDR                                 # after rig_netns_up
#   rig_probe ADDR PORT SECONDS   # prints open, refused, timeout or error:…
#   rig_dnsmasq_start [ROOT_PATH]                          # after rig_netns_up
#   rig_configd_start BIN DIR ; rig_capture_start FILE     # after rig_netns_up
#   rig_qemu VMLINUX INITRD APPEND CONSOLE TIMEOUT SHOW   # 0 ok, 1 qemu failed, 2 timeout
#   rig_cleanup          # idempotent; call it from an EXIT trap
#
# Only processes started here are signalled, by PID; tgtd is stopped the way
# it accepts (targets deleted, then the system), SIGKILL only as a last resort.

rig_ns=""
rig_tgt_pid=""
rig_tgt_ctl=""
rig_tgt_tids=()
rig_qemu_pid=""
rig_workdir=""
rig_tgt_log=""
rig_dnsmasq_pid=""
rig_dnsmasq_log=""
rig_target_addr=198.18.0.1
rig_configd_pid=""
rig_configd_log=""
rig_capture_pid=""
rig_port=3260
rig_tgt_pidfile=""
rig_tgt_later_pid=""
rig_tgt_later_log=""

rig_log() { echo "rig: $*" >&2; }

rig_netns_up() {
    rig_ns="nbvm-$$-$RANDOM"
    ip netns add "$rig_ns" || { rig_log "ip netns add $rig_ns failed"; rig_ns=""; return 1; }
    ip -n "$rig_ns" link set lo up
    ip -n "$rig_ns" link add br0 type bridge
    ip -n "$rig_ns" addr add "$rig_target_addr/24" dev br0
    ip -n "$rig_ns" tuntap add dev tap0 mode tap
    ip -n "$rig_ns" link set tap0 master br0
    ip -n "$rig_ns" link set br0 up
    ip -n "$rig_ns" link set tap0 up
}

# A control port no other tgtd on this machine uses (tgtd accepts up to
# 32767; 0 is the system daemon's). tgtd's lock file is the arbiter: a port
# whose socket files exist is taken.
rig_pick_ctl() {
    local i n
    for i in $(seq 50); do
        n=$((1000 + (RANDOM * 32768 + RANDOM + $$ + i) % 31000))
        [ -e "/var/run/tgtd/socket.$n" ] || [ -e "/var/run/tgtd/socket.$n.lock" ] || { echo "$n"; return 0; }
    done
    return 1
}

# rig_tgt_start IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]
rig_tgt_start() {
    local image=$1 lun=$2 iqn=$3 chap=${4:-} mutual=${5:-} i log
    [ -n "$rig_ns" ] || { rig_log "rig_tgt_start before rig_netns_up"; return 1; }
    rig_tgt_ctl=$(rig_pick_ctl) || { rig_log "no free tgtd control port"; return 1; }
    log=${rig_tgt_log:-"${rig_workdir:-/tmp}/tgtd.$rig_tgt_ctl.log"}
    # shellcheck disable=SC2034 # read by the scripts that source this file
    rig_tgt_log=$log
    ip netns exec "$rig_ns" tgtd -f -C "$rig_tgt_ctl" --iscsi "portal=$rig_target_addr:$rig_port" >"$log" 2>&1 &
    rig_tgt_pid=$!
    # Started from rig_tgt_start_later's job: tell the rig's own shell whom
    # to stop (the job's variables die with it).
    [ -z "$rig_tgt_pidfile" ] || echo "$rig_tgt_pid $rig_tgt_ctl" >"$rig_tgt_pidfile"
    for i in $(seq 100); do
        tgtadm -C "$rig_tgt_ctl" --lld iscsi --mode target --op show >/dev/null 2>&1 && break
        if [ "$i" = 100 ] || ! kill -0 "$rig_tgt_pid" 2>/dev/null; then
            rig_log "tgtd (control port $rig_tgt_ctl) did not start:"
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    local t=(tgtadm -C "$rig_tgt_ctl" --lld iscsi)
    "${t[@]}" --mode target --op new --tid 1 --targetname "$iqn" || return 1
    rig_tgt_tids+=(1)
    "${t[@]}" --mode logicalunit --op new --tid 1 --lun "$lun" --backing-store "$image" || return 1
    "${t[@]}" --mode target --op bind --tid 1 --initiator-address ALL || return 1
    if [ -n "$chap" ]; then
        "${t[@]}" --mode account --op new --user "${chap%%:*}" --password "${chap#*:}" || return 1
        "${t[@]}" --mode account --op bind --tid 1 --user "${chap%%:*}" || return 1
    fi
    if [ -n "$mutual" ]; then
        "${t[@]}" --mode account --op new --user "${mutual%%:*}" --password "${mutual#*:}" || return 1
        "${t[@]}" --mode account --op bind --tid 1 --user "${mutual%%:*}" --outgoing || return 1
    fi
}

# rig_tgt_start_later DELAY IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]
# rig_tgt_start DELAY seconds from now, in a background job, so that until
# then nothing listens on the portal and the guest's connects are refused
# (RST). Returns at once. The job writes "PID CTL" of its tgtd to
# rig_tgt_pidfile right after launching it, and a TERM only sets a flag the
# job checks between steps, so that write always happens: rig_tgt_stop
# finds tgtd even when the job is stopped half-way. The job's own messages
# go to rig_tgt_later_log.
rig_tgt_start_later() {
    local delay=$1 dir=${rig_workdir:-/tmp} end
    shift
    [ -n "$rig_ns" ] || { rig_log "rig_tgt_start_later before rig_netns_up"; return 1; }
    case "$delay" in
        '' | *[!0-9.]* | *.*.*) rig_log "rig_tgt_start_later: delay '$delay' is not a number of seconds"; return 1 ;;
    esac
    rig_tgt_pidfile="$dir/tgtd.$rig_ns.pid"
    rig_tgt_later_log="$dir/tgtd-later.$rig_ns.log"
    rig_tgt_log="$dir/tgtd.$rig_ns.log"
    rm -f "$rig_tgt_pidfile"
    # Microseconds (EPOCHREALTIME without its decimal point).
    end=$((${EPOCHREALTIME/[.,]/} + $(awk -v d="$delay" 'BEGIN { printf "%d", d * 1000000 }')))
    (
        stop=0
        trap 'stop=1' TERM
        # Poll in 0.1 s steps: a TERM is then handled within 0.1 s and no
        # sleep outlives the job.
        until [ "$stop" = 1 ] || [ "${EPOCHREALTIME/[.,]/}" -ge "$end" ]; do
            sleep 0.1
        done
        [ "$stop" = 0 ] || exit 0
        rig_log "starting tgtd ${delay}s after the boot began"
        rig_tgt_start "$@" || { rig_log "delayed tgtd start failed"; exit 1; }
        rig_log "tgtd $rig_tgt_pid up (control port $rig_tgt_ctl)"
    ) >"$rig_tgt_later_log" 2>&1 &
    rig_tgt_later_pid=$!
}

# rig_dnsmasq_start [ROOT_PATH]
# DHCP for the guest, confined to br0 of the rig's netns: --bind-interfaces
# with --interface=br0 opens its sockets on br0 only (dnsmasq(8)); --port=0
# turns DNS off. One address (198.18.0.2) so the guest's lease is known.
# Lease and pid files live in the rig workdir; it runs as root because that
# workdir (mktemp -d) is root-only. dnsmasq's default ping check before a
# first offer (dnsmasq(8) --no-ping) is kept, as on a real server: the guest
# gets its OFFER only on the DISCOVER it retransmits ~3 s in, which also
# exercises the client's retransmission.
rig_dnsmasq_start() {
    local root_path=${1:-} dir=${rig_workdir:-/tmp} i opts
    [ -n "$rig_ns" ] || { rig_log "rig_dnsmasq_start before rig_netns_up"; return 1; }
    rig_dnsmasq_log="$dir/dnsmasq.$rig_ns.log"
    opts=(--no-daemon --conf-file=/dev/null --log-facility=- --log-dhcp --user=root
        --bind-interfaces --interface=br0 --except-interface=lo
        "--dhcp-range=198.18.0.2,198.18.0.2,255.255.255.0,1h"
        "--dhcp-option=3,$rig_target_addr"
        # DNS for the guest only: the rig's names, nothing forwarded anywhere.
        # `--local`: AAAA gets an empty answer, not REFUSED (which makes
        # musl's getaddrinfo fail the whole lookup with EAI_AGAIN).
        --no-resolv --no-hosts --local=/rig/ "--host-record=configd.rig,$rig_target_addr"
        "--host-record=target.rig,$rig_target_addr" "--dhcp-option=6,$rig_target_addr"
        "--dhcp-leasefile=$dir/dnsmasq.$rig_ns.leases" "--pid-file=$dir/dnsmasq.$rig_ns.pid")
    [ -z "$root_path" ] || opts+=("--dhcp-option=17,$root_path")
    # `ip netns exec` execs dnsmasq: $! is dnsmasq itself.
    ip netns exec "$rig_ns" dnsmasq "${opts[@]}" >"$rig_dnsmasq_log" 2>&1 &
    rig_dnsmasq_pid=$!
    # Ready once it has logged its DHCP range (after binding its sockets).
    for i in $(seq 50); do
        grep -q "DHCP, IP range" "$rig_dnsmasq_log" 2>/dev/null && return 0
        if [ "$i" = 50 ] || ! kill -0 "$rig_dnsmasq_pid" 2>/dev/null; then
            rig_log "dnsmasq did not start:"
            cat "$rig_dnsmasq_log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# rig_stop_pid PID: SIGTERM, up to 3 s to exit, then SIGKILL; reaped.
rig_stop_pid() {
    local pid=$1 _
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

rig_dnsmasq_stop() {
    rig_stop_pid "$rig_dnsmasq_pid"
    rig_dnsmasq_pid=""
}

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
    rig_stop_pid "$rig_capture_pid"
    rig_stop_pid "$rig_configd_pid"
    rig_capture_pid="" rig_configd_pid=""
}

# rig_tgt_later_stop: stop rig_tgt_start_later's job (if it has not fired
# yet, no tgtd is ever started) and adopt the tgtd it started, if any, from
# its PID file, for rig_tgt_stop. That tgtd is no child of ours (its parent,
# the job, has exited): it is only signalled while /proc says it is tgtd.
rig_tgt_later_stop() {
    local pid ctl
    [ -n "$rig_tgt_later_pid" ] || [ -n "$rig_tgt_pidfile" ] || return 0
    rig_stop_pid "$rig_tgt_later_pid"
    rig_tgt_later_pid=""
    if [ -z "$rig_tgt_pid" ] && [ -s "$rig_tgt_pidfile" ] && read -r pid ctl <"$rig_tgt_pidfile"; then
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tgtd ]; then
            rig_tgt_pid=$pid rig_tgt_ctl=$ctl rig_tgt_tids=(1)
        else
            # Exited already; its control socket files may remain.
            rm -f "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock"
        fi
    fi
    rm -f "$rig_tgt_pidfile"
    rig_tgt_pidfile=""
}

rig_tgt_stop() {
    rig_tgt_later_stop
    [ -n "$rig_tgt_pid" ] || return 0
    local tid _
    for tid in "${rig_tgt_tids[@]}"; do
        tgtadm -C "$rig_tgt_ctl" --lld iscsi --mode target --op delete --force --tid "$tid" >/dev/null 2>&1 || true
    done
    tgtadm -C "$rig_tgt_ctl" --op delete --mode system >/dev/null 2>&1 || true
    for _ in $(seq 50); do kill -0 "$rig_tgt_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$rig_tgt_pid" 2>/dev/null && [ "$(cat "/proc/$rig_tgt_pid/comm" 2>/dev/null)" = tgtd ]; then
        rig_log "tgtd $rig_tgt_pid did not exit; SIGKILL"
        kill -9 "$rig_tgt_pid" 2>/dev/null || true
    fi
    wait "$rig_tgt_pid" 2>/dev/null || true
    # tgtd leaves its control socket and lock file behind.
    rm -f "/var/run/tgtd/socket.$rig_tgt_ctl" "/var/run/tgtd/socket.$rig_tgt_ctl.lock"
    rig_tgt_pid="" rig_tgt_tids=()
}

# rig_blackhole_add ADDR
# Make ADDR (inside br0's /24, not the portal or the guest) a black hole for
# the iSCSI port: the guest's connects to ADDR:3260 get no answer at all, not
# even an RST, so only its own timeout ends them. ADDR/32 goes on br0, so the
# rig answers ARP for it (without that the guest would see "host
# unreachable" after its ARP timeout, not a black hole); a policy rule sends
# every TCP packet from ADDR port 3260 (the SYN-ACK or RST) to a routing
# table whose only route is `blackhole` (ip-rule(8), ip-route(8) type
# blackhole: "silently discarded"), so the reply dies in the output route
# lookup. The host has no iptables/nft; this needs neither, nor a process:
# deleting the netns removes it. Other ports of ADDR behave normally
# (refused). Connects from inside the rig's own netns are not affected (they
# are local, with ADDR as their source), hence rig_probe's second netns.
rig_blackhole_add() {
    local addr=$1 last
    [ -n "$rig_ns" ] || { rig_log "rig_blackhole_add before rig_netns_up"; return 1; }
    case "$addr" in
        "${rig_target_addr%.*}".*) last=${addr##*.} ;;
        *) rig_log "black hole '$addr' is not in ${rig_target_addr%.*}.0/24"; return 1 ;;
    esac
    case "$last" in
        '' | *[!0-9]*) rig_log "black hole '$addr' is not an IPv4 address"; return 1 ;;
    esac
    if [ "$last" -lt 3 ] || [ "$last" -gt 254 ]; then
        rig_log "black hole '$addr': want .3-.254 (.1 is the portal, .2 the guest)"
        return 1
    fi
    ip -n "$rig_ns" addr add "$addr/32" dev br0 || return 1
    ip -n "$rig_ns" route add blackhole default table "$rig_port" 2>/dev/null || true
    ip -n "$rig_ns" rule add from "$addr" ipproto tcp sport "$rig_port" lookup "$rig_port" priority 100
}

# rig_probe ADDR PORT SECONDS
# One TCP connect to ADDR:PORT from a second client on br0 (netns
# <rig netns>-p, 198.18.0.3), as the guest would make it; prints `open`,
# `refused`, `timeout` (no answer within SECONDS) or `error: …`. For the
# rig's own tests: it shows a black hole is one and a delayed tgtd refuses
# until it is up. Safe in $(…): the probe netns is found by its name, and
# rig_probe_down / rig_cleanup delete it.
rig_probe() {
    local addr=$1 port=$2 secs=$3 rc=0 err ns="$rig_ns-p"
    [ -n "$rig_ns" ] || { rig_log "rig_probe before rig_netns_up"; return 1; }
    if [ ! -e "/run/netns/$ns" ]; then
        ip netns add "$ns" || return 1
        ip -n "$rig_ns" link add pv0 type veth peer name eth0 netns "$ns" || return 1
        ip -n "$rig_ns" link set pv0 master br0
        ip -n "$rig_ns" link set pv0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "${rig_target_addr%.*}.3/24" dev eth0
        ip -n "$ns" link set eth0 up
    fi
    err=$(ip netns exec "$ns" timeout "$secs" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>&1) || rc=$?
    case "$rc:$err" in
        0:*) echo open ;;
        124:*) echo timeout ;;
        *"Connection refused"*) echo refused ;;
        *) echo "error: rc=$rc ${err//$'\n'/ }" ;;
    esac
}

rig_probe_down() {
    [ -n "$rig_ns" ] && [ -e "/run/netns/$rig_ns-p" ] || return 0
    ip netns del "$rig_ns-p" 2>/dev/null || rig_log "could not delete netns $rig_ns-p"
}

# rig_qemu VMLINUX INITRD APPEND CONSOLE TIMEOUT SHOW
# Sets rig_wall (seconds, QEMU start to exit).
rig_qemu() {
    local vmlinux=$1 initrd=$2 append=$3 console=$4 timeout=$5 show=$6 tail_pid="" rc start now
    : >"$console"
    start=$(date +%s.%N)
    ip netns exec "$rig_ns" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
        -monitor none -serial "file:$console" \
        -kernel "$vmlinux" -initrd "$initrd" -append "$append" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=n0,romfile= \
        </dev/null >"$console.qemu" 2>&1 &
    rig_qemu_pid=$!
    if [ "$show" = 1 ]; then
        tail -n +1 -f --pid="$rig_qemu_pid" "$console" >&2 &
        tail_pid=$!
    fi
    rc=2
    while :; do
        if ! kill -0 "$rig_qemu_pid" 2>/dev/null; then
            wait "$rig_qemu_pid" && rc=0 || rc=1
            break
        fi
        now=$(date +%s.%N)
        if awk -v a="$start" -v b="$now" -v t="$timeout" 'BEGIN { exit !(b - a >= t) }'; then
            rig_log "timeout after ${timeout}s; killing QEMU $rig_qemu_pid"
            rig_qemu_stop
            rc=2
            break
        fi
        sleep 0.1
    done
    now=$(date +%s.%N)
    # shellcheck disable=SC2034 # read by the scripts that source this file
    rig_wall=$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.2f", b - a }')
    rig_qemu_pid=""
    [ -n "$tail_pid" ] && { wait "$tail_pid" 2>/dev/null || true; }
    if [ "$rc" = 1 ]; then
        rig_log "QEMU failed:"
        cat "$console.qemu" >&2
    fi
    return "$rc"
}

rig_qemu_stop() {
    rig_stop_pid "$rig_qemu_pid"
    rig_qemu_pid=""
}

rig_cleanup() {
    rig_qemu_stop
    rig_configd_stop
    rig_dnsmasq_stop
    rig_tgt_stop
    rig_probe_down
    if [ -n "$rig_ns" ]; then
        ip netns del "$rig_ns" 2>/dev/null || rig_log "could not delete netns $rig_ns"
        rig_ns=""
    fi
}
