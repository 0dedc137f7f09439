#!/usr/bin/env bash
# A systemd initramfs for the systemd-flavour scenarios of
# tests/mkinitcpio.rs: what mkinitcpio's `HOOKS=(base systemd … netboot)`
# boots, minus mkinitcpio. mkinitcpio is not packaged for Debian, so Debian's
# dracut assembles the systemd part (dracut modules systemd, systemd-initrd,
# systemd-udevd, udev-rules only: none of dracut's own boot logic, no
# dracut-systemd, no network or iSCSI module) and the test module
# qemu/mkinitcpio/sd-dracut adds ours: mkinitcpio/netboot-attach.service,
# mkinitcpio/netboot-generator and the binary, at install/netboot's paths.
# Then, as mkinitcpio's images, only the binary module indexes are kept.
# Root comes from systemd itself: systemd-fstab-generator for root=LABEL=,
# our generator's sysroot.mount for root=iscsi:.
#
#   qemu/mkinitcpio/build-systemd.sh --kernel 6.1|6.12 --netboot BIN --out FILE
#
# Cache: ${NETBOOT_CACHE:-/var/cache/netboot}/mkinitcpio-sd-<sha256 of the
# inputs>/initrd.img.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=initramfs/common.sh
. "$repo/initramfs/common.sh"

kernel="" netboot="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --netboot) netboot=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) ir_die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || ir_die "--kernel 6.1|6.12 is required"
[ -n "$out" ] || ir_die "--out FILE is required"
[ -x "$netboot" ] || ir_die "--netboot '$netboot': not executable (bash scripts/build.sh)"
command -v dracut >/dev/null || ir_die "dracut not found (apt-get install dracut-core)"
ir_kernel "$kernel" ""
netboot=$(readlink -f "$netboot")

key=$(
    {
        echo "kver=$ir_kver dracut=$(dpkg-query -W -f '${Version}' dracut-core 2>/dev/null || true)"
        sha256sum "$0" "$netboot" "$here/sd-dracut/module-setup.sh" \
            "$repo/mkinitcpio/netboot-attach.service" "$repo/mkinitcpio/netboot-generator" | cut -d' ' -f1
    } | sha256sum | cut -c1-16
)
cache_root=${NETBOOT_CACHE:-/var/cache/netboot}
cache=$cache_root/mkinitcpio-sd-$key
if ! [ -s "$cache/initrd.img" ]; then
    mkdir -p "$cache_root"
    work=$(mktemp -d "$cache_root/.mkinitcpio-sd.XXXXXX")
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf '$work'" EXIT
    # dracut reads modules from $dracutbasedir/modules.d only: a private one
    # with links to Debian's plus the test module.
    base=$work/dracutbase
    mkdir -p "$base/modules.d" "$work/confdir" "$work/tmp"
    for f in /usr/lib/dracut/*; do
        [ "${f##*/}" = modules.d ] || ln -s "$f" "$base/${f##*/}"
    done
    for m in /usr/lib/dracut/modules.d/*; do
        ln -s "$m" "$base/modules.d/${m##*/}"
    done
    ln -s "$here/sd-dracut" "$base/modules.d/99nbmkinitcpio"
    if ! dracutbasedir=$base NB_REPO=$repo NETBOOT_BIN=$netboot dracut --force --conf /dev/null \
        --confdir "$work/confdir" --tmpdir "$work/tmp" --no-hostonly --no-early-microcode \
        --no-compress --modules "systemd systemd-initrd systemd-udevd udev-rules nbmkinitcpio" \
        --kver "$ir_kver" --kmoddir "$ir_kroot/lib/modules/$ir_kver" \
        "$work/initrd.cpio" >"$work/dracut.log" 2>&1; then
        tail -n 40 "$work/dracut.log" >&2
        ir_die "dracut failed (log above)"
    fi
    tree=$work/tree
    mkdir -p "$tree"
    (cd "$tree" && cpio -idm --quiet <"$work/initrd.cpio") || ir_die "cannot unpack dracut's image"
    moddir=$tree/usr/lib/modules/$ir_kver
    [ -d "$moddir" ] || moddir=$tree/lib/modules/$ir_kver
    [ -f "$moddir/modules.dep.bin" ] || ir_die "no modules.dep.bin in dracut's image"
    find "$moddir" -maxdepth 1 -name 'modules.*' ! -name '*.bin' ! -name modules.devname ! -name modules.softdep -delete
    ir_pack "$tree" "$work/initrd.img" >/dev/null
    rm -rf "$cache.tmp"
    mkdir -p "$cache.tmp"
    mv "$work/initrd.img" "$cache.tmp/initrd.img"
    mv "$work/dracut.log" "$cache.tmp/dracut.log"
    rm -rf "$cache"
    mv "$cache.tmp" "$cache"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/initrd.img" "$out"
echo "initramfs: $out: $(stat -c %s "$out") bytes (cache $cache)"
