"""An extension module that links libpyimmortal.a exports only its PyInit_*.

    python module_exports.py NM MODULE

The pyimmortal::pyimmortal CMake target links with --exclude-libs for the
archive, so neither pyimmortal's functions nor the Rust runtime inside the
archive reach the module's dynamic symbol table.
"""

import os
import subprocess
import sys


def main():
    nm, module = sys.argv[1:3]
    out = subprocess.run([nm, "-D", "--defined-only", module], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr)
        return 1
    names = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
    want = "PyInit_" + os.path.basename(module).split(".")[0]
    if names != [want]:
        print("%s exports %d symbols, want only %s: %s" % (
            os.path.basename(module), len(names), want, ", ".join(names[:20])))
        return 1
    print("%s exports only %s" % (os.path.basename(module), want))
    return 0


if __name__ == "__main__":
    sys.exit(main())
