#!/usr/bin/env bash
# The distributions' own iSCSI boots next to netboot's, on one VM rig (issue 15
# item 2): same kernel, same tgtd target, same root image, QEMU TCG 1 vCPU.
# Not part of the test command.
#
#   bash scripts/build.sh && bash bench/distro-compare.sh [-n RUNS] [--kernel 6.1]
#       [--flavour systemd|shell] [--only "VARIANT ..."] [--out FILE]
#
# Variants (the initramfs each builder makes for the kernel the rig boots):
#   dracut-iscsi    dracut 059 with its own iSCSI support: dracut-network's
#                   iscsi + network-legacy modules and open-iscsi's iscsistart
#                   and iscsid (qemu/dracut/build.sh --dracut-iscsi: the four
#                   changes it needs on this rig are in its header);
#                   the baseline every ratio is against
#   dracut-netboot  dracut 059 with dracut/90netboot (netboot attach)
#   itools-debian   Debian 12 mkinitramfs with open-iscsi's hook (iscsistart),
#                   default initramfs.conf (MODULES=most)
#   itools-netboot  the same chroot without open-iscsi, netboot's .deb
#                   (scripts/deb.sh; hook + netboot attach), MODULES=most
#   netboot         netboot's own initramfs (initramfs/build.sh, agent as /init)
#   iscsistart      busybox + iscsistart (initramfs/build-iscsistart.sh), the
#                   reference of qemu/bench
# The last two carry virtio_net + virtio_pci as their only NIC drivers, as in
# qemu/bench. --flavour picks dracut's systemd initramfs (default, dracut's
# default when systemd is installed) or its shell one (--omit systemd).
#
# Root image: qemu/dracut/root-image.sh (qemu/mkroot.sh's busybox ext4 root,
# label nbroot, plus /etc/os-release for systemd's switch-root), the same for
# every variant; boot.sh boots a copy each time.
#
# Timing, all in the guest's kernel clock (printk timestamps on the serial
# console; host load between boots does not count, host load during a boot
# does, under TCG):
#   /init            the kernel's "Run /init as init process"
#   root mounted     the last "EXT4-fs (sdX): mounted filesystem" line before
#                    the root's init runs (Debian's open-iscsi script and
#                    dracut's shell flavour mount the root once to test it,
#                    unmount and mount again; the root image is the only
#                    ext4 in every boot)
#   root's init      the root's /sbin/init printing "BENCH rootinit=" from
#                    /proc/uptime (qemu/root-init.sh)
# Runs alternate: round i boots every variant once, starting at a different
# variant each round. Medians over the runs that reached the root; the
# host's load average before and after is printed. Sizes: the compressed
# image as the builder wrote it (compressor in the table).
#
# Command lines (after boot.sh's "console=ttyS0 panic=-1"), each builder in
# its own spelling of the same target:
#   dracut-iscsi    ifname=nb0:52:54:00:12:34:56 ip=198.18.0.2::198.18.0.1:255.255.255.0::nb0:none
#                   netroot=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root
#                   rd.iscsi.initiator=iqn.2026-11.test:bench root=LABEL=nbroot
#                   rd.shell=0 rd.emergency=poweroff rd.retry=60
#   dracut-netboot  the same with ip=198.18.0.2::198.18.0.1:255.255.255.0:::none
#                   (no interface; udev renames eth0 first) and netboot.timeout=60
#   itools-debian   ip=198.18.0.2::198.18.0.1:255.255.255.0:::off
#                   root=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root
#   itools-netboot  ip=…:::off iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root
#                   root=LABEL=nbroot netboot.timeout=60
#   netboot, iscsistart  qemu/bench's: ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off
#                   iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root
#                   netboot.on_fail=halt netboot.timeout=60
#
# Needs root, the rig's tools (tests/vm.rs), dracut-core + dracut-network +
# open-iscsi (dracut variants), mmdebstrap (itools variants; the chroots are
# cached by qemu/itools/chroot.sh), target/dist/netboot. A variant whose
# prerequisites are missing is left out with a message. Work directory
# target/vm/distro-compare (images, consoles); results also go to FILE
# (default target/vm/distro-compare/results.md).
set -euo pipefail

die() { echo "distro-compare: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
runs=3 kernel=6.1 flavour=systemd only="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) runs=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --flavour) flavour=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
case "$runs" in '' | *[!0-9]* | 0) die "-n $runs: want a positive number" ;; esac
case "$flavour" in systemd | shell) ;; *) die "--flavour $flavour: want systemd or shell" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (the VM rig: netns, tap, tgtd; chroots)"
[ -x "$repo/target/dist/netboot" ] || die "target/dist/netboot missing (bash scripts/build.sh)"

work="$repo/target/vm/distro-compare"
mkdir -p "$work/dist"
# One copy of the binaries for the whole run (a rebuild of target/dist while
# the images are made must not give the variants different agents).
cp "$repo/target/dist/netboot" "$work/dist/netboot"
[ ! -f "$repo/target/dist/netboot-configd" ] || cp "$repo/target/dist/netboot-configd" "$work/dist/"
bin="$work/dist/netboot"
out=${out:-$work/results.md}

want() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }
variants=()
declare -A initrd=() label=() append=()

ip_itools="ip=198.18.0.2::198.18.0.1:255.255.255.0:::off"
root_path="198.18.0.1::3260:1:iqn.2026-11.test:root"
dr_common="netroot=iscsi:$root_path rd.iscsi.initiator=iqn.2026-11.test:bench root=LABEL=nbroot rd.shell=0 rd.emergency=poweroff rd.retry=60"
bench_cmdline="ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off iscsi=$root_path netboot.on_fail=halt netboot.timeout=60"

"$repo/qemu/dracut/root-image.sh" "$work/root.img" >/dev/null

# --- images -------------------------------------------------------------
have_dracut_iscsi=0
if [ -d /usr/lib/dracut/modules.d/95iscsi ] || [ -d /usr/lib/dracut/modules.d/74iscsi ]; then
    have_dracut_iscsi=1
fi
for v in dracut-iscsi dracut-netboot; do
    want "$v" || continue
    if ! command -v dracut >/dev/null; then
        echo "distro-compare: $v left out: dracut not installed (dracut-core)" >&2
        continue
    fi
    opts=(--kernel "$kernel" --flavour "$flavour")
    if [ "$v" = dracut-iscsi ]; then
        if [ "$have_dracut_iscsi" = 0 ]; then
            echo "distro-compare: $v left out: dracut-network not installed" >&2
            continue
        fi
        opts+=(--dracut-iscsi)
        append[$v]="ifname=nb0:52:54:00:12:34:56 ip=198.18.0.2::198.18.0.1:255.255.255.0::nb0:none $dr_common"
        label[$v]="dracut 059 $flavour, its own iSCSI (dracut-network iscsi + open-iscsi $(dpkg-query -W -f '${Version}' open-iscsi 2>/dev/null || echo '?'))"
    else
        opts+=(--netboot "$bin")
        append[$v]="ip=198.18.0.2::198.18.0.1:255.255.255.0:::none $dr_common netboot.timeout=60"
        label[$v]="dracut 059 $flavour + dracut/90netboot"
    fi
    echo "distro-compare: building $v" >&2
    o=$("$repo/qemu/dracut/build.sh" "${opts[@]}") || die "building $v failed"
    initrd[$v]=$(sed -n 's/^INITRD=//p' <<<"$o")
    variants+=("$v")
done

if want itools-debian || want itools-netboot; then
    if ! command -v mmdebstrap >/dev/null; then
        echo "distro-compare: initramfs-tools variants left out: mmdebstrap not installed" >&2
    else
        env_out=$(qemu/itools/chroot.sh "$kernel") || die "qemu/itools/chroot.sh $kernel failed"
        base=$(sed -n 's/^ITOOLS_BASE=//p' <<<"$env_out")
        oiscsi=$(sed -n 's/^ITOOLS_OPEN_ISCSI=//p' <<<"$env_out")
        itv=$(tar -xOf "$base" ./var/lib/dpkg/status | awk '/^Package: initramfs-tools$/ { p = 1 } p && /^Version:/ { print $2; exit }' || true)
        # itools_image NAME KEY ARGS...: qemu/itools/initrd.sh unless the
        # image for the same inputs (KEY) is already there.
        itools_image() {
            local name=$1 key=$2
            shift 2
            if [ -f "$work/$name.img" ] && [ "$(cat "$work/$name.key" 2>/dev/null)" = "$key" ]; then
                return 0
            fi
            echo "distro-compare: building $name (mkinitramfs in a chroot)" >&2
            rm -f "$work/$name.key"
            qemu/itools/initrd.sh "$@" --out "$work/$name.img" >"$work/$name.env" \
                || die "qemu/itools/initrd.sh for $name failed"
            echo "$key" >"$work/$name.key"
        }
        if want itools-debian; then
            itools_image itools-debian "$oiscsi" --chroot "$oiscsi"
            initrd[itools-debian]="$work/itools-debian.img"
            append[itools-debian]="$ip_itools root=iscsi:$root_path"
            label[itools-debian]="initramfs-tools $itv + Debian's open-iscsi hook (iscsistart), MODULES=most"
            variants+=(itools-debian)
        fi
        if want itools-netboot; then
            deb=$(scripts/deb.sh --dist "$work/dist" --out "$work" | tail -n 1)
            itools_image itools-netboot "$base $(sha256sum "$deb" | cut -c1-64)" --chroot "$base" --deb "$deb"
            initrd[itools-netboot]="$work/itools-netboot.img"
            append[itools-netboot]="$ip_itools iscsi=$root_path root=LABEL=nbroot netboot.timeout=60"
            label[itools-netboot]="initramfs-tools $itv + netboot's hook (netboot attach), MODULES=most"
            variants+=(itools-netboot)
        fi
    fi
fi

nics=virtio_net,virtio_pci
if want netboot; then
    nb="$work/netboot-$kernel.cpio.gz"
    if [ ! -f "$nb" ] || [ "$bin" -nt "$nb" ]; then
        initramfs/build.sh --kernel "$kernel" --netboot "$bin" --nic "$nics" --out "$nb" >&2
    fi
    initrd[netboot]=$nb
    append[netboot]=$bench_cmdline
    label[netboot]="netboot's own initramfs (initramfs/build.sh, agent as /init)"
    variants+=(netboot)
fi
if want iscsistart; then
    ref="$work/iscsistart-$kernel.cpio.gz"
    [ -f "$ref" ] || initramfs/build-iscsistart.sh --kernel "$kernel" --nic "$nics" --out "$ref" >&2
    initrd[iscsistart]=$ref
    append[iscsistart]=$bench_cmdline
    label[iscsistart]="busybox + iscsistart (initramfs/build-iscsistart.sh, qemu/bench's reference)"
    variants+=(iscsistart)
fi
[ ${#variants[@]} -gt 0 ] || die "no variant left to boot"

# --- boots ----------------------------------------------------------------
# times CONSOLE -> "MOUNTED ROOTINIT" (seconds after /init), or fails.
times() {
    awk '
        function stamp(s) { sub(/^[^[]*\[ */, "", s); sub(/\].*/, "", s); return s + 0 }
        /Run \/init as init process/ && init == "" { init = stamp($0) }
        /EXT4-fs \(sd[a-z]+\): mounted filesystem/ && root == "" { mounted = stamp($0) }
        /BENCH rootinit=/ && root == "" {
            s = $0; sub(/.*BENCH rootinit=/, "", s); sub(/[^0-9.].*/, "", s); root = s + 0
        }
        END {
            if (init == "" || root == "" || mounted == "") exit 1
            printf "%.2f %.2f\n", mounted - init, root - init
        }' "$1"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results="$work/results.tsv"
: >"$results"
nv=${#variants[@]}
declare -A why=()
for i in $(seq "$runs"); do
    for k in $(seq 0 $((nv - 1))); do
        v=${variants[$(((k + i - 1) % nv))]}
        console="$work/console-$v-$i.log"
        rc=0
        qemu/boot.sh --kernel "$kernel" --initrd "${initrd[$v]}" --image "$work/root.img" \
            --timeout 300 --console "$console" --append "${append[$v]}" \
            --expect NETBOOT-ROOT-OK >"$work/boot-$v-$i.out" 2>&1 || rc=$?
        wall=$(sed -n 's/^boot: wall=//p' "$work/boot-$v-$i.out")
        if [ "$rc" = 0 ] && t=$(times "$console"); then
            read -r m r <<<"$t"
            printf '%s\t%s\t%s\t%s\t%s\n' "$v" "$i" "$m" "$r" "${wall:-0}" >>"$results"
            echo "distro-compare: run $i $v: /init -> root mounted $m s, -> root's init $r s, QEMU wall ${wall:-?} s (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        else
            echo "distro-compare: run $i $v: FAILED (boot.sh exit $rc, console $console)" >&2
            if [ -z "${why[$v]:-}" ]; then
                why[$v]=$(grep -a -E 'FAILED|FATAL|netboot attach: boot failed|Could not boot|timeout|panic' "$console" \
                    | grep -av 'Command line' | tail -n 6 | cut -c1-200 || true)
            fi
        fi
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- table ----------------------------------------------------------------
median() { # VARIANT COLUMN (3 = mounted, 4 = root's init, 5 = wall)
    awk -F'\t' -v v="$1" -v c="$2" '$1 == v { print $c }' "$results" | sort -g \
        | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f", a[(NR + 1) / 2]; else printf "%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
runs_of() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v { printf "%s%s", s, $c; s = "/" }' "$results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == "" || b == 0) print "–"; else printf "%.2f×", a / b }'; }
compressor() {
    case "$(head -c 6 "$1" | od -An -tx1 | tr -d ' \n')" in
        1f8b*) echo gzip ;;
        28b52ffd*) echo zstd ;;
        fd377a585a00) echo xz ;;
        303730373031 | 303730373032)
            # an uncompressed early cpio (microcode) in front: name the main part
            echo "cpio + $(file -b "$1" | cut -d, -f1)" ;;
        *) file -b "$1" | cut -d, -f1 ;;
    esac
}
base=dracut-iscsi
[ -n "${initrd[$base]:-}" ] || base=${variants[0]}
bm=$(median "$base" 3) br=$(median "$base" 4) bs=$(stat -c %s "${initrd[$base]}")
{
    echo "Kernel $(qemu/kernel.sh "$kernel" | sed -n 's/^KVER=//p'), QEMU TCG 1 vCPU, tgtd in the rig's netns, one root image; $runs rounds, alternating; medians of the boots that reached the root (in-guest printk clock). Ratios against $base. Host load average before/after: $load_before / $load_after on $(nproc) CPUs."
    echo
    echo "| initramfs | size (compressed) | ratio | /init → root mounted | ratio | /init → root's init | ratio | reached | runs: mounted (s) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for v in "${variants[@]}"; do
        size=$(stat -c %s "${initrd[$v]}")
        m=$(median "$v" 3) r=$(median "$v" 4)
        ok=$(awk -F'\t' -v v="$v" '$1 == v' "$results" | wc -l)
        printf '| %s | %s B (%s KiB, %s) | %s | %s s | %s | %s s | %s | %s/%s | %s |\n' \
            "${label[$v]}" "$size" "$((size / 1024))" "$(compressor "${initrd[$v]}")" "$(ratio "$size" "$bs")" \
            "$m" "$(ratio "$m" "$bm")" "$r" "$(ratio "$r" "$br")" "$ok" "$runs" "$(runs_of "$v" 3)"
    done
    echo
    echo "Command lines (after \"console=ttyS0 panic=-1\"):"
    echo
    for v in "${variants[@]}"; do echo "- $v: \`${append[$v]}\`"; done
    for v in "${variants[@]}"; do
        if [ -n "${why[$v]:-}" ]; then
            echo
            echo "$v: boots that failed; last telling console lines of the first:"
            echo
            printf '    %s\n' "${why[$v]}"
        fi
    done
} | tee "$out"
