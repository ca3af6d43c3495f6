"""Drives the pyimmortal_testext extension module from Python.

Run by ctest with the target interpreter; exits non-zero on the first
failed check. On debug interpreters it also measures what immortalization
does to the `-X showrefcount` totals.
"""

import gc
import os
import re
import subprocess
import sys
import sysconfig
import weakref

import pyimmortal_testext as ext

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
HAS_IMMORTALITY = sys.version_info >= (3, 12)
DEFERRED_WORKS = FREE_THREADED and sys.version_info >= (3, 14)
DEBUG = hasattr(sys, "gettotalrefcount")
FORCE_BUILTIN = os.environ.get("PYIMMORTAL_FORCE_BUILTIN") == "1"
# CPython exports its own PyUnstable_SetImmortal from 3.15.0a7 on.
CPYTHON_SET_IMMORTAL = sys.version_info >= (3, 15)


class Thing:
    def __init__(self):
        self.payload = [1, 2, 3]


def fresh_str():
    return "".join(["pyimmortal-"] * 8)


def test_target():
    want = "%d.%d%s" % (sys.version_info[0], sys.version_info[1], "t" if FREE_THREADED else "")
    assert ext.target() == want, (ext.target(), want)


def test_immortal(builtin):
    r, obj = ext.new_immortal(Thing, builtin)
    assert r == (1 if HAS_IMMORTALITY else 0), r
    assert ext.is_immortal(obj) == bool(r)
    if hasattr(sys, "_is_immortal"):
        assert sys._is_immortal(obj) == bool(r)
    if r:
        assert not gc.is_tracked(obj)
    rc = sys.getrefcount(obj)
    many = [obj] * 100000
    del many
    assert sys.getrefcount(obj) == rc
    assert ext.set_immortal(obj) == 0  # one-way, not idempotent (3.15)
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert (ref() is not None) == bool(r)
    if r:
        assert ref().payload == [1, 2, 3]


def test_refusals(builtin):
    r, s = ext.new_immortal(fresh_str, builtin)
    assert r == 0 and not ext.is_immortal(s)
    if hasattr(sys, "_is_immortal"):
        assert not sys._is_immortal(s)
    assert ext.set_immortal(None) == 0
    # Held by a local and a list: two strong references. (A bare local may
    # be passed as a borrowed stack reference on 3.14+, so that the callee
    # sees a count of 1.)
    shared = Thing()
    holder = [shared]
    assert ext.set_immortal(shared) == 0
    assert not ext.is_immortal(shared)
    assert gc.is_tracked(shared)
    assert ext.is_immortal(None) == HAS_IMMORTALITY
    del holder


def test_unique():
    assert ext.new_is_unique(Thing) == 1
    assert ext.new_is_unique(lambda: None) == 0


def test_deferred():
    first, second, obj = ext.new_deferred(Thing)
    assert (first, second) == ((1, 0) if DEFERRED_WORKS else (0, 0)), (first, second)
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None, "a deferred object must stay collectable"


def test_immortalize():
    """pyimmortal's own call: an object Python holds in several places."""
    x = Thing()
    holders = [x, x]
    before = ext.registry_count()
    if not HAS_IMMORTALITY:
        try:
            ext.immortalize(x)
        except NotImplementedError as e:
            assert "3.12" in str(e), e
        else:
            raise AssertionError("expected NotImplementedError")
        assert ext.registry_count() == before
        return
    assert ext.immortalize(x) is None
    assert ext.is_immortal(x)
    if hasattr(sys, "_is_immortal"):
        assert sys._is_immortal(x)
    assert not gc.is_tracked(x)
    assert ext.registry_count() == before + 1
    assert ext.immortalize(x) is None  # idempotent
    assert ext.registry_count() == before + 1
    try:
        ext.immortalize(fresh_str())
    except TypeError as e:
        assert "intern" in str(e), e
    else:
        raise AssertionError("expected TypeError for str")
    ref = weakref.ref(x)
    del x, holders
    gc.collect()
    assert ref() is not None and ref().payload == [1, 2, 3]


SHOWREFCOUNT = re.compile(r"\[(-?\d+) refs, (-?\d+) blocks\]")


def totals_after(n, builtin, shared=False):
    if shared:
        code = "import pyimmortal_testext as e; assert e.immortalize_shared_lists(%d) == %d" % (
            n, n)
    else:
        code = "import pyimmortal_testext as e; assert e.immortalize_lists(%d, %s) == %d" % (
            n, builtin, n)
    p = subprocess.run([sys.executable, "-X", "showrefcount", "-c", code],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    m = SHOWREFCOUNT.search(p.stderr)
    assert m, p.stderr
    return int(m.group(1)), int(m.group(2))


def test_debug_totals(builtin):
    """Immortal objects are never freed, so each stays a live block. pyimmortal
    removes the creation reference from the total refcount; CPython 3.15's
    own PyUnstable_SetImmortal leaves it counted."""
    n = 200
    refs0, blocks0 = totals_after(0, builtin)
    refs1, blocks1 = totals_after(n, builtin)
    cpython_own = CPYTHON_SET_IMMORTAL and not (builtin and FORCE_BUILTIN)
    print("    showrefcount: %d immortal lists -> %+d refs, %+d blocks (%s)" % (
        n, refs1 - refs0, blocks1 - blocks0,
        "CPython's PyUnstable_SetImmortal" if cpython_own else "pyimmortal"))
    assert blocks1 - blocks0 == n
    assert refs1 - refs0 == (n if cpython_own else 0)


def test_debug_totals_shared():
    """pyimmortal_Immortalize on objects with three references each: all
    three leave the total, so the refs at exit balance again."""
    n = 200
    refs0, blocks0 = totals_after(0, False, shared=True)
    refs1, blocks1 = totals_after(n, False, shared=True)
    print("    showrefcount: %d immortal lists with 3 references -> %+d refs, %+d blocks "
          "(pyimmortal_Immortalize)" % (n, refs1 - refs0, blocks1 - blocks0))
    assert blocks1 - blocks0 == n
    assert refs1 - refs0 == 0


def main():
    tests = [("target", test_target, ()), ("unique", test_unique, ()),
             ("deferred", test_deferred, ()), ("immortalize", test_immortalize, ())]
    if DEBUG and HAS_IMMORTALITY:
        tests.append(("debug totals, shared objects", test_debug_totals_shared, ()))
    for builtin in (False, True):
        tests.append(("immortal builtin=%s" % builtin, test_immortal, (builtin,)))
        tests.append(("refusals builtin=%s" % builtin, test_refusals, (builtin,)))
        if DEBUG and HAS_IMMORTALITY:
            tests.append(("debug totals builtin=%s" % builtin, test_debug_totals, (builtin,)))
    print("test_ext on %s (pyimmortal target %s)" % (sys.version.split()[0], ext.target()))
    for name, fn, args in tests:
        fn(*args)
        print("  %s ... ok" % name)


if __name__ == "__main__":
    main()
