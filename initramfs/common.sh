# shellcheck shell=bash
# Shared by initramfs/build.sh and initramfs/build-iscsistart.sh: kernel
# lookup, module closure, base tree, cpio packing. Source it; every function
# dies with a message naming what failed.

# Default NIC drivers (--nic): QEMU/KVM (virtio_net + virtio_pci, e1000,
# e1000e), VMware (vmxnet3), Intel server NICs on bare metal (igb), AWS
# (ena), Google Cloud (gve). Left out for size: ixgbe and r8169, which pull
# libphy/mdio (≈1 MB uncompressed each on 6.1); pass --nic to add them.
# shellcheck disable=SC2034 # used by the scripts that source this file
ir_default_nics=virtio_net,virtio_pci,e1000,e1000e,igb,vmxnet3,ena,gve

ir_die() { echo "${0##*/}: $*" >&2; exit 1; }

# ir_kernel KROOT_OR_VERSION KVER: sets ir_kroot and ir_kver. A version
# (6.1, 6.12) is resolved through qemu/kernel.sh, which caches the kernel.
ir_kernel() {
    local spec=$1 kver=$2 repo env
    if [ -d "$spec" ]; then
        ir_kroot=$(cd "$spec" && pwd)
        [ -n "$kver" ] || kver=$(find "$ir_kroot/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
    else
        repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
        env=$("$repo/qemu/kernel.sh" "$spec") || ir_die "qemu/kernel.sh $spec failed"
        ir_kroot=$(sed -n 's/^KROOT=//p' <<<"$env")
        [ -n "$kver" ] || kver=$(sed -n 's/^KVER=//p' <<<"$env")
    fi
    ir_kver=$kver
    if [ -z "$ir_kver" ] || [ ! -f "$ir_kroot/lib/modules/$ir_kver/modules.dep" ]; then
        ir_die "no modules.dep in $ir_kroot/lib/modules/${ir_kver:-?} (run depmod -b KROOT KVER)"
    fi
}

# ir_modules STAGING NAME...: copies NAME and everything it needs (deps and
# softdeps, as modprobe resolves them from that kernel's modules.dep and
# modules.softdep) into STAGING/lib/modules/KVER, decompressing .ko.xz/.ko.zst
# so the agent can finit_module them without in-kernel decompression, then
# runs depmod on the staging tree. Appends the load order (dependencies
# first, one path relative to the module dir per line) to ir_load_order.
ir_modules() {
    local staging=$1 name line path rel dest
    shift
    local src="$ir_kroot/lib/modules/$ir_kver" dst="$staging/lib/modules/$ir_kver"
    mkdir -p "$dst"
    ir_load_order=()
    declare -A seen=()
    for name in "$@"; do
        local out
        out=$(modprobe -d "$ir_kroot" -S "$ir_kver" --show-depends "$name" 2>&1) \
            || ir_die "module $name: not found for kernel $ir_kver in $ir_kroot ($out)"
        while read -r line; do
            case "$line" in
                "builtin "*) continue ;;
                "insmod "*) ;;
                *) ir_die "module $name: unexpected modprobe output '$line'" ;;
            esac
            path=${line#insmod }
            path=${path%% *}
            rel=${path#"$src/"}
            rel=${rel%.xz}
            rel=${rel%.zst}
            rel=${rel%.gz}
            [ -n "${seen[$rel]:-}" ] && continue
            seen[$rel]=1
            dest="$dst/$rel"
            mkdir -p "$(dirname "$dest")"
            case "$path" in
                *.ko.xz) xz -dc "$path" >"$dest" ;;
                *.ko.zst) zstd -dcq "$path" >"$dest" ;;
                *.ko.gz) gzip -dc "$path" >"$dest" ;;
                *) cp "$path" "$dest" ;;
            esac
            ir_load_order+=("$rel")
        done <<<"$out"
    done
    # depmod needs the kernel-wide builtin lists; modules.order is cut down
    # to the modules we ship, in the kernel's order.
    local f
    for f in modules.builtin modules.builtin.modinfo; do
        [ -f "$src/$f" ] && cp "$src/$f" "$dst/$f"
    done
    sed -E 's/\.ko\.(xz|zst|gz)$/.ko/' "$src/modules.order" \
        | grep -Fxf <(printf '%s\n' "${ir_load_order[@]}") >"$dst/modules.order" || true
    depmod -b "$staging" "$ir_kver" || ir_die "depmod -b $staging $ir_kver failed"
    # depmod's binary indexes are for kmod; the agent reads the text files.
    rm -f "$dst"/*.bin
}

# ir_base STAGING: the directories and device nodes the kernel and PID 1
# need before devtmpfs is mounted (the kernel opens /dev/console for PID 1's
# stdio, init/main.c console_on_rootfs).
ir_base() {
    local s=$1 d
    for d in dev proc sys run newroot tmp bin sbin etc; do mkdir -p "$s/$d"; done
    mknod -m 600 "$s/dev/console" c 5 1
    mknod -m 666 "$s/dev/null" c 1 3
}

# ir_busybox STAGING: static busybox as /bin/busybox and /bin/sh.
ir_busybox() {
    local s=$1
    [ -x /usr/bin/busybox ] || ir_die "/usr/bin/busybox missing (apt-get install busybox-static)"
    file -b /usr/bin/busybox | grep -q 'statically linked' \
        || ir_die "/usr/bin/busybox is not static (install busybox-static, not busybox)"
    cp /usr/bin/busybox "$s/bin/busybox"
    ln -sf busybox "$s/bin/sh"
}

# ir_pack STAGING OUT [COMPRESSOR ARGS...]: reproducible newc cpio (sorted
# names, owner root, fixed mtimes), compressed by COMPRESSOR (default
# gzip -9 -n; initramfs/build.sh passes zstd -19). Not xz: on the 5.5 MB
# reference initramfs xz -9e saves 28 % (4.1 MB) but the kernel's unpack
# (populate_rootfs, "Trying to unpack rootfs" → "Freeing initrd memory")
# took 1.57 s instead of 0.46 s under TCG, paid on every boot. The Debian
# kernels accept gzip, xz and zstd (CONFIG_RD_GZIP, CONFIG_RD_XZ, CONFIG_RD_ZSTD).
ir_pack() {
    local s=$1 out=$2 nmods
    shift 2
    [ $# -gt 0 ] || set -- gzip -9 -n
    find "$s" -exec touch -h -d @0 {} +
    (cd "$s" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
        | cpio --quiet -o -0 -H newc -R 0:0 --reproducible) \
        | "$@" >"$out.tmp" || ir_die "cpio/$1 into $out failed"
    mv "$out.tmp" "$out"
    nmods=$(find "$s/lib/modules" -name '*.ko' | wc -l)
    echo "initramfs: $out: $(stat -c %s "$out") bytes ($*), $nmods modules, kernel $ir_kver"
}
