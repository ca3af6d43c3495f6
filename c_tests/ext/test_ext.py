"""Drives the pyimmortal_testext extension module from Python.

Run by ctest with the target interpreter; exits non-zero on the first
failed check. On debug interpreters it also measures what immortalization
does to the `-X showrefcount` totals. The checks raise CheckFailed, never
`assert`, so that they also check under -O. A case that does not apply to
the target prints "skipped (reason)"; if every case is skipped, or the run
does not apply as a whole, the script exits 77 (ctest's SKIP_RETURN_CODE).
"""

import ast
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
SKIP_EXIT = 77
# -X showrefcount's blocks are pymalloc's (or mimalloc's); with
# PYTHONMALLOC=malloc (the sanitized build's GIL runs) they stay 0.
BLOCKS_COUNTED = sys.getallocatedblocks() > 0


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    pass


def check(cond, *what):
    """Raises CheckFailed unless cond; `what` (a message, or values) says why."""
    if not cond:
        raise CheckFailed(" ".join(repr(w) if not isinstance(w, str) else w for w in what)
                          or "check failed")


def skip_unless(cond, reason):
    if not cond:
        raise Skipped(reason)


class Thing:
    def __init__(self):
        self.payload = [1, 2, 3]


def fresh_str():
    return "".join(["pyimmortal-"] * 8)


def test_target():
    want = "%d.%d%s" % (sys.version_info[0], sys.version_info[1], "t" if FREE_THREADED else "")
    check(ext.target() == want, "target", ext.target(), "want", want)


def test_immortal(builtin):
    r, obj = ext.new_immortal(Thing, builtin)
    check(r == (1 if HAS_IMMORTALITY else 0), "PyUnstable_SetImmortal returned", r)
    check(ext.is_immortal(obj) == bool(r), "is_immortal", ext.is_immortal(obj), "after", r)
    if hasattr(sys, "_is_immortal"):
        check(sys._is_immortal(obj) == bool(r), "sys._is_immortal disagrees with", r)
    if r:
        check(not gc.is_tracked(obj), "an immortal object is still GC-tracked")
    rc = sys.getrefcount(obj)
    many = [obj] * 100000
    del many
    check(sys.getrefcount(obj) == rc, "refcount", sys.getrefcount(obj), "was", rc)
    # One-way, not idempotent (3.15).
    check(ext.set_immortal(obj) == 0, "a second PyUnstable_SetImmortal did not return 0")
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    check((ref() is not None) == bool(r), "alive after the last reference:", ref() is not None)
    if r:
        check(ref().payload == [1, 2, 3], "payload", ref().payload)


def test_refusals(builtin):
    r, s = ext.new_immortal(fresh_str, builtin)
    check(r == 0, "a str was made immortal:", r)
    check(not ext.is_immortal(s), "a refused str is immortal")
    if hasattr(sys, "_is_immortal"):
        check(not sys._is_immortal(s), "sys._is_immortal: a refused str is immortal")
    check(ext.set_immortal(None) == 0, "PyUnstable_SetImmortal(None) did not return 0")
    # Held by a local and a list: two strong references. (A bare local may
    # be passed as a borrowed stack reference on 3.14+, so that the callee
    # sees a count of 1.)
    shared = Thing()
    holder = [shared]
    check(ext.set_immortal(shared) == 0, "a shared object was made immortal")
    check(not ext.is_immortal(shared), "a refused shared object is immortal")
    check(gc.is_tracked(shared), "a refused shared object left the GC")
    check(ext.is_immortal(None) == HAS_IMMORTALITY, "is_immortal(None)", ext.is_immortal(None))
    del holder


def test_set_immortal_dict():
    """pyimmortal_PyUnstable_SetImmortal on a fresh dict: made immortal on
    3.12 and 3.13, whose collector keeps immortal dicts tracked, refused (0)
    on 3.14+, also where CPython 3.15's own function would accept it and a
    later update would then abort a debug build in dict_merge_api
    (gh-153051). Either way the dict keeps working; on debug builds no
    assertion fires."""
    r, d = ext.new_immortal(dict, True)
    want = 1 if (3, 12) <= sys.version_info < (3, 14) else 0
    check(r == want, "SetImmortal(fresh dict) returned", r, "want", want)
    check(ext.is_immortal(d) == r, "the dict's immortality does not match the result")
    d.update({"k": [1, 2, 3]})
    gc.collect()
    d.update({"z": [4]})
    d["x"] = {"nested": [5]}
    gc.collect()
    check(dict(d) == {"k": [1, 2, 3], "z": [4], "x": {"nested": [5]}}, "the dict's content")


def test_unique():
    check(ext.new_is_unique(Thing) == 1, "a fresh object is not uniquely referenced")
    check(ext.new_is_unique(lambda: None) == 0, "None is uniquely referenced")


def test_deferred():
    first, second, obj = ext.new_deferred(Thing)
    want = (1, 0) if DEFERRED_WORKS else (0, 0)
    check((first, second) == want, "EnableDeferredRefcount twice:", (first, second), "want", want)
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    check(ref() is None, "a deferred object must stay collectable")


def expect_error(exc_type, needle, fn, *args):
    """Calls fn(*args); it must raise exc_type with needle in the message."""
    try:
        fn(*args)
    except exc_type as e:
        check(needle in str(e), "%s message %r lacks %r" % (exc_type.__name__, str(e), needle))
    else:
        raise CheckFailed("expected %s" % exc_type.__name__)


def test_immortalize():
    """pyimmortal's own call: an object Python holds in several places."""
    x = Thing()
    holders = [x, x]
    before = ext.registry_count()
    if not HAS_IMMORTALITY:
        expect_error(NotImplementedError, "3.12", ext.immortalize, x)
        check(ext.registry_count() == before, "registry count", ext.registry_count(), "was", before)
        return
    check(ext.immortalize(x) is None, "immortalize did not return None")
    check(ext.is_immortal(x), "not immortal after immortalize")
    if hasattr(sys, "_is_immortal"):
        check(sys._is_immortal(x), "sys._is_immortal: not immortal after immortalize")
    check(not gc.is_tracked(x), "still GC-tracked after immortalize")
    check(ext.registry_count() == before + 1, "registry count", ext.registry_count(), "was", before)
    check(ext.immortalize(x) is None, "immortalize is not idempotent")
    check(ext.registry_count() == before + 1, "registered twice:", ext.registry_count())
    expect_error(TypeError, "intern", ext.immortalize, fresh_str())
    ref = weakref.ref(x)
    del x, holders
    gc.collect()
    check(ref() is not None and ref().payload == [1, 2, 3], "an immortalized object died")


SHOWREFCOUNT = re.compile(r"\[(-?\d+) refs, (-?\d+) blocks\]")


def totals_after(n, builtin, shared=False):
    if shared:
        call = "e.immortalize_shared_lists(%d)" % n
    else:
        call = "e.immortalize_lists(%d, %s)" % (n, builtin)
    code = ("import sys, pyimmortal_testext as e; made = %s; "
            "sys.exit(None if made == %d else 'made %%d immortal, want %d' %% made)" % (call, n, n))
    p = subprocess.run([sys.executable, "-X", "showrefcount", "-c", code],
                       capture_output=True, text=True)
    check(p.returncode == 0, p.stderr)
    m = SHOWREFCOUNT.search(p.stderr)
    check(m is not None, "no -X showrefcount totals in:", p.stderr)
    return int(m.group(1)), int(m.group(2))


def blocks_text(blocks):
    return "%+d blocks" % blocks if BLOCKS_COUNTED else "blocks not counted (PYTHONMALLOC=malloc)"


DEBUG_TOTALS = "not a debug build: no -X showrefcount totals"
NO_IMMORTALS = "CPython 3.9-3.11 have no immortal objects"


def test_debug_totals(builtin):
    """Immortal objects are never freed, so each stays a live block. pyimmortal
    removes the creation reference from the total refcount; CPython 3.15's
    own PyUnstable_SetImmortal leaves it counted."""
    skip_unless(DEBUG, DEBUG_TOTALS)
    skip_unless(HAS_IMMORTALITY, NO_IMMORTALS)
    n = 200
    refs0, blocks0 = totals_after(0, builtin)
    refs1, blocks1 = totals_after(n, builtin)
    cpython_own = CPYTHON_SET_IMMORTAL and not (builtin and FORCE_BUILTIN)
    print("    showrefcount: %d immortal lists -> %+d refs, %s (%s)" % (
        n, refs1 - refs0, blocks_text(blocks1 - blocks0),
        "CPython's PyUnstable_SetImmortal" if cpython_own else "pyimmortal"))
    check(blocks1 - blocks0 == n or not BLOCKS_COUNTED, "blocks", blocks1 - blocks0, "want", n)
    want = n if cpython_own else 0
    check(refs1 - refs0 == want, "refs", refs1 - refs0, "want", want)


def test_debug_totals_shared():
    """pyimmortal_Immortalize on objects with three references each: all
    three leave the total, so the refs at exit balance again."""
    skip_unless(DEBUG, DEBUG_TOTALS)
    skip_unless(HAS_IMMORTALITY, NO_IMMORTALS)
    n = 200
    refs0, blocks0 = totals_after(0, False, shared=True)
    refs1, blocks1 = totals_after(n, False, shared=True)
    print("    showrefcount: %d immortal lists with 3 references -> %+d refs, %s "
          "(pyimmortal_Immortalize)" % (n, refs1 - refs0, blocks_text(blocks1 - blocks0)))
    check(blocks1 - blocks0 == n or not BLOCKS_COUNTED, "blocks", blocks1 - blocks0, "want", n)
    check(refs1 - refs0 == 0, "refs", refs1 - refs0, "want 0")


def test_no_bare_assert():
    """A bare `assert` here would check nothing under -O."""
    with open(__file__) as f:
        tree = ast.parse(f.read())
    lines = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    check(not lines, "%s uses assert on lines %s; use check()" % (__file__, lines))


def main():
    print("test_ext on %s (pyimmortal target %s)" % (sys.version.split()[0], ext.target()))
    # PYIMMORTAL_FORCE_BUILTIN=1 makes pyimmortal use its own implementation
    # where the interpreter exports CPython's. Where it exports none, the run
    # without it has checked pyimmortal's own implementation already.
    if FORCE_BUILTIN and not ext.cpython_exports():
        print("test_ext: skipped (the interpreter exports none of the four CPython functions "
              "that pyimmortal would call instead of its own, so PYIMMORTAL_FORCE_BUILTIN "
              "changes nothing)")
        return SKIP_EXIT
    tests = [("no bare assert", test_no_bare_assert, ()),
             ("target", test_target, ()), ("unique", test_unique, ()),
             ("deferred", test_deferred, ()), ("immortalize", test_immortalize, ()),
             ("set_immortal on a dict", test_set_immortal_dict, ()),
             ("debug totals, shared objects", test_debug_totals_shared, ())]
    for builtin in (False, True):
        tests.append(("immortal builtin=%s" % builtin, test_immortal, (builtin,)))
        tests.append(("refusals builtin=%s" % builtin, test_refusals, (builtin,)))
        tests.append(("debug totals builtin=%s" % builtin, test_debug_totals, (builtin,)))
    ran = skipped = 0
    last_reason = None
    for name, fn, args in tests:
        try:
            fn(*args)
        except Skipped as e:
            print("  %s ... skipped (%s)" % (name, e))
            skipped += 1
            last_reason = str(e)
        else:
            print("  %s ... ok" % name)
            ran += 1
    if skipped and not ran:
        print("test_ext: every case skipped (%s)" % last_reason)
        return SKIP_EXIT
    if skipped:
        print("test_ext: %d cases ran, %d skipped" % (ran, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
