#!/bin/bash
# shellcheck shell=bash
# shellcheck disable=SC2154 # initdir, systemdutildir, systemdsystemunitdir: set by dracut
# Test-side dracut module (qemu/mkinitcpio/build-systemd.sh): puts the
# pieces of mkinitcpio/ that the systemd flavour adds -- netboot-attach.service,
# netboot-generator, the binary -- into a plain systemd initramfs. Not the
# project's dracut module (dracut/90netboot); only here because dracut is the
# systemd initramfs builder Debian has. Paths as install/netboot puts them.
# Inputs (environment): NB_REPO (the repository), NETBOOT_BIN.

check() {
    return 255
}

depends() {
    echo systemd-initrd systemd-udevd udev-rules
}

installkernel() {
    instmods iscsi_tcp sd_mod crc32c ext4 virtio_net virtio_pci
}

install() {
    inst_simple "$NB_REPO/mkinitcpio/netboot-attach.service" "$systemdsystemunitdir/netboot-attach.service"
    inst_simple "$NB_REPO/mkinitcpio/netboot-generator" "$systemdutildir/system-generators/netboot-generator"
    chmod 755 "$initdir$systemdutildir/system-generators/netboot-generator"
    inst_simple "$NETBOOT_BIN" /usr/sbin/netboot
    chmod 755 "$initdir/usr/sbin/netboot"
    # The generator's shell and tools (mkinitcpio: the base hook's busybox).
    inst_multiple sh mkdir ln kmod
    # mkinitcpio's systemd hook installs kmod as /usr/bin/modprobe (the unit's ExecStartPre).
    ln -sfn kmod "$initdir/usr/bin/modprobe"
    # The emergency path the unit's OnFailure= starts (mkinitcpio's systemd
    # hook adds emergency.target, which requires this service, and the shell).
    inst_multiple "$systemdsystemunitdir/emergency.service" "$systemdutildir/systemd-sulogin-shell" sulogin
    # Test seam (like mkinitcpio_test_noshell of qemu/mkinitcpio/init): with
    # nbtest.emergency_poweroff on the command line, reaching emergency.target
    # prints a marker and powers off, so a failure scenario ends by itself.
    mkdir -p "$initdir$systemdsystemunitdir/emergency.target.wants"
    cat >"$initdir$systemdsystemunitdir/nbtest-emergency-poweroff.service" <<'UNIT'
[Unit]
Description=Test: power off in emergency mode
DefaultDependencies=no
ConditionKernelCommandLine=nbtest.emergency_poweroff
After=emergency.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "NBTEST: emergency.target reached" >/dev/console; systemctl --force --force poweroff'
UNIT
    ln -sfn ../nbtest-emergency-poweroff.service \
        "$initdir$systemdsystemunitdir/emergency.target.wants/nbtest-emergency-poweroff.service"
    inst_multiple systemctl
    # systemd runs in initrd mode iff /etc/initrd-release exists.
    [ -e "$initdir/etc/initrd-release" ] || echo 'NAME="netboot systemd-flavour test initramfs"' >"$initdir/etc/initrd-release"
}
