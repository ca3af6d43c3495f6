#!/usr/bin/env bash
# Regenerates include/pyimmortal.h from src/ with the pinned cbindgen.
#   scripts/regen-header.sh          rewrite the header
#   scripts/regen-header.sh --check  fail if the committed header is stale
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.4
cbindgen=${CBINDGEN:-cbindgen}
if [ "$("$cbindgen" --version 2>/dev/null | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
    echo "regen-header: installing cbindgen $CBINDGEN_VERSION" >&2
    cargo install --locked --quiet cbindgen --version "$CBINDGEN_VERSION"
    cbindgen="${CARGO_HOME:-$HOME/.cargo}/bin/cbindgen"
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$cbindgen" --quiet --config cbindgen.toml --crate pyimmortal --output "$tmp" .

if [ "${1:-}" = "--check" ]; then
    if ! diff -u include/pyimmortal.h "$tmp"; then
        echo "regen-header: include/pyimmortal.h is stale; run scripts/regen-header.sh" >&2
        exit 1
    fi
    echo "regen-header: include/pyimmortal.h is up to date"
else
    cp "$tmp" include/pyimmortal.h
    echo "regen-header: wrote include/pyimmortal.h"
fi
