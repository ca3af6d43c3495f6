#!/usr/bin/env bash
# Installs what building and testing pyimmortal needs on a Debian machine
# with rustup: cmake, a C/C++ compiler, libclang (for bindgen), debootstrap
# (for the Debian sid interpreters), rustfmt/clippy and the pinned cbindgen.
# Idempotent; quick when everything is present.
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
CBINDGEN_VERSION=0.29.4
if [ "$(cbindgen --version 2>/dev/null | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
    echo "setup-host: installing cbindgen $CBINDGEN_VERSION"
    cargo install --locked --quiet cbindgen --version "$CBINDGEN_VERSION"
fi
