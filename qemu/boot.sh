#!/usr/bin/env bash
# Boot one VM against a fresh tgtd in a private netns (qemu/rig.sh).
#
#   qemu/boot.sh --kernel 6.1|6.12|VMLINUX --initrd FILE --image FILE
#       [--image-lun N] [--target IQN] [--chap USER:SECRET]
#       [--mutual-chap TUSER:TSECRET] [--append "..."] [--timeout S]
#       [--console FILE] [--show] [--expect STRING]
#       [--configd DIR [--configd-bin BIN] [--configd-args "ARGS"]]
#       [--capture FILE [--capture-filter EXPR]]
#       [--dhcp] [--dhcp-root-path STR] [--no-panic-arg] [--tgt-delay S]
#       [--blackhole ADDR ...] [--ipv6] [--ra] [--dhcp6]
#       [--dhcp6-root-path URL] [--vlan ID] [--acpitable FILE]
#       [--tgt-restart AT:DOWN | --link-down AT:DUR]
#       [--fault-after STRING] [--fault-resumed STRING]
#
# --configd serves the config files in DIR with netboot-configd on
# 198.18.0.1:7260 (default BIN: target/dist/netboot-configd); --configd-args
# "ARGS" appends ARGS (split on blanks, no quoting) to configd's command line,
# e.g. --configd-args "--rxkad-keys FILE". --capture writes the packets seen
# on the bridge to FILE (pcap) with tcpdump inside the netns, from before
# configd and QEMU start until the end of the boot (SIGTERM: the pcap is
# flushed); by default only the RxRPC port (udp port 7260),
# --capture-filter EXPR takes a tcpdump filter instead ("" = every packet).
# --dhcp runs dnsmasq on the rig's br0 (the guest leases 198.18.0.2/24,
# router 198.18.0.1); --dhcp-root-path STR also serves STR as option 17
# (implies --dhcp).
#
# --tgt-delay S starts tgtd (with its target) S seconds after QEMU starts
# (rig_tgt_start_later): until then nothing listens on 198.18.0.1:3260 and
# the guest's connects are refused. --blackhole ADDR (repeatable; an address
# in 198.18.0.3-254) makes ADDR:3260 a black hole: the rig answers ARP for
# ADDR but never a TCP segment from ADDR:3260, so the guest's connects there
# time out (rig_blackhole_add).
#
# --ipv6 gives br0 also fd00:198:18::1/64; tgtd (and configd) listen on
# [fd00:198:18::1] too (rig_ipv6_up). --ra runs dnsmasq sending router
# advertisements for SLAAC in fd00:198:18::/64; --dhcp6 runs dnsmasq as a
# DHCPv6 server (fd00:198:18::100, DNS fd00:198:18::1, RAs with the M bit
# for the routes); --dhcp6-root-path URL also serves URL as option 59
# (bootfile-url). --ra, --dhcp6 and --dhcp6-root-path imply --ipv6.
# --vlan ID puts the target on VLAN ID (198.18.42.1 on br0) and lets only
# frames tagged ID through tap0 (a userspace 802.1Q port, qemu/vlan-port.py,
# needs python3): the guest must tag (rig_vlan_up).
#
# --acpitable FILE hands FILE (a whole ACPI table with its header, e.g. an
# iBFT) to QEMU as `-acpitable file=FILE`: the guest's RSDT lists it. The
# guest NIC is virtio-net-pci at 00:03.0 (the first free slot after the
# i440fx host bridge, PIIX3 and VGA) with QEMU's default MAC
# 52:54:00:12:34:56.
#
# One fault during the run (rig_fault_start; tests/vm_recovery.rs):
# --tgt-restart AT:DOWN kills tgtd with SIGKILL AT seconds in, leaves the
# portal empty (connects refused) for DOWN seconds, then starts a new tgtd
# with the same target, LUN, CHAP and backing file (the per-run copy, so
# what the guest wrote survives). --link-down AT:DUR takes the guest NIC's
# link down for DUR seconds through QEMU's monitor (`set_link n0 off`; the
# guest sees carrier loss and every frame is dropped), then up again.
# AT counts from QEMU's start or, with --fault-after STRING, from the first
# console line containing STRING (robust against TCG's variable speed).
# --fault-resumed STRING: after the fault, the rig waits for a new console
# line containing STRING and logs how long after the fault's end it came.
# The fault's steps are printed as "boot: fault: …" lines (t= seconds since
# QEMU started, marker+ seconds since STRING appeared, back+ seconds since
# the target or link came back).
#
# The kernel command line is "console=ttyS0 panic=-1 " + --append;
# --no-panic-arg leaves out "panic=-1", so the kernel's own default applies
# (Debian's CONFIG_PANIC_TIMEOUT=0: wait forever after a panic). QEMU runs
# with -no-reboot: a guest reboot ends QEMU as a power-off does (exit status
# 0); the console tells them apart ("reboot: Restarting system" vs
# "reboot: Power down", kernel/reboot.c).
#
# The image is copied (sparse) per run so the pristine one stays. Exit status: 0 iff
# QEMU exited by itself before the timeout and the console contains every
# --expect string; 2 on timeout; 1 otherwise. On a failure the last 50
# console lines are printed. The wall time is printed as "boot: wall=S".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=qemu/rig.sh
. "$here/rig.sh"

die() { echo "boot.sh: $*" >&2; exit 1; }

kernel="" initrd="" image="" lun=1 iqn=iqn.2026-11.test:root chap="" mutual="" append=""
timeout=120 console="" show=0 expects=() configd="" configd_bin="$here/../target/dist/netboot-configd" capture=""
configd_args=() capture_filter="udp port 7260"
dhcp=0 dhcp_root="" panic_arg="panic=-1 " tgt_delay="" blackholes=()
ipv6=0 dhcp6="" dhcp6_root="" vlan=""
fault="" fault_spec="" fault_after="" fault_resumed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --initrd) initrd=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --image-lun) lun=$2; shift 2 ;;
        --target) iqn=$2; shift 2 ;;
        --chap) chap=$2; shift 2 ;;
        --mutual-chap) mutual=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --console) console=$2; shift 2 ;;
        --show) show=1; shift ;;
        --expect) expects+=("$2"); shift 2 ;;
        --configd) configd=$2; shift 2 ;;
        --configd-bin) configd_bin=$2; shift 2 ;;
        --configd-args) read -ra configd_args <<<"$2"; shift 2 ;;
        --capture) capture=$2; shift 2 ;;
        --capture-filter) capture_filter=$2; shift 2 ;;
        --dhcp) dhcp=1; shift ;;
        --dhcp-root-path) dhcp=1; dhcp_root=$2; shift 2 ;;
        --no-panic-arg) panic_arg=""; shift ;;
        --tgt-delay) tgt_delay=$2; shift 2 ;;
        --blackhole) blackholes+=("$2"); shift 2 ;;
        --ipv6) ipv6=1; shift ;;
        --ra) ipv6=1; dhcp6=ra; shift ;;
        --dhcp6) ipv6=1; dhcp6=dhcp6; shift ;;
        --dhcp6-root-path) ipv6=1; dhcp6=dhcp6; dhcp6_root=$2; shift 2 ;;
        --vlan) vlan=$2; shift 2 ;;
        --tgt-restart | --link-down)
            [ -z "$fault" ] || die "one of --tgt-restart, --link-down at a time"
            fault=${1#--} fault_spec=$2; shift 2 ;;
        --fault-after) fault_after=$2; shift 2 ;;
        --fault-resumed) fault_resumed=$2; shift 2 ;;
        --acpitable)
            [ -f "$2" ] || die "--acpitable '$2': no such file"
            rig_qemu_args+=(-acpitable "file=$2"); shift 2 ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || die "--kernel 6.1|6.12|VMLINUX is required"
[ -f "$initrd" ] || die "--initrd '$initrd': no such file"
[ -f "$image" ] || die "--image '$image': no such file"
case "$kernel" in
    6.1 | 6.12) vmlinux=$("$here/kernel.sh" "$kernel" | sed -n 's/^VMLINUX=//p') ;;
    *) vmlinux=$kernel ;;
esac
[ -f "$vmlinux" ] || die "kernel image '$vmlinux' not found"

rig_workdir=$(mktemp -d /tmp/nbvm.XXXXXX)
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    rig_cleanup
    rm -rf "$rig_workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -n "$console" ] || console="$rig_workdir/console.log"

cp --sparse=always "$image" "$rig_workdir/disk.img"
rig_netns_up
[ -z "$vlan" ] || rig_vlan_up "$vlan" || die "--vlan $vlan failed"
[ "$ipv6" = 0 ] || rig_ipv6_up || die "--ipv6 failed"
for a in "${blackholes[@]}"; do
    rig_blackhole_add "$a" || die "--blackhole $a failed"
done
[ -n "$tgt_delay" ] || rig_tgt_start "$rig_workdir/disk.img" "$lun" "$iqn" "$chap" "$mutual"
[ -z "$capture" ] || rig_capture_start "$capture" "$capture_filter"
if [ -n "$configd" ]; then
    [ -x "$configd_bin" ] || die "--configd-bin '$configd_bin': not executable (bash scripts/build.sh)"
    rig_configd_start "$configd_bin" "$configd" "${configd_args[@]}"
fi
[ "$dhcp" = 0 ] || rig_dnsmasq_start "$dhcp_root"
[ -z "$dhcp6" ] || rig_dnsmasq6_start "$dhcp6" "$dhcp6_root" || die "dnsmasq for IPv6 failed"

if [ -n "$tgt_delay" ]; then
    rig_tgt_start_later "$tgt_delay" "$rig_workdir/disk.img" "$lun" "$iqn" "$chap" "$mutual" \
        || die "--tgt-delay $tgt_delay failed"
fi

if [ -n "$fault" ]; then
    [ -z "$tgt_delay" ] || [ "$fault" != tgt-restart ] || die "--tgt-restart with --tgt-delay is not supported"
    rig_fault_start "$fault" "$fault_spec" "$console" "$fault_after" "$fault_resumed" \
        "$rig_workdir/disk.img" "$lun" "$iqn" "$chap" "$mutual" || die "--$fault $fault_spec failed"
fi

rc=0
rig_qemu "$vmlinux" "$initrd" "console=ttyS0 $panic_arg$append" "$console" "$timeout" "$show" || rc=$?
echo "boot: wall=$rig_wall"
if [ -n "$rig_fault_log" ] && [ -s "$rig_fault_log" ]; then
    sed 's/^/boot: /' "$rig_fault_log"
fi
if [ "$rc" = 0 ]; then
    for e in "${expects[@]}"; do
        grep -qF -- "$e" "$console" || { echo "boot: console lacks '$e'" >&2; rc=1; }
    done
fi
if [ "$rc" != 0 ]; then
    echo "boot: last 50 console lines ($console):" >&2
    tail -n 50 "$console" >&2
    if [ -n "$configd" ] && [ -s "$rig_configd_log" ]; then
        echo "boot: netboot-configd log ($rig_configd_log):" >&2
        tail -n 20 "$rig_configd_log" >&2
    fi
    if [ -n "$rig_tgt_later_log" ] && [ -s "$rig_tgt_later_log" ]; then
        echo "boot: delayed tgtd start ($rig_tgt_later_log):" >&2
        cat "$rig_tgt_later_log" >&2
    fi
    if [ -s "$rig_tgt_log" ]; then
        echo "boot: tgtd log ($rig_tgt_log), last 20 lines:" >&2
        tail -n 20 "$rig_tgt_log" >&2
    fi
    if [ -s "$rig_dnsmasq_log" ]; then
        echo "boot: dnsmasq log ($rig_dnsmasq_log), last 20 lines:" >&2
        tail -n 20 "$rig_dnsmasq_log" >&2
    fi
    if [ -n "$rig_vlanport_log" ] && [ -s "$rig_vlanport_log" ]; then
        echo "boot: vlan-port log ($rig_vlanport_log):" >&2
        tail -n 5 "$rig_vlanport_log" >&2
    fi
    if [ -s "$rig_dnsmasq6_log" ]; then
        echo "boot: dnsmasq (IPv6) log ($rig_dnsmasq6_log), last 20 lines:" >&2
        tail -n 20 "$rig_dnsmasq6_log" >&2
    fi
fi
exit "$rc"
