#!/usr/bin/env bash
# The whole test suite over the interpreter matrix (the README's test
# command). Sets up the machine, then for every interpreter runs
# scripts/test-one.sh and ends with a table: interpreter x suite.
#
# Interpreters:
#   - pyenv's CPython 3.9-3.15, where pyenv is installed;
#   - Debian sid's python3.13/3.14/3.15 and their debug builds (3.Xd), run
#     from a debootstrap root cached outside the checkout
#     (scripts/provision-sid.sh; PYIMMORTAL_SKIP_SID=1 leaves them out);
#   - every free-threaded interpreter given in PYIMMORTAL_FT_PYTHONS
#     (paths separated by ':' or spaces) or found on PATH as python3.13t,
#     python3.14t or python3.15t. A free-threaded version with none given is
#     reported as skipped.
# PYIMMORTAL_MATRIX_FILTER=REGEX runs only the interpreters whose row name
# matches. Exits non-zero if any suite failed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out="$repo/_build/matrix"
mkdir -p "$out"
CACHE=${PYIMMORTAL_CACHE:-$HOME/.cache/pyimmortal}
export PYIMMORTAL_CACHE=$CACHE
SUITES=(layout layout-ft rust embed ext headers abi bench)
start=$(date +%s)

scripts/setup-host.sh || { echo "test-matrix: host setup failed" >&2; exit 1; }

# --- checks that do not depend on the interpreter -------------------------
repo_status=passed
{
    cargo fmt --all -- --check &&
    cargo clippy --locked --all-targets -- -D warnings &&
    scripts/regen-header.sh --check &&
    scripts/check-unverified.sh
} >"$out/repo.log" 2>&1 || { repo_status=failed; tail -n 40 "$out/repo.log"; }
echo "[repo] fmt, clippy, header freshness, unverified targets refused: $repo_status"

# --- the interpreters -------------------------------------------------------
rows=()   # name|where|python
if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null); do
        if [[ $v =~ ^3\.(9|1[0-5])\.[0-9]+$ ]]; then
            rows+=("pyenv-$v|host|$(pyenv prefix "$v")/bin/python3")
        fi
    done
fi

sid_root="$CACHE/sid-root"
if [ "${PYIMMORTAL_SKIP_SID:-0}" != 1 ]; then
    if scripts/provision-sid.sh >"$out/provision.log" 2>&1; then
        for v in 3.13 3.14 3.15; do
            for d in "" d; do
                if [ -x "$sid_root/usr/bin/python$v$d" ]; then
                    rows+=("sid-$v$d|sid|/usr/bin/python$v$d")
                fi
            done
        done
    else
        tail -n 20 "$out/provision.log"
        echo "test-matrix: provisioning the Debian sid root failed" >&2
        repo_status=failed
    fi
fi

declare -A seen_ft=()
ft_candidates=()
pythons=${PYIMMORTAL_FT_PYTHONS:-}
for p in ${pythons//:/ }; do ft_candidates+=("$p"); done
for n in python3.13t python3.14t python3.15t; do
    p=$(command -v "$n" 2>/dev/null) && ft_candidates+=("$p")
done
declare -A seen_path=()
for p in "${ft_candidates[@]}"; do
    real=$(readlink -f "$p" 2>/dev/null || echo "$p")
    [ -n "${seen_path[$real]:-}" ] && continue
    seen_path[$real]=1
    tag=$("$p" -c 'import sys, sysconfig; print("%d.%d%s" % (sys.version_info[0], sys.version_info[1], "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))' 2>/dev/null) || {
        echo "test-matrix: cannot run given interpreter $p" >&2; repo_status=failed; continue; }
    seen_ft[$tag]=1
    rows+=("given-$tag|host|$p")
done

# --- run ----------------------------------------------------------------------
for row in "${rows[@]}"; do
    IFS='|' read -r name where py <<<"$row"
    if [ -n "${PYIMMORTAL_MATRIX_FILTER:-}" ] && ! [[ $name =~ $PYIMMORTAL_MATRIX_FILTER ]]; then
        continue
    fi
    echo "=== $name ($py)"
    rm -f "$out/$name/results"
    if [ "$where" = sid ]; then
        scripts/sid-exec.sh scripts/test-one.sh "$py" "$out/$name"
    else
        scripts/test-one.sh "$py" "$out/$name"
    fi
done

# --- table --------------------------------------------------------------------
failed=0
[ "$repo_status" = passed ] || failed=1
table="$out/table.md"
{
    printf '| interpreter | %s |\n' "$(IFS='|'; echo "${SUITES[*]}" | sed 's/|/ | /g')"
    printf '|---|%s\n' "$(for _ in "${SUITES[@]}"; do printf -- '---|'; done)"
    printf '| (repository: fmt, clippy, header, unverified targets) | %s |\n' "$repo_status"
    for row in "${rows[@]}"; do
        IFS='|' read -r name where py <<<"$row"
        if [ -n "${PYIMMORTAL_MATRIX_FILTER:-}" ] && ! [[ $name =~ $PYIMMORTAL_MATRIX_FILTER ]]; then
            continue
        fi
        line="| $name |"
        for s in "${SUITES[@]}"; do
            st=$(awk -v s="$s" '$1 == s {print $2}' "$out/$name/results" 2>/dev/null)
            st=${st:-failed}
            [ "$st" = failed ] && failed=1
            line="$line $st |"
        done
        echo "$line"
    done
    for t in 3.13t 3.14t 3.15t; do
        if [ -z "${seen_ft[$t]:-}" ]; then
            line="| $t (no interpreter given) |"
            for _ in "${SUITES[@]}"; do line="$line skipped |"; done
            echo "$line"
        fi
    done
} >"$table"
echo
cat "$table"
for f in "$out"/*/showrefcount; do
    [ -s "$f" ] && { echo; echo "$(basename "$(dirname "$f")"):"; cat "$f"; }
done
echo
echo "test-matrix: $(( $(date +%s) - start ))s; $([ $failed = 0 ] && echo 'no failures' || echo 'FAILURES')"
exit $failed
