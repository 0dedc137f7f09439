#!/bin/sh
# systemd generator of the netboot dracut module (systemd flavour), installed
# as $systemdutildir/system-generators/netboot-generator.
#   netboot-generator NORMAL-DIR [EARLY-DIR [LATE-DIR]]   (systemd.generator(7))
#
# When the command line names an iSCSI root (netboot_wanted):
# - initrd-root-device.target wants netboot-attach.service, with a start
#   timeout of netboot.timeout + 90 s (udev settle, module loading), so a
#   stuck attach still ends in emergency.target;
# - if the root is the LUN itself (no root=, root=iscsi:, root=dhcp), an
#   early sysroot.mount of /run/netboot/root after netboot-attach.service.
#   systemd-fstab-generator skips root=iscsi: and turns root=dhcp into a
#   bogus sysroot.mount of "dhcp"; a unit in the early directory takes
#   precedence over both (systemd.generator(7): early > /etc > normal).
#   What= is not under /dev, so systemd adds no device dependency that would
#   wait for a device unit udev never announces.
# A root=LABEL=/UUID=/… stays with dracut's rootfs-generator and
# systemd-fstab-generator, which wait for the device and mount it.

# shellcheck disable=SC1091 # dracut-lib.sh is dracut's (modules.d/99base)
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh
# shellcheck source=dracut/90netboot/netboot-lib.sh
. /lib/netboot-dracut-lib.sh

netboot_wanted || exit 0

normal=${1:-/run/systemd/generator}
early=${2:-$normal}
unit=netboot-attach.service

src=""
for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    if [ -f "$d/$unit" ]; then
        src="$d/$unit"
        break
    fi
done
[ -n "$src" ] || {
    echo "netboot-generator: $unit is missing from the initramfs" >/dev/kmsg
    exit 1
}

mkdir -p "$normal/initrd-root-device.target.wants" "$normal/$unit.d"
ln -sf "$src" "$normal/initrd-root-device.target.wants/$unit"
{
    echo "[Service]"
    echo "TimeoutStartSec=$(($(netboot_timeout_s) + 90))"
} >"$normal/$unit.d/50-timeout.conf"

if netboot_root_is_lun; then
    opts=ro
    getargbool 0 rw && opts=rw
    flags=$(getarg rootflags=) && [ -n "$flags" ] && opts="$opts,$flags"
    fstype=$(getarg rootfstype=) || fstype=""
    mkdir -p "$early/initrd-root-fs.target.requires"
    {
        echo "# Written by netboot-generator: the root is the iSCSI LUN netboot attached"
        echo "[Unit]"
        echo "Description=netboot: the root file system on the iSCSI LUN"
        echo "Requires=$unit"
        echo "After=$unit"
        echo "Before=initrd-root-fs.target"
        echo "[Mount]"
        echo "What=$NETBOOT_DRACUT_ROOT"
        echo "Where=/sysroot"
        echo "Options=$opts"
        [ -z "$fstype" ] || echo "Type=$fstype"
    } >"$early/sysroot.mount"
    ln -sf ../sysroot.mount "$early/initrd-root-fs.target.requires/sysroot.mount"
fi
exit 0
