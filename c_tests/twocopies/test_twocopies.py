"""Two extension modules in one process, each linking its own copy of
libpyimmortal.a (pyimmortal_copy_a and pyimmortal_copy_b, one source
compiled twice): each copy keeps its own registry, also when the modules are
loaded with RTLD_GLOBAL.

Run by ctest with the target interpreter and no argument: runs itself once
per way of loading, `default` (Python's dlopen flags) and `global`
(sys.setdlopenflags(os.RTLD_GLOBAL | os.RTLD_NOW) before the imports), each
in a fresh interpreter. Checks raise CheckFailed, never `assert`.
"""

import gc
import os
import subprocess
import sys
import weakref

HAS_IMMORTALITY = sys.version_info >= (3, 12)
MODES = ("default", "global")
# pyimmortal's exports, which the archive keeps local to each module
# (--exclude-libs): neither module exports them, so a module loaded with
# RTLD_GLOBAL cannot offer its copy's functions to the other module, whose
# calls would then reach the first copy and its registry.
EXPORTS = ("pyimmortal_Immortalize", "pyimmortal_ImmortalizeChecked", "pyimmortal_Registry_Count",
           "pyimmortal_Registry_Visit", "pyimmortal_Registry_Contains", "pyimmortal_target")


class CheckFailed(Exception):
    pass


def check(cond, *what):
    if not cond:
        raise CheckFailed(" ".join(w if isinstance(w, str) else repr(w) for w in what) or "check failed")


class Thing:
    def __init__(self):
        self.payload = [1, 2, 3]


def run(mode):
    if mode == "global":
        sys.setdlopenflags(os.RTLD_GLOBAL | os.RTLD_NOW)
    import pyimmortal_copy_a as a
    import pyimmortal_copy_b as b

    check(a.copy() == "a" and b.copy() == "b", "module names", a.copy(), b.copy())
    check(a.target() == b.target(), "targets", a.target(), b.target())
    check(a.library_address() != b.library_address(), "both modules call one copy of the library")
    for m in (a, b):
        for name in EXPORTS:
            check(not m.visible(name), "copy", m.copy(), "sees", name, "as a dynamic symbol")
    check(a.registry_count() == 0 and b.registry_count() == 0, "registries not empty at start")

    x, y = Thing(), [1, 2]
    if not HAS_IMMORTALITY:
        for m in (a, b):
            try:
                m.immortalize(x)
            except NotImplementedError:
                pass
            else:
                raise CheckFailed("copy %s made an object immortal before 3.12" % m.copy())
            check(m.registry_count() == 0 and not m.contains(x), "copy", m.copy(), "registered a refusal")
        return "both copies refuse (no immortal objects before 3.12), registries empty"

    a.immortalize(x)
    check((a.registry_count(), b.registry_count()) == (1, 0), "counts after a made x immortal:",
          a.registry_count(), b.registry_count())
    check(a.contains(x) and not b.contains(x), "Contains(x): a", a.contains(x), "b", b.contains(x))
    # Already immortal: b accepts it, and does not list what it did not make.
    b.immortalize(x)
    check((a.registry_count(), b.registry_count()) == (1, 0), "counts after b saw x:",
          a.registry_count(), b.registry_count())
    check(not b.contains(x), "b registered an object that a made immortal")
    b.immortalize(y)
    check((a.registry_count(), b.registry_count()) == (1, 1), "counts after b made y immortal:",
          a.registry_count(), b.registry_count())
    check(b.contains(y) and not a.contains(y), "Contains(y): b", b.contains(y), "a", a.contains(y))

    made_a = [Thing() for _ in range(1000)]
    made_b = [Thing() for _ in range(500)]
    for o in made_a:
        a.immortalize(o)
    for o in made_b:
        b.immortalize(o)
    check(a.registered() == [x] + made_a, "a lists other objects than it made")
    check(b.registered() == [y] + made_b, "b lists other objects than it made")
    check(all(a.contains(o) and not b.contains(o) for o in made_a), "a's objects: Contains")
    check(all(b.contains(o) and not a.contains(o) for o in made_b), "b's objects: Contains")
    ref = weakref.ref(made_a[0])
    del made_a, made_b, x, y
    gc.collect()
    check(ref() is not None, "an immortal object died")
    return "a registered 1001, b 501; each lists and contains only its own"


def main():
    if len(sys.argv) == 2:
        print("test_twocopies %s: %s" % (sys.argv[1], run(sys.argv[1])))
        return 0
    failed = False
    for mode in MODES:
        p = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        print(out)
        if p.returncode != 0:
            print("test_twocopies %s: failed (exit %d)" % (mode, p.returncode))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
