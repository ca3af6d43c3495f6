"""pyimmortal in isolated subinterpreters with their own GIL, from Python.

Run by ctest (label ext) with the target interpreter under -X showrefcount.
It uses the module API the version has: concurrent.interpreters (3.14+),
_interpreters (3.13) or _xxsubinterpreters (3.12), each creating isolated
interpreters (PyInterpreterConfig_OWN_GIL, their own obmalloc, and only
extensions that declare Py_mod_multiple_interpreters). Cases:

- import: pyimmortal_testext (multi-phase init, per-interpreter GIL
  supported) imports in an isolated subinterpreter, and
  pyimmortal_fuzzext (single-phase init) is refused there;
- registry: objects made immortal there are listed by that interpreter's
  registry only, and the main interpreter's registry is untouched;
- parallel: two subinterpreters run at once in two threads, each making
  objects immortal; each registry counts exactly its own;
- shared capsule: a capsule made immortal by the main interpreter (a C
  static, the NumPy pattern) is read from the subinterpreters: immortal
  there, listed in no registry but the main one, its count never moves, its
  destructor never runs;
- destroyed: after every subinterpreter is destroyed the main interpreter
  keeps working and exits cleanly (ctest fails the run on "Assertion",
  "negative ref" or "Fatal Python error").

CPython 3.9-3.11 have no per-interpreter GIL: the script exits 77 (skipped).
Checks raise CheckFailed, never `assert`.
"""

import gc
import sys
import textwrap
import threading

import pyimmortal_testext as ext

SKIP_EXIT = 77


class CheckFailed(Exception):
    pass


def check(cond, *what):
    if not cond:
        raise CheckFailed(" ".join(str(w) for w in what) or "check failed")


class Isolated:
    """An isolated subinterpreter with its own GIL, through the version's API."""

    def __init__(self):
        if sys.version_info >= (3, 14):
            from concurrent import interpreters
            self.interp = interpreters.create()
            self.id = self.interp.id
            self.api = "concurrent.interpreters"
        elif sys.version_info >= (3, 13):
            import _interpreters
            self.id = _interpreters.create("isolated")
            self.api = "_interpreters"
        else:
            import _xxsubinterpreters
            self.id = _xxsubinterpreters.create(isolated=True)
            self.api = "_xxsubinterpreters"

    def own_gil(self):
        """Whether the interpreter has its own GIL (None where the API cannot tell)."""
        if sys.version_info < (3, 13):
            return None   # _xxsubinterpreters.create(isolated=True) asks for OWN_GIL
        import _interpreters
        return _interpreters.get_config(self.id).gil == "own"

    def run(self, code, prelude=False):
        code = (SUB_PRELUDE if prelude else "") + textwrap.dedent(code)
        if sys.version_info >= (3, 14):
            self.interp.exec(code)     # raises ExecutionFailed
        elif sys.version_info >= (3, 13):
            import _interpreters
            err = _interpreters.exec(self.id, code)
            if err is not None:
                raise CheckFailed("in the subinterpreter: %s" % (err.formatted,))
        else:
            import _xxsubinterpreters
            _xxsubinterpreters.run_string(self.id, code)   # raises RunFailedError

    def close(self):
        if sys.version_info >= (3, 14):
            self.interp.close()
        elif sys.version_info >= (3, 13):
            import _interpreters
            _interpreters.destroy(self.id)
        else:
            import _xxsubinterpreters
            _xxsubinterpreters.destroy(self.id)


# Run in the subinterpreters: the checks raise, which fails run().
SUB_PRELUDE = """
import gc, sys
import pyimmortal_testext as ext

def check(cond, *what):
    if not cond:
        raise RuntimeError(" ".join(str(w) for w in what) or "check failed")

class Thing:
    def __init__(self, i):
        self.i = i
"""


def test_import():
    sub = Isolated()
    try:
        own = sub.own_gil()
        check(own in (True, None), "the subinterpreter does not have its own GIL")
        sub.run(prelude=True, code="""
            check(ext.target() == "%s", "target", ext.target())
            check(ext.registry_count() == 0, "a new interpreter's registry is not empty")
            # An extension with single-phase initialization (no
            # Py_mod_multiple_interpreters) is refused here.
            try:
                import pyimmortal_fuzzext
            except ImportError as e:
                check("does not support loading in subinterpreters" in str(e), e)
                single_phase = "refused"
            else:
                raise RuntimeError("a single-phase extension imported in an isolated interpreter")
        """ % ext.target())
    finally:
        sub.close()
    return "%s, own GIL: %s; a single-phase extension is refused" % (
        sub.api, {True: "yes", None: "asked for (3.12 cannot report it)"}[own])


def test_registry_per_interpreter():
    main_objects = [[i] for i in range(3)]
    before = ext.registry_count()
    for o in main_objects:
        ext.immortalize(o)
    check(ext.registry_count() == before + 3, "main registry", ext.registry_count())
    sub = Isolated()
    try:
        sub.run(prelude=True, code="""
            check(ext.registry_count() == 0, "sub registry starts with", ext.registry_count())
            kept = [Thing(i) for i in range(50)]
            for o in kept:
                ext.immortalize(o)
            check(ext.registry_count() == 50, "sub registry", ext.registry_count())
            check(ext.registry_objects() == kept, "Registry_Visit lists other objects")
            check(all(ext.registry_contains(o) for o in kept), "Registry_Contains denies one")
            check(not ext.registry_contains(None), "None is listed")
        """)
        check(ext.registry_count() == before + 3, "main registry changed:", ext.registry_count())
        # The subinterpreter's registry lives as long as the interpreter.
        sub.run("""
            check(ext.registry_count() == 50, "sub registry later:", ext.registry_count())
            del kept
            gc.collect()
        """)
    finally:
        sub.close()
    check(ext.registry_count() == before + 3, "main registry after the end:", ext.registry_count())
    check(ext.registry_objects()[-3:] == main_objects, "main Registry_Visit changed")
    return "50 objects in the subinterpreter's registry, the main one untouched"


def test_parallel_and_shared_capsule():
    cap = ext.make_shared_capsule()
    check(ext.is_immortal(cap), "the shared capsule is not immortal")
    check(ext.registry_contains(cap), "the main registry does not list the shared capsule")
    rc = sys.getrefcount(cap)
    check(ext.hammer(cap, 1000) == ext.hammer(cap, 0), "the immortal capsule's count moves")
    subs = [Isolated() for _ in range(2)]
    errors = []
    n = 2_000_000

    def work(sub, k):
        try:
            sub.run(prelude=True, code="""
                cap = ext.shared_capsule()
                check(ext.is_immortal(cap), "the shared capsule is mortal here")
                check(not ext.registry_contains(cap), "a subinterpreter lists the main one's capsule")
                ext.immortalize(cap)   # immortal already: success, nothing changes
                check(ext.registry_count() == 0, "an immortal capsule entered the registry")
                rc = ext.hammer(cap, 0)
                mine = []
                for round in range(20):
                    check(ext.hammer(cap, %d) == rc, "the shared capsule's count moved")
                    holder = [cap] * 1000
                    del holder
                    new = [Thing(round * 100 + i) for i in range(100)]
                    for o in new:
                        ext.immortalize(o)
                    mine += new
                check(ext.registry_count() == 2000, "registry", ext.registry_count(), "want 2000")
                check(ext.registry_objects() == mine, "Registry_Visit lists other objects")
                check(ext.shared_capsule_state() == (True, False), "capsule state", ext.shared_capsule_state())
                print("    subinterpreter %d: 2000 objects registered, %%d increfs of the shared capsule"
                      %% (20 * %d + 20000), flush=True)
            """ % (n // 20, k, n // 20))
        except BaseException as e:
            errors.append((k, e))

    threads = [threading.Thread(target=work, args=(s, k)) for k, s in enumerate(subs)]
    main_count = ext.registry_count()
    for t in threads:
        t.start()
    # The main interpreter keeps using the capsule meanwhile.
    for _ in range(20):
        ext.hammer(cap, n // 20)
    for t in threads:
        t.join()
    for s in subs:
        s.close()
    check(not errors, "subinterpreter failed:", errors)
    check(sys.getrefcount(cap) == rc, "the shared capsule's count:", sys.getrefcount(cap), "was", rc)
    check(ext.shared_capsule_state() == (True, False), "capsule state", ext.shared_capsule_state())
    check(ext.registry_count() == main_count, "main registry:", ext.registry_count(), "was", main_count)
    return "2 subinterpreters in parallel threads, %d increfs each of the shared capsule" % n


def test_main_keeps_working():
    subs = [Isolated() for _ in range(5)]
    for s in subs:
        s.run(prelude=True, code="""
            objs = [Thing(i) for i in range(10)]
            for o in objs:
                ext.immortalize(o)
            check(ext.registry_count() == 10, "registry", ext.registry_count())
        """)
    for s in subs:
        s.close()
    before = ext.registry_count()
    x = [Thing(1) for _ in range(100)]
    ext.immortalize(x)
    check(ext.registry_count() == before + 1, "registry", ext.registry_count())
    import json
    check(json.loads(json.dumps({"a": [1, 2]})) == {"a": [1, 2]}, "json")
    gc.collect()
    return "5 more subinterpreters made and destroyed; the main interpreter imports, immortalizes, collects"


class Thing:
    def __init__(self, i):
        self.i = i


def main():
    print("test_interpreters on %s (pyimmortal target %s)" % (sys.version.split()[0], ext.target()))
    if sys.version_info < (3, 12):
        print("test_interpreters: skipped (CPython %d.%d has no per-interpreter GIL; 3.12+)"
              % sys.version_info[:2])
        return SKIP_EXIT
    tests = [("import in an isolated subinterpreter", test_import),
             ("registry per interpreter", test_registry_per_interpreter),
             ("parallel subinterpreters, shared immortal capsule", test_parallel_and_shared_capsule),
             ("subinterpreters destroyed, main keeps working", test_main_keeps_working)]
    for name, fn in tests:
        what = fn()
        print("  %s ... ok (%s)" % (name, what), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
