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
# rustup's and pyenv's usual homes, for shells that have not added them.
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" "${PYENV_ROOT:-$HOME/.pyenv}/bin"; do
    if [ -d "$d" ] && [[ ":$PATH:" != *":$d:"* ]]; then PATH="$PATH:$d"; fi
done
export PATH
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

# --- cross-target checks --------------------------------------------------------
# An extension built for one target and linked with a library built for
# another must fail to import, and bypassing the header must still be
# refused at run time (scripts/check-cross-target.sh). Pairs are taken from
# the rows above: 3.12 with 3.13's library, and each given free-threaded
# interpreter with the library of the GIL build of its version.
# Rows are looked up by glob pattern on their name.
row_field() { for r in "${rows[@]}"; do IFS='|' read -r n w p <<<"$r"; if [[ $n == $1 ]]; then [ "$2" = name ] && echo "$n" || echo "$p"; return; fi; done; }
row_lib() { ls "$out/$1"/cmake/cargo-*/release/libpyimmortal.a 2>/dev/null | head -n 1; }
cross_pairs=()
a=$(row_field 'pyenv-3.12.*' name)
b=$(row_field 'pyenv-3.13.*' name)
[ -n "$a" ] && [ -n "$b" ] && cross_pairs+=("$a|$b")
for t in 3.13 3.14 3.15; do
    ft=$(row_field "given-${t}t" name)
    gil=$(row_field "pyenv-${t}.*" name)
    [ -n "$gil" ] || gil=$(row_field "sid-${t}" name)
    [ -n "$ft" ] && [ -n "$gil" ] && cross_pairs+=("$ft|$gil")
done
cross_status=skipped
cross_desc=""
for pair in "${cross_pairs[@]}"; do
    IFS='|' read -r a b <<<"$pair"
    if [ -n "${PYIMMORTAL_MATRIX_FILTER:-}" ] && ! { [[ $a =~ $PYIMMORTAL_MATRIX_FILTER ]] && [[ $b =~ $PYIMMORTAL_MATRIX_FILTER ]]; }; then
        continue
    fi
    cross_desc="$cross_desc $a+lib($b)"
    [ "$cross_status" = skipped ] && cross_status=passed
    lib=$(row_lib "$b")
    echo "=== cross-target: $a with the library of $b"
    if [ -z "$lib" ] || ! scripts/check-cross-target.sh "$(row_field "$a" python)" "$lib"; then
        cross_status=failed
    fi
done

# --- table --------------------------------------------------------------------
failed=0
[ "$repo_status" = passed ] || failed=1
[ "$cross_status" = failed ] && failed=1
table="$out/table.md"
{
    printf '| interpreter | %s |\n' "$(IFS='|'; echo "${SUITES[*]}" | sed 's/|/ | /g')"
    printf '|---|%s\n' "$(for _ in "${SUITES[@]}"; do printf -- '---|'; done)"
    printf '| (repository: fmt, clippy, header, unverified targets) | %s |\n' "$repo_status"
    printf '| (cross-target:%s) | %s |\n' "${cross_desc:- none}" "$cross_status"
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
