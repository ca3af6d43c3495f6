"""Drives pyimmortal_nbext, the nanobind-shaped extension, from Python.

At import the extension makes its metaclass, bound class, enum, enum
members and function objects immortal with pyimmortal_ImmortalizeChecked
(a refusal fails the import). This script also makes a class statement, a
function and a module immortal at its own import. Then 4 threads use all
of them at once: instances created, methods called, attributes read,
functions called, the lazily created type made on first use (made immortal
with pyimmortal_ImmortalizeUnpublished), and a fresh object that
pyimmortal_ImmortalizeChecked refuses while other threads run and
pyimmortal_ImmortalizeUnpublished accepts. The script checks that every
object stayed immortal, that no reference count moved, and, on debug
builds, that the interpreter exits without a refcount assertion (run under
-X showrefcount). Exits non-zero on the first failed check.
"""

import sys
import sysconfig
import threading
import types

import pyimmortal_nbext as ext

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
HAS_IMMORTALITY = sys.version_info >= (3, 12)
THREADS = 4
ROUNDS = 2000


class CheckFailed(Exception):
    pass


def check(cond, *what):
    if not cond:
        raise CheckFailed(" ".join(str(w) for w in what))


# A class statement, a function and a module, made immortal at import, as
# an extension's Python side would. On free-threaded builds all three use
# deferred reference counting (3.13t: until a thread starts).
class Shape:
    sides = 4

    def area(self, side):
        return side * side


def double(x):
    return 2 * x


helpers = types.ModuleType("helpers")
helpers.value = 7

if HAS_IMMORTALITY:
    for obj in (Shape, double, helpers):
        ext.immortalize_checked(obj)

# PyType_FromMetaclass exists from 3.12 on; before, Point is a plain type.
POINT_META = ext.meta if sys.version_info >= (3, 12) else type
OBJECTS = list(ext.made) + [Shape, double, helpers]


# unpublished_pair() while the other threads run: (ImmortalizeChecked,
# ImmortalizeUnpublished, immortal). Free-threaded builds refuse an object
# with two references while other threads exist unless it is unpublished.
if not HAS_IMMORTALITY:
    UNPUBLISHED_PAIR = (-1, -1, 0)
elif FREE_THREADED:
    UNPUBLISHED_PAIR = (-1, 0, 1)
else:
    UNPUBLISHED_PAIR = (0, 0, 1)


def counts():
    return [sys.getrefcount(o) for o in OBJECTS]


def work(errors, start):
    try:
        start.wait()
        for i in range(ROUNDS):
            p = ext.Point(float(i), 2.0)
            check(p.norm2() == i * i + 4.0, "Point.norm2")
            check(p.x == float(i) and p.y == 2.0, "Point attributes")
            check(type(p) is ext.Point and type(ext.Point) is POINT_META, "Point's types")
            check(ext.add(i, 1) == i + 1 and ext.mul(i, 2) == 2 * i, "functions")
            check(ext.Color.GREEN.value == 2 and ext.Color["BLUE"] is ext.Color.BLUE, "enum")
            check(Shape().area(i) == i * i and Shape.sides == 4, "class statement")
            check(double(i) == 2 * i and helpers.value == 7, "function, module")
            lazy = ext.lazy_type()
            check(list(lazy()) == [], "the lazy type")
            if i % 100 == 0:
                got = ext.unpublished_pair()
                check(got == UNPUBLISHED_PAIR, "unpublished_pair() with threads running:", got,
                      "want", UNPUBLISHED_PAIR)
    except BaseException as e:  # reported by the main thread
        errors.append(e)


def main():
    print("test_nbext on %s%s: %d objects made immortal at import" % (
        sys.version.split()[0], "t" if FREE_THREADED else "", len(OBJECTS)))
    for o in OBJECTS:
        check(bool(ext.is_immortal(o)) == HAS_IMMORTALITY, "immortal at import:", o)
    before = counts()
    errors = []
    start = threading.Barrier(THREADS)
    threads = [threading.Thread(target=work, args=(errors, start)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    lazy = ext.lazy_type()
    check(bool(ext.is_immortal(lazy)) == HAS_IMMORTALITY,
          "the lazy type made while threads ran is immortal:", ext.is_immortal(lazy))
    for o in OBJECTS:
        check(bool(ext.is_immortal(o)) == HAS_IMMORTALITY, "still immortal:", o)
    after = counts()
    if HAS_IMMORTALITY:
        moved = [(o, b, a) for o, b, a in zip(OBJECTS, before, after) if b != a]
        check(not moved, "reference counts moved:", moved)
    print("test_nbext: %d threads x %d rounds, %s" % (
        THREADS, ROUNDS, "no count moved" if HAS_IMMORTALITY
        else "no immortal objects before 3.12; the module works from threads"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
