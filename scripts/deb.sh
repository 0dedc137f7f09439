#!/usr/bin/env bash
# Build the Debian package of netboot with dpkg-deb, from exactly the layout
# scripts/install.sh installs.
#
#   bash scripts/build.sh                 # first: the static binaries → target/dist/
#   scripts/deb.sh [--out DIR] [--dist DIR]
#
# Package netboot, Architecture amd64 (the binaries are static x86_64: no
# Depends), Version = Cargo.toml's [package] version. Control files come from
# debian-pkg/: control.in, and triggers = `activate-noawait update-initramfs`,
# so dpkg runs initramfs-tools' update-initramfs after install, upgrade and
# removal; no maintainer scripts. debian-pkg/copyright goes to
# /usr/share/doc/netboot/copyright. Files are owned by root (--root-owner-group).
# Default --out: target/dist. Prints the path of the .deb on the last line.
set -euo pipefail

die() { echo "deb.sh: $*" >&2; exit 1; }
usage() { echo "deb.sh: $* (usage: $0 [--out DIR] [--dist DIR])" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/target/dist" dist="$repo/target/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || usage "--out needs a directory"; out=$2; shift 2 ;;
        --dist) [ $# -ge 2 ] || usage "--dist needs a directory"; dist=$2; shift 2 ;;
        *) usage "unknown argument '$1'" ;;
    esac
done
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

# The first `version = "…"` of the [package] table.
version=$(awk '/^\[/ { pkg = ($0 == "[package]") } pkg && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$repo/Cargo.toml")
[ -n "$version" ] || die "no [package] version in Cargo.toml"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
"$repo/scripts/install.sh" --destdir "$stage" --dist "$dist" >/dev/null
install -D -m 0644 "$repo/debian-pkg/copyright" "$stage/usr/share/doc/netboot/copyright"

mkdir -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" \
    "$repo/debian-pkg/control.in" >"$stage/DEBIAN/control"
install -m 0644 "$repo/debian-pkg/triggers" "$stage/DEBIAN/triggers"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

mkdir -p "$out"
# Reproducible archive timestamps (dpkg-deb clamps mtimes to it): the last commit's time.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
deb="$(cd "$out" && pwd)/netboot_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
