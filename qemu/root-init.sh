#!/bin/sh
# /sbin/init of the VM test root images (qemu/mkroot.sh). Runs after
# switch_root; prints what the VM scenarios (tests/vm.rs) and the benchmark
# (qemu/bench) check on the serial console, then powers off so QEMU exits.
export PATH=/bin:/sbin

# /proc/uptime "123.45" → centiseconds 12345 (the integer part is never 0
# here, so no leading zero turns the number octal).
cs() { echo "${1%.*}${1#*.}"; }
# Centiseconds → "123.45".
secs() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }

# nbtest_writer SECONDS: until SECONDS have passed, write 16 KiB of random
# data to /nbtest/f<i> (i cycles 0..499) with dd conv=fsync, so each write
# reaches the target while it runs; its sha256 goes to the tmpfs /run (never
# to the disk under test). A write taking >= 1 s prints
#   WRITER stall file=N from=T0 to=T1 took=D result=ok|error
# (guest uptime, seconds; T1 = when the write returned: I/O flowed again if
# ok); a failed one also prints WRITER write-error and is not verified. Afterwards: sync, drop_caches, re-read every file and print
#   WRITER files=N bad=M errors=E writes=W stalls=S
# (N files verified, M of them differ, E failed writes, W writes in all).
nbtest_writer() {
    dir=/nbtest st=/run/nbtest
    mkdir -p "$dir" "$st/sum" || { echo "WRITER cannot create $dir or $st"; return; }
    read -r up _ </proc/uptime
    now=$(cs "$up")
    end=$((now + $1 * 100))
    echo "WRITER started at=$up seconds=$1"
    n=0 err=0 stalls=0
    while [ "$now" -lt "$end" ]; do
        i=$((n % 500))
        dd if=/dev/urandom of="$st/data" bs=16k count=1 2>/dev/null
        sum=$(sha256sum "$st/data")
        t0=$now res=ok
        if dd if="$st/data" of="$dir/f$i" bs=16k conv=fsync 2>"$st/dd.err"; then
            echo "${sum%% *}" >"$st/sum/$i"
        else
            err=$((err + 1)) res=error
            rm -f "$st/sum/$i"
            read -r up _ </proc/uptime
            echo "WRITER write-error file=$n at=$up: $(tr '\n' ' ' <"$st/dd.err")"
        fi
        read -r up _ </proc/uptime
        now=$(cs "$up")
        if [ $((now - t0)) -ge 100 ]; then
            stalls=$((stalls + 1))
            echo "WRITER stall file=$n from=$(secs "$t0") to=$up took=$(secs $((now - t0))) result=$res"
        fi
        n=$((n + 1))
    done
    read -r up _ </proc/uptime
    echo "WRITER writing ended at=$up; sync"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    files=0 bad=0
    for f in "$st"/sum/*; do
        [ -f "$f" ] || continue
        i=${f##*/}
        files=$((files + 1))
        # `read` is a builtin: the expected sum comes from the tmpfs even
        # when the root's busybox can no longer be paged in (SIGBUS).
        read -r want <"$f"
        got=$(sha256sum "$dir/f$i" 2>/dev/null)
        if [ -z "$want" ] || [ "${got%% *}" != "$want" ]; then
            bad=$((bad + 1))
            echo "WRITER bad file f$i"
        fi
    done
    read -r up _ </proc/uptime
    echo "WRITER files=$files bad=$bad errors=$err writes=$n stalls=$stalls at=$up"
}

# nbtest_resident: the resident recovery process (argv[0] @netboot-resident)
# by /proc/PID/cmdline, its VmRSS, /run/netboot/recovery.json and
# `netboot status` (the root has no netboot: the copy in /run/netboot).
nbtest_resident() {
    pid=""
    for p in /proc/[0-9]*; do
        case "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" in
            @netboot-resident*) pid=${p#/proc/}; break ;;
        esac
    done
    if [ -n "$pid" ]; then
        rss=$(sed -n 's/^VmRSS:[[:space:]]*//p' "/proc/$pid/status")
        echo "RESIDENT present pid=$pid rss=$rss"
    else
        echo "RESIDENT absent"
    fi
    if [ -f /run/netboot/recovery.json ]; then
        echo "--- recovery.json ---"
        cat /run/netboot/recovery.json
        echo
        echo "--- end ---"
    fi
    if [ -x /run/netboot/netboot ]; then
        echo "--- status ---"
        /run/netboot/netboot status 2>&1
        echo "--- end ---"
    fi
}
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

# nbtest.writer=SECONDS (tests/vm_recovery.rs): write checksummed files to
# the root (mounted rw: put `rw` on the command line) for SECONDS, then
# sync, drop the page cache and verify every file.
writer=""
# shellcheck disable=SC2013 # words, not lines
for w in $(cat /proc/cmdline); do
    case "$w" in nbtest.writer=*) writer=${w#nbtest.writer=} ;; esac
done
case "$writer" in
    "" | *[!0-9]*) ;;
    *) nbtest_writer "$writer"; nbtest_resident ;;
esac

sync
mount -o remount,ro /
poweroff -f
