#!/usr/bin/env bash
# Growth of the shipped `netboot` binary per feature (README "Measured", issue
# 15 item 6): builds the static binary with the project's own scripts/build.sh
# at a list of commits, one after the other, and prints the size at each
# point and the delta each commit added.
#
#   bash bench/size-history.sh [--dir DIR] [--since COMMIT] [--no-tree] [--bloat]
#                              [COMMIT=LABEL ...]
#
# Points: with COMMIT=LABEL arguments, those; otherwise --since COMMIT
# (default c45bac4, the commit before `netboot attach`, the first feature of
# issue 14's round) and every later commit on the current branch that
# changes what goes into the binary (src/, Cargo.toml, Cargo.lock, .cargo/,
# scripts/build.sh), labelled with its subject. One point per commit rather
# than one per feature: in this history features overlap (75c0f22, an attach
# commit, also brought the first IPv6/DHCPv6 and iBFT code wired into the
# boot), so the rows show where the bytes came in and the per-module shares
# of --bloat show what each feature weighs now.
# The last point is the working tree as it is now ("tree": tracked files plus
# untracked, not ignored ones; --no-tree leaves it out), so a feature that has
# not been committed yet (rxkad while this was written) is measured too.
#
# Each point is a copy of the commit's tree (`git archive`, so the clone's
# worktree, index and refs are not touched) in DIR/src-<commit> (default DIR:
# /tmp/size-history, outside the clone), whose target/ is a link to one
# shared DIR/target: consecutive builds reuse std and the dependencies when
# the flags and Cargo.lock are unchanged. A commit's binary is kept as
# DIR/netboot-<commit> and not built again on the next run (the working tree
# always is). Cargo runs offline (CARGO_NET_OFFLINE): every point's Cargo.lock
# must be in the local registry cache, as it is after ordinary builds.
# Prints one line per build on stderr, then a markdown table: commit, label,
# bytes of the file, delta, text+data (size -B) and its delta (the file grows
# in whole pages; text+data shows the change below that step).
#
# --bloat: afterwards, `cargo bloat` (installed as a cargo subcommand) on the
# last point with the shipped flags but symbols kept (strip = false):
# per-crate shares of .text, and netboot's own code per module (from the
# function names; LTO inlines across modules and crates, so these are shares
# of what is left as separate functions, not exact costs).
set -euo pipefail

die() { echo "size-history: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=/tmp/size-history tree=1 bloat=0 since=c45bac4 points=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --since) since=$2; shift 2 ;;
        --no-tree) tree=0; shift ;;
        --bloat) bloat=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *=*) points+=("$1"); shift ;;
        *) die "'$1': want COMMIT=LABEL" ;;
    esac
done
if [ ${#points[@]} = 0 ]; then
    git -C "$repo" rev-parse --verify -q "$since^{commit}" >/dev/null || die "--since $since: no such commit"
    points=("$since=$(git -C "$repo" log -1 --format=%s "$since" | cut -c1-80) (baseline)")
    while read -r c subject; do
        points+=("$c=$(cut -c1-80 <<<"$subject" | tr "|" "/")")
    done < <(git -C "$repo" log --reverse --format='%h %s' "$since..HEAD" -- src Cargo.toml Cargo.lock .cargo scripts/build.sh)
fi
[ "$tree" = 0 ] || points+=("tree=working tree ($(git -C "$repo" status --porcelain -- src Cargo.toml Cargo.lock | wc -l) changed/new files under src/, Cargo.*)")
case "$dir" in "$repo" | "$repo"/*) die "--dir $dir is inside the clone; use a directory outside it" ;; esac
mkdir -p "$dir/target"
export CARGO_NET_OFFLINE=true

# prepare POINT -> prints the source directory of that point
prepare() {
    local c=$1 src
    if [ "$c" = tree ]; then
        src="$dir/src-tree"
        rm -rf "$src"
        mkdir -p "$src"
        (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
            | tar --null -T - -cf -) | tar -xf - -C "$src"
    else
        local full
        full=$(git -C "$repo" rev-parse --verify -q "$c^{commit}") || die "no commit '$c'"
        src="$dir/src-${full:0:12}"
        if [ ! -f "$src/Cargo.toml" ]; then
            rm -rf "$src"
            mkdir -p "$src"
            git -C "$repo" archive "$full" | tar -xf - -C "$src"
        fi
    fi
    # git archive keeps the commit's mtimes, older than the shared target's
    # outputs: cargo would take the previous point's build as fresh.
    find "$src" -type f -exec touch {} +
    rm -rf "$src/target"
    ln -s "$dir/target" "$src/target"
    echo "$src"
}

results="$dir/results.tsv"
: >"$results"
echo "size-history: $(rustc -V); builds in $dir (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
for p in "${points[@]}"; do
    c=${p%%=*} label=${p#*=}
    if [ "$c" = tree ]; then
        short=tree
    else
        short=$(git -C "$repo" rev-parse --short "$c^{commit}")
    fi
    if [ "$c" != tree ] && [ -s "$dir/netboot-$short" ]; then
        bin="$dir/netboot-$short"
        bytes=$(stat -c %s "$bin")
        td=$(size -B "$bin" | awk 'NR == 2 { print $1 + $2 }')
        echo "size-history: $short ($label): $bytes bytes, text+data $td (kept from an earlier run)" >&2
        printf '%s\t%s\t%s\t%s\n' "$label" "$short" "$bytes" "$td" >>"$results"
        continue
    fi
    src=$(prepare "$c")
    start=$(date +%s)
    if ! (cd "$src" && bash scripts/build.sh >"$dir/build-$short.log" 2>&1); then
        tail -n 20 "$dir/build-$short.log" >&2
        echo "size-history: $short ($label): build failed (log $dir/build-$short.log)" >&2
        printf '%s\t%s\t-\t-\n' "$label" "$short" >>"$results"
        continue
    fi
    bin="$src/target/dist/netboot"
    bytes=$(stat -c %s "$bin")
    td=$(size -B "$bin" | awk 'NR == 2 { print $1 + $2 }')
    cp "$bin" "$dir/netboot-$short"
    echo "size-history: $short ($label): $bytes bytes, text+data $td, built in $(($(date +%s) - start)) s" >&2
    printf '%s\t%s\t%s\t%s\n' "$label" "$short" "$bytes" "$td" >>"$results"
done

echo
echo "\`netboot\` static (scripts/build.sh at each point; $(rustc -V | cut -d' ' -f1-2))"
echo
echo "| commit | what | bytes | Δ bytes | text+data | Δ text+data |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '
    function signed(x) { return (x >= 0 ? "+" : "") x }
    {
        if ($3 == "-") { printf "| %s | %s | build failed | | | |\n", $2, $1; next }
        d = (pb == "") ? "" : signed($3 - pb)
        dt = (pt == "") ? "" : signed($4 - pt)
        printf "| %s | %s | %d | %s | %d | %s |\n", $2, $1, $3, d, $4, dt
        pb = $3; pt = $4
    }' "$results"
budget=1048576
last=$(awk -F'\t' '$3 != "-" { b = $3 } END { print b }' "$results")
if [ -n "$last" ]; then
    echo
    if [ "$last" -le "$budget" ]; then
        echo "last point: $last bytes, $((budget - last)) under the 1 MiB budget"
    else
        echo "last point: $last bytes, OVER the 1 MiB budget by $((last - budget))"
    fi
fi

[ "$bloat" = 1 ] || exit 0
command -v cargo-bloat >/dev/null || { echo "size-history: cargo-bloat not installed; no per-crate shares" >&2; exit 0; }
lastp=${points[${#points[@]} - 1]}
src=$(prepare "${lastp%%=*}")
json="$dir/bloat.json"
# The flags of scripts/build.sh (kept in step by hand), symbols kept.
(cd "$src" && RUSTC_BOOTSTRAP=1 CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR="$dir/target/bloat" \
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort -C force-unwind-tables=no -C link-arg=-Wl,--no-eh-frame-hdr" \
    cargo bloat --release --locked --bin netboot --target x86_64-unknown-linux-musl \
    -Z build-std=std,panic_abort -n 0 --message-format json >"$json" 2>"$dir/bloat.log") \
    || { tail -n 20 "$dir/bloat.log" >&2; die "cargo bloat failed (log $dir/bloat.log)"; }
python3 - "$json" <<'EOF'
import collections, json, sys
d = json.load(open(sys.argv[1]))
text = d["text-section-size"]
fns = d["functions"]
crates = collections.Counter()
mods = collections.Counter()
for f in fns:
    crates[f.get("crate") or "?"] += f["size"]
    if f.get("crate") == "netboot":
        name = f["name"].lstrip("<")
        parts = name.split("::")
        key = "::".join(parts[:2]) if len(parts) > 2 else parts[0]
        mods[key] += f["size"]
known = sum(crates.values())
print()
print(f"`cargo bloat` of {d.get('file-size', 0)} bytes unstripped; .text {text} bytes, "
      f"{known} of it in {len(fns)} named functions")
print()
print("| crate | .text bytes | share of .text |")
print("|---|---|---|")
for c, s in crates.most_common(12):
    print(f"| {c} | {s} | {100 * s / text:.1f} % |")
print()
print("| netboot module | .text bytes | share of .text |")
print("|---|---|---|")
for m, s in mods.most_common(20):
    print(f"| {m} | {s} | {100 * s / text:.1f} % |")
EOF
