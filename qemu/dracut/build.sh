#!/usr/bin/env bash
# Build a dracut initramfs for the VM rig from a cached Debian kernel
# (qemu/kernel.sh), with the repository's dracut/90netboot module, cached.
#
#   qemu/dracut/build.sh --kernel 6.1|6.12 [--flavour systemd|shell]
#       [--netboot BIN | --dracut-iscsi] [--config-token FILE] [--out FILE]
#
# --flavour systemd (default): dracut's systemd initramfs; shell: --omit systemd.
# --netboot BIN: the binary the module installs (default target/dist/netboot),
#   passed to module-setup.sh as NETBOOT_BIN.
# --config-token FILE: the rxkad token the module installs as
#   /etc/netboot/config.token (NETBOOT_CONFIG_TOKEN=FILE); without it
#   NETBOOT_CONFIG_TOKEN=no, so a token of the build host never gets in.
# --dracut-iscsi: instead of netboot, dracut's own iscsi module (needs
#   dracut-network and open-iscsi; for bench/dracut-compare.sh). dracut 059's
#   95iscsi checks for iscsi_tcp in /lib/modules/KVER only (not --kmoddir), so
#   when that directory is missing the build links it to the kernel's modules
#   for its duration.
#
# dracut runs with --no-hostonly against the kernel's modules
# (--kver KVER --kmoddir KROOT/lib/modules/KVER), without the host's
# dracut.conf (--conf /dev/null, an empty --confdir) and without early
# microcode. dracut's own network and iSCSI modules are omitted for the netboot
# image; "kernel-modules" and "kernel-modules-extra" are omitted for every
# image so that it holds only what the boot needs (the netboot module's
# installkernel brings the iSCSI, SCSI, file system and NIC drivers; for
# --dracut-iscsi its own modules do; "qemu" adds virtio_pci and virtio_blk).
#
# dracut 059 reads its modules from $dracutbasedir/modules.d only; rather than
# installing into /usr/lib/dracut/modules.d, the build uses a private
# dracutbasedir: links to everything in /usr/lib/dracut plus
# modules.d/90netboot -> the repository's dracut/90netboot.
#
# Cache: ${NETBOOT_CACHE:-/var/cache/netboot}/dracut-<sha256 of the module's
# files, the netboot binary, this script, KVER, the flavour and the dracut
# version>/initrd.img; rebuilt when any input changes. Prints
#   INITRD=<path>  SIZE=<bytes>  BUILD_S=<seconds, 0 when cached>
# and copies the image to --out FILE if given.
set -euo pipefail

die() { echo "dracut/build.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
kernel="" flavour=systemd netboot="$repo/target/dist/netboot" own_iscsi=0 out="" token=no
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --flavour) flavour=$2; shift 2 ;;
        --netboot) netboot=$2; shift 2 ;;
        --dracut-iscsi) own_iscsi=1; shift ;;
        --config-token) token=$(readlink -f "$2"); shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || die "--kernel 6.1|6.12 is required"
case "$flavour" in systemd | shell) ;; *) die "--flavour $flavour: want systemd or shell" ;; esac
command -v dracut >/dev/null || die "dracut not found (apt-get install dracut-core)"
[ -d /usr/lib/dracut/modules.d ] || die "/usr/lib/dracut/modules.d missing"
module="$repo/dracut/90netboot"
[ -f "$module/module-setup.sh" ] || die "$module/module-setup.sh missing"

eval "$("$repo/qemu/kernel.sh" "$kernel" | grep -E '^(KVER|KROOT)=')"
kmoddir="$KROOT/lib/modules/$KVER"
[ -d "$kmoddir" ] || die "no $kmoddir"

# Also omitted when they are installed: dracut-network's modules that would
# configure the network or mount a network root next to netboot.
net_modules="network network-legacy network-manager network-wicked systemd-networkd connman
    systemd-network-management ifcfg kernel-network-modules qemu-net url-lib livenet nfs nbd
    cifs fcoe fcoe-uefi iscsi nvmf cms ssh-client zfcp znet"
omit="kernel-modules kernel-modules-extra"
args=(--no-hostonly --no-early-microcode)
if [ "$own_iscsi" = 1 ]; then
    [ -d /usr/lib/dracut/modules.d/95iscsi ] || [ -d /usr/lib/dracut/modules.d/74iscsi ] \
        || die "--dracut-iscsi: dracut's iscsi module is missing (apt-get install --no-install-recommends dracut-network)"
    # network-legacy: the network handler that works in both flavours (059
    # picks systemd-networkd when it is installed, systemd flavour only).
    # Debian's iscsid.service runs /lib/open-iscsi/startup-checks.sh first,
    # which 059's 95iscsi does not install (dracut-ng does since 109), so
    # iscsid fails in the initramfs without it.
    # With kernel-modules omitted (as for the netboot image), the disk and the
    # root file system need sd_mod and ext4: 95iscsi leaves them to
    # kernel-modules (the netboot module's installkernel brings them).
    args+=(--add "iscsi network-legacy" --add-drivers "sd_mod ext4")
    [ -x /lib/open-iscsi/startup-checks.sh ] && args+=(--install "/lib/open-iscsi/startup-checks.sh")
    inputs_bin=$(dpkg-query -W -f '${Package} ${Version}\n' dracut-network open-iscsi 2>/dev/null || true)
else
    [ -x "$netboot" ] || die "--netboot $netboot: not executable (bash scripts/build.sh)"
    netboot=$(readlink -f "$netboot")
    args+=(--add "netboot")
    omit="$omit $net_modules"
    inputs_bin=$(sha256sum "$netboot" | cut -d' ' -f1)
    if [ "$token" != no ]; then
        [ -f "$token" ] || die "--config-token $token: no such file"
        inputs_bin="$inputs_bin token=$(sha256sum "$token" | cut -d' ' -f1)"
    fi
fi
[ "$flavour" = shell ] && omit="$omit systemd systemd-initrd dracut-systemd"
# shellcheck disable=SC2206 # word splitting of the list is intended
omit_list=($omit)
args+=(--omit "${omit_list[*]}")

dracut_version=$(dpkg-query -W -f '${Version}' dracut-core 2>/dev/null || dracut --version 2>/dev/null || true)
key=$(
    {
        echo "kver=$KVER flavour=$flavour own_iscsi=$own_iscsi dracut=$dracut_version"
        echo "bin=$inputs_bin"
        echo "args=${args[*]}"
        # Which modules dracut can pick (e.g. dracut-network installed or not).
        ls /usr/lib/dracut/modules.d
        sha256sum "$0"
        (cd "$module" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
)
cache_root=${NETBOOT_CACHE:-/var/cache/netboot}
cache="$cache_root/dracut-$key"
img="$cache/initrd.img"
build_s=0
if ! [ -s "$img" ]; then
    mkdir -p "$cache_root"
    work=$(mktemp -d "$cache_root/.dracut-build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the trap must remove this build's directory
    trap "rm -rf '$work'" EXIT
    base="$work/dracutbase"
    mkdir -p "$base/modules.d" "$work/confdir" "$work/tmp"
    for f in /usr/lib/dracut/*; do
        [ "${f##*/}" = modules.d ] || ln -s "$f" "$base/${f##*/}"
    done
    for m in /usr/lib/dracut/modules.d/*; do
        ln -s "$m" "$base/modules.d/${m##*/}"
    done
    [ "$own_iscsi" = 1 ] || ln -sfn "$module" "$base/modules.d/90netboot"
    if [ "$own_iscsi" = 1 ] && ! [ -e "/lib/modules/$KVER" ]; then
        # dracut 059's require_kernel_modules (95iscsi's check) asks
        # `modprobe -S KVER` in /lib/modules, ignoring --kmoddir: give it the
        # kernel's modules there for the length of the build.
        mkdir -p /lib/modules
        ln -s "$kmoddir" "/lib/modules/$KVER"
        # shellcheck disable=SC2064 # expand now
        trap "rm -rf '$work'; rm -f '/lib/modules/$KVER'; rmdir /lib/modules 2>/dev/null || true" EXIT
    fi
    start=$(date +%s.%N)
    log="$work/dracut.log"
    if ! dracutbasedir="$base" NETBOOT_BIN="$netboot" NETBOOT_CONFIG_TOKEN="$token" dracut --force --conf /dev/null \
        --confdir "$work/confdir" --tmpdir "$work/tmp" \
        --kver "$KVER" --kmoddir "$kmoddir" "${args[@]}" "$work/initrd.img" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "dracut failed (log above)"
    fi
    grep -q "Including module: $([ "$own_iscsi" = 1 ] && echo iscsi || echo netboot) " "$log" \
        || { tail -n 40 "$log" >&2; die "dracut did not include the module"; }
    build_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    cp "$log" "$work/dracut.log.keep"
    rm -rf "$cache.tmp"
    mkdir -p "$cache.tmp"
    mv "$work/initrd.img" "$cache.tmp/initrd.img"
    mv "$work/dracut.log.keep" "$cache.tmp/dracut.log"
    rm -rf "$cache"
    mv "$cache.tmp" "$cache"
fi
[ -z "$out" ] || cp "$img" "$out"
echo "INITRD=$img"
echo "SIZE=$(stat -c %s "$img")"
echo "BUILD_S=$build_s"
