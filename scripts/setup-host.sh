#!/usr/bin/env bash
# Installs what building and testing pyimmortal needs on a Debian machine
# with rustup: cmake, a C/C++ compiler, libclang (for bindgen), debootstrap
# (for the Debian sid interpreters) and rustfmt/clippy. The pinned cbindgen
# is installed on demand by scripts/regen-header.sh. Idempotent; quick when
# everything is present.
set -euo pipefail

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
command -v debootstrap >/dev/null || need+=(debootstrap)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup-host: installing ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
