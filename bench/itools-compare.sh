#!/usr/bin/env bash
# initramfs-tools: Debian's own open-iscsi hook against netboot's hook, on the
# VM rig (QEMU/TCG, tgtd in a private netns, Debian's 6.1 kernel, plain.img).
#
#   bash scripts/build.sh && bash bench/itools-compare.sh [--runs N] [--out FILE]
#
# Both initramfs images are made by the real mkinitramfs in a Debian 12 chroot
# (qemu/itools/chroot.sh, cached; default initramfs.conf: MODULES=most,
# BUSYBOX=auto, zstd) for the kernel the rig boots:
#   debian   the chroot with open-iscsi installed, image as open-iscsi's own
#            update-initramfs trigger built it (hooks/iscsi: iscsistart,
#            local-top/iscsi); command line in its spelling:
#              ip=198.18.0.2::198.18.0.1:255.255.255.0:::off
#              root=iscsi:198.18.0.1::3260:1:iqn.2026-11.test:root
#            (configure_networking → klibc ipconfig; iscsistart; the root is
#            found by /dev/disk/by-path/*-iscsi-*-1 and a test mount)
#   netboot  the chroot without open-iscsi, `dpkg -i` of scripts/deb.sh's
#            package (trigger → update-initramfs); command line
#              ip=198.18.0.2::198.18.0.1:255.255.255.0:::off
#              iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root root=LABEL=nbroot
#   netboot-list  the same with MODULES=list (only the modules hooks add)
# N boots each (default 3), alternating. Measured per boot: /init → root =
# the root's `BENCH rootinit=` (/proc/uptime) minus the kernel's "Run /init as
# init process" printk time; the table shows median, minimum and every run
# (on a shared machine the minimum is the steadier figure; the host's load
# average is printed). Sizes are the compressed images. Results go to stdout and FILE (default
# target/vm/itools-bench/results.md); consoles are kept next to it.
set -euo pipefail

die() { echo "itools-compare.sh: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
runs=3 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) die "unknown option '$1' (usage: $0 [--runs N] [--out FILE])" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "needs root (the VM rig, chroots)"
[ -x target/dist/netboot ] || die "target/dist/netboot missing: run 'bash scripts/build.sh' first"
work="$repo/target/vm/itools-bench"
mkdir -p "$work"
out=${out:-$work/results.md}

env_out=$(qemu/itools/chroot.sh 6.1)
base=$(sed -n 's/^ITOOLS_BASE=//p' <<<"$env_out")
oiscsi=$(sed -n 's/^ITOOLS_OPEN_ISCSI=//p' <<<"$env_out")
kver=$(sed -n 's/^KVER=//p' <<<"$env_out")
deb=$(scripts/deb.sh --out "$work" | tail -n 1)

qemu/itools/initrd.sh --chroot "$oiscsi" --out "$work/debian.img" >"$work/debian.env"
qemu/itools/initrd.sh --chroot "$base" --deb "$deb" --out "$work/netboot.img" >"$work/netboot.env"
printf 'MODULES=list\n' >"$work/modules-list.conf"
qemu/itools/initrd.sh --chroot "$base" --deb "$deb" --file "$work/modules-list.conf:/etc/initramfs-tools/conf.d/bench" \
    --out "$work/netboot-list.img" >"$work/netboot-list.env"
[ -f "$work/plain.img" ] || qemu/mkroot.sh "$work/plain.img" --label nbroot >/dev/null

ip="ip=198.18.0.2::198.18.0.1:255.255.255.0:::off"
root_path="198.18.0.1::3260:1:iqn.2026-11.test:root"
declare -A append=(
    [debian]="$ip root=iscsi:$root_path"
    [netboot]="$ip iscsi=$root_path root=LABEL=nbroot netboot.timeout=60"
    [netboot-list]="$ip iscsi=$root_path root=LABEL=nbroot netboot.timeout=60"
)
gens=(debian netboot netboot-list)

# init_to_root CONSOLE: seconds from "Run /init as init process" to BENCH rootinit=.
init_to_root() {
    awk '
        /Run \/init as init process/ && init == "" {
            s = $0; sub(/^[^[]*\[ */, "", s); sub(/\].*/, "", s); init = s
        }
        /BENCH rootinit=/ && root == "" {
            s = $0; sub(/.*BENCH rootinit=/, "", s); sub(/[^0-9.].*/, "", s); root = s
        }
        END { if (init == "" || root == "") exit 1; printf "%.2f\n", root - init }
    ' "$1"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A times=() failures=()
for i in $(seq "$runs"); do
    for g in "${gens[@]}"; do
        console="$work/console-$g-$i.log" t=""
        if qemu/boot.sh --kernel 6.1 --initrd "$work/$g.img" --image "$work/plain.img" \
            --append "${append[$g]}" --timeout 240 --console "$console" \
            --expect NETBOOT-ROOT-OK >"$work/boot-$g-$i.out" 2>&1; then
            t=$(init_to_root "$console") || t=""
            if [ -n "$t" ]; then
                times[$g]="${times[$g]:-} $t"
            else
                failures[$g]="${failures[$g]:-} run$i:no-timestamps"
            fi
        else
            failures[$g]="${failures[$g]:-} run$i:boot-failed($console)"
        fi
        echo "itools-compare: $g run $i: ${t:-failed}" >&2
    done
done

{
    echo "initramfs-tools on the VM rig: Debian 12 mkinitramfs (initramfs-tools $(tar -xOf "$base" ./var/lib/dpkg/status | awk '/^Package: initramfs-tools$/ { p = 1 } p && /^Version:/ { print $2; exit }'), default initramfs.conf), kernel $kver, QEMU TCG 1 vCPU, tgtd, plain.img; $runs boots each; host load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
    echo
    echo "| initramfs | size (bytes) | /init → root, median (s) | min (s) | runs (s) | command line |"
    echo "|---|---|---|---|---|---|"
    for g in "${gens[@]}"; do
        size=$(stat -c %s "$work/$g.img")
        med=$(median <<<"${times[$g]:-}")
        min=$(tr ' ' '\n' <<<"${times[$g]:-}" | grep -v '^$' | sort -n | head -n 1)
        case "$g" in
            debian) label="Debian open-iscsi hook (iscsistart), MODULES=most" ;;
            netboot) label="netboot hook (netboot attach), MODULES=most" ;;
            netboot-list) label="netboot hook (netboot attach), MODULES=list" ;;
        esac
        echo "| $label | $size | ${med:-n/a} | ${min:-n/a} | ${times[$g]:-none}${failures[$g]:+; failed:${failures[$g]}} | \`${append[$g]}\` |"
    done
} | tee "$out"
