#!/usr/bin/env bash
# sid-exec.sh CMD [ARGS...]: run a command inside the Debian sid root made by
# scripts/provision-sid.sh, in the current working directory.
#
# These host paths appear at the same paths inside the root (bind mounts):
#   - the current git checkout (or the current directory outside git),
#   - ${CARGO_HOME:-$HOME/.cargo} and ${RUSTUP_HOME:-$HOME/.rustup},
#   - /proc, /dev and /sys;
# /tmp is a private, empty tmpfs.  The mounts live in a private mount
# namespace (unshare), so they vanish when the command ends and concurrent
# runs do not see each other's mounts.  Without unshare the mounts are made
# in the host namespace and removed again on exit; concurrent runs of that
# fallback share the mounts and should be avoided.
#
# The command gets a clean environment: PATH (cargo's bin directory first,
# then the usual sid PATH), HOME, CARGO_HOME, RUSTUP_HOME, LANG=C.UTF-8,
# TERM, and every PYIMMORTAL_* variable.  Nothing at run time needs the
# network, so the root's /etc/resolv.conf does not matter.
#
# The exit status is the command's own (125 if sid-exec itself fails,
# 126/127 if the command cannot be run or is not found).
set -euo pipefail

STAMP_NAME=.pyimmortal-provisioned-v1

die() { printf 'sid-exec: %s\n' "$*" >&2; exit 125; }

# --- inner half: runs inside the new mount namespace -----------------------
#
# Called as: sid-exec.sh --sid-exec-inner ROOT CWD N KIND SRC DST ... -- ENV... -- CMD...
# with N (KIND, SRC, DST) mount triples.
if [[ ${1:-} == --sid-exec-inner ]]; then
    shift
    root=$1 cwd=$2 nmounts=$3
    shift 3
    mounted=()
    cleanup() {
        local i
        for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
            umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
        done
    }
    if [[ ${SID_EXEC_CLEANUP:-0} == 1 ]]; then
        trap cleanup EXIT
        trap 'exit 129' HUP
        trap 'exit 130' INT
        trap 'exit 143' TERM
    fi
    mkpoint() { # mkdir -p with a hint for unprivileged callers
        mkdir -p "$1" 2>/dev/null && return 0
        if [[ ${SID_EXEC_UNPRIVILEGED:-0} == 1 ]]; then
            die "cannot create mount point $1 in the root-owned tree; create it once as root: mkdir -p '$1'"
        fi
        die "cannot create mount point $1"
    }
    # Refuse a mount point that resolves outside the root (an absolute
    # symlink inside the root would otherwise redirect the mount to the host).
    target_in_root() {
        local t
        t=$(realpath -m "$1")
        [[ $t == "$root" || $t == "$root"/* ]] || die "mount point $1 resolves outside the root ($t)"
    }
    mount_one() { # kind src dst
        local kind=$1 src=$2 dst=$root$3
        target_in_root "$dst"
        if [[ $kind == tmpfs ]]; then
            mkpoint "$dst"
            mount -t tmpfs -o mode=1777,nosuid,nodev sid-exec-tmp "$dst" ||
                die "cannot mount a tmpfs on $dst"
        else
            if [[ -d $src ]]; then
                mkpoint "$dst"
            elif [[ ! -e $dst ]]; then
                mkpoint "$(dirname "$dst")"
                : >"$dst" || die "cannot create mount point $dst"
            fi
            target_in_root "$dst"
            mount --rbind "$src" "$dst" || die "cannot bind-mount $src on $dst"
        fi
        mounted+=("$dst")
    }
    for ((i = 0; i < nmounts; i++)); do
        mount_one "$1" "$2" "$3"
        shift 3
    done
    [[ $1 == -- ]] || die "internal error: bad argument list"
    shift
    envs=()
    while [[ $1 != -- ]]; do
        envs+=("$1")
        shift
    done
    shift
    status=0
    if [[ ${SID_EXEC_CLEANUP:-0} == 1 ]]; then
        # Stay around to unmount afterwards; pass termination signals on to
        # the command and wait for it (stdin is kept: 0<&0).
        chroot "$root" /usr/bin/env -i -C "$cwd" "${envs[@]}" "$@" 0<&0 &
        child=$!
        trap 'kill -HUP "$child" 2>/dev/null || true' HUP
        trap 'kill -INT "$child" 2>/dev/null || true' INT
        trap 'kill -TERM "$child" 2>/dev/null || true' TERM
        while :; do
            status=0
            wait "$child" || status=$?
            kill -0 "$child" 2>/dev/null || break
        done
        exit "$status"
    fi
    exec chroot "$root" /usr/bin/env -i -C "$cwd" "${envs[@]}" "$@"
fi

# --- outer half ------------------------------------------------------------

if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    [[ $# -eq 0 ]] && exit 2
    exit 0
fi

SELF=$(realpath "${BASH_SOURCE[0]}")
CACHE=${PYIMMORTAL_CACHE:-$HOME/.cache/pyimmortal}
ROOT=$(realpath -m "$CACHE/sid-root")
[[ -f $ROOT/$STAMP_NAME ]] ||
    die "no provisioned sid root at $ROOT; run scripts/provision-sid.sh first"

cwd=$(pwd -P)
top=$(git -c safe.directory="*" -C "$cwd" rev-parse --show-toplevel 2>/dev/null || true)
[[ -n $top ]] || top=$cwd
top=$(realpath -m "$top")
[[ $top != / ]] || die "refusing to bind-mount / into the root; run from inside a checkout"

cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}

# Mount list: kind, source, destination (inside the root).  Order matters:
# the private /tmp comes before anything that may live below /tmp.
mounts=(
    bind /proc /proc
    bind /dev /dev
    bind /sys /sys
    tmpfs - /tmp
)
add_bind() {
    local src=$1
    if [[ ! -e $src ]]; then
        printf 'sid-exec: note: %s does not exist on the host; not mounted\n' "$src" >&2
        return
    fi
    mounts+=(bind "$(realpath "$src")" "$src")
}
add_bind "$cargo_home"
add_bind "$rustup_home"
add_bind "$top"

envs=(
    "PATH=$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "HOME=$HOME"
    "CARGO_HOME=$cargo_home"
    "RUSTUP_HOME=$rustup_home"
    "LANG=C.UTF-8"
)
[[ -n ${TERM:-} ]] && envs+=("TERM=$TERM")
while IFS= read -r name; do
    [[ $name == PYIMMORTAL_* ]] && envs+=("$name=${!name}")
done < <(compgen -e)

inner=(--sid-exec-inner "$ROOT" "$cwd" "$((${#mounts[@]} / 3))" "${mounts[@]}" -- "${envs[@]}" -- "$@")

if [[ $(id -u) -eq 0 ]]; then
    userns=()
else
    # Unprivileged: a user namespace mapping the caller to root allows the
    # mounts and chroot; files written in the checkout keep the caller's uid.
    userns=(--user --map-root-user)
    export SID_EXEC_UNPRIVILEGED=1
fi

if command -v unshare >/dev/null 2>&1 &&
    unshare "${userns[@]}" --mount --propagation private true 2>/dev/null; then
    exec unshare "${userns[@]}" --mount --propagation private -- "$BASH" "$SELF" "${inner[@]}"
fi

[[ $(id -u) -eq 0 ]] || die "unshare is unavailable and mounting needs root"
printf 'sid-exec: note: unshare unavailable; mounting in the host namespace\n' >&2
SID_EXEC_CLEANUP=1 exec "$BASH" "$SELF" "${inner[@]}"
