# shellcheck shell=bash
# A stand-in for the build-time API mkinitcpio gives install hooks
# (mkinitcpio(8) "About install hooks"; add_systemd_unit/add_systemd_drop_in
# from install/systemd), written for our tests: mkinitcpio is not packaged
# for Debian. Nothing here is mkinitcpio's code; each function does what the
# manual says, in the smallest way that lets us check our hook.
#
# Source it, then set:
#   fake_record FILE    every add_*/map call is appended to FILE, one line:
#                       the function name and its arguments, tab-separated
#                       (add_runscript also records "runscript NAME FUNC…",
#                       the runtime hook functions mkinitcpio would register)
#   fake_perform 0|1    1: also do it, into $BUILDROOT (qemu/mkinitcpio/build.sh)
#   fake_hooks_dir DIR  where add_runscript finds hooks/NAME
#   fake_kroot DIR      kernel root holding lib/modules/$KERNELVERSION
#   fake_autodetect     space-separated module names: the whitelist
#                       add_checked_modules filters by (the autodetect hook's);
#                       empty = no autodetect hook
#   fake_systemd 1      defines add_systemd_unit/add_systemd_drop_in, as the
#                       systemd hook does when it runs before ours
#   fake_unit_dir DIR   where add_systemd_unit finds units
# and BUILDROOT, KERNELVERSION as mkinitcpio does. _d_kmoduledir (the
# module directory, a variable of mkinitcpio's that install/netboot reads)
# is set from fake_kroot when that is given.

fake_record=${fake_record:-/dev/null}
fake_perform=${fake_perform:-0}
fake_hooks_dir=${fake_hooks_dir:-}
fake_kroot=${fake_kroot:-/}
fake_autodetect=${fake_autodetect:-}
fake_systemd=${fake_systemd:-0}
fake_unit_dir=${fake_unit_dir:-/usr/lib/systemd/system}
if [ "$fake_kroot" != / ]; then
    # shellcheck disable=SC2034 # read by the install hook
    _d_kmoduledir=$fake_kroot/lib/modules/$KERNELVERSION
fi
declare -A fake_modpaths=() fake_runhooks=()
fake_errors=0

fake_log() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$fake_record"
}

# Messages, as the manual's helpers: to stdout/stderr, never fatal.
msg() { local f=$1; shift; # shellcheck disable=SC2059
    printf "==> $f\n" "$@"; }
msg2() { local f=$1; shift; # shellcheck disable=SC2059
    printf "  -> $f\n" "$@"; }
plain() { local f=$1; shift; # shellcheck disable=SC2059
    printf "    $f\n" "$@"; }
quiet() { plain "$@"; }
warning() { local f=$1; shift; fake_log warning "$f" "$@"; # shellcheck disable=SC2059
    printf "==> WARNING: $f\n" "$@" >&2; }
error() { local f=$1; shift; fake_log error "$f" "$@"; fake_errors=$((fake_errors + 1)); # shellcheck disable=SC2059
    printf "==> ERROR: $f\n" "$@" >&2; return 1; }

map() {
    local fn=$1 a r=0
    shift
    fake_log map "$fn" "$@"
    for a in "$@"; do
        "$fn" "$a" || r=1
    done
    return "$r"
}

fake_copy() { # SRC DEST [MODE]
    local src=$1 dest=$2 mode=${3:-}
    [ "$fake_perform" = 1 ] || return 0
    [ -e "$BUILDROOT$dest" ] && return 0
    mkdir -p "$BUILDROOT$(dirname "$dest")"
    if [ "$src" = - ]; then
        cat >"$BUILDROOT$dest"
    else
        cp -L "$src" "$BUILDROOT$dest" || return 1
    fi
    [ -z "$mode" ] || chmod "$mode" "$BUILDROOT$dest"
}

add_dir() {
    fake_log add_dir "$@"
    [ "$fake_perform" = 1 ] || return 0
    mkdir -p "$BUILDROOT$1"
}

add_file() {
    fake_log add_file "$@"
    local src=$1 dest=${2:-$1} mode=${3:-}
    if [ "$src" = - ]; then
        if [ "$fake_perform" = 1 ]; then fake_copy - "$dest" "$mode"; else cat >/dev/null; fi
        return 0
    fi
    [ -e "$src" ] || { [ "$fake_perform" = 0 ] && return 0; error "file not found: '%s'" "$src"; return 1; }
    fake_copy "$src" "$dest" "$mode"
}

add_symlink() {
    fake_log add_symlink "$@"
    [ "$fake_perform" = 1 ] || return 0
    local target=${2:-}
    [ -n "$target" ] || target=$(readlink "$1")
    mkdir -p "$BUILDROOT$(dirname "$1")"
    ln -sfn "$target" "$BUILDROOT$1"
}

# The binary, and for a dynamic ELF the libraries ldd names, at their paths.
add_binary() {
    fake_log add_binary "$@"
    [ "$fake_perform" = 1 ] || return 0
    local bin=$1 dest mode=${3:-} lib
    if [ "${bin:0:1}" != / ]; then
        bin=$(type -P "$bin") || { error "binary not found: '%s'" "$1"; return 1; }
    fi
    [ -f "$bin" ] || { error "binary not found: '%s'" "$bin"; return 1; }
    dest=${2:-$bin}
    fake_copy "$bin" "$dest" "${mode:-755}" || return 1
    while read -r lib; do
        [ -f "$lib" ] && fake_copy "$lib" "$lib"
    done < <(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true)
}

add_udev_rule() { fake_log add_udev_rule "$@"; }
add_firmware() { fake_log add_firmware "$@"; }
add_full_dir() { fake_log add_full_dir "$@"; }
add_initcpio_binary() { fake_log add_initcpio_binary "$@"; }
add_all_modules_from_symbol() { fake_log add_all_modules_from_symbol "$@"; }
add_checked_modules_from_symbol() { fake_log add_checked_modules_from_symbol "$@"; }

# add_module NAME[?]: NAME with its dependencies and softdeps as modprobe
# resolves them for the kernel in $fake_kroot; NAME? = optional.
add_module() {
    fake_log add_module "$@"
    [ "$fake_perform" = 1 ] || return 0
    local name=$1 optional=0 out line path
    case "$name" in *\?) optional=1 name=${name%\?} ;; esac
    if ! out=$(modprobe -d "$fake_kroot" -S "$KERNELVERSION" --show-depends "$name" 2>/dev/null); then
        [ "$optional" = 1 ] && return 0
        error "module not found: '%s'" "$name"
        return 1
    fi
    while read -r line; do
        case "$line" in
            "insmod "*)
                path=${line#insmod }
                # shellcheck disable=SC2034 # read by qemu/mkinitcpio/build.sh
                fake_modpaths[${path%% *}]=1
                ;;
        esac
    done <<<"$out"
}

# The module names under the kernel tree whose path matches PATTERN (ERE)
# and no -f FILTER.
fake_find_modules() {
    local OPTIND=1 OPTARG flag f p
    local -a filters=()
    while getopts 'f:' flag; do
        [ "$flag" = f ] && filters+=("$OPTARG")
    done
    shift $((OPTIND - 1))
    while IFS= read -r p; do
        for f in "${filters[@]}"; do
            [[ $p =~ $f ]] && continue 2
        done
        p=${p##*/}
        p=${p%%.ko*}
        printf '%s\n' "${p//-/_}"
    done < <(find "$fake_kroot/lib/modules/$KERNELVERSION/kernel" -name '*.ko*' | grep -E -- "$1")
}

add_all_modules() {
    fake_log add_all_modules "$@"
    [ "$fake_perform" = 1 ] || return 0
    local m
    while read -r m; do add_module "$m"; done < <(fake_find_modules "$@")
}

add_checked_modules() {
    fake_log add_checked_modules "$@"
    [ "$fake_perform" = 1 ] || return 0
    local m
    while read -r m; do
        if [ -z "$fake_autodetect" ] || [[ " $fake_autodetect " == *" $m "* ]]; then
            add_module "$m"
        fi
    done < <(fake_find_modules "$@")
}

# add_runscript: hooks/NAME (NAME = the install hook's file name) as
# /hooks/NAME, registered for each run_* function it defines.
add_runscript() {
    fake_log add_runscript "$@"
    local name=${BASH_SOURCE[1]##*/} script fn
    local -a funcs=()
    script=$fake_hooks_dir/$name
    [ -f "$script" ] || { error "runtime script for '%s' not found" "$name"; return 1; }
    mapfile -t funcs < <(grep -oE '^[[:space:]]*run_[a-z]+[[:space:]]*\(\)' "$script" | tr -d ' ()')
    fake_log runscript "$name" "${funcs[@]}"
    for fn in "${funcs[@]}"; do
        case $fn in
            run_earlyhook) fake_runhooks[early]+=" $name" ;;
            run_hook) fake_runhooks[hooks]+=" $name" ;;
            run_latehook) fake_runhooks[late]+=" $name" ;;
            run_cleanuphook) fake_runhooks[cleanup]="$name ${fake_runhooks[cleanup]:-}" ;;
            run_emergencyhook) fake_runhooks[emergency]="$name ${fake_runhooks[emergency]:-}" ;;
        esac
    done
    fake_copy "$script" "/hooks/$name" 755
}

if [ "$fake_systemd" = 1 ]; then
    add_systemd_unit() {
        fake_log add_systemd_unit "$@"
        local unit=$fake_unit_dir/$1 key value
        [ -f "$unit" ] || { [ "$fake_perform" = 0 ] && return 0; return 1; }
        fake_copy "$unit" "/usr/lib/systemd/system/$1"
        # Hard dependencies and the programs of Exec*=, as the systemd
        # hook's add_systemd_unit documents.
        while IFS='=' read -r key value; do
            case $key in
                Requires | OnFailure) fake_log unit_dependency "$1" "$key" "$value" ;;
                Exec*)
                    # "-" (failure ignored): not added; other prefixes stripped.
                    case $value in
                        -*) ;;
                        *)
                            value=${value#[@!:+]}
                            add_binary "${value%% *}"
                            ;;
                    esac
                    ;;
            esac
        done <"$unit"
    }
    add_systemd_drop_in() {
        fake_log add_systemd_drop_in "$@"
        add_file - "/etc/systemd/system/$1.d/$2.conf" 644
    }
fi
