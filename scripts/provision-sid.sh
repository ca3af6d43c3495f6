#!/usr/bin/env bash
# provision-sid.sh: build (once) a Debian sid root filesystem that provides
# CPython 3.13, 3.14 and 3.15 together with their debug builds and the C/C++
# build tools, so the extension can be built and tested against every
# interpreter without touching the host system.
#
# The root lives outside the repository, in
#   ${PYIMMORTAL_CACHE:-$HOME/.cache/pyimmortal}/sid-root
# and is finished by a stamp file; a later run that finds the stamp returns at
# once.  Use scripts/sid-exec.sh to run commands inside it.
#
# Environment:
#   PYIMMORTAL_CACHE        cache directory (default: $HOME/.cache/pyimmortal)
#   PYIMMORTAL_SID_MIRROR   Debian mirror to use (default: the first mirror of
#                           the host's apt sources that serves sid, else
#                           http://deb.debian.org/debian)
#   PYIMMORTAL_REPROVISION  set to 1 to delete the root and build it again
#
# Needs root (debootstrap, chroot and mounts); runs apt-get on the host only
# to install debootstrap when it is missing.
set -euo pipefail

STAMP_NAME=.pyimmortal-provisioned-v1
BOOTSTRAP_MARK=.pyimmortal-debootstrap-done

CACHE=${PYIMMORTAL_CACHE:-$HOME/.cache/pyimmortal}
ROOT=$CACHE/sid-root
PARTIAL=$CACHE/sid-root.partial
STAMP=$ROOT/$STAMP_NAME

PY_VERSIONS=(3.13 3.14 3.15)
BUILD_TOOLS=(gcc g++ make cmake libclang-dev libc6-dev ca-certificates)

START=$SECONDS

log() { printf '[provision-sid %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf '[provision-sid] ERROR: %s\n' "$*" >&2; exit 1; }

# --- fast path -------------------------------------------------------------

if [[ ${PYIMMORTAL_REPROVISION:-0} != 1 && -f $STAMP ]]; then
    log "sid root already provisioned: $ROOT"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot and mount need it); try: sudo -E $0"
[[ $(uname -m) == x86_64 ]] || log "warning: host is $(uname -m); the root is built for the host's Debian architecture"

mkdir -p "$CACHE"

# Serialise concurrent provisioning runs on the same cache.
exec 9>"$CACHE/.provision.lock"
if ! flock -n 9; then
    log "another provisioning run holds $CACHE/.provision.lock; waiting"
    flock 9
fi
if [[ ${PYIMMORTAL_REPROVISION:-0} != 1 && -f $STAMP ]]; then
    log "sid root was provisioned by a concurrent run: $ROOT"
    exit 0
fi

# --- helpers ---------------------------------------------------------------

# Unmount anything still mounted at or below $1 (deepest first).
unmount_below() {
    local dir mnt
    dir=$(realpath -m "$1")
    # /proc/self/mountinfo field 5 is the mount point (octal-escaped).
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r |
        while IFS= read -r mnt; do
            mnt=$(printf '%b' "$mnt")
            umount -l "$mnt" 2>/dev/null || true
        done
}

# Remove a (possibly half-made) root without ever crossing into a mount.
remove_root() {
    local dir=$1
    [[ -e $dir ]] || return 0
    unmount_below "$dir"
    rm -rf --one-file-system "$dir"
}

# Fetch URL $1 quietly to stdout-less success/failure (used for probing).
url_ok() {
    local url=$1
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --max-time 20 -o /dev/null "$url"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 20 -t 1 -O /dev/null "$url"
    else
        local tmp rc=0
        tmp=$(mktemp)
        /usr/lib/apt/apt-helper download-file "$url" "$tmp" >/dev/null 2>&1 || rc=$?
        rm -f "$tmp"
        return "$rc"
    fi
}

# Print the archive URIs of the host's apt sources, one per line, in order.
# Understands one-line .list files and deb822 .sources files; skips
# deb-src entries, disabled stanzas and security archives.
host_mirrors() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk '
            /^[[:space:]]*deb[[:space:]]/ {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if (i <= NF) print $i
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk '
            function flush() {
                if (isdeb && enabled && uris != "") {
                    n = split(uris, u, /[[:space:]]+/)
                    for (k = 1; k <= n; k++) if (u[k] != "") print u[k]
                }
                isdeb = 0; enabled = 1; uris = ""
            }
            BEGIN { enabled = 1 }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "types:" { for (k = 2; k <= NF; k++) if ($k == "deb") isdeb = 1 }
            tolower($1) == "enabled:" { if (tolower($2) == "no") enabled = 0 }
            tolower($1) == "uris:" { sub(/^[^:]*:[[:space:]]*/, ""); uris = $0 }
            END { flush() }' "$f"
    done
}

choose_mirror() {
    local m
    if [[ -n ${PYIMMORTAL_SID_MIRROR:-} ]]; then
        m=${PYIMMORTAL_SID_MIRROR%/}
        url_ok "$m/dists/sid/InRelease" || url_ok "$m/dists/sid/Release" ||
            die "PYIMMORTAL_SID_MIRROR=$m does not serve dists/sid"
        printf '%s\n' "$m"
        return
    fi
    local -a candidates=()
    mapfile -t candidates < <(host_mirrors | grep -v -i security | awk '!seen[$0]++')
    candidates+=(http://deb.debian.org/debian)
    for m in "${candidates[@]}"; do
        m=${m%/}
        [[ $m == http://* || $m == https://* ]] || continue
        log "probing mirror $m for sid"
        if url_ok "$m/dists/sid/InRelease" || url_ok "$m/dists/sid/Release"; then
            printf '%s\n' "$m"
            return
        fi
    done
    die "no reachable Debian mirror serves sid (tried: ${candidates[*]}); set PYIMMORTAL_SID_MIRROR"
}

# Run a command inside $1 (a root) with /proc, /dev and /sys available, in a
# private mount namespace so nothing stays mounted afterwards.
in_root() {
    local root=$1
    shift
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --propagation private -- /bin/bash -euc '
        root=$1; shift
        mount --rbind /proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mount --rbind /sys "$root/sys"
        exec chroot "$root" /usr/bin/env -i \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
            DEBCONF_NONINTERACTIVE_SEEN=true "$@"
    ' in_root "$root" "$@"
}

# --- host prerequisites ----------------------------------------------------

command -v unshare >/dev/null 2>&1 || die "unshare (util-linux) is required"
command -v chroot >/dev/null 2>&1 || die "chroot (coreutils) is required"

if ! command -v debootstrap >/dev/null 2>&1 && [[ ! -x /usr/sbin/debootstrap ]]; then
    log "installing debootstrap on the host (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed on the host"
    apt-get install -y -qq --no-install-recommends debootstrap debian-archive-keyring wget \
        >/dev/null || die "could not install debootstrap on the host"
fi
DEBOOTSTRAP=$(command -v debootstrap || echo /usr/sbin/debootstrap)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $KEYRING ]] || die "$KEYRING is missing (install debian-archive-keyring)"

# --- stage 1: debootstrap --------------------------------------------------

if [[ ${PYIMMORTAL_REPROVISION:-0} == 1 && -e $ROOT ]]; then
    log "PYIMMORTAL_REPROVISION=1: removing $ROOT"
    remove_root "$ROOT"
fi

if [[ -e $ROOT && ! -f $ROOT/$BOOTSTRAP_MARK ]]; then
    log "removing incomplete root $ROOT"
    remove_root "$ROOT"
fi

MIRROR=$(choose_mirror)
log "using mirror $MIRROR"

if [[ ! -e $ROOT ]]; then
    remove_root "$PARTIAL"
    log "debootstrap --variant=minbase sid into $PARTIAL (takes a few minutes)"
    # debootstrap mounts /proc and /sys in the target itself; a private mount
    # namespace guarantees they are gone even if it is killed.
    if ! unshare --mount --propagation private -- \
        "$DEBOOTSTRAP" --variant=minbase --components=main --keyring="$KEYRING" \
        sid "$PARTIAL" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 25 "$CACHE/debootstrap.log" >&2 || true
        if [[ -f $PARTIAL/debootstrap/debootstrap.log ]]; then
            cp "$PARTIAL/debootstrap/debootstrap.log" "$CACHE/debootstrap-target.log" || true
        fi
        remove_root "$PARTIAL"
        die "debootstrap failed (log: $CACHE/debootstrap.log); the half-made root was removed"
    fi
    touch "$PARTIAL/$BOOTSTRAP_MARK"
    mv "$PARTIAL" "$ROOT"
    log "debootstrap finished"
else
    log "reusing bootstrapped root $ROOT"
fi

# --- stage 2: configure apt and install packages ---------------------------

log "configuring apt and dpkg inside the root"
printf 'deb %s sid main\n' "$MIRROR" >"$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/apt.conf.d/90pyimmortal" <<'EOF'
// Written by scripts/provision-sid.sh: keep the root small and quiet.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::Retries "3";
EOF
# A mirror that is a frozen snapshot serves a Release file whose Valid-Until
# has passed; follow the host's apt policy on that.
host_apt_config=$(apt-config dump 2>/dev/null || true)
if grep -qx 'Acquire::Check-Valid-Until "false";' <<<"$host_apt_config"; then
    echo 'Acquire::Check-Valid-Until "false";' >>"$ROOT/etc/apt/apt.conf.d/90pyimmortal"
fi
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/90pyimmortal" <<'EOF'
# Written by scripts/provision-sid.sh: skip documentation and translations.
force-unsafe-io
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
# No service may start inside the root.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
# Name resolution for apt while provisioning; nothing run later needs it.
rm -f "$ROOT/etc/resolv.conf"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

log "apt-get update inside the root"
update_out=$(in_root "$ROOT" apt-get update 2>&1) || {
    if grep -qiE 'expired|not valid yet' <<<"$update_out"; then
        log "the mirror's Release file is outside its validity window; disabling that check"
        echo 'Acquire::Check-Valid-Until "false";' >>"$ROOT/etc/apt/apt.conf.d/90pyimmortal"
        update_out=$(in_root "$ROOT" apt-get update 2>&1) ||
            { printf '%s\n' "$update_out" >&2; die "apt-get update failed inside the root"; }
    else
        printf '%s\n' "$update_out" >&2
        die "apt-get update failed inside the root"
    fi
}
if grep -qE '^(W|E):' <<<"$update_out"; then
    grep -E '^(W|E):' <<<"$update_out" >&2
fi

# Is package $1 installable from the root's sources?
have_pkg() {
    local cand
    cand=$(in_root "$ROOT" apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    [[ -n $cand && $cand != "(none)" ]]
}

log "CPython packages that sid offers:"
in_root "$ROOT" apt-cache search --names-only '^python3\.[0-9]+(-dev|-dbg)?$' 2>/dev/null |
    sort -V | sed 's/^/    /' >&2 || true

PACKAGES=("${BUILD_TOOLS[@]}")
MISSING=()
for v in "${PY_VERSIONS[@]}"; do
    for p in "python$v" "python$v-dev" "python$v-dbg"; do
        if have_pkg "$p"; then
            PACKAGES+=("$p")
        else
            MISSING+=("$p")
            log "SKIP: sid has no package $p"
        fi
    done
done
for p in "${BUILD_TOOLS[@]}"; do
    have_pkg "$p" || die "sid has no package $p (needed as a build tool)"
done

log "installing: ${PACKAGES[*]}"
if ! in_root "$ROOT" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${PACKAGES[@]}" >"$CACHE/apt-install.log" 2>&1; then
    tail -n 30 "$CACHE/apt-install.log" >&2 || true
    die "apt-get install failed inside the root (log: $CACHE/apt-install.log); rerun to retry"
fi
in_root "$ROOT" apt-get clean

# --- stage 3: verify and stamp ---------------------------------------------

log "interpreters inside the root:"
found=0
for v in "${PY_VERSIONS[@]}"; do
    for exe in "python$v" "python${v}d"; do
        if [[ -x $ROOT/usr/bin/$exe ]]; then
            info=$(in_root "$ROOT" "/usr/bin/$exe" -c \
                'import sys; print(sys.version.split()[0], "abiflags=%r" % sys.abiflags)' 2>&1) ||
                die "/usr/bin/$exe is installed but does not run: $info"
            log "    /usr/bin/$exe: $info"
            found=$((found + 1))
        fi
    done
done
[[ $found -gt 0 ]] || die "no CPython interpreter ended up in the root"
compgen -G "$ROOT/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null ||
    die "libclang is missing from the root"

{
    echo "provisioned $(date -u +%Y-%m-%dT%H:%M:%SZ) from $MIRROR"
    echo "installed: ${PACKAGES[*]}"
    echo "missing: ${MISSING[*]:-}"
} >"$STAMP"
log "done: $ROOT ($(du -sh --one-file-system "$ROOT" 2>/dev/null | cut -f1))"
if [[ ${#MISSING[@]} -gt 0 ]]; then
    log "note: not available in sid and skipped: ${MISSING[*]}"
fi
