"""Extension modules that link libpyimmortal.a export only their PyInit_*.

    python module_exports.py NM MODULE [MODULE ...]

The pyimmortal::pyimmortal CMake target links with --exclude-libs for the
archive, so none of pyimmortal's functions reach a module's dynamic symbol
table.
"""

import os
import subprocess
import sys


def exports_only_pyinit(nm, module):
    out = subprocess.run([nm, "-D", "--defined-only", module], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr)
        return False
    names = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
    want = "PyInit_" + os.path.basename(module).split(".")[0]
    if names != [want]:
        print("%s exports %d symbols, want only %s: %s" % (
            os.path.basename(module), len(names), want, ", ".join(names[:20])))
        return False
    print("%s exports only %s" % (os.path.basename(module), want))
    return True


def main():
    nm, modules = sys.argv[1], sys.argv[2:]
    results = [exports_only_pyinit(nm, m) for m in modules]
    return 0 if modules and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
