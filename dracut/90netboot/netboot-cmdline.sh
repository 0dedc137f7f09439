#!/bin/sh
# dracut cmdline hook of the netboot module (both flavours; sourced by init.sh
# or dracut-cmdline.sh, so it returns rather than exits).
#
# Claims iscsi=, root=iscsi:, netroot=iscsi:, root=dhcp, netroot=dhcp,
# rd.iscsi.* and netboot.* (netboot attach reads them all). For a root that
# is the LUN itself it points dracut at the symlink attach creates:
#   root=block:/run/netboot/root, rootok=1
# rootfs-block (shell flavour) then waits for it and mounts it; in the
# systemd flavour netboot-generator writes sysroot.mount for it instead,
# because systemd-fstab-generator skips root=iscsi: and dracut's
# rootfs-generator only handles LABEL=/UUID=/… and /dev paths. A
# root=LABEL=/UUID=/… is left to dracut, which waits for it and mounts it.

# shellcheck disable=SC1091 # dracut-lib.sh is dracut's (modules.d/99base)
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh
# shellcheck source=dracut/90netboot/netboot-lib.sh
. /lib/netboot-dracut-lib.sh

if netboot_wanted; then
    mkdir -p "$NETBOOT_DRACUT_STATE"
    : >"$NETBOOT_DRACUT_STATE/wanted"
    if netboot_root_is_lun; then
        # shellcheck disable=SC2034 # both read by dracut after the cmdline hooks
        root="block:$NETBOOT_DRACUT_ROOT" rootok=1
    fi
    info "netboot: the iSCSI root is attached by netboot"
fi
