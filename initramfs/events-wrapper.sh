#!/bin/busybox sh
# shellcheck shell=dash
# /init wrapper that records the agent's boot events (initramfs/build.sh
# --busybox --extra-init initramfs/events-wrapper.sh): it starts
# `netboot events --json` as a separate process, waits until it has joined
# the connector group, then execs the agent as PID 1. The events land in
# /run/netboot/events.jsonl, which the agent moves into the new root with
# /run; the listener keeps running there after switch_root.
bb=/bin/busybox
$bb mkdir -p /proc /run
$bb mount -t proc -o nosuid,nodev,noexec proc /proc
$bb mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
$bb mkdir -p /run/netboot
/bin/netboot events --json >/run/netboot/events.jsonl 2>/run/netboot/events.err &
# Bounded wait (5 s) for "listening on group …": an event sent before the
# listener joined would be missing from the record.
i=0
while ! $bb grep -q listening /run/netboot/events.err 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 500 ]; then
        echo "events-wrapper: listener not ready after 5 s; booting without it" >/dev/console
        break
    fi
    $bb usleep 10000
done
exec /bin/netboot
