#!/usr/bin/env bash
# Run mkinitcpio/install/netboot's build() (or help()) in the recording
# stand-in of mkinitcpio's API (qemu/mkinitcpio/fake-env.sh) and print the
# calls it made, one per line, tab-separated; the last line is
# "build_status N". tests/mkinitcpio.rs asserts on them. No root needed.
#
#   qemu/mkinitcpio/record.sh busybox|systemd [--no-base] [--kernel-version V]
#   qemu/mkinitcpio/record.sh help
#
# systemd: add_systemd_unit is defined, as after the systemd hook.
# --no-base: the image has no busybox (the base hook did not run).
# The hook's variables (NETBOOT_BINARY, NETBOOT_FILESYSTEMS, …) pass through
# the environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

flavour=${1:?usage: record.sh busybox|systemd|help [--no-base]}
shift
base=1 kver=6.1.0-test
while [ $# -gt 0 ]; do
    case "$1" in
        --no-base) base=0; shift ;;
        --kernel-version) kver=$2; shift 2 ;;
        *) echo "record.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
BUILDROOT=$work/root
KERNELVERSION=$kver
export BUILDROOT KERNELVERSION
mkdir -p "$BUILDROOT/usr/bin"
# mkinitcpio's module directory of the kernel (its _d_kmoduledir), with the
# text files depmod reads.
_d_kmoduledir=$work/modules/$kver
mkdir -p "$_d_kmoduledir"
for f in modules.builtin modules.builtin.modinfo modules.order; do
    : >"$_d_kmoduledir/$f"
done
[ "$base" = 0 ] || : >"$BUILDROOT/usr/bin/busybox"

# shellcheck disable=SC2034 # read by fake-env.sh and the install hook
{
    fake_record=$work/calls
    fake_perform=0
    fake_hooks_dir=$repo/mkinitcpio/hooks
    fake_unit_dir=$repo/mkinitcpio
    fake_systemd=0
}
[ "$flavour" = systemd ] && fake_systemd=1
: >"$fake_record"
# shellcheck source=qemu/mkinitcpio/fake-env.sh
. "$here/fake-env.sh"
# shellcheck source=mkinitcpio/install/netboot
. "$repo/mkinitcpio/install/netboot"

if [ "$flavour" = help ]; then
    help
    exit 0
fi
status=0
build || status=$?
cat "$fake_record"
echo "build_status	$status"
