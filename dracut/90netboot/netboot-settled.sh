#!/bin/sh
# dracut initqueue/settled hook of the netboot module (shell flavour only;
# sourced by init.sh's main loop once udev has settled, i.e. after the NIC
# drivers are loaded and the interfaces renamed). Attaches once; on failure
# netboot's own line is already on the console and dracut's `die` follows
# (rd.shell: a shell; otherwise init exits and the kernel panics, which with
# panic=N reboots).

if [ -e /run/initramfs/netboot/wanted ] && ! [ -e /run/initramfs/netboot/tried ]; then
    : >/run/initramfs/netboot/tried
    if ! /usr/lib/netboot/dracut-attach; then
        die "netboot: the iSCSI root was not attached (netboot's line above says why)"
    fi
    # A root that is the LUN itself: hand rootfs-block's mount hook the device
    # node rather than the symlink, so that its udev look-ups find it.
    if [ "$root" = "block:/run/netboot/root" ] && [ -b /run/netboot/root ]; then
        root="block:$(readlink -f /run/netboot/root)"
    fi
fi
