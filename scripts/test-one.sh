#!/usr/bin/env bash
# test-one.sh PYTHON BUILD_DIR: runs every suite for one interpreter and
# writes "suite status" lines (passed / failed / skipped) to BUILD_DIR/results.
#   layout     the layout oracle: the library compiled against this
#              interpreter's own headers (src/cpython/oracle.rs compares every
#              size, offset and constant with bindgen's reading of them)
#   layout-ft  the same for the free-threaded layout of this version, read
#              from these headers with Py_GIL_DISABLED defined (GIL 3.13+)
#   rust       cargo test: unit tests, and ctest (systest/) checking the
#              header's constants against the Rust definitions
#   embed    C programs embedding the interpreter, one per API area
#   ext      a real extension module imported by the interpreter
#   headers  pyimmortal.h as C99, C11, C++11, C++20 with -Werror -pedantic
#   abi      a library for another flavor must not link
#   bench    every benchmark kernel built and run once, briefly (no timing)
# Runs on the host or inside the sid root (scripts/sid-exec.sh).
set -uo pipefail
py=$1
build=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build"
results="$build/results"
: >"$results"
log() { printf '[%s] %s\n' "$(basename "$build")" "$*"; }
record() { echo "$1 $2" >>"$results"; log "$1: $2"; }

export PYIMMORTAL_PYTHON="$py"

if cargo build --locked --quiet --lib --manifest-path "$repo/Cargo.toml" \
    --target-dir "$build/cargo" >"$build/layout.log" 2>&1; then
    record layout passed
else
    record layout failed
    tail -n 40 "$build/layout.log"
fi

ft_variant=$("$py" -c 'import sys, sysconfig; print(int(sys.version_info >= (3, 13) and not sysconfig.get_config_var("Py_GIL_DISABLED")))')
if [ "$ft_variant" = 1 ]; then
    if PYIMMORTAL_ASSUME_FREE_THREADED=1 cargo build --locked --quiet --lib \
        --manifest-path "$repo/Cargo.toml" --target-dir "$build/cargo-layout-ft" \
        >"$build/layout-ft.log" 2>&1; then
        record layout-ft passed
    else
        record layout-ft failed
        tail -n 40 "$build/layout-ft.log"
    fi
else
    record layout-ft skipped
fi

if cargo test --locked --quiet --manifest-path "$repo/Cargo.toml" \
    --target-dir "$build/cargo" >"$build/rust.log" 2>&1 &&
   cargo test --locked --quiet --manifest-path "$repo/systest/Cargo.toml" \
    --target-dir "$build/cargo" >>"$build/rust.log" 2>&1; then
    record rust passed
else
    record rust failed
    tail -n 40 "$build/rust.log"
fi

if ! { cmake -S "$repo" -B "$build/cmake" -DPYIMMORTAL_PYTHON="$py" \
        && cmake --build "$build/cmake" -j "$(nproc)"; } >"$build/cmake.log" 2>&1; then
    tail -n 60 "$build/cmake.log"
    for s in embed ext headers abi bench; do record "$s" failed; done
    exit 0
fi

for s in embed ext headers abi; do
    out="$build/ctest-$s.log"
    (cd "$build/cmake" && ctest -L "^$s\$" -V --no-tests=error) >"$out" 2>&1
    rc=$?
    if grep -q "No tests were found" "$out"; then
        record "$s" skipped
    elif [ $rc -eq 0 ]; then
        record "$s" passed
    else
        record "$s" failed
        tail -n 60 "$out"
    fi
done
if "$py" "$repo/bench/run.py" --python "$py" --smoke \
    --out "$build/bench" --build-root "$build/bench" >"$build/bench.log" 2>&1; then
    record bench passed
else
    record bench failed
    tail -n 40 "$build/bench.log"
fi

# What the debug interpreters report under -X showrefcount (see docs).
grep -h "showrefcount:" "$build/ctest-ext.log" 2>/dev/null | sed "s/^[0-9]*: *//" | sort -u >"$build/showrefcount" || true
cat "$build/showrefcount"
exit 0
