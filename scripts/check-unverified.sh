#!/usr/bin/env bash
# Building for a CPython that pyimmortal never verified must stop with a
# message that names what is unverified, and must never fall back to a
# neighbouring version's layout.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if PYIMMORTAL_PYTHON="$PWD/c_tests/unverified/fake-python3.16" \
    cargo build --locked --lib --target-dir _build/unverified >"$log" 2>&1; then
    echo "check-unverified: building for CPython 3.16 succeeded; it must fail" >&2
    exit 1
fi
for want in "cannot be built for CPython 3.16" "outside the verified range" "unverified"; do
    if ! grep -q "$want" "$log"; then
        cat "$log" >&2
        echo "check-unverified: the error does not say \"$want\"" >&2
        exit 1
    fi
done
echo "check-unverified: CPython 3.16 refused with:"
grep -E "error: pyimmortal|= note" "$log"
