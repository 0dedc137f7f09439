#!/bin/sh
# /init of the tests/vm_attach.rs initramfs: a stand-in for another init
# (dracut, initramfs-tools) around `netboot attach`. It renames the NIC as
# udev would, configures it itself, then attaches, detaches and attaches
# again, and finally mounts the root and switches to it. Each outcome is a
# line the test reads: "ATTACH-… rc=N".
export PATH=/bin:/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run
mount -t tmpfs run /run

# What udev and the caller's network code would have done before us: the
# NIC driver loaded, the link renamed (udev's predictable name) and
# configured.
modprobe -a virtio_pci virtio_net
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 name ens3
ip link set ens3 up
ip addr add 198.18.0.2/24 dev ens3
echo "ATTACH-PRECONFIGURED $(cat /sys/class/net/ens3/address)"

# First attach: ip=dhcp on the command line, but no DHCP server on the rig:
# only the address configured above can make this succeed.
out=$(/bin/netboot attach)
echo "ATTACH-FIRST rc=$?"
echo "$out" | sed 's/^/ATTACH-OUT /'
eval "$out"
echo "ATTACH-ROOT-ENV $(tr '\n' ' ' </run/netboot/root.env)"
echo "ATTACH-LINK $(readlink /run/netboot/root)"

/bin/netboot detach --all
echo "ATTACH-DETACH rc=$?"
n=$(find /sys/class/iscsi_session -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
echo "ATTACH-SESSIONS-AFTER-DETACH $n"

# Again, the way initramfs-tools asks.
mkdir -p /conf
/bin/netboot attach --for initramfs-tools >/dev/null
echo "ATTACH-SECOND rc=$?"
echo "ATTACH-PARAM $(tr '\n' ' ' </conf/param.conf)"
# shellcheck source=/dev/null
. /conf/param.conf
mkdir -p /new_root
mount -t "$ROOTFSTYPE" -o ro "$ROOT" /new_root
echo "ATTACH-MOUNT rc=$?"

# A mounted root is refused (the target's name from root.env).
# shellcheck source=/dev/null
. /run/netboot/root.env
/bin/netboot detach "$NETBOOT_TARGET" 2>&1 | sed 's/^/ATTACH-REFUSED-LINE /'
/bin/netboot detach "$NETBOOT_TARGET" >/dev/null 2>&1
echo "ATTACH-REFUSED rc=$?"

mount --move /run /new_root/run
mount --move /proc /new_root/proc
mount --move /sys /new_root/sys
mount --move /dev /new_root/dev
exec switch_root /new_root /sbin/init
