#!/bin/sh
# Build-time helpers of the netboot dracut module: which iSCSI session holds
# a block device, and the kernel command line that attaches it again.
# Sourced by module-setup.sh (bash); POSIX sh so that the tests can run it
# with dash against a fake sysfs tree (NETBOOT_SYSFS=DIR, default /sys).
#
# sysfs layout read (drivers/scsi/scsi_transport_iscsi.c, drivers/scsi/hosts.c):
#   /sys/dev/block/MAJ:MIN -> ../../devices/platform/hostH/sessionS/targetH:C:T/H:C:T:L/block/sdX[/sdXN]
#   /sys/dev/block/MAJ:MIN/slaves/*/dev          (device-mapper, md: the disks below)
#   /sys/class/iscsi_session/sessionS/{targetname,tpgt,initiatorname,username}
#   /sys/class/iscsi_connection/connectionS:C/{persistent_address,persistent_port}
# The CHAP secrets (password, password_in) are never read.

# netboot_iscsi_dev MAJ:MIN: print "sessionS LUN" of the iSCSI disk that holds
# the block device, itself or below it (slaves); status 1 if none does.
# A subshell function, so that the recursion over slaves keeps its variables.
netboot_iscsi_dev() (
    sysfs=${NETBOOT_SYSFS:-/sys}
    node="$sysfs/dev/block/$1"
    [ -e "$node" ] || return 1
    path=$(readlink -f "$node") || return 1
    # Matched below the sysfs root only, so that a (test) root whose own path
    # looks like .../hostH/sessionS/... cannot confuse it.
    top=$(readlink -f "$sysfs") || return 1
    path=/${path#"$top"/}
    hit=$(printf '%s\n' "$path" | sed -n \
        's|^/devices/.*/host[0-9][0-9]*/\(session[0-9][0-9]*\)/target[0-9:]*/[0-9]*:[0-9]*:[0-9]*:\([0-9][0-9]*\)/block/.*|\1 \2|p')
    if [ -n "$hit" ]; then
        printf '%s\n' "$hit"
        return 0
    fi
    for slave in "$node"/slaves/*; do
        [ -r "$slave/dev" ] || continue
        read -r dev <"$slave/dev" || continue
        netboot_iscsi_dev "$dev" && return 0
    done
    return 1
)

# netboot_sysfs_attr FILE: the attribute's first line; empty if unreadable or
# the kernel's "(null)" for an unset string (libiscsi prints NULL with %s).
netboot_sysfs_attr() {
    _nb_v=""
    [ -r "$1" ] && read -r _nb_v <"$1"
    [ "$_nb_v" = "(null)" ] && _nb_v=""
    printf '%s' "$_nb_v"
}

# netboot_hostonly_cmdline MAJ:MIN: the command line that logs in to the
# session holding the device again, one parameter per line (as dracut's
# hostonly files under /etc/cmdline.d are written):
#   netroot=iscsi:ADDRESS::PORT:LUN:TARGET     (IPv6 address in brackets)
#   rd.iscsi.initiator=NAME
#   rd.iscsi.username=USER                     (only if the session has CHAP)
#   rd.iscsi.target.group=TPGT                 (only if TPGT is not 1)
# Never a password: the secret comes from netboot.secrets= or the config.
# Status 1 (no output) if the device is not on an iSCSI session.
netboot_hostonly_cmdline() {
    _nb_found=$(netboot_iscsi_dev "$1") || return 1
    _nb_sess=${_nb_found% *}
    _nb_lun=${_nb_found#* }
    _nb_sysfs=${NETBOOT_SYSFS:-/sys}
    _nb_s="$_nb_sysfs/class/iscsi_session/$_nb_sess"
    _nb_target=$(netboot_sysfs_attr "$_nb_s/targetname")
    _nb_tpgt=$(netboot_sysfs_attr "$_nb_s/tpgt")
    _nb_init=$(netboot_sysfs_attr "$_nb_s/initiatorname")
    _nb_user=$(netboot_sysfs_attr "$_nb_s/username")
    _nb_addr="" _nb_port=""
    # Connection names are connection<session number>:<connection id>.
    for _nb_c in "$_nb_sysfs/class/iscsi_connection/connection${_nb_sess#session}:"*; do
        [ -d "$_nb_c" ] || continue
        _nb_addr=$(netboot_sysfs_attr "$_nb_c/persistent_address")
        _nb_port=$(netboot_sysfs_attr "$_nb_c/persistent_port")
        [ -n "$_nb_addr" ] && break
    done
    [ -n "$_nb_target" ] && [ -n "$_nb_addr" ] || return 1
    case "$_nb_addr" in
        *:*) _nb_addr="[$_nb_addr]" ;;
    esac
    printf 'netroot=iscsi:%s::%s:%s:%s\n' "$_nb_addr" "${_nb_port:-3260}" "$_nb_lun" "$_nb_target"
    [ -z "$_nb_init" ] || printf 'rd.iscsi.initiator=%s\n' "$_nb_init"
    [ -z "$_nb_user" ] || printf 'rd.iscsi.username=%s\n' "$_nb_user"
    [ -z "$_nb_tpgt" ] || [ "$_nb_tpgt" = 1 ] || printf 'rd.iscsi.target.group=%s\n' "$_nb_tpgt"
    return 0
}
