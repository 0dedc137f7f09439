#!/bin/sh
# Runtime helpers of the netboot dracut module, installed as
# /lib/netboot-dracut-lib.sh. Needs dracut-lib.sh (getarg, getargs), which
# reads the kernel command line and /etc/cmdline.d/*.conf (hostonly files).
# POSIX sh: the initramfs shell is bash, dash or busybox ash.

# shellcheck disable=SC2034 # the variables are used by the scripts that source this

# Where the module keeps its state (netboot attach itself writes
# /run/netboot/{boot.json,root.env,root}).
NETBOOT_DRACUT_STATE=/run/initramfs/netboot
# The root device netboot attach resolved (a symlink to the block device).
NETBOOT_DRACUT_ROOT=/run/netboot/root

# netboot_wanted: does the command line ask for a root that netboot attaches?
# iscsi=, root=iscsi:, netroot=iscsi:, root=dhcp / netroot=dhcp (a DHCP
# root path, option 17, must then be an iscsi: one), netboot.config= (the
# config server may name the paths), and rd.iscsi.firmware / rd.iscsi.ibft
# (netboot refuses those with a clear error instead of waiting for a root
# nobody attaches). rd.iscsi.* and netboot.* alone do not start a login.
netboot_wanted() {
    getarg iscsi= >/dev/null && return 0
    getarg netboot.config= >/dev/null && return 0
    case "$(getarg root=)" in
        iscsi:* | dhcp) return 0 ;;
    esac
    for _nb_n in $(getargs netroot=); do
        case "$_nb_n" in
            iscsi:* | dhcp) return 0 ;;
        esac
    done
    getargbool 0 rd.iscsi.firmware && return 0
    getargbool 0 rd.iscsi.ibft && return 0
    return 1
}

# netboot_root_is_lun: is the root the LUN itself (netboot resolves it to the
# whole LUN or its first partition), rather than a file system that dracut
# finds by root=LABEL=/UUID=/PARTUUID=/PARTLABEL=/a /dev path? True for no
# root= at all, root=iscsi:… and root=dhcp.
netboot_root_is_lun() {
    _nb_r=$(getarg root=) || return 0
    case "$_nb_r" in
        "" | iscsi:* | dhcp) return 0 ;;
    esac
    return 1
}

# netboot_timeout_s: netboot.timeout= in whole seconds (netboot's default 120),
# for the bounds around the attach step.
netboot_timeout_s() {
    _nb_t=$(getarg netboot.timeout=) || _nb_t=120
    _nb_t=${_nb_t%%.*}
    case "$_nb_t" in
        "" | *[!0-9]*) _nb_t=120 ;;
    esac
    printf '%s' "$_nb_t"
}
