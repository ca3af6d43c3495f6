#!/usr/bin/env bash
# check-cross-target.sh PYTHON LIBRARY
# PYTHON: an interpreter (its headers and its runtime); LIBRARY: a
# libpyimmortal.a built for a different CPython target. Checks that the
# mismatch can never go unnoticed:
#   1. an extension compiled for PYTHON and linked with LIBRARY fails to
#      import, naming the target symbol the library lacks;
#   2. calls that bypass the header's macros import, but the library's
#      run-time check refuses (returns 0) and says why on stderr.
set -euo pipefail
py=$1
lib=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

read -r inc platinc suffix tag < <("$py" -c 'import sys, sysconfig as s; p = s.get_paths(); print(p["include"], p["platinclude"], s.get_config_var("EXT_SUFFIX"), "%d_%d%s" % (sys.version_info[0], sys.version_info[1], "t" if s.get_config_var("Py_GIL_DISABLED") else ""))')
build() {
    cc -shared -fPIC -Wall -Wextra -Werror -I"$repo/include" -isystem "$inc" -isystem "$platinc" \
        "$@" "$repo/c_tests/cross/cross_target.c" "$lib" -lpthread -ldl -lm -lgcc_s \
        -o "$work/cross_target$suffix"
}

build
if out=$(cd "$work" && "$py" -c 'import cross_target' 2>&1); then
    echo "check-cross-target: a library for another target imported silently" >&2
    exit 1
fi
if ! grep -q "undefined symbol: pyimmortal_abi_cpython_$tag" <<<"$out"; then
    echo "$out" >&2
    echo "check-cross-target: the import error does not name pyimmortal_abi_cpython_$tag" >&2
    exit 1
fi
echo "check-cross-target: import refused: $(grep -o 'undefined symbol: [a-z_0-9]*' <<<"$out")"

rm -f "$work/cross_target$suffix"
build -DCROSS_TARGET_BYPASS
out=$(cd "$work" && "$py" -c 'import cross_target; print(cross_target.is_immortal(None))' 2>&1)
if [ "$(tail -n 1 <<<"$out")" != 0 ] || ! grep -q "pyimmortal: this library was built for CPython" <<<"$out"; then
    echo "$out" >&2
    echo "check-cross-target: the run-time check did not refuse" >&2
    exit 1
fi
echo "check-cross-target: run-time check refused: $(grep 'pyimmortal:' <<<"$out")"
