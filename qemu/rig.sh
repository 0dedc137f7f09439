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
#   IPv6 (rig_ipv6_up, boot.sh --ipv6): br0 also fd00:198:18::1/64 (ULA,
#     nodad), tgtd and configd listen on it too, a veth pair nbk0/nbk1 on
#     br0 keeps the bridge's carrier (and so its link-local address, which
#     RAs and DHCPv6 replies come from) before QEMU opens tap0. The guest is
#     fd00:198:18::2 (static), SLAAC from fd00:198:18::/64 (--ra), or
#     fd00:198:18::100/128 from DHCPv6 (--dhcp6, with RA M bit for routes).
#   VLAN (rig_vlan_up ID, boot.sh --vlan ID): tap0 leaves br0; a userspace
#     802.1Q access port (qemu/vlan-port.py, tap0 <-> veth vl1/vl0 on br0)
#     passes only frames tagged ID, untagged towards br0, and tags what br0
#     sends; 198.18.42.1/24 on br0 is the target's address (portal, configd)
#     on the VLAN; the guest is 198.18.42.2/24 on its VLAN device.
#
#   rig_netns_up
#   rig_tgt_start IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]
#   rig_tgt_start_later DELAY IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]
#                        # the same, DELAY seconds from now, in the background
#   rig_blackhole_add ADDR                                 # after rig_netns_up
#   rig_probe ADDR PORT SECONDS   # prints open, refused, timeout or error:…
#   rig_dnsmasq_start [ROOT_PATH]                          # after rig_netns_up
#   rig_configd_start BIN DIR [ARG...] ; rig_capture_start FILE [FILTER]
#                                                           # after rig_netns_up
#   rig_ipv6_up ; rig_vlan_up ID            # after rig_netns_up, before tgtd
#   rig_dnsmasq6_start ra|dhcp6 [BOOTFILE_URL]              # after rig_ipv6_up
#   rig_fault_start tgt-restart|link-down AT:SECS CONSOLE MARKER RESUMED \
#                   [IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]]
#                        # a timed fault during the boot (before rig_qemu)
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
rig_ipv6=0
rig_target_addr6=fd00:198:18::1
rig_dnsmasq6_pid=""
rig_dnsmasq6_log=""
rig_vlan=""
rig_vlanport_pid=""
rig_vlanport_log=""
rig_tap_opts=""
# Extra QEMU arguments for rig_qemu (boot.sh --acpitable).
rig_qemu_args=()
# rig_fault_start's job, its log and the "PID CTL" file of the tgtd it
# restarted; the QEMU monitor (HMP) port on the netns' own loopback.
rig_fault_pid=""
rig_fault_log=""
rig_fault_pidfile=""
rig_monitor_port=7100

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
    local portals="portal=$rig_target_addr:$rig_port"
    # tgtd takes several comma-separated portals; an IPv6 one in brackets.
    [ "$rig_ipv6" = 0 ] || portals+=",portal=[$rig_target_addr6]:$rig_port"
    ip netns exec "$rig_ns" tgtd -f -C "$rig_tgt_ctl" --iscsi "$portals" >"$log" 2>&1 &
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

# rig_monitor CMD: one HMP command to QEMU's monitor, which rig_fault_start
# put on 127.0.0.1:$rig_monitor_port of the rig's netns (a loopback no other
# netns sees); prints "ok", or the monitor's error line (HMP echoes the
# command with readline redraws; only a line with an error is of interest).
rig_monitor() {
    local out
    # shellcheck disable=SC2016 # expanded by the inner bash
    out=$(ip netns exec "$rig_ns" timeout 5 bash -c \
        'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; printf "%s\n" "$2" >&3; timeout 1 cat <&3; exit 0' \
        _ "$rig_monitor_port" "$1" 2>&1) || { echo "no monitor on 127.0.0.1:$rig_monitor_port"; return 1; }
    out=$(printf '%s\n' "$out" | tr -d '\r' | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -iE 'error|not found|invalid' | tail -n 1)
    echo "${out:-ok}"
}

# rig_fault_start KIND AT:SECS CONSOLE MARKER RESUMED [IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]]
# (MARKER and RESUMED may be ""; tgt-restart takes rig_tgt_start's
# arguments after them.) One fault during the boot, run by a background job (call it right before
# rig_qemu). The clock starts when CONSOLE first contains MARKER (grep -F,
# polled every 0.1 s; without MARKER: now, i.e. QEMU's start) and the fault
# begins AT seconds later:
#   tgt-restart AT:DOWN  SIGKILL to the tgtd rig_tgt_start started (no
#       logout, no FIN from the target's side before the kernel closes its
#       sockets), DOWN seconds with nothing on the portal (connects
#       refused), then rig_tgt_start again with the same IQN, LUN, backing
#       file (the per-run copy in rig_workdir, which outlives tgtd) and CHAP.
#   link-down AT:DUR     QEMU monitor `set_link n0 off`, DUR s, `set_link n0
#       on`: the tap backend drops every frame and, as its peer is the NIC,
#       virtio-net clears VIRTIO_NET_S_LINK_UP, so the guest sees carrier
#       loss (NO-CARRIER) for DUR seconds; `ip link set tap0 down` on the
#       host side would drop frames without the guest noticing any link
#       change.
# With RESUMED, the job then waits (≤ 300 s) for a console line containing
# RESUMED beyond those present when the fault began and logs when it came.
# The job's log (rig_fault_log) has one "fault: …" line per step with t=
# (seconds since rig_fault_start) and marker+ (seconds since MARKER seen):
#   fault: marker 'M' seen t=…
#   fault: tgtd PID killed t=… marker+…     | fault: link down t=… marker+…
#   fault: tgtd PID back t=… marker+…       | fault: link up t=… marker+…
#   fault: resumed 'R' t=… marker+… back+…
# A TERM only sets a flag the job checks every 0.1 s; the job writes "PID
# CTL" of the tgtd it starts to rig_fault_pidfile right after launching it
# and "killed" to rig_fault_pidfile.killed, so rig_fault_stop can adopt the
# new tgtd and reap the old one.
rig_fault_start() {
    local kind=$1 spec=$2 console=$3 marker=${4:-} resumed=${5:-} dir=${rig_workdir:-/tmp} at dur n
    shift 5 || shift $#
    [ -n "$rig_ns" ] || { rig_log "rig_fault_start before rig_netns_up"; return 1; }
    at=${spec%%:*} dur=${spec#*:}
    case "$spec" in *:*) ;; *) rig_log "fault '$spec': want AT:SECONDS"; return 1 ;; esac
    for n in "$at" "$dur"; do
        case "$n" in
            '' | *[!0-9.]* | *.*.*) rig_log "fault '$spec': '$n' is not a number of seconds"; return 1 ;;
        esac
    done
    case "$kind" in
        tgt-restart) [ -n "$rig_tgt_pid" ] || { rig_log "tgt-restart: no tgtd started by rig_tgt_start"; return 1; } ;;
        link-down) rig_qemu_args+=(-monitor "tcp:127.0.0.1:$rig_monitor_port,server=on,wait=off") ;;
        *) rig_log "fault '$kind': want tgt-restart or link-down"; return 1 ;;
    esac
    rig_fault_log="$dir/fault.$rig_ns.log"
    rig_fault_pidfile="$dir/fault-tgtd.$rig_ns.pid"
    rm -f "$rig_fault_pidfile" "$rig_fault_pidfile.killed"
    (
        stop=0
        trap 'stop=1' TERM
        us() { echo "${EPOCHREALTIME/[.,]/}"; }
        t0=$(us) tm=""
        el() { awk -v a="$1" -v b="$(us)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }
        stamp() { echo "t=$(el "$t0")${tm:+ marker+$(el "$tm")}"; }
        # pause SECONDS, in 0.1 s steps; 1 if told to stop.
        pause() {
            local end=$(($(us) + $(awk -v d="$1" 'BEGIN { printf "%d", d * 1000000 }')))
            until [ "$stop" = 1 ] || [ "$(us)" -ge "$end" ]; do sleep 0.1; done
            [ "$stop" = 0 ]
        }
        if [ -n "$marker" ]; then
            until grep -qF -- "$marker" "$console" 2>/dev/null; do
                [ "$stop" = 0 ] || exit 0
                sleep 0.1
            done
            tm=$(us)
            echo "fault: marker '$marker' seen $(stamp)"
        fi
        pause "$at" || exit 0
        seen=0
        [ -z "$resumed" ] || seen=$(grep -cF -- "$resumed" "$console" 2>/dev/null || true)
        case "$kind" in
            tgt-restart)
                pid=$rig_tgt_pid
                kill -9 "$pid" || { echo "fault: kill -9 $pid failed"; exit 1; }
                echo killed >"$rig_fault_pidfile.killed"
                echo "fault: tgtd $pid killed $(stamp)"
                # Gone (a zombie of the rig's shell holds no socket).
                while [ -e "/proc/$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
                    sleep 0.05
                done
                rm -f "/var/run/tgtd/socket.$rig_tgt_ctl" "/var/run/tgtd/socket.$rig_tgt_ctl.lock"
                pause "$dur" || exit 0
                rig_fault_tgt_start "$@" || { echo "fault: tgtd restart failed"; exit 1; }
                echo "fault: tgtd $rig_tgt_pid back $(stamp)"
                ;;
            link-down)
                echo "fault: link down $(stamp) monitor: $(rig_monitor "set_link n0 off")"
                pause "$dur" || { rig_monitor "set_link n0 on" >/dev/null; exit 0; }
                echo "fault: link up $(stamp) monitor: $(rig_monitor "set_link n0 on")"
                ;;
        esac
        [ -n "$resumed" ] || exit 0
        tb=$(us)
        end=$((tb + 300000000))
        until [ "$(grep -cF -- "$resumed" "$console" 2>/dev/null || true)" -gt "$seen" ]; do
            [ "$stop" = 0 ] || exit 0
            [ "$(us)" -lt "$end" ] || { echo "fault: no new '$resumed' within 300 s"; exit 0; }
            sleep 0.1
        done
        echo "fault: resumed '$resumed' $(stamp) back+$(el "$tb")"
    ) >"$rig_fault_log" 2>&1 &
    rig_fault_pid=$!
}

# rig_fault_tgt_start IMAGE LUN IQN [USER:SECRET] [TUSER:TSECRET]: in the
# fault job, rig_tgt_start writing "PID CTL" to rig_fault_pidfile and its
# output to its own log (locals: the globals keep describing the first tgtd).
rig_fault_tgt_start() {
    local rig_tgt_pidfile=$rig_fault_pidfile rig_tgt_log="${rig_workdir:-/tmp}/tgtd-restarted.$rig_ns.log"
    rig_tgt_tids=()
    rig_tgt_start "$@"
}

# rig_fault_stop: stop rig_fault_start's job; if it killed tgtd, reap that
# one and adopt the tgtd it started (from rig_fault_pidfile) for
# rig_tgt_stop, signalled only while /proc says it is tgtd.
rig_fault_stop() {
    local pid ctl
    [ -n "$rig_fault_pid" ] || return 0
    rig_stop_pid "$rig_fault_pid"
    rig_fault_pid=""
    if [ -e "$rig_fault_pidfile.killed" ]; then
        wait "$rig_tgt_pid" 2>/dev/null || true
        rig_tgt_pid="" rig_tgt_tids=()
        if [ -s "$rig_fault_pidfile" ] && read -r pid ctl <"$rig_fault_pidfile"; then
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tgtd ]; then
                rig_tgt_pid=$pid rig_tgt_ctl=$ctl rig_tgt_tids=(1)
            else
                rm -f "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock"
            fi
        fi
    fi
    rm -f "$rig_fault_pidfile" "$rig_fault_pidfile.killed"
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
    rig_stop_pid "$rig_dnsmasq6_pid"
    rig_dnsmasq_pid="" rig_dnsmasq6_pid=""
}

# rig_ipv6_up: br0 gets $rig_target_addr6/64 (nodad: usable at once), and a
# veth pair nbk0 (on br0) / nbk1, both up, so that br0 has carrier before
# QEMU opens tap0: a bridge without a running port has none, and without
# carrier no link-local address, which dnsmasq's RAs and DHCPv6 replies need
# (RFC 4861 §6.1.2: RAs come from the link-local address). Waits (≤ 5 s)
# until br0's link-local address has finished DAD.
rig_ipv6_up() {
    local i
    [ -n "$rig_ns" ] || { rig_log "rig_ipv6_up before rig_netns_up"; return 1; }
    rig_ipv6=1
    ip -n "$rig_ns" addr add "$rig_target_addr6/64" dev br0 nodad || return 1
    ip -n "$rig_ns" link add nbk0 type veth peer name nbk1 || return 1
    ip -n "$rig_ns" link set nbk0 master br0
    ip -n "$rig_ns" link set nbk1 up
    ip -n "$rig_ns" link set nbk0 up
    for i in $(seq 50); do
        ip -n "$rig_ns" -6 addr show dev br0 scope link | grep -q 'inet6' &&
            ! ip -n "$rig_ns" -6 addr show dev br0 scope link | grep -q tentative && return 0
        [ "$i" = 50 ] && { rig_log "br0 has no usable IPv6 link-local address after 5 s"; return 1; }
        sleep 0.1
    done
}

# rig_vlan_up ID: the guest's traffic on VLAN ID only (IEEE 802.1Q tags on
# tap0). The host kernel of the build machine has neither bridge VLAN
# filtering nor 8021q, so tap0 leaves br0 and qemu/vlan-port.py is its
# access port in userspace: frames from tap0 tagged ID reach br0 untagged
# through the veth pair vl1 → vl0 (vl0 on br0); untagged frames (and other
# VIDs) from the guest are dropped, so nothing untagged reaches the target;
# frames from br0 go to tap0 tagged ID. The portal and configd move to
# 198.18.42.1 on br0. The port's counts are in rig_vlanport_log.
rig_vlan_up() {
    local id=$1 dir=${rig_workdir:-/tmp} i
    [ -n "$rig_ns" ] || { rig_log "rig_vlan_up before rig_netns_up"; return 1; }
    case "$id" in
        '' | *[!0-9]*) rig_log "VLAN id '$id' is not a number"; return 1 ;;
    esac
    if [ "$id" -lt 1 ] || [ "$id" -gt 4094 ]; then
        rig_log "VLAN id $id: want 1..4094"
        return 1
    fi
    # shellcheck disable=SC2034 # read by the scripts that source this file
    rig_vlan=$id
    ip -n "$rig_ns" link set tap0 nomaster || return 1
    # Off the bridge, tap0 is an interface of the rig's own IP stack, which
    # would answer untagged ARP for 198.18.42.1 on it (weak host model) and
    # take IP from it: no ARP answers there (arp_ignore 8), no IPv4 whose
    # source is not routed via tap0 (strict rp_filter), no IPv6.
    ip netns exec "$rig_ns" sysctl -qw net.ipv4.conf.tap0.arp_ignore=8 \
        net.ipv4.conf.tap0.rp_filter=1 net.ipv6.conf.tap0.disable_ipv6=1 || return 1
    # No virtio-net header on the tap: the guest then computes its own
    # checksums (with the header, QEMU hands the kernel CHECKSUM_PARTIAL
    # frames, which leave the packet socket with their checksums unfilled).
    rig_tap_opts=",vnet_hdr=off"
    ip -n "$rig_ns" link add vl0 type veth peer name vl1 || return 1
    ip -n "$rig_ns" link set vl0 master br0
    # One Ethernet frame per packet towards the port: a GSO super-packet
    # read from vl1 would be too large for tap0 (no virtio-net header).
    ip -n "$rig_ns" link set vl0 gso_max_size 1500 gso_max_segs 1
    ip -n "$rig_ns" link set vl1 gso_max_size 1500 gso_max_segs 1
    ip -n "$rig_ns" link set vl0 up
    ip -n "$rig_ns" link set vl1 up
    rig_target_addr=198.18.42.1
    ip -n "$rig_ns" addr add "$rig_target_addr/24" dev br0 || return 1
    rig_vlanport_log="$dir/vlan-port.$rig_ns.log"
    ip netns exec "$rig_ns" python3 "$(dirname "${BASH_SOURCE[0]}")/vlan-port.py" tap0 vl1 "$id" \
        >"$rig_vlanport_log" 2>&1 &
    rig_vlanport_pid=$!
    # Python's start-up alone can take seconds on a loaded 2-core machine.
    for i in $(seq 300); do
        grep -q ready "$rig_vlanport_log" 2>/dev/null && return 0
        if [ "$i" = 300 ] || ! kill -0 "$rig_vlanport_pid" 2>/dev/null; then
            rig_log "vlan-port.py did not start within 30 s:"
            cat "$rig_vlanport_log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# rig_dnsmasq6_start ra|dhcp6 [BOOTFILE_URL]
# IPv6 autoconfiguration for the guest on br0 (after rig_ipv6_up). `ra`:
# router advertisements only (A bit: SLAAC in fd00:198:18::/64, router
# lifetime > 0: the default route). `dhcp6`: RAs with the M bit (routes;
# no SLAAC address) plus DHCPv6 leasing exactly fd00:198:18::100, DNS
# server option 23 = fd00:198:18::1 and, when given, option 59
# (bootfile-url, sent only to clients that ask for it in their ORO).
# --port=0: no DNS service; nothing forwarded anywhere.
rig_dnsmasq6_start() {
    local mode=$1 url=${2:-} dir=${rig_workdir:-/tmp} i opts
    [ "$rig_ipv6" = 1 ] || { rig_log "rig_dnsmasq6_start before rig_ipv6_up"; return 1; }
    rig_dnsmasq6_log="$dir/dnsmasq6.$rig_ns.log"
    opts=(--no-daemon --conf-file=/dev/null --log-facility=- --log-dhcp --user=root
        --bind-interfaces --interface=br0 --except-interface=lo --port=0 --enable-ra
        "--dhcp-leasefile=$dir/dnsmasq6.$rig_ns.leases" "--pid-file=$dir/dnsmasq6.$rig_ns.pid")
    case "$mode" in
        ra) opts+=("--dhcp-range=::,constructor:br0,ra-only") ;;
        dhcp6)
            opts+=("--dhcp-range=fd00:198:18::100,fd00:198:18::100,64,1h"
                "--dhcp-option=option6:dns-server,[$rig_target_addr6]")
            [ -z "$url" ] || opts+=("--dhcp-option=option6:bootfile-url,$url")
            ;;
        *) rig_log "rig_dnsmasq6_start: mode '$mode' is not ra or dhcp6"; return 1 ;;
    esac
    ip netns exec "$rig_ns" dnsmasq "${opts[@]}" >"$rig_dnsmasq6_log" 2>&1 &
    rig_dnsmasq6_pid=$!
    for i in $(seq 50); do
        grep -q "router advertisement on" "$rig_dnsmasq6_log" 2>/dev/null && return 0
        if [ "$i" = 50 ] || ! kill -0 "$rig_dnsmasq6_pid" 2>/dev/null; then
            rig_log "dnsmasq (IPv6) did not start:"
            cat "$rig_dnsmasq6_log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# rig_configd_start BIN DIR [ARG...]: ARGs go after configd's --dir/--listen.
rig_configd_start() {
    local bin=$1 dir=$2 _
    shift 2
    rig_configd_log="${rig_workdir:-/tmp}/configd.log"
    local listen=(--listen "$rig_target_addr:7260")
    [ "$rig_ipv6" = 0 ] || listen+=(--listen "[$rig_target_addr6]:7260")
    ip netns exec "$rig_ns" "$bin" --dir "$dir" "${listen[@]}" "$@" >"$rig_configd_log" 2>&1 &
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

# rig_capture_start FILE [FILTER]: the packets on br0 that match the tcpdump
# FILTER (default: every UDP packet of the RxRPC port; "" = all packets),
# written to FILE packet by packet (-U) until rig_configd_stop's SIGTERM.
rig_capture_start() {
    local file=$1 filter=${2-udp port 7260} _ f=()
    [ -z "$filter" ] || read -ra f <<<"$filter"
    ip netns exec "$rig_ns" tcpdump --immediate-mode -Z root -i br0 -U -s 0 -w "$file" "${f[@]}" 2>"$file.log" &
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

# Seconds since boot (CLOCK_BOOTTIME via /proc/uptime): monotonic.
rig_uptime() {
    local up _
    read -r up _ </proc/uptime
    echo "$up"
}

# rig_qemu VMLINUX INITRD APPEND CONSOLE TIMEOUT SHOW
# Sets rig_wall (seconds, QEMU start to exit).
rig_qemu() {
    local vmlinux=$1 initrd=$2 append=$3 console=$4 timeout=$5 show=$6 tail_pid="" rc start now
    : >"$console"
    # The monotonic clock (/proc/uptime): a wall-clock step on the host
    # must neither fake a timeout nor skew the measured wall time.
    start=$(rig_uptime)
    ip netns exec "$rig_ns" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
        -monitor none -serial "file:$console" \
        -kernel "$vmlinux" -initrd "$initrd" -append "$append" \
        -netdev "tap,id=n0,ifname=tap0,script=no,downscript=no$rig_tap_opts" \
        -device virtio-net-pci,netdev=n0,romfile= \
        "${rig_qemu_args[@]}" \
        </dev/null >"$console.qemu" 2>&1 &
    rig_qemu_pid=$!
    if [ "$show" = 1 ]; then
        tail -n +1 -f --pid="$rig_qemu_pid" "$console" >&2 &
        tail_pid=$!
    fi
    rc=2
    while :; do
        if ! kill -0 "$rig_qemu_pid" 2>/dev/null; then
            local status=0
            wait "$rig_qemu_pid" || status=$?
            rc=0
            if [ "$status" != 0 ]; then
                # Seen twice under heavy load: a non-zero status although
                # the guest ended cleanly. The guest's own last word
                # decides; the status is logged either way.
                if grep -qE 'reboot: (Power down|Restarting system)' "$console"; then
                    rig_log "QEMU exited with status $status after the guest's clean end ($(grep -oE 'reboot: (Power down|Restarting system)' "$console" | tail -n 1)); counted as its exit"
                    cat "$console.qemu" >&2
                else
                    rc=1
                fi
            fi
            break
        fi
        now=$(rig_uptime)
        if awk -v a="$start" -v b="$now" -v t="$timeout" 'BEGIN { exit !(b - a >= t) }'; then
            rig_log "timeout after ${timeout}s; killing QEMU $rig_qemu_pid"
            rig_qemu_stop
            rc=2
            break
        fi
        sleep 0.1
    done
    now=$(rig_uptime)
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
    rig_stop_pid "$rig_vlanport_pid"
    rig_vlanport_pid=""
    rig_configd_stop
    rig_dnsmasq_stop
    rig_fault_stop
    rig_tgt_stop
    rig_probe_down
    if [ -n "$rig_ns" ]; then
        ip netns del "$rig_ns" 2>/dev/null || rig_log "could not delete netns $rig_ns"
        rig_ns=""
    fi
}
