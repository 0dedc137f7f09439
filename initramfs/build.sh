#!/usr/bin/env bash
# Build the netboot initramfs: the static agent as /init plus exactly the
# kernel modules it loads (DESIGN.md §2, initramfs/).
#
#   initramfs/build.sh --kernel KROOT|6.1|6.12 [--kver KVER] --netboot BIN --out FILE
#       [--busybox] [--nic MOD,...] [--fs ext4,xfs,...] [--extra-init FILE]
#       [--add SRC:DEST ...] [--no-rxrpc] [--gzip] [--config-token FILE]
#
# Modules: crc32c (ext4/jbd2 metadata checksums and iSCSI digests need the
# crc32c transform, which the kernel cannot request without modprobe),
# iscsi_tcp, sd_mod, the --fs modules (default ext4) and the --nic drivers
# (default: initramfs/common.sh ir_default_nics), each with its dependencies
# and softdeps, stored uncompressed with a matching depmod index (the agent
# resolves modules.dep and matches device modaliases against modules.alias).
# AF_RXRPC for netboot.config= (fcrypt, pcbc, rxrpc with udp_tunnel and
# ip6_udp_tunnel) is added when the kernel has it; --no-rxrpc leaves it out
# (the agent then fetches its config with its userspace RxRPC client).
# iscsi_ibft + iscsi_boot_sysfs (rd.iscsi.firmware: /sys/firmware/ibft) are
# added when the kernel has them as modules.
# 8021q (with mrp, garp, stp, llc) for vlan= is added when the kernel has it.
# --config-token FILE installs an rxkad token (netboot-configd token) as
# /etc/netboot/config.token, mode 0600, where the agent looks for it: the
# config fetch is then rxkad-encrypted by default (netboot.config.security).
# The token is a secret: keep the image as private as the token (it is the
# same as --add FILE:/etc/netboot/config.token, plus the mode and a check).
# fcrypt and pcbc (for the kernel's rxkad) come with rxrpc above.
# --busybox adds /bin/busybox and /bin/sh for the emergency shell only.
# --extra-init FILE makes FILE the /init and moves the agent to /bin/netboot.
# Compression: zstd -19 (CONFIG_RD_ZSTD, in Debian's kernels): 22 % smaller
# than gzip -9 for the rig's image (6.1: 2,488,353 → 1,938,820 bytes; 6.12:
# 2,698,930 → 2,068,696, which gzip put over the 2.5 MiB budget) and unpacked
# as fast under TCG ("Trying to unpack rootfs" → "Freeing initrd memory"
# 0.19-0.26 s vs gzip's 0.16-0.65 s; xz -9e is smaller still but 0.6-2.5 s).
# --gzip keeps gzip -9 (initramfs/common.sh ir_pack), as does a missing zstd.
set -euo pipefail
# shellcheck source=initramfs/common.sh
. "$(dirname "$0")/common.sh"

kernel="" kver="" netboot="" out="" busybox=0 nics=$ir_default_nics fss=ext4 extra_init="" rxrpc=1 gzip=0
config_token=""
adds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --kver) kver=$2; shift 2 ;;
        --netboot) netboot=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --busybox) busybox=1; shift ;;
        --nic) nics=$2; shift 2 ;;
        --fs) fss=$2; shift 2 ;;
        --extra-init) extra_init=$2; shift 2 ;;
        --add) adds+=("$2"); shift 2 ;;
        --no-rxrpc) rxrpc=0; shift ;;
        --config-token) config_token=$2; shift 2 ;;
        --gzip) gzip=1; shift ;;
        *) ir_die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[ -n "$kernel" ] || ir_die "--kernel KROOT|6.1|6.12 is required"
[ -n "$out" ] || ir_die "--out FILE is required"
[ -n "$netboot" ] || ir_die "--netboot PATH is required"
if [ -n "$config_token" ]; then
    [ -f "$config_token" ] || ir_die "--config-token $config_token: no such file"
    if ! grep -q '^version = 1$' "$config_token" || ! grep -q '^ticket = ' "$config_token"; then
        ir_die "--config-token $config_token: not a netboot token (make one with netboot-configd token)"
    fi
fi
[ -f "$netboot" ] || ir_die "--netboot $netboot: no such file (cargo build --release first)"
file -b "$netboot" | grep -q 'statically linked' \
    || ir_die "--netboot $netboot is not statically linked; it runs before any libc exists"

ir_kernel "$kernel" "$kver"

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ir_base "$staging"

IFS=, read -r -a nic_list <<<"$nics"
IFS=, read -r -a fs_list <<<"$fss"
rx_list=()
# Debian's cloud kernels have no AF_RXRPC (rxrpc.md §2.7): nothing to add.
if [ "$rxrpc" = 1 ] && modprobe -d "$ir_kroot" -S "$ir_kver" --show-depends rxrpc >/dev/null 2>&1; then
    rx_list=(fcrypt pcbc rxrpc)
fi
# vlan=: the kernel cannot request 8021q for `type vlan` without modprobe.
if modprobe -d "$ir_kroot" -S "$ir_kver" --show-depends 8021q >/dev/null 2>&1; then
    rx_list+=(8021q)
fi
ibft_list=()
if ibft_deps=$(modprobe -d "$ir_kroot" -S "$ir_kver" --show-depends iscsi_ibft 2>/dev/null) \
    && grep -q '^insmod ' <<<"$ibft_deps"; then
    ibft_list=(iscsi_ibft)
fi
ir_modules "$staging" crc32c iscsi_tcp sd_mod "${fs_list[@]}" "${nic_list[@]}" "${rx_list[@]}" "${ibft_list[@]}"

if [ -n "$extra_init" ]; then
    install -m 755 "$extra_init" "$staging/init"
    install -m 755 "$netboot" "$staging/bin/netboot"
else
    install -m 755 "$netboot" "$staging/init"
fi
[ "$busybox" = 1 ] && ir_busybox "$staging"
for a in "${adds[@]}"; do
    src=${a%%:*} dest=${a#*:}
    [ -e "$src" ] || ir_die "--add $a: $src does not exist"
    mkdir -p "$staging/$(dirname "$dest")"
    cp -a "$src" "$staging/$dest"
done

if [ -n "$config_token" ]; then
    install -D -m 600 "$config_token" "$staging/etc/netboot/config.token"
fi

mkdir -p "$(dirname "$out")"
if [ "$gzip" = 0 ] && command -v zstd >/dev/null; then
    ir_pack "$staging" "$out" zstd -19 -q
else
    ir_pack "$staging" "$out"
fi
