#!/usr/bin/env bash
# The VM test root image for dracut's systemd flavour: qemu/mkroot.sh's ext4
# image (label nbroot, /sbin/init = qemu/root-init.sh) plus /etc/os-release.
#
#   qemu/dracut/root-image.sh OUT
#
# systemd refuses to switch into a root without an os-release file
# (initrd-switch-root.service fails: "does not seem to be an OS tree",
# os-release(5)); the busybox root has none. The file is written into the
# ext4 image with debugfs (e2fsprogs), without loop devices or mounts.
set -euo pipefail

die() { echo "dracut/root-image.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUT"
out=$1
here=$(cd "$(dirname "$0")" && pwd)
command -v debugfs >/dev/null || die "debugfs not found (apt-get install e2fsprogs)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/../mkroot.sh" "$work/root.img" --label nbroot >/dev/null
printf 'NAME="netboot VM test root"\nID=netboot-test\nPRETTY_NAME="netboot VM test root (busybox)"\n' >"$work/os-release"
printf 'cd /etc\nwrite %s os-release\n' "$work/os-release" >"$work/debugfs.cmd"
debugfs -w -f "$work/debugfs.cmd" "$work/root.img" >"$work/debugfs.log" 2>&1 \
    || { cat "$work/debugfs.log" >&2; die "debugfs write failed"; }
[ "$(debugfs -R 'cat /etc/os-release' "$work/root.img" 2>/dev/null | head -n 1)" = 'NAME="netboot VM test root"' ] \
    || { cat "$work/debugfs.log" >&2; die "/etc/os-release is not in the image"; }
mv "$work/root.img" "$out"
echo "dracut/root-image: $out: ext4 label nbroot with /etc/os-release"
