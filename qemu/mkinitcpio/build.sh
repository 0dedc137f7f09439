#!/usr/bin/env bash
# Build a VM initramfs the way mkinitcpio lays one out, for the mkinitcpio
# scenario of tests/mkinitcpio.rs. mkinitcpio itself is not packaged for
# Debian, so this is our stand-in, not mkinitcpio:
#   - the tree mkinitcpio's images have: /usr/bin with bin, sbin, usr/sbin
#     pointing to it, /lib -> usr/lib, /new_root, modules under
#     /usr/lib/modules/KVER;
#   - what its base hook provides at run time: busybox with every applet
#     linked in /usr/bin, kmod (depmod, modprobe, …) with its libraries;
#   - our real install hook, mkinitcpio/install/netboot, sourced with the
#     API stand-in qemu/mkinitcpio/fake-env.sh doing the work (add_binary,
#     add_module with dependencies, add_checked_modules filtered by a fake
#     autodetect list, add_runscript registering run_hook in /config);
#   - the modules indexed with depmod and, as in mkinitcpio's images, only
#     the binary indexes kept (modules.*.bin, devname, softdep);
#   - /init = qemu/mkinitcpio/init, our init following mkinitcpio's
#     documented boot order, which sources the real hooks/netboot.
#
#   qemu/mkinitcpio/build.sh --kernel 6.1|6.12|KROOT [--kver KVER] --netboot BIN
#       --out FILE [--autodetect "virtio_net …"] [--filesystems "ext4 …"]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=initramfs/common.sh
. "$repo/initramfs/common.sh"

kernel="" kver="" netboot="" out="" autodetect="virtio_net" filesystems="ext4"
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --kver) kver=$2; shift 2 ;;
        --netboot) netboot=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --autodetect) autodetect=$2; shift 2 ;;
        --filesystems) filesystems=$2; shift 2 ;;
        *) ir_die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || ir_die "--kernel 6.1|6.12|KROOT is required"
[ -n "$out" ] || ir_die "--out FILE is required"
[ -f "$netboot" ] || ir_die "--netboot '$netboot': no such file (bash scripts/build.sh)"
[ -x /usr/bin/busybox ] || ir_die "/usr/bin/busybox missing (apt-get install busybox-static)"
command -v kmod >/dev/null || ir_die "kmod missing (apt-get install kmod)"
ir_kernel "$kernel" "$kver"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
BUILDROOT=$work/root
KERNELVERSION=$ir_kver
export BUILDROOT KERNELVERSION

# The tree.
mkdir -p "$BUILDROOT"/{new_root,proc,sys,dev,run,tmp,var,etc,usr/local/bin,usr/local/sbin,usr/lib,usr/bin}
ln -s usr/lib "$BUILDROOT/lib"
ln -s bin "$BUILDROOT/usr/sbin"
ln -s usr/bin "$BUILDROOT/bin"
ln -s usr/bin "$BUILDROOT/sbin"
ln -s ../run "$BUILDROOT/var/run"
ln -s lib "$BUILDROOT/usr/lib64"
ln -s usr/lib "$BUILDROOT/lib64"
mkdir -p "$BUILDROOT/usr/lib/modules/$KERNELVERSION/kernel"
ln -s ../proc/self/mounts "$BUILDROOT/etc/mtab"
: >"$BUILDROOT/etc/fstab"
: >"$BUILDROOT/etc/initrd-release"
# The kernel opens /dev/console for PID 1 before devtmpfs is mounted.
mknod -m 600 "$BUILDROOT/dev/console" c 5 1
mknod -m 666 "$BUILDROOT/dev/null" c 1 3

# shellcheck disable=SC2034 # read by fake-env.sh
{
    fake_record=$work/calls
    fake_perform=1
    fake_hooks_dir=$repo/mkinitcpio/hooks
    fake_kroot=$ir_kroot
    fake_autodetect=$autodetect
    fake_systemd=0
}
# shellcheck source=qemu/mkinitcpio/fake-env.sh
. "$here/fake-env.sh"

# What the base hook gives the runtime: busybox and its applets, then kmod's
# tools over busybox's (kmod reads the binary module indexes).
add_binary /usr/bin/busybox /usr/bin/busybox
for applet in $(/usr/bin/busybox --list); do
    [ -e "$BUILDROOT/usr/bin/$applet" ] || add_symlink "/usr/bin/$applet" busybox
done
add_binary "$(command -v kmod)" /usr/bin/kmod
for applet in depmod insmod rmmod lsmod modprobe modinfo; do
    add_symlink "/usr/bin/$applet" kmod
done
add_file "$here/init" /init 755

# Our install hook, as mkinitcpio runs it.
export NETBOOT_BINARY=$netboot NETBOOT_FILESYSTEMS=$filesystems
# shellcheck source=mkinitcpio/install/netboot
. "$repo/mkinitcpio/install/netboot"
build || ir_die "mkinitcpio/install/netboot: build() failed (calls: $(tr '\t\n' ' ;' <"$fake_record"))"
[ "$fake_errors" = 0 ] || ir_die "build() reported $fake_errors error(s)"

# Modules: copied, indexed, then only the binary indexes kept.
src=$ir_kroot/lib/modules/$KERNELVERSION
dst=$BUILDROOT/usr/lib/modules/$KERNELVERSION
for m in "${!fake_modpaths[@]}"; do
    rel=${m#"$src/"}
    mkdir -p "$dst/$(dirname "$rel")"
    cp "$m" "$dst/$rel"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ -f "$src/$f" ] && cp "$src/$f" "$dst/$f"
done
depmod -b "$BUILDROOT" "$KERNELVERSION" || ir_die "depmod -b $BUILDROOT $KERNELVERSION failed"
find "$dst" -maxdepth 1 -name 'modules.*' ! -name '*.bin' ! -name modules.devname ! -name modules.softdep -delete

# /config: the hook lists init reads (EARLYHOOKS, HOOKS, … as registered by
# add_runscript) and MODULES (none: the hook loads what it needs).
{
    echo "MODULES=''"
    echo "EARLYHOOKS='${fake_runhooks[early]:-}'"
    echo "HOOKS='${fake_runhooks[hooks]:-}'"
    echo "LATEHOOKS='${fake_runhooks[late]:-}'"
    echo "CLEANUPHOOKS='${fake_runhooks[cleanup]:-}'"
    echo "EMERGENCYHOOKS='${fake_runhooks[emergency]:-}'"
} >"$BUILDROOT/config"

mkdir -p "$(dirname "$out")"
ir_pack "$BUILDROOT" "$out"
