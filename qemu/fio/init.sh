#!/bin/sh
# /sbin/init of the fio root image (qemu/fio/build-root.sh), run by
# qemu/bench-fio after switch_root from either initramfs (netboot's or
# busybox + iscsistart's). It prints the negotiated iSCSI parameters and the
# block queue settings from sysfs, runs fio on /fio/data (a file laid down
# in the image, so every block is allocated and written: direct I/O goes
# straight to the disk, no allocation, no holes that read as zeros without
# I/O), prints one line per job and powers off.
#
# Kernel command line (all optional):
#   nbfio.jobs=NAME,...   seqread seqwrite randread1 randread32 randread64
#                         randread128 (default: the first four)
#   nbfio.runtime=S       measured seconds per job (default 10)
#   nbfio.ramp=S          unmeasured seconds before each job (default 2)
#   nbfio.engine=E        libaio or io_uring (default libaio; falls back to
#                         the other if fio lacks it)
#   nbfio.sched=NAME      write NAME to the disk's queue/scheduler first
#   nbfio.nr=N            write N to queue/nr_requests first
#   nbfio.qd=N            write N to device/queue_depth first
#
# Output lines (parsed by qemu/bench-fio):
#   FIOPARAM key=value    session.*, conn.*, host.*, queue.*, device.*
#   FIO job=NAME err=E rbw=KiB/s riops=N rlat=us wbw=KiB/s wiops=N wlat=us
#   FIO-DONE              after the last job (FIO-FAILED … instead on errors)
export PATH=/bin:/sbin:/usr/bin

# The initramfs moves /proc, /sys, /dev and /run into the new root; mount
# them only where it did not.
[ -e /proc/self/mountinfo ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys
grep -q ' /run ' /proc/self/mounts || mount -t tmpfs tmpfs /run
echo "FIO-ROOT-OK"

finish() {
    sync
    mount -o remount,ro / 2>/dev/null
    poweroff -f
}

jobs=seqread,seqwrite,randread1,randread32 runtime=10 ramp=2 engine=libaio
sched="" nr="" qd=""
set -f
# shellcheck disable=SC2013 # words, not lines
for w in $(cat /proc/cmdline); do
    case "$w" in
        nbfio.jobs=*) jobs=${w#*=} ;;
        nbfio.runtime=*) runtime=${w#*=} ;;
        nbfio.ramp=*) ramp=${w#*=} ;;
        nbfio.engine=*) engine=${w#*=} ;;
        nbfio.sched=*) sched=${w#*=} ;;
        nbfio.nr=*) nr=${w#*=} ;;
        nbfio.qd=*) qd=${w#*=} ;;
    esac
done
set +f
for n in "$runtime" "$ramp" $nr $qd; do
    case "$n" in
        "" | *[!0-9]*) echo "FIO-FAILED bad number '$n' on the command line"; finish ;;
    esac
done

# The disk under /: the first SCSI disk (the rig has one LUN).
disk=""
for b in /sys/block/sd*; do
    [ -d "$b" ] && { disk=${b##*/}; break; }
done
[ -n "$disk" ] || { echo "FIO-FAILED no sd* disk in /sys/block"; finish; }
q=/sys/block/$disk/queue
[ -z "$sched" ] || echo "$sched" >"$q/scheduler" || echo "FIO-FAILED scheduler $sched refused"
[ -z "$nr" ] || echo "$nr" >"$q/nr_requests" || echo "FIO-FAILED nr_requests $nr refused"
[ -z "$qd" ] || echo "$qd" >"/sys/block/$disk/device/queue_depth" || echo "FIO-FAILED queue_depth $qd refused"

# param KEY FILE: one FIOPARAM line, "-" when the attribute is missing.
param() {
    v=-
    [ -r "$2" ] && v=$(tr -s ' \n' '  ' <"$2" 2>/dev/null)
    echo "FIOPARAM $1=${v% }"
}
for s in /sys/class/iscsi_session/session*; do
    [ -d "$s" ] || continue
    for a in initial_r2t immediate_data first_burst_len max_burst_len max_outstanding_r2t \
        data_pdu_in_order data_seq_in_order erl recovery_tmo; do
        param "session.$a" "$s/$a"
    done
    # …/hostH/sessionN: the SCSI host the session created.
    h=$(readlink -f "$s/device")
    h=${h%/*}
    h=${h##*/}
    param host.can_queue "/sys/class/scsi_host/$h/can_queue"
    param host.cmd_per_lun "/sys/class/scsi_host/$h/cmd_per_lun"
    param host.sg_tablesize "/sys/class/scsi_host/$h/sg_tablesize"
    break
done
for c in /sys/class/iscsi_connection/connection*; do
    [ -d "$c" ] || continue
    for a in max_recv_dlength max_xmit_dlength header_digest data_digest ping_tmo recv_tmo; do
        param "conn.$a" "$c/$a"
    done
    break
done
echo "FIOPARAM disk=$disk"
for a in scheduler nr_requests read_ahead_kb max_sectors_kb max_hw_sectors_kb max_segments \
    rotational nomerges wbt_lat_usec; do
    param "queue.$a" "$q/$a"
done
param device.queue_depth "/sys/block/$disk/device/queue_depth"

[ -f /fio/data ] || { echo "FIO-FAILED /fio/data missing"; finish; }
eng=$engine
if ! fio --enghelp 2>/dev/null | grep -qw "$eng"; then
    case "$eng" in libaio) eng=io_uring ;; *) eng=libaio ;; esac
fi
echo "FIOPARAM fio.engine=$eng"
echo "FIOPARAM fio.version=$(fio --version 2>&1)"

jf=/run/fio.job
{
    echo "[global]"
    echo "filename=/fio/data"
    echo "direct=1"
    echo "ioengine=$eng"
    echo "time_based=1"
    echo "runtime=$runtime"
    echo "ramp_time=$ramp"
    echo "fallocate=none"
    echo "invalidate=1"
    IFS=,
    for j in $jobs; do
        echo "[$j]"
        echo "stonewall"
        case "$j" in
            seqread) echo "rw=read"; echo "bs=1M"; echo "iodepth=8" ;;
            seqwrite) echo "rw=write"; echo "bs=1M"; echo "iodepth=8" ;;
            randread[0-9]*) echo "rw=randread"; echo "bs=4k"; echo "iodepth=${j#randread}" ;;
            *) echo "FIO-FAILED unknown job $j" >&2 ;;
        esac
    done
    unset IFS
} >"$jf" 2>/run/fio.joberr
if [ -s /run/fio.joberr ]; then
    cat /run/fio.joberr
    finish
fi
echo "--- fio job file ---"
cat "$jf"
echo "--- end ---"

read -r up _ </proc/uptime
echo "FIOPARAM fio.start=$up"
# Terse version 3 (fio's HOWTO "Terse output"): field 3 job name, 5 error,
# read: 7 bandwidth KiB/s, 8 IOPS, 40 total latency mean (us); write: 48,
# 49, 81.
# cputicks: "name=ticks ..." for every userspace process but this init and
# fio (utime + stime, /proc/PID/stat fields 14 and 15): what else took the
# one vCPU while fio ran (netboot's resident, iscsistart leaves nothing).
cputicks() {
    self=$(tr '\0' ' ' </proc/1/cmdline)
    for p in /proc/[0-9]*; do
        n=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
        if [ -z "$n" ] || [ "$n" = "$self" ]; then continue; fi
        n=${n%% *}
        case "$n" in fio | */fio | tr) continue ;; esac
        read -r st <"$p/stat" 2>/dev/null || continue
        st=${st##*) }
        # shellcheck disable=SC2086 # fields of /proc/PID/stat
        set -- $st
        echo "${n##*/}[${p#/proc/}]=$((${12} + ${13}))"
    done | tr '\n' ' '
}
echo "FIOPARAM cpu.before=$(cputicks)"
if fio --output-format=terse --terse-version=3 "$jf" >/run/fio.out 2>/run/fio.err; then
    echo "FIOPARAM cpu.after=$(cputicks)"
    awk -F';' 'NF >= 81 { printf "FIO job=%s err=%s rbw=%s riops=%s rlat=%s wbw=%s wiops=%s wlat=%s\n",
        $3, $5, $7, $8, $40, $48, $49, $81 }' /run/fio.out
    echo "FIO-DONE"
else
    echo "FIO-FAILED fio exited with an error:"
    cat /run/fio.err /run/fio.out
fi
finish
