#!/bin/sh
# /init of the netem guest (qemu/netem/build.sh): RxRPC config fetches
# through real `tc netem` on the loopback of a private network namespace.
# For each qdisc (the run_case lines at the end; "none" is the baseline
# without netem) it creates netns nbnetem-<case>, puts netem as the root
# qdisc of its lo (so client→server and server→client packets both
# cross it), starts netboot-configd there on 127.0.0.1:7260 and runs N
# `netboot config-fetch` calls per transport (udp: our userspace client;
# kernel: the guest kernel's AF_RXRPC). Output, one line each, for
# tests/vm_netem.rs:
#   NETEM-RESULT case=C qdisc="Q" transport=T ok=K n=CALLS planned=N ms=M
#   NETEM-STATS case=C qdisc="Q" transport=T sent_pkts=S dropped=D udp_out=O udp_in=I in_minus_out=X
#   NETEM-TC <tc -s qdisc show dev lo, at the end of a case>
#   NETEM-ERR case=C transport=T i=I <the failing call's stderr>
#   NETEM-CONFIGD <configd's log, after a case that had failures>
#   NETEM-DONE            (or NETEM-FAIL <what>)
# then powers off. The STATS counters cover that transport's N calls;
# sent_pkts and dropped are the netem qdisc's own (tc -s qdisc; sent_pkts
# includes ICMP and netem's duplicates). netem has no duplicate counter:
# in_minus_out = UDP datagrams received minus sent in the namespace
# (/proc/net/snmp Udp: InDatagrams + NoPorts + InErrors against
# OutDatagrams; the namespace carries nothing else). Only duplication can
# make it positive; with nothing dropped it is a lower bound of the UDP
# duplicates delivered.
export PATH=/bin:/sbin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mkdir -p /tmp
# Busybox's ash runs its own applets before searching PATH (static Debian
# build, FEATURE_SH_STANDALONE), and its ip/tc know no netns or netem: call
# iproute2's by path.
IP=/usr/sbin/ip TC=/usr/sbin/tc

fail() {
    echo "NETEM-FAIL $*"
    poweroff -f
    exit 1
}

# Milliseconds since boot (/proc/uptime has two decimals).
now_ms() {
    awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

kver=$(uname -r)
while read -r m; do
    insmod "/lib/modules/$kver/$m" || fail "insmod $m"
done </lib/modules/load.list

N=30
# shellcheck source=/dev/null
. /etc/netem.conf
MAXFAIL=3
MAC=52:54:00:12:34:56
INITIATOR=iqn.2026-11.test:netem

# counters NS: "SENT DROPPED UDP_OUT UDP_IN" of netns NS so far: the netem
# qdisc's packets and drops (tc -s), the UDP datagrams sent and received.
counters() {
    "$TC" -s -n "$1" qdisc show dev lo >/tmp/tc || return
    "$IP" netns exec "$1" cat /proc/net/snmp >/tmp/snmp || return
    # " Sent 12345 bytes 100 pkt (dropped 10, overlimits 0 requeues 0)"
    sed -n 's/^ *Sent [0-9]* bytes \([0-9]*\) pkt (dropped \([0-9]*\),.*/\1 \2/p' /tmp/tc | head -n 1
    # /proc/net/snmp: a "Udp:" line naming the fields, then one with values.
    awk '$1 == "Udp:" {
        if (!h) { for (f = 2; f <= NF; f++) col[$f] = f; h = 1; next }
        print $col["OutDatagrams"], $col["InDatagrams"] + $col["NoPorts"] + $col["InErrors"] }' /tmp/snmp
}

run_case() {
    name=$1 qdisc=$2 ns=nbnetem-$1
    "$IP" netns add "$ns" || fail "ip netns add $ns"
    "$IP" -n "$ns" link set lo up || fail "lo up in $ns"
    if [ "$qdisc" != none ]; then
        # shellcheck disable=SC2086 # the qdisc's words are tc arguments
        "$TC" -n "$ns" qdisc add dev lo root netem $qdisc || fail "tc qdisc add netem $qdisc"
    fi
    "$IP" netns exec "$ns" netboot-configd --dir /cfg --listen 127.0.0.1:7260 >"/tmp/configd-$name.log" 2>&1 &
    cpid=$!
    i=0
    until grep -q "listening on" "/tmp/configd-$name.log"; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "netboot-configd did not start in $ns: $(cat "/tmp/configd-$name.log")"
        sleep 0.1
    done
    for t in udp kernel; do
        # shellcheck disable=SC2046 # four numbers, split on purpose
        set -- $(counters "$ns")
        [ $# -eq 4 ] || fail "no netem/Udp counters in $ns"
        sent0=$1 drop0=$2 out0=$3 in0=$4
        ok=0 i=0 failed=0 t0=$(now_ms)
        # A failing call costs up to 3 x 10 s: give up on this transport
        # after MAXFAIL failures so the guest stays within its time limit.
        while [ $i -lt "$N" ] && [ $failed -lt $MAXFAIL ]; do
            i=$((i + 1))
            if "$IP" netns exec "$ns" netboot config-fetch rxrpc:127.0.0.1 --transport "$t" \
                --timeout 10 --retries 2 --mac "$MAC" >/tmp/out 2>/tmp/err \
                && grep -q "$INITIATOR" /tmp/out; then
                ok=$((ok + 1))
            else
                failed=$((failed + 1))
                echo "NETEM-ERR case=$name transport=$t i=$i $(head -c 300 /tmp/err)" | tee -a /tmp/errors
            fi
        done
        t1=$(now_ms)
        # shellcheck disable=SC2046 # four numbers, split on purpose
        set -- $(counters "$ns")
        [ $# -eq 4 ] || fail "no netem/Udp counters in $ns"
        echo "NETEM-RESULT case=$name qdisc=\"$qdisc\" transport=$t ok=$ok n=$i planned=$N ms=$((t1 - t0))"
        echo "NETEM-STATS case=$name qdisc=\"$qdisc\" transport=$t sent_pkts=$(($1 - sent0))" \
            "dropped=$(($2 - drop0)) udp_out=$(($3 - out0)) udp_in=$(($4 - in0))" \
            "in_minus_out=$(($4 - in0 - $3 + out0))"
    done
    kill "$cpid"
    wait "$cpid" 2>/dev/null
    "$TC" -s -n "$ns" qdisc show dev lo | sed 's/^/NETEM-TC /'
    # The server's side of the failures (one line per call).
    if grep -q "NETEM-ERR case=$name " /tmp/errors 2>/dev/null; then
        sed 's/^/NETEM-CONFIGD /' "/tmp/configd-$name.log"
    fi
    "$IP" netns del "$ns"
}

# The baseline: lo's default qdisc (noqueue), no netem.
run_case clean none
# Delay so reordering has something to reorder; 25 % are sent early.
run_case loss "loss 10%"
run_case dupreorder "delay 5ms reorder 25% 50% duplicate 30%"
echo "NETEM-DONE"
poweroff -f
