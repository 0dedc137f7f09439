#!/bin/sh
# /init of the REFERENCE initramfs (initramfs/build-iscsistart.sh): busybox +
# Debian's iscsistart, the way a minimal hand-made iSCSI initramfs boots.
# qemu/bench compares the agent against it. It reads the same kernel command
# line as the agent: ip=CLIENT::GW:MASK::DEV:off, iscsi=ROOT-PATH (or
# netroot=/root=iscsi:ROOT-PATH), rd.iscsi.initiator / netboot.initiator,
# rd.iscsi.username/password, rd.iscsi.in.username/password, root=,
# rootfstype=, rootflags=, ro/rw, init=. ROOT-PATH (RFC 4173 / dracut):
# [iscsi:][user:pass[:tuser:tpass]@]server:proto:port:lun:targetname.
# Prints "BENCH init=<uptime>" at its start and "BENCH mounted=<uptime>"
# once the root is mounted. Any failure powers the VM off.
export PATH=/bin:/sbin:/usr/sbin:/usr/bin
mount -t proc proc /proc
read -r up _ </proc/uptime
echo "BENCH init=$up"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mkdir -p /run/lock /var/lock /etc/iscsi

fail() {
    echo "reference-init: FAILED: $*"
    poweroff -f
}

kver=$(uname -r)
while read -r m; do
    # crc32c-intel needs SSE4.2, which TCG's default CPU lacks; its
    # failure is expected, crc32c_generic provides the transform.
    insmod "/lib/modules/$kver/$m" 2>/dev/null || echo "reference-init: insmod $m failed"
done </lib/modules/load.list

ip="" rootpath="" initiator=iqn.2026-11.test:reference user="" pass="" tuser="" tpass=""
root="" fstype="" flags="" mode=ro init=/sbin/init
set -f
# shellcheck disable=SC2013 # the kernel command line is space separated
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        ip=*) ip=${arg#ip=} ;;
        iscsi=*) rootpath=${arg#iscsi=} ;;
        netroot=iscsi:* | root=iscsi:*) rootpath=${arg#*=} ;;
        rd.iscsi.initiator=* | netboot.initiator=*) initiator=${arg#*=} ;;
        rd.iscsi.username=*) user=${arg#*=} ;;
        rd.iscsi.password=*) pass=${arg#*=} ;;
        rd.iscsi.in.username=*) tuser=${arg#*=} ;;
        rd.iscsi.in.password=*) tpass=${arg#*=} ;;
        root=*) root=${arg#root=} ;;
        rootfstype=*) fstype=${arg#*=} ;;
        rootflags=*) flags=${arg#*=} ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
        init=*) init=${arg#init=} ;;
    esac
done
[ -n "$ip" ] || fail "no ip= on the command line"
[ -n "$rootpath" ] || fail "no iscsi= / netroot=iscsi: on the command line"

IFS=: read -r client _ gw mask _ dev _ <<EOF_IP
$ip
EOF_IP
dev=${dev:-eth0}
rootpath=${rootpath#iscsi:}
case "$rootpath" in
    *@*)
        IFS=: read -r user pass tuser tpass <<EOF_CRED
${rootpath%@*}
EOF_CRED
        rootpath=${rootpath##*@}
        ;;
esac
IFS=: read -r server _ port _ target <<EOF_RP
$rootpath
EOF_RP
port=${port:-3260}

i=0
while [ ! -e "/sys/class/net/$dev" ]; do
    i=$((i + 1))
    [ "$i" -gt 100 ] && fail "no network device $dev"
    sleep 0.1
done
eval "$(ipcalc -p "$client" "$mask")"
ip link set "$dev" up
ip addr add "$client/$PREFIX" dev "$dev" || fail "ip addr add $client/$PREFIX dev $dev"
[ -n "$gw" ] && ip route add default via "$gw"

set -- -i "$initiator" -t "$target" -g 1 -a "$server" -p "$port"
[ -n "$pass" ] && set -- "$@" -u "$user" -w "$pass"
[ -n "$tpass" ] && set -- "$@" -U "$tuser" -W "$tpass"
iscsistart "$@" || fail "iscsistart -t $target -a $server -p $port"

i=0
dev=""
while :; do
    case "$root" in
        LABEL=* | UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
        /dev/*) [ -b "$root" ] && dev=$root ;;
        *)
            if [ -b /dev/sda1 ]; then dev=/dev/sda1; elif [ -b /dev/sda ] && [ -e /sys/block/sda/size ]; then dev=/dev/sda; fi
            ;;
    esac
    [ -n "$dev" ] && break
    i=$((i + 1))
    [ "$i" -gt 200 ] && fail "root device ${root:-/dev/sda} did not appear"
    sleep 0.1
done

opts=$mode
[ -n "$flags" ] && opts="$opts,$flags"
if [ -n "$fstype" ]; then
    mount -t "$fstype" -o "$opts" "$dev" /newroot || fail "mount $dev"
else
    mount -o "$opts" "$dev" /newroot || fail "mount $dev"
fi
read -r up _ </proc/uptime
echo "BENCH mounted=$up"
for m in dev proc sys run; do
    mount --move "/$m" "/newroot/$m" || fail "mount --move /$m"
done
exec switch_root /newroot "$init"
