#!/bin/sh
# Run `netboot attach` once for dracut (both flavours), installed as
# /usr/lib/netboot/dracut-attach. Exit status: netboot's (0 = the root device
# is present, /run/netboot/root points at it).
#
# netboot attach reads dracut's view of the command line (getcmdline: the
# hostonly /etc/cmdline.d/*.conf, then /proc/cmdline; for single-valued keys
# the last one wins), loads the modules still missing, brings up the
# network, logs in and waits for the disk. On failure it prints exactly one
# line on stderr and /dev/kmsg ("netboot attach: boot failed at STEP: …"),
# so the console shows it (once: the kmsg copy) before dracut's emergency
# path; the stderr copy goes to the journal (systemd flavour) or to
# /run/initramfs/netboot/attach.err (shell flavour).

# shellcheck disable=SC1091 # dracut-lib.sh is dracut's (modules.d/99base)
type getcmdline >/dev/null 2>&1 || . /lib/dracut-lib.sh
# shellcheck source=dracut/90netboot/netboot-lib.sh
. /lib/netboot-dracut-lib.sh

mkdir -p "$NETBOOT_DRACUT_STATE"
rm -f "$NETBOOT_DRACUT_STATE/failed"

# udev may still be loading NIC drivers and renaming interfaces (eth0 ->
# ens3): let its queue drain first, bounded, so netboot picks the final name.
udevadm settle --timeout=60 >/dev/null 2>&1 \
    || echo "netboot: udev did not settle within 60 s; attaching anyway" >&2

# The command line goes through a file readable by root only, not through
# argv: it may carry rd.iscsi.password=.
cmdline="$NETBOOT_DRACUT_STATE/cmdline"
(umask 077 && getcmdline >"$cmdline")
rc=0
if [ -n "$DRACUT_SYSTEMD" ]; then
    # stderr is the journal (netboot-attach.service).
    /usr/sbin/netboot attach --cmdline-file "$cmdline" >"$NETBOOT_DRACUT_STATE/attach.env" || rc=$?
else
    # stderr is the console, which shows the kmsg copy of the line already.
    /usr/sbin/netboot attach --cmdline-file "$cmdline" >"$NETBOOT_DRACUT_STATE/attach.env" \
        2>"$NETBOOT_DRACUT_STATE/attach.err" || rc=$?
fi
rm -f "$cmdline"
if [ "$rc" != 0 ]; then
    echo "$rc" >"$NETBOOT_DRACUT_STATE/failed"
    exit "$rc"
fi
exit 0
