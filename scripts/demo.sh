#!/usr/bin/env bash
# The demo (README "Run the demo"): builds everything — the static agent,
# Debian's 6.1 kernel (downloaded once, cached under target/vm), a netboot
# initramfs and an ext4 root image — and boots a QEMU VM whose root is on a
# real tgt target. The target, QEMU's tap and a bridge live in a private
# network namespace (target 198.18.0.1, guest 198.18.0.2; nothing is routed
# out). The serial console is shown live; the root's init prints its marker
# and powers off. Then the userspace tools run against a second target.
# Everything started here is stopped by PID, namespaces deleted. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
nb="$PWD/$(bash scripts/build.sh | tail -n 1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "=== building the initramfs and the root image"
qemu/kernel.sh 6.1 >/dev/null
initramfs/build.sh --kernel 6.1 --netboot "$nb" --busybox --out "$work/initrd.gz"
qemu/mkroot.sh "$work/root.img"

echo "=== booting: netboot as /init, root on iSCSI (console follows)"
qemu/boot.sh --kernel 6.1 --initrd "$work/initrd.gz" --image "$work/root.img" --show \
    --append "ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root netboot.on_fail=halt netboot.timeout=60" \
    --expect NETBOOT-ROOT-OK

echo
echo "=== booting again with only netboot.config= on the command line: DHCP from dnsmasq,"
echo "    the whole config from netboot-configd over the guest kernel's AF_RXRPC"
mkdir -p "$work/configd"
cat >"$work/configd/default.json" <<'JSON'
{ "version": 1,
  "paths": [ { "server": "198.18.0.1", "port": 3260, "lun": 1, "target": "iqn.2026-11.test:root" } ],
  "timeout_ms": 60000, "on_fail": "halt" }
JSON
qemu/boot.sh --kernel 6.1 --initrd "$work/initrd.gz" --image "$work/root.img" --show \
    --dhcp --configd "$work/configd" --append "netboot.config=rxrpc:198.18.0.1" \
    --expect NETBOOT-ROOT-OK

echo
echo "=== the userspace tools against a tgt target in another private namespace"
ns="nbdemo-$$"
addr=198.18.0.1
iqn=iqn.2026-11.org.netboot:demo
# shellcheck source=scripts/tgt.sh
. scripts/tgt.sh
cleanup() {
    set +e
    tgt_stop
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$addr/32" dev lo
tgt_start "$addr:3260" "$iqn" "$work" "$ns"
echo "\$ netboot discover $addr"
ip netns exec "$ns" "$nb" discover "$addr"
echo
echo "\$ netboot probe iscsi:$addr:::1:$iqn"
ip netns exec "$ns" "$nb" probe "iscsi:$addr:::1:$iqn"
