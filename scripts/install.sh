#!/usr/bin/env bash
# Install netboot and its initramfs generator integrations.
#
#   bash scripts/build.sh                  # first: the static binaries → target/dist/
#   scripts/install.sh [--destdir DIR] [--dist DIR]
#
# Installs exactly (under DIR, default /):
#   /usr/sbin/netboot, /usr/sbin/netboot-configd        from target/dist/ (or --dist)
#   /usr/lib/dracut/modules.d/90netboot/…               from dracut/90netboot/
#   /usr/share/initramfs-tools/hooks/netboot            from initramfs-tools/hooks/netboot
#   /usr/share/initramfs-tools/scripts/init-premount/netboot
#                                                       from initramfs-tools/scripts/init-premount/netboot
#   /usr/lib/initcpio/install/netboot                   from mkinitcpio/install/netboot
#   /usr/lib/initcpio/hooks/netboot                     from mkinitcpio/hooks/netboot
#   /usr/lib/systemd/system/<unit>                      every mkinitcpio/*.service (netboot-attach.service),
#                                                       where mkinitcpio's add_systemd_unit finds units
#   /usr/lib/initcpio/netboot-generator                 from mkinitcpio/netboot-generator (0755)
#   /usr/share/doc/netboot/netboot.txt                  `netboot --help`
#   /usr/share/doc/netboot/netboot-COMMAND.txt          `netboot help COMMAND`, every command it lists
#   /usr/share/doc/netboot/netboot-configd.txt          `netboot-configd --help`
# An integration whose source directory is missing from the checkout is
# skipped with a warning. Nothing else is touched: no initramfs is rebuilt
# (the Debian package, scripts/deb.sh, triggers update-initramfs; by hand:
# `update-initramfs -u`, `dracut -f`, `mkinitcpio -P`).
# Prints the installed paths, one per line, relative to DIR.
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 1; }
usage() { echo "install.sh: $* (usage: $0 [--destdir DIR] [--dist DIR])" >&2; exit 2; }
warn() { echo "install.sh: warning: $*" >&2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
destdir=/ dist="$repo/target/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) [ $# -ge 2 ] || usage "--destdir needs a directory"; destdir=$2; shift 2 ;;
        --dist) [ $# -ge 2 ] || usage "--dist needs a directory"; dist=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) usage "unknown argument '$1'" ;;
    esac
done
for b in netboot netboot-configd; do
    [ -x "$dist/$b" ] || die "$dist/$b missing: run 'bash scripts/build.sh' first"
done
mkdir -p "$destdir"
destdir=$(cd "$destdir" && pwd)

# put SRC DEST MODE: one file, parent directories 0755.
put() {
    install -D -m "$3" "$1" "$destdir$2"
    echo "$2"
}
# Mode of a checked-in file: 0755 if executable, else 0644.
mode_of() { if [ -x "$1" ]; then echo 0755; else echo 0644; fi; }

put "$dist/netboot" /usr/sbin/netboot 0755
put "$dist/netboot-configd" /usr/sbin/netboot-configd 0755

# dracut: the whole module directory (module-setup.sh and its hooks).
if [ -d "$repo/dracut/90netboot" ]; then
    while IFS= read -r -d '' f; do
        rel=${f#"$repo/dracut/90netboot/"}
        put "$f" "/usr/lib/dracut/modules.d/90netboot/$rel" "$(mode_of "$f")"
    done < <(find "$repo/dracut/90netboot" -type f ! -name '*~' ! -name '.*' -print0 | sort -z)
else
    warn "dracut/90netboot/ not in this checkout: dracut module not installed"
fi

# initramfs-tools: build hook and boot script, both executables
# (mkinitramfs runs the hook; /init runs the script).
if [ -f "$repo/initramfs-tools/hooks/netboot" ]; then
    put "$repo/initramfs-tools/hooks/netboot" /usr/share/initramfs-tools/hooks/netboot 0755
    put "$repo/initramfs-tools/scripts/init-premount/netboot" \
        /usr/share/initramfs-tools/scripts/init-premount/netboot 0755
else
    warn "initramfs-tools/ not in this checkout: initramfs-tools hook not installed"
fi

# mkinitcpio: install hook (sourced by mkinitcpio, bash), runtime hook
# (copied into the image as /hooks/netboot), the systemd-flavour unit(s)
# (add_systemd_unit finds units under /usr/lib/systemd/system; never enabled
# on the host) and generator (copied into the image by the install hook).
# Any other file under mkinitcpio/ is reported, not installed.
if [ -d "$repo/mkinitcpio" ]; then
    while IFS= read -r -d '' f; do
        rel=${f#"$repo/mkinitcpio/"}
        case "$rel" in
            install/netboot | hooks/netboot) put "$f" "/usr/lib/initcpio/$rel" 0644 ;;
            netboot-generator) put "$f" /usr/lib/initcpio/netboot-generator 0755 ;;
            *.service) put "$f" "/usr/lib/systemd/system/$rel" 0644 ;;
            *) warn "mkinitcpio/$rel: not part of the install layout, not installed" ;;
        esac
    done < <(find "$repo/mkinitcpio" -type f ! -name '*~' ! -name '.*' -print0 | sort -z)
    for f in install/netboot hooks/netboot; do
        [ -f "$repo/mkinitcpio/$f" ] || warn "mkinitcpio/$f missing"
    done
else
    warn "mkinitcpio/ not in this checkout: mkinitcpio hook not installed"
fi

# The --help texts as man-page-like text files. The commands are the ones
# `netboot --help` lists under "commands:" (two-space indent, name first).
docdir=/usr/share/doc/netboot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$dist/netboot" --help >"$tmp/netboot.txt"
put "$tmp/netboot.txt" "$docdir/netboot.txt" 0644
cmds=$(awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' "$tmp/netboot.txt")
[ -n "$cmds" ] || die "'netboot --help' lists no commands"
for c in $cmds; do
    "$dist/netboot" help "$c" >"$tmp/netboot-$c.txt" || die "'netboot help $c' failed"
    put "$tmp/netboot-$c.txt" "$docdir/netboot-$c.txt" 0644
done
"$dist/netboot-configd" --help >"$tmp/netboot-configd.txt"
put "$tmp/netboot-configd.txt" "$docdir/netboot-configd.txt" 0644
