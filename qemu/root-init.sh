#!/bin/sh
# /sbin/init of the VM test root images (qemu/mkroot.sh). Runs after
# switch_root; prints what the VM scenarios (tests/vm.rs) and the benchmark
# (qemu/bench) check on the serial console, then powers off so QEMU exits.
export PATH=/bin:/sbin
# The initramfs moves /proc, /sys, /dev and /run into the new root; mount
# them only where it did not.
[ -e /proc/self/mountinfo ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys
read -r up _ </proc/uptime
echo "BENCH rootinit=$up"
echo "NETBOOT-ROOT-OK"

echo "--- mountinfo ---"
cat /proc/self/mountinfo
echo "--- end ---"

# Session and connection attributes from scsi_transport_iscsi
# (drivers/scsi/scsi_transport_iscsi.c); never the password.
echo "--- iscsi ---"
for s in /sys/class/iscsi_session/session*; do
    [ -d "$s" ] || continue
    echo "session=${s##*/}"
    for a in targetname tpgt initiatorname username creator recovery_tmo; do
        echo "$a=$(cat "$s/$a" 2>/dev/null)"
    done
done
for c in /sys/class/iscsi_connection/connection*; do
    [ -d "$c" ] || continue
    echo "connection=${c##*/}"
    for a in persistent_address persistent_port max_recv_dlength max_xmit_dlength; do
        echo "$a=$(cat "$c/$a" 2>/dev/null)"
    done
done
echo "--- end ---"

if [ -f /run/netboot/boot.json ]; then
    echo "--- boot.json ---"
    cat /run/netboot/boot.json
    echo
    echo "--- end ---"
fi
if [ -f /run/netboot/events.jsonl ]; then
    echo "--- events ---"
    cat /run/netboot/events.jsonl
    echo "--- end ---"
fi

sync
mount -o remount,ro /
poweroff -f
