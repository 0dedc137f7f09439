#!/bin/bash
# dracut module "netboot": the iSCSI root attached by `netboot attach`, for
# dracut 059 (Debian 12's dracut-core) and dracut-ng, in the systemd flavour
# (netboot-generator + netboot-attach.service) and the shell flavour
# (--omit systemd: cmdline, initqueue/settled and initqueue/finished hooks).
# API: dracut.modules(7); only the documented helpers and variables are used
# ($moddir $hostonly $hostonly_cmdline $initdir $systemdutildir
# $systemdsystemunitdir, inst_*, instmods, optional_hostonly,
# dracut_module_included, find_root_block_device, mark_hostonly).
#
# The binary: $NETBOOT_BIN if set (tests), else the installed /usr/sbin/netboot
# (or /usr/local/sbin/netboot, or netboot on PATH).
#
# Not together with dracut's own "iscsi" module: both would log in to the same
# target from their cmdline hooks (netroot=iscsi:), giving the disk twice.
# install() refuses that combination with a clear error (--omit iscsi).

# Variables dracut sets: moddir initdir hostonly hostonly_cmdline systemdutildir
# systemdsystemunitdir systemdnetworkconfdir (dracut.modules(7)); dracut-ng
# also sets systemdnetworkdir.
# shellcheck disable=SC2154

# shellcheck source=dracut/90netboot/netboot-hostonly.sh
. "$(dirname "${BASH_SOURCE[0]}")/netboot-hostonly.sh"

# The netboot binary to install, or status 1.
netboot_binary() {
    local _p
    if [[ $NETBOOT_BIN ]]; then
        [[ -x $NETBOOT_BIN ]] || return 1
        printf '%s\n' "$NETBOOT_BIN"
        return 0
    fi
    for _p in /usr/sbin/netboot /usr/local/sbin/netboot /sbin/netboot; do
        if [[ -x $_p ]]; then
            printf '%s\n' "$_p"
            return 0
        fi
    done
    _p=$(command -v netboot) || return 1
    printf '%s\n' "$_p"
}

# The root file system's block device (MAJ:MIN) is on an iSCSI session.
netboot_root_on_iscsi() {
    local _dev
    _dev=$(find_root_block_device) || return 1
    [[ $_dev ]] || return 1
    netboot_iscsi_dev "$_dev" > /dev/null
}

# called by dracut
check() {
    if ! netboot_binary > /dev/null; then
        derror "netboot: no netboot binary (NETBOOT_BIN, /usr/sbin/netboot or netboot on PATH)"
        return 1
    fi
    # Included when named (--add netboot, add_dracutmodules+=" netboot ") and,
    # with --hostonly, when this machine's root is on an iSCSI session.
    if [[ $hostonly ]] || [[ $mount_needs ]]; then
        netboot_root_on_iscsi && return 0
    fi
    return 255
}

# called by dracut
depends() {
    # base: dracut-lib.sh and the hooks; rootfs-block: the wait for and the
    # mount of root= (shell flavour). dracut-ng has a separate initqueue
    # module (059 keeps it in base).
    local _d
    echo base rootfs-block
    for _d in "${dracutbasedir:-/usr/lib/dracut}"/modules.d/[0-9][0-9]initqueue; do
        [[ -d $_d ]] && echo initqueue
    done
    return 0
}

# called by dracut (--print-cmdline, and install() with --hostonly-cmdline):
# the live session of this machine's root, one parameter per line.
cmdline() {
    local _dev
    _dev=$(find_root_block_device) || return 0
    [[ $_dev ]] || return 0
    netboot_hostonly_cmdline "$_dev"
    return 0
}

# called by dracut
installkernel() {
    # What the login and the disk need, always.
    hostonly='' instmods iscsi_tcp libiscsi_tcp libiscsi scsi_transport_iscsi sd_mod \
        crc32c crc32c_generic crc32c_intel
    # The root file systems netboot resolves and the usual virtual NICs; in
    # strict hostonly mode only those this machine uses.
    hostonly=$(optional_hostonly) instmods ext4 xfs btrfs \
        virtio_net virtio_pci e1000 e1000e
    # netboot.config=: AF_RXRPC (optional; netboot falls back to userspace).
    hostonly=$(optional_hostonly) instmods rxrpc fcrypt pcbc
    # Wired Ethernet drivers: all of them, or with --hostonly the loaded ones.
    instmods "=drivers/net/ethernet"
    return 0
}

# The rxkad token of the config fetch (netboot-configd token), put where the
# agent looks for it (netboot.config.token's default): with it the fetch is
# rxkad-encrypted by default (netboot.config.security). The source is
# $NETBOOT_CONFIG_TOKEN (set it in dracut.conf.d, or the environment), default
# /etc/netboot/config.token when that exists; NETBOOT_CONFIG_TOKEN=no leaves
# it out. dracut writes the image readable by root only (umask 077); the file
# is mode 0600 inside.
netboot_install_token() {
    local _src=${NETBOOT_CONFIG_TOKEN:-}
    if [[ $_src == no ]]; then
        return 0
    fi
    if [[ -z $_src ]]; then
        _src=/etc/netboot/config.token
        [[ -f ${dracutsysrootdir-}$_src ]] || return 0
    fi
    if [[ ! -f ${dracutsysrootdir-}$_src || ! -r ${dracutsysrootdir-}$_src ]]; then
        dfatal "netboot: NETBOOT_CONFIG_TOKEN=$_src: no such readable file (the rxkad token from netboot-configd token; NETBOOT_CONFIG_TOKEN=no leaves it out)"
        return 1
    fi
    inst_simple "$_src" /etc/netboot/config.token || {
        dfatal "netboot: cannot install the token $_src"
        return 1
    }
    chmod 0600 "$initdir/etc/netboot/config.token" || {
        dfatal "netboot: cannot make the token in the image mode 0600"
        return 1
    }
    dinfo "netboot: rxkad token $_src installed as /etc/netboot/config.token"
}

# called by dracut
install() {
    local _bin _c
    if dracut_module_included "iscsi"; then
        dfatal "netboot: dracut's 'iscsi' module is included too; both would log in to the root target." \
            "Omit one of them (dracut --omit iscsi, or omit_dracutmodules+=\" iscsi \" in dracut.conf.d)."
        exit 1
    fi
    if dracut_module_included "network"; then
        dwarn "netboot: dracut's 'network' module is included too; it configures the ip= interfaces" \
            "as netboot does (netboot keeps an address that is already there). Omit it unless something else needs it."
    fi
    _bin=$(netboot_binary) || {
        dfatal "netboot: no netboot binary (NETBOOT_BIN, /usr/sbin/netboot or netboot on PATH)"
        return 1
    }
    inst_simple "$_bin" /usr/sbin/netboot
    inst_simple "$moddir/netboot-lib.sh" /lib/netboot-dracut-lib.sh
    inst_script "$moddir/netboot-attach.sh" /usr/lib/netboot/dracut-attach
    inst_multiple mkdir rm udevadm
    # Interface names as in the real root: the interface netboot brings up
    # stays up across switch_root, and udev there cannot rename an interface
    # that is up, so the initramfs names it the final way (udev's
    # 80-net-setup-link.rules is in every dracut image, the .link files only
    # come with dracut's network modules). netboot attach runs after udev has
    # settled, i.e. after the rename (eth0 -> ens3).
    inst_multiple -o "${systemdnetworkdir:-$systemdutildir/network}/99-default.link"
    if [[ $hostonly ]]; then
        inst_multiple -H -o "${systemdnetworkconfdir:-/etc/systemd/network}/*.link"
    fi

    inst_hook cmdline 20 "$moddir/netboot-cmdline.sh"
    if dracut_module_included "systemd"; then
        inst_simple "$moddir/netboot-attach.service" "$systemdsystemunitdir/netboot-attach.service"
        inst_script "$moddir/netboot-generator.sh" "$systemdutildir/system-generators/netboot-generator"
        inst_multiple ln
    else
        inst_hook initqueue/settled 50 "$moddir/netboot-settled.sh"
        inst_hook initqueue/finished 50 "$moddir/netboot-finished.sh"
    fi

    netboot_install_token || return 1

    # --hostonly-cmdline (default with --hostonly): keep the root's session.
    if [[ $hostonly_cmdline == "yes" ]]; then
        _c=$(cmdline)
        if [[ $_c ]]; then
            printf '%s\n' "$_c" >> "${initdir}/etc/cmdline.d/90netboot.conf"
            mark_hostonly /etc/cmdline.d/90netboot.conf
        fi
    fi
    return 0
}
