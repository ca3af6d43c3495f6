"""Finalization with 100,000 immortal objects of every kind, made from
Python through pyimmortal_testext: the interpreter must exit cleanly
(status 0: Py_FinalizeEx succeeded; no crash, no refcount assertion). On
debug builds it also measures the `-X showrefcount` totals that the objects
leave at exit against a run that makes none, as docs/measurements.md
records them.

Every object is made immortal with pyimmortal_ImmortalizeChecked
(ext.immortalize), which takes objects that Python holds in several places;
interned strings, which it refuses from 3.13 on (interning makes them
mortal), are made immortal by pyimmortal_ImmortalizeHeap (ext.immortalize_heap),
which interns strings as immortal; it runs last, over everything alive.

Run by ctest with the target interpreter under -X showrefcount. Each
measurement is a child interpreter (this script with --make N [KIND]);
`--breakdown` prints the totals of each kind alone, N of it against none.
Exits 77 where the call does not apply (3.9-3.11, and the
PYIMMORTAL_FORCE_BUILTIN=1 run where the interpreter exports none of
CPython's functions). Checks raise CheckFailed, never `assert`.
"""

import os
import re
import subprocess
import sys
import sysconfig
import types

import pyimmortal_testext as ext

N = 100_000
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
DEBUG = hasattr(sys, "gettotalrefcount")
SKIP_EXIT = 77
SHOWREFCOUNT = re.compile(r"\[(-?\d+) refs, (-?\d+) blocks\]")
# -X showrefcount's blocks are pymalloc's (or mimalloc's); with
# PYTHONMALLOC=malloc (the sanitized build's GIL runs) they stay 0.
BLOCKS_COUNTED = sys.getallocatedblocks() > 0
RELEASE = sys.version.split()[0] + ("t" if FREE_THREADED else "") + ("d" if DEBUG else "")
# The totals at exit, N objects of every kind against none, per debug
# release, as docs/measurements.md records them (each the same in every run:
# the child runs with PYTHONHASHSEED=0). Releases not listed are measured and
# printed, not checked.
DOCUMENTED = {
    "3.13.18d": (1500366, 3599748),
    "3.14.10d": (1300693, 3199936),
    "3.15.2d": (1298666, 3197643),
    "3.14.7td": (1599772, 3199339),
}


class CheckFailed(Exception):
    pass


def check(cond, *what):
    if not cond:
        raise CheckFailed(" ".join(w if isinstance(w, str) else repr(w) for w in what) or "check failed")


class Thing:
    def __init__(self):
        self.payload = [1, 2, 3]


def function(x):
    return x + 1


def weakly_referenced(refs):
    o = Thing()
    refs.append(__import__("weakref").ref(o))
    return o


# kind -> (factory, refusal on this target: None, or (exception, reason))
DICT_REFUSED = (TypeError, "dicts stay mortal on 3.14+ (gh-153051)") if sys.version_info >= (3, 14) else None


def kinds(refs):
    return [
        ("ints", lambda i: int(str(1_000_000 + i)), None),
        ("floats", lambda i: float(i) + 0.25, None),
        ("bytes", lambda i: b"pyimmortal-bytes-%d" % i, None),
        ("tuples", lambda i: (i, float(i)), None),
        ("lists", lambda i: [i, None], None),
        ("dicts", lambda i: {"value": i}, DICT_REFUSED),
        ("sets", lambda i: {i, -1}, None),
        ("instances of a class", lambda i: Thing(), None),
        ("classes", lambda i: type("C%d" % i, (Thing,), {}), None),
        ("functions", lambda i: types.FunctionType(function.__code__, globals()), None),
        ("modules", lambda i: types.ModuleType("pyimmortal_shutdown_%d" % i), None),
        ("capsules", lambda i: ext.new_capsule(), None),
        ("objects with weak references", lambda i: weakly_referenced(refs), None),
    ]


STRINGS = "interned strings, then immortalize_heap()"


def make(n, only=None):
    """The child: n immortal objects of every kind (or of the kind `only`),
    then exit."""
    refs = []
    registered = 0
    for name, factory, refused in kinds(refs):
        if only not in (None, name):
            continue
        made = 0
        for i in range(n):
            o = factory(i)
            try:
                ext.immortalize(o)
            except Exception as e:
                check(refused is not None and isinstance(e, refused[0]), name, "refused:", e)
                continue
            check(refused is None, name, "accepted despite", refused)
            check(ext.is_immortal(o), name, "not immortal")
            made += 1
        registered += made
        print("  %s: %d made immortal%s" % (name, made, " (refused: %s)" % refused[1] if refused else ""))
    check(ext.registry_count() == registered, "registry count", ext.registry_count(), "want", registered)
    if only in (None, STRINGS):
        strings = [sys.intern("pyimmortal-shutdown-%d" % i) for i in range(n)]
        heap = ext.immortalize_heap()
        check(all(ext.is_immortal(s) for s in strings), "an interned string stayed mortal")
        print("  interned strings: %d made immortal by immortalize_heap() (%d objects)" % (n, heap))
    # Prints, once the interpreter is finalized, how many capsule
    # destructors ran: none may, since no immortal object is deallocated.
    ext.report_capsule_destructors_at_exit()
    return 0


def child(n, only=None):
    # A fixed hash seed, so that dicts and sets grow the same way each time.
    p = subprocess.run([sys.executable, "-X", "showrefcount", __file__, "--make", str(n)]
                       + ([only] if only else []),
                       capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
    out = p.stdout + p.stderr
    check(p.returncode == 0, "the interpreter exited with status %d:\n%s" % (p.returncode, out))
    for bad in ("Assertion", "negative ref", "Fatal Python error"):
        check(bad not in out, "%r at exit:\n%s" % (bad, out))
    check("capsule destructors run: 0 after Py_FinalizeEx" in p.stderr,
          "a capsule destructor ran, or no report after Py_FinalizeEx:\n%s" % p.stderr)
    m = SHOWREFCOUNT.search(p.stderr)
    check(m is not None or not DEBUG, "no -X showrefcount totals in:", p.stderr)
    return p.stdout, (int(m.group(1)), int(m.group(2))) if m else None


def breakdown():
    """The totals of each kind alone (not run by ctest): a Markdown table."""
    check(DEBUG, "-X showrefcount totals need a debug build")
    print("| %s | kind | refs at exit | blocks at exit |\n|---|---|---|---|" % RELEASE)
    for name in [k[0] for k in kinds([])] + [STRINGS]:
        _, base = child(0, name)
        _, totals = child(N, name)
        print("| | %s | %+d | %+d |" % (name, totals[0] - base[0], totals[1] - base[1]))
    return 0


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--make":
        return make(int(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else None)
    if sys.argv[1:] == ["--breakdown"]:
        return breakdown()
    if os.environ.get("PYIMMORTAL_FORCE_BUILTIN") == "1" and not ext.cpython_exports():
        print("test_shutdown: skipped (the interpreter exports none of the four CPython functions "
              "that pyimmortal would call instead of its own, so PYIMMORTAL_FORCE_BUILTIN "
              "changes nothing)")
        return SKIP_EXIT
    if sys.version_info < (3, 12):
        print("test_shutdown: skipped (no immortal objects before 3.12)")
        return SKIP_EXIT
    out, totals = child(N)
    print("test_shutdown: %d objects of every kind made immortal; the interpreter exited cleanly" % N)
    print(out.rstrip())
    if DEBUG:
        _, base = child(0)
        refs, blocks = totals[0] - base[0], totals[1] - base[1]
        print("    showrefcount: %d immortal objects of every kind at exit -> %+d refs, %s (shutdown)"
              % (N, refs, "%+d blocks" % blocks if BLOCKS_COUNTED
                 else "blocks not counted (PYTHONMALLOC=malloc)"))
        want = DOCUMENTED.get(RELEASE)
        if want is None:
            print("test_shutdown: no documented totals for %s: not checked" % RELEASE)
        else:
            check(refs == want[0], "refs", refs, "documented", want[0])
            check(blocks == want[1] or not BLOCKS_COUNTED, "blocks", blocks, "documented", want[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
