#!/usr/bin/env python3
"""Builds the example extension in examples/demo and runs it.

    scripts/demo.py [PYTHON]

Without an argument it picks the newest CPython 3.12+ it can find, in this
order of sources: $PYIMMORTAL_PYTHON, python3.X on PATH, pyenv's versions,
free-threaded interpreters already built from source by the test command,
and the Debian sid root when it is already provisioned. At equal versions a
free-threaded build is preferred, and a debug build is never picked. It
installs what the build needs (cmake, a C compiler, libclang), builds
libpyimmortal.a for that interpreter through CMake's add_subdirectory(), and
prints what the library did.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "c_tests"))
import interpreters as interp  # noqa: E402


def choose(argv):
    if argv:
        it = interp.make("given", argv[0], "host", "given on the command line")
        return it, "given on the command line" if it else "%s does not run" % argv[0]
    if os.environ.get("PYIMMORTAL_PYTHON"):
        it = interp.make("env", os.environ["PYIMMORTAL_PYTHON"], "host", "$PYIMMORTAL_PYTHON")
        return it, "set in $PYIMMORTAL_PYTHON" if it else "$PYIMMORTAL_PYTHON does not run"
    found = [it for it in interp.from_path() + interp.from_pyenv() + interp.cached_source_builds()
             + interp.from_sid() if not it.debug]
    if not found:
        return None, "no CPython 3.%d+ found" % interp.SUPPORTED.min_minor
    # max() keeps the first of equal keys, so the source order above breaks ties.
    best = max(found, key=lambda it: (it.minor, it.free_threaded))
    names = ", ".join(sorted({it.tag for it in found}, key=lambda t: (int(t[2:].rstrip("t")), t)))
    if best.minor >= 12:
        why = "the newest of the interpreters found (%s): %s" % (names, best.why)
    else:
        why = ("nothing newer than 3.%d was found (%s); immortality needs CPython 3.12 or "
               "later, so the demo can only show that the calls do nothing" % (best.minor, names))
    return best, why


def main():
    interp.add_tool_dirs_to_path()
    it, why = choose(sys.argv[1:])
    if it is None:
        raise SystemExit("demo: %s; give an interpreter: scripts/demo.py /path/to/python3" % why)
    print("demo: CPython %s%s at %s\n      picked because it is %s" % (
        it.version, " free-threaded" if it.free_threaded else "", it.python, why), flush=True)
    interp.setup_host()
    build = interp.REPO / "_build" / "demo" / it.name
    steps = [
        ["cmake", "-S", interp.REPO / "examples" / "demo", "-B", build,
         "-DPYIMMORTAL_PYTHON=" + it.python],
        ["cmake", "--build", build, "-j", str(os.cpu_count() or 2)],
    ]
    for cmd in steps:
        out = it.run(cmd, capture_output=True, text=True, cwd=interp.REPO)
        if out.returncode:
            sys.stdout.write(out.stdout + out.stderr)
            raise SystemExit("demo: `%s` failed" % " ".join(str(c) for c in cmd[:2]))
    print()
    # Through env(1): the sid root's command runner passes no environment on.
    return it.run(["env", "PYTHONPATH=%s" % build, it.python,
                   interp.REPO / "examples" / "demo" / "demo.py"]).returncode


if __name__ == "__main__":
    sys.exit(main())
