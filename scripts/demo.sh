#!/usr/bin/env bash
# Builds libpyimmortal.a for the python3 on PATH (or $PYIMMORTAL_PYTHON),
# builds the example extension in examples/demo against it, imports it and
# prints what it did.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/setup-host.sh
py=${PYIMMORTAL_PYTHON:-$(command -v python3)}
build="$repo/_build/demo"
cmake -S examples/demo -B "$build" -DPYIMMORTAL_PYTHON="$py" >/dev/null
cmake --build "$build" -j "$(nproc)"
echo
PYTHONPATH="$build" "$py" examples/demo/demo.py
