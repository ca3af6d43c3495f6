"""pyimmortal_ImmortalizeHeap from Python, through pyimmortal_testext.

Run by ctest with the target interpreter under -X showrefcount: the heap of
a small application is made immortal, the program then imports, updates
dicts, makes classes, raises exceptions and collects, and the interpreter
must finalize without a crash or, on debug builds, a refcount assertion
(ctest fails the run on "Assertion", "negative ref" or "Fatal Python
error"). Exits 77 where the call does not apply (3.9-3.11 raise
NotImplementedError, which is checked first).
"""

import gc
import sys
import sysconfig
import threading

import pyimmortal_testext as ext

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
SKIP_EXIT = 77


def fail(what):
    print("test_heap: check failed: %s" % what, file=sys.stderr)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)


class Record:
    def __init__(self, i):
        self.i = i
        self.label = "record-%d" % i


FINALIZED = []


class WithDel:
    def __del__(self):
        FINALIZED.append(self)


def gen():
    try:
        yield 1
    finally:
        FINALIZED.append("generator")


def main():
    if sys.version_info < (3, 12):
        try:
            ext.immortalize_heap()
        except NotImplementedError as e:
            print("test_heap: skipped (no immortal objects before 3.12: %s)" % e)
            return SKIP_EXIT
        fail("immortalize_heap() did not raise NotImplementedError")

    if FREE_THREADED:
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            ext.immortalize_heap()
            fail("immortalize_heap() with another thread did not raise")
        except RuntimeError as e:
            check("other threads" in str(e) or "only one" in str(e), "the RuntimeError says why: %s" % e)
        finally:
            stop.set()
            t.join()

    rows = [{"id": 10_000 + i, "name": "user-%d" % i, "score": i * 0.5, "tags": ("a", str(i))}
            for i in range(50_000)]
    records = [Record(i) for i in range(2_000)]
    keep = WithDel()
    suspended = gen()
    next(suspended)
    n = ext.immortalize_heap()
    print("test_heap: immortalize_heap() made %d objects immortal" % n)
    check(n > 50_000, "most of the heap was made immortal")
    check(ext.is_immortal(rows) and ext.is_immortal(records[7]), "containers and instances are immortal")
    check(ext.is_immortal(rows[9]["score"]) and ext.is_immortal(rows[9]["name"]), "floats and strings are immortal")
    # Free-threaded builds refuse objects whose finalizer has not run.
    finalizers = not FREE_THREADED
    check(ext.is_immortal(keep) == finalizers and ext.is_immortal(suspended) == finalizers,
          "an object with __del__ and a suspended generator are immortal"
          if finalizers else "objects whose finalizer has not run stay mortal")
    check(ext.is_immortal(Record) and ext.is_immortal(main),
          "classes and functions are immortal (deferred on free-threaded 3.14+)")
    del keep, suspended
    gc.collect()
    check(not FINALIZED if finalizers else len(FINALIZED) == 2,
          "the finalizers ran as they should: %r" % FINALIZED)

    # The program keeps working.
    import json  # noqa: F401  (an import after the call)
    rows[0]["new"] = [1, 2, 3]
    rows.append({"id": -1})

    class Later(Record):
        pass

    check(Later(5).label == "record-5", "a class made afterwards works")
    try:
        raise ValueError("still works")
    except ValueError as e:
        check(str(e) == "still works", "exceptions work")
    gc.collect()
    check(sum(r["id"] for r in rows[:3]) == 30_003, "reads see the data")
    del rows, records
    gc.collect()
    print("test_heap: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
