#!/usr/bin/env bash
# dracut with netboot vs dracut's own iSCSI initramfs (dracut-network + open-iscsi)
# on the same VM rig: same kernel (Debian 6.1), target, root image and QEMU
# (TCG). Not part of the test command.
#
#   bench/dracut-compare.sh [-n RUNS] [--flavours "systemd shell"] [--keep DIR]
#
# Needs root, the rig's tools (tests/vm.rs), dracut-core, and for the
# comparison dracut-network (apt-get install --no-install-recommends
# dracut-network; open-iscsi is installed by scripts/setup.sh); without
# dracut-network only the netboot images are measured.
#
# Images (qemu/dracut/build.sh, cached): --no-hostonly, kernel-modules and
# kernel-modules-extra omitted in both; netboot: --add netboot, dracut's
# network modules omitted; dracut's own: --dracut-iscsi (--add "iscsi
# network-legacy", Debian's /lib/open-iscsi/startup-checks.sh installed, see
# there). Command lines (after "console=ttyS0 panic=-1"):
#   netboot:  ip=198.18.0.2::198.18.0.1:255.255.255.0:::none  (no interface:
#             udev renames eth0 to ens3 before netboot runs)
#   dracut's: ifname=nb0:52:54:00:12:34:56 ip=198.18.0.2::198.18.0.1:255.255.255.0::nb0:none
#             (network-legacy needs an interface for a static ip=; ifname=
#             names the rig's NIC by its MAC)
#   both:     netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root
#             rd.iscsi.initiator=iqn.2026-11.test:bench root=LABEL=nbroot
#             rd.shell=0 rd.emergency=poweroff rd.retry=60
# Runs alternate between the variants. /init -> root = the kernel's "Run /init
# as init process" printk time to the root's "BENCH rootinit=" uptime, both in
# the guest's clock. Prints one line per boot and a table of medians; a variant
# whose boots do not reach the root shows the last telling console lines.
set -euo pipefail

die() { echo "dracut-compare: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=3 flavours="systemd shell" keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) runs=$2; shift 2 ;;
        --flavours) flavours=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "needs root (the VM rig: netns, tap, tgtd)"
[ -x "$repo/target/dist/netboot" ] || die "target/dist/netboot missing (bash scripts/build.sh)"

work=$(mktemp -d /tmp/dracut-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -z "$keep" ] || mkdir -p "$keep"

"$repo/qemu/dracut/root-image.sh" "$work/root.img" >/dev/null

iscsi="netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root rd.iscsi.initiator=iqn.2026-11.test:bench"
common="$iscsi root=LABEL=nbroot rd.shell=0 rd.emergency=poweroff rd.retry=60"
nb_cmdline="ip=198.18.0.2::198.18.0.1:255.255.255.0:::none $common netboot.timeout=60"
own_cmdline="ifname=nb0:52:54:00:12:34:56 ip=198.18.0.2::198.18.0.1:255.255.255.0::nb0:none $common"

own=1
if ! [ -d /usr/lib/dracut/modules.d/95iscsi ] && ! [ -d /usr/lib/dracut/modules.d/74iscsi ]; then
    echo "dracut-compare: dracut-network is not installed: measuring netboot only" >&2
    own=0
fi

variants=()
declare -A initrd size cmdline
for f in $flavours; do
    variants+=("netboot-$f")
    [ "$own" = 0 ] || variants+=("dracut-iscsi-$f")
done
for v in "${variants[@]}"; do
    f=${v##*-}
    opts=(--kernel 6.1 --flavour "$f")
    case "$v" in
        netboot-*) cmdline[$v]=$nb_cmdline ;;
        dracut-iscsi-*) opts+=(--dracut-iscsi); cmdline[$v]=$own_cmdline ;;
    esac
    echo "dracut-compare: building $v" >&2
    out=$("$repo/qemu/dracut/build.sh" "${opts[@]}") || die "building $v failed"
    initrd[$v]=$(sed -n 's/^INITRD=//p' <<<"$out")
    size[$v]=$(sed -n 's/^SIZE=//p' <<<"$out")
done

# /init -> root of one console log, or "fail".
measure() {
    awk '
        /Run \/init as init process/ && init == "" {
            t = $0; sub(/^[^[]*\[ */, "", t); sub(/\].*/, "", t); init = t
        }
        /^BENCH rootinit=/ { r = $0; sub(/^BENCH rootinit=/, "", r); root = r }
        END {
            if (init != "" && root != "") printf "%.2f\n", root - init
            else print "fail"
        }' "$1"
}

declare -A results why
for i in $(seq 1 "$runs"); do
    for v in "${variants[@]}"; do
        log="$work/$v-$i.log"
        rc=0
        "$repo/qemu/boot.sh" --kernel 6.1 --initrd "${initrd[$v]}" --image "$work/root.img" \
            --timeout 300 --console "$log" --append "${cmdline[$v]}" \
            --expect NETBOOT-ROOT-OK >"$work/boot.out" 2>&1 || rc=$?
        t=$(measure "$log")
        [ "$rc" = 0 ] || t=fail
        wall=$(sed -n 's/^boot: wall=//p' "$work/boot.out")
        echo "dracut-compare: run $i $v: /init -> root ${t} s, QEMU wall ${wall:-?} s (boot.sh exit $rc)"
        results[$v]="${results[$v]:-} $t"
        if [ "$t" = fail ] && [ -z "${why[$v]:-}" ]; then
            why[$v]=$(grep -a -E 'FAILED|Warning|FATAL|netboot attach: boot failed|Could not boot|timeout' "$log" \
                | grep -av 'Command line' | tail -n 6 | cut -c1-200 || true)
        fi
        [ -z "$keep" ] || cp "$log" "$keep/"
    done
done

median() {
    tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -n | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo
echo "| variant | initramfs | /init -> root, median of $runs | reached root |"
echo "|---|---|---|---|"
for v in "${variants[@]}"; do
    ok=$(tr ' ' '\n' <<<"${results[$v]}" | grep -cE '^[0-9.]+$' || true)
    printf '| %s | %s KiB | %s s | %s/%s |\n' "$v" "$((size[$v] / 1024))" \
        "$(median <<<"${results[$v]}")" "$ok" "$runs"
done
for v in "${variants[@]}"; do
    if [ -n "${why[$v]:-}" ]; then
        echo
        echo "$v did not reach the root; last telling console lines of its first failed boot:"
        printf '%s\n' "${why[$v]}"
    fi
done
