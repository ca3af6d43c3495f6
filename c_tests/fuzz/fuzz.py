"""Random sequences of pyimmortal's exported functions, on many kinds of objects.

Run by c_tests/fuzz/run.py on the target interpreter, with the
pyimmortal_fuzzext module on the path:

    python -X showrefcount fuzz.py --seed N --calls N [--engine plain|hypothesis]

The extension checks each call against the contract (docs/contract.md)
from the object's state before and after; this program keeps the model of
what must hold across calls:

- an object seen immortal stays immortal, is never deallocated (its
  weakref never dies, its capsule destructor never runs, its __del__ never
  runs), and IsImmortal agrees with `sys._is_immortal` where it exists;
- Registry_Count equals the number of objects that Immortalize and
  ImmortalizeChecked made immortal, Registry_Contains says which, and
  Registry_Visit lists them in the order they were made;
- EnableDeferredRefcount returns 1 at most once per object;
- an object whose `__del__` calls ImmortalizeChecked on itself is accepted
  when the last Py_DECREF runs it (on free-threaded builds, as the object's
  state says) and when the cyclic GC runs it (GIL builds; the free-threaded
  collector leaves it unowned), and is never finalized again;
- after ImmortalizeHeap (once per run, in the main thread) the objects it
  must reach are immortal, and the program keeps working.

Two engines run the same operations: `hypothesis` (a RuleBasedStateMachine
whose rules are the operations, for short runs) and `plain` (a seeded
random.Random choosing them by weight, fast enough for millions of calls).
Some sequences run from 2-4 threads at once, each with its own objects and
the main thread's objects shared. Finally every object is dropped, the
cyclic GC runs, the model is checked once more and the interpreter exits
normally. The last line is "fuzz: done ..." on success; on a violation the
program prints it with the seed and exits 1.
"""

import argparse
import gc
import itertools
import os
import random
import sys
import sysconfig
import threading
import time
import types
import weakref

import pyimmortal_fuzzext as ext

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
VERSION = sys.version_info[:2]
HAS_IMMORTALITY = VERSION >= (3, 12)
REFUSES_DICTS = VERSION >= (3, 14)
DEFERRED_WORKS = FREE_THREADED and VERSION >= (3, 14)
TARGET = "%d.%d%s" % (VERSION[0], VERSION[1], "t" if FREE_THREADED else "")

OBJECT_FUNCTIONS = list(range(len(ext.FUNCTION_NAMES)))
NAMES = [n.replace("pyimmortal_PyUnstable_", "").replace("pyimmortal_", "")
         for n in ext.FUNCTION_NAMES]
(SET_IMMORTAL, IS_IMMORTAL, ENABLE_DEFERRED, IS_UNIQUE, IMMORTALIZE,
 IMMORTALIZE_CHECKED, REGISTRY_CONTAINS, IMMORTALIZE_UNPUBLISHED) = OBJECT_FUNCTIONS
MAKERS = (IMMORTALIZE, IMMORTALIZE_CHECKED, IMMORTALIZE_UNPUBLISHED)
OTHER_FUNCTIONS = ["Registry_Count", "Registry_Visit", "Registry_Visit(NULL)",
                   "target", "target_version_hex", "ImmortalizeHeap"]


class Violation(AssertionError):
    """A result or a state that the contract rules out."""


def check(cond, what, *args):
    if not cond:
        raise Violation(what % args if args else what)


# --- the objects ------------------------------------------------------------------

_counter = itertools.count(1)


def fresh_int():
    return next(_counter)


class Plain:
    def __init__(self):
        self.payload = [1, 2, 3]

    def method(self):
        return self.payload


class WithDel:
    """Its __del__ must never run once it is immortal."""

    def __del__(self):
        if WORLD.is_known_immortal(self):
            WORLD.violation("__del__ ran on an object seen immortal: %s" % type(self).__name__)


class SelfImmortalizing:
    """Calls ImmortalizeChecked on itself from __del__, and records what it got."""

    def __init__(self, in_cycle=False):
        self.in_cycle = in_cycle
        self.other = None

    def __del__(self):
        WORLD.from_del(self, "gc" if self.in_cycle else "dealloc")


class Resurrecting:
    """Part of a cycle; its __del__ (run by the collector) keeps it alive, so
    that it then is a GC object whose finalizer has run."""

    def __init__(self):
        self.other = None

    def __del__(self):
        with WORLD.lock:
            WORLD.resurrected.append(self)


class Node:
    def __init__(self):
        self.other = None


class StrSubclass(str):
    pass


class DictSubclass(dict):
    pass


def make_cycle(cls=Node, *args):
    a, b = cls(*args), cls(*args)
    a.other, b.other = b, a
    return a


def make_function():
    k = fresh_int()

    def f():
        return k
    return f


def make_generator():
    return (i for i in range(3))


def make_weakly_referenced():
    o = Plain()
    WORLD.keep_weakref(o)
    return o


# kind -> factory. Each factory returns a new reference and keeps none, so
# that a fresh object is uniquely referenced where its type allows.
KINDS = {
    "None": lambda: None,
    "small int": lambda: random.choice((0, 1, 5, -5, 256)),
    "big int": lambda: 10 ** 30 + fresh_int(),
    "float": lambda: fresh_int() + 0.5,
    "str interned": lambda: sys.intern("fuzz-interned-%d" % (fresh_int() % 50)),
    "str": lambda: "".join(["fuzz-", str(fresh_int())]),
    "str subclass": lambda: StrSubclass("sub-%d" % fresh_int()),
    "str empty": lambda: "",
    "str one char": lambda: "a",
    "bytes": lambda: b"fuzz-%d" % fresh_int(),
    "bytes empty": lambda: b"",
    "tuple empty": lambda: (),
    "tuple": lambda: (fresh_int(), [fresh_int()]),
    "tuple of atoms": lambda: (fresh_int(), fresh_int() + 0.5),
    "list": lambda: [fresh_int()],
    "dict": lambda: {"k": fresh_int()},
    "dict subclass": lambda: DictSubclass(k=fresh_int()),
    "set": lambda: {fresh_int()},
    "frozenset": lambda: frozenset((fresh_int(),)),
    "heap type": lambda: type("Fuzz%d" % fresh_int(), (Plain,), {}),
    "static type": lambda: random.choice((int, list, dict, type, object, ext.StaticThing)),
    "static type instance": lambda: ext.StaticThing(),
    "instance": Plain,
    "instance with __del__": WithDel,
    "__del__ immortalizes self": SelfImmortalizing,
    "cycle": make_cycle,
    "cycle with __del__": lambda: make_cycle(WithDel),
    "cycle, __del__ immortalizes self": lambda: make_cycle(SelfImmortalizing, True),
    "cycle, __del__ resurrects": lambda: make_cycle(Resurrecting),
    "weakly referenced": make_weakly_referenced,
    "module": lambda: types.ModuleType("fuzzmod%d" % fresh_int()),
    "function": make_function,
    "lambda": lambda: (lambda k=fresh_int(): k),
    "bound method": lambda: Plain().method,
    "builtin method": lambda: [fresh_int()].append,
    "code": lambda: make_function().__code__,
    "generator": make_generator,
    "capsule": ext.new_capsule,
}
KIND_NAMES = list(KINDS)
# Kinds whose factory may return an object that other code, and so other
# threads, also use (singletons, interned strings, types, code objects that
# are constants of a shared function): never private.
SHARED_KINDS = {"None", "small int", "str interned", "str empty", "str one char", "bytes empty",
                "tuple empty", "static type", "code"}
# What ImmortalizeHeap must make immortal on GIL builds (3.12+): GC-tracked
# objects (with a finalizer too), and the untracked objects they reach, other
# than strings and (3.14+) dicts.
HEAP_REACHES = {"list", "set", "frozenset", "tuple", "instance", "cycle", "module", "function",
                "lambda", "bound method", "heap type", "weakly referenced", "big int", "float",
                "bytes", "capsule", "static type instance", "instance with __del__",
                "cycle with __del__", "generator"}


class Entry:
    """One object of a pool. `private`: no other thread can reach it."""
    __slots__ = ("obj", "kind", "private", "__weakref__")

    def __init__(self, obj, kind, private=True):
        self.obj = obj
        self.kind = kind
        self.private = private and kind not in SHARED_KINDS

    def __repr__(self):
        return "<%s>" % self.kind


# --- the model ------------------------------------------------------------------------


class World:
    """What the run knows across calls and threads (one per process)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.registered = {}     # id -> obj: made immortal by Immortalize*, in this interpreter
        self.reg_order = []      # their ids, in the order they were made
        self.immortal = {}       # id -> weakref or (obj,): every object seen immortal
        self.immortal_types = {} # id -> its type's name and where it was seen immortal first
        self.deferred = {}       # id -> obj: EnableDeferredRefcount returned 1
        self.weakrefs = []       # weakrefs to objects of kind "weakly referenced"
        self.del_outcomes = []   # (context, result) of SelfImmortalizing.__del__
        self.resurrected = []
        self.problems = []       # violations found where raising cannot report them
        self.calls = 0           # exported-function calls fuzzed
        self.pairs = 0           # Py_INCREF/Py_DECREF pairs
        self.per_function = dict.fromkeys(NAMES + OTHER_FUNCTIONS, 0)
        self.threads_started = 0
        self.bursts = 0
        self.heap_runs = []      # results of ImmortalizeHeap
        self.heap_at = None      # call count at which the main thread runs it
        self.heap_left = 0
        self.threaded = False    # a burst of threads is running
        self.count_at_burst = 0  # Registry_Count when it started
        self.trace = None

    def violation(self, what):
        with self.lock:
            self.problems.append(what)

    def raise_problems(self):
        if self.problems:
            raise Violation("; ".join(self.problems))

    def count(self, name, n=1):
        self.calls += n
        self.per_function[name] += 1

    def is_known_immortal(self, obj):
        return id(obj) in self.immortal and self._alive(id(obj)) is obj

    def _alive(self, key):
        v = self.immortal.get(key)
        return None if v is None else v() if isinstance(v, weakref.ref) else v[0]

    def note_immortal(self, obj, how):
        key = id(obj)
        with self.lock:
            if key in self.immortal:
                return
            try:
                ref = weakref.ref(obj, self._immortal_died)
            except TypeError:
                ref = (obj,)     # not weakly referenceable: held
            self.immortal[key] = ref
            self.immortal_types[key] = "%s, seen immortal first %s at call %d%s" % (
                type(obj).__name__, how, self.calls, " during threads" if self.threaded else "")
        # One of the fuzzer's capsules: its destructor now aborts the
        # process if it ever runs.
        ext.mark_immortal_capsule(obj)

    def _immortal_died(self, ref):
        with self.lock:
            names = [self.immortal_types.get(k) for k, v in self.immortal.items() if v is ref]
        self.violation("an object seen immortal was deallocated (its weakref died): %s" % names)

    def register(self, obj):
        key = id(obj)
        with self.lock:
            if key in self.registered:
                self.violation("Immortalize made a registered (so immortal) object immortal again")
            self.registered[key] = obj
            self.reg_order.append(key)
        self.note_immortal(obj, "registered")

    def keep_weakref(self, obj):
        with self.lock:
            self.weakrefs.append(weakref.ref(obj))

    def from_del(self, obj, context):
        """SelfImmortalizing.__del__: calls ImmortalizeChecked on itself."""
        try:
            r, before, after = ext.call(IMMORTALIZE_CHECKED, obj, context == "dealloc")
        except BaseException as e:  # reported from here: __del__ cannot raise
            self.violation("in __del__ (%s): %s: %s" % (context, type(e).__name__, e))
            return
        with self.lock:
            self.calls += 1
            self.per_function[NAMES[IMMORTALIZE_CHECKED]] += 1
            self.del_outcomes.append((context, r))
        if r == 0 and not before:
            self.register(obj)

    def check_del_outcomes(self):
        """The last Py_DECREF's __del__ is accepted on GIL builds (the object
        stays tracked while its finalizer runs; on free-threaded builds the
        extension checked the call against the object's state); the
        collector's __del__ is accepted on GIL builds (the object is
        resurrected, immortal) and refused on free-threaded ones (the
        collector leaves unreachable objects unowned)."""
        with self.lock:
            outcomes, self.del_outcomes = self.del_outcomes, []
        for context, r in outcomes:
            if not HAS_IMMORTALITY or (FREE_THREADED and context == "gc"):
                check(r == -1, "ImmortalizeChecked from __del__ (%s) succeeded", context)
            elif not FREE_THREADED:
                check(r == 0, "ImmortalizeChecked from __del__ (%s) was refused", context)

    def check_immortals(self, limit=None):
        """Every object seen immortal is alive and immortal."""
        with self.lock:
            items = list(self.immortal.items())
        if limit is not None and len(items) > limit:
            items = items[-limit:]
        for key, v in items:
            obj = v() if isinstance(v, weakref.ref) else v[0]
            check(obj is not None or not isinstance(v, weakref.ref), "an object seen immortal was deallocated: %s",
                  self.immortal_types.get(key))
            check(ext.oracle_immortal(obj), "an object seen immortal is mortal: %s",
                  self.immortal_types.get(key))
        self.raise_problems()

    def clear(self):
        with self.lock:
            self.registered.clear()
            self.immortal.clear()
            self.deferred.clear()
            self.resurrected.clear()


WORLD = World()


# --- the operations -------------------------------------------------------------------


class Fuzzer:
    """One thread's pool of objects and the operations on it."""

    def __init__(self, rng, thread=None, shared=None, published=None):
        self.rng = rng
        self.pool = []
        self.thread = thread          # None in the main thread
        self.shared = shared or []    # the main thread's objects, during a burst
        self.published = published    # immortal objects handed between threads
        self.calls = 0

    # bookkeeping of one call's result
    def _after(self, fn, obj, r, before, after):
        if obj is None:
            return
        if after:
            WORLD.note_immortal(obj, "after %s (immortal before: %s)" % (NAMES[fn], bool(before)))
        if fn in MAKERS:
            ok = r == (1 if fn == IMMORTALIZE else 0)
            if ok and not before:
                WORLD.register(obj)
        elif fn == IS_IMMORTAL and hasattr(sys, "_is_immortal"):
            check(sys._is_immortal(obj) == bool(r), "IsImmortal says %d, sys._is_immortal %s",
                  r, sys._is_immortal(obj))
        elif fn == REGISTRY_CONTAINS:
            with WORLD.lock:
                known = id(obj) in WORLD.registered and WORLD.registered[id(obj)] is obj
            if known:
                check(r == 1, "Registry_Contains denies an object Immortalize made immortal")
            elif not WORLD.threaded:
                check(r == 0, "Registry_Contains lists an object no Immortalize call made immortal")
        elif fn == ENABLE_DEFERRED and r == 1:
            with WORLD.lock:
                check(id(obj) not in WORLD.deferred or WORLD.deferred[id(obj)] is not obj,
                      "EnableDeferredRefcount returned 1 twice for one object")
                WORLD.deferred[id(obj)] = obj

    def _count(self, name, n=1):
        self.calls += n
        if self.thread is None:
            WORLD.count(name, n)
        else:
            with WORLD.lock:
                WORLD.count(name, n)

    def make(self, kind):
        e = Entry(KINDS[kind](), kind)
        self.pool.append(e)
        return e

    def call(self, fn, entry):
        """fn on a pool object, or on NULL when entry is None."""
        obj = ext.NULL if entry is None else entry.obj
        r, before, after = ext.call(fn, obj, entry is not None and entry.private)
        self._count(NAMES[fn])
        self._after(fn, None if entry is None else obj, r, before, after)
        return r

    def call_fresh(self, fn, kind):
        r, before, after, obj = ext.call_fresh(fn, KINDS[kind], kind not in SHARED_KINDS)
        self._count(NAMES[fn])
        self._after(fn, obj, r, before, after)
        e = Entry(obj, kind)
        self.pool.append(e)
        return e

    def incdec(self, entry, n):
        ext.incdec(entry.obj, n, entry.private)
        if self.thread is None:
            WORLD.pairs += n
        else:
            with WORLD.lock:
                WORLD.pairs += n

    def registry_count(self):
        n = ext.registry_count()
        self._count("Registry_Count")
        with WORLD.lock:
            want = len(WORLD.registered)
        if WORLD.threaded:
            check(n >= WORLD.count_at_burst, "Registry_Count %d fell below %d during the threads",
                  n, WORLD.count_at_burst)
        else:
            check(n == want, "Registry_Count is %d, but Immortalize made %d objects immortal",
                  n, want)
        return n

    def visit(self, stop_after=0, reenter=False):
        with WORLD.lock:
            order = list(WORLD.reg_order)
        r, seen, made = ext.visit(stop_after, reenter)
        self._count("Registry_Visit")
        if made is not None:
            WORLD.register(made)
            self.pool.append(Entry(made, "list made immortal inside Registry_Visit"))
        ids = [id(o) for o in seen]
        if WORLD.threaded:
            # Entries are only added: everything registered before is there.
            check(set(order) <= set(ids) or stop_after,
                  "Registry_Visit misses objects made immortal earlier")
        elif stop_after and len(order) >= stop_after:
            check(ids == order[:stop_after], "Registry_Visit stopped with other objects than the first %d",
                  stop_after)
        else:
            check(ids == order, "Registry_Visit lists %d objects, the model %d (or another order)",
                  len(ids), len(order))
        return r

    def visit_null(self):
        ext.visit_null()
        self._count("Registry_Visit(NULL)")

    def target(self):
        t, hexversion = ext.target()
        self._count("target")
        self._count("target_version_hex")
        check(t == TARGET, "pyimmortal_target is %r, the interpreter %r", t, TARGET)
        check(hexversion >> 16 == (VERSION[0] << 8 | VERSION[1]),
              "pyimmortal_target_version_hex %x is not %d.%d", hexversion, *VERSION)

    def heap(self):
        n, exc = ext.heap()
        self._count("ImmortalizeHeap")
        with WORLD.lock:
            WORLD.heap_runs.append(n if n >= 0 else exc.__name__)
        if n < 0:
            return n
        for e in self.pool:
            if ext.oracle_immortal(e.obj):
                WORLD.note_immortal(e.obj, "after ImmortalizeHeap")
            elif not FREE_THREADED and e.kind in HEAP_REACHES:
                raise Violation("ImmortalizeHeap left a %s mortal" % e.kind)
        return n

    def use(self, entry):
        """Uses the object as a program would; immortal or not, it must work."""
        o, kind = entry.obj, entry.kind
        if not entry.private:
            hash_or_none(o)
            type(o)
            return
        if isinstance(o, list):
            o.append(1)
            o.pop()
            len(o)
        elif isinstance(o, dict):
            o["fuzz"] = 1
            o.update({"a": 1})
            del o["fuzz"]
            dict(o)
        elif isinstance(o, set):
            o.add(-1)
            o.discard(-1)
        elif isinstance(o, (Plain, Node, WithDel, Resurrecting, SelfImmortalizing)):
            o.attr = fresh_int()
            getattr(o, "attr")
        elif kind == "heap type":
            o.class_attr = fresh_int()
            o()
        elif isinstance(o, types.ModuleType):
            o.x = fresh_int()
        elif callable(o) and kind in ("function", "lambda", "bound method"):
            o()
        elif kind == "generator":
            next(o, None)
        elif isinstance(o, str):
            (o + "x").upper()
        elif isinstance(o, bytes):
            o + b"x"
        elif isinstance(o, tuple):
            list(o)
        hash_or_none(o)
        try:
            weakref.ref(o)
        except TypeError:
            pass

    def drop(self, index):
        e = self.pool.pop(index)
        e.obj = None

    def collect(self, generation=2):
        gc.collect(generation)
        if self.thread is None:
            self.after_collect()

    def after_collect(self):
        WORLD.check_del_outcomes()
        WORLD.raise_problems()
        with WORLD.lock:
            back, WORLD.resurrected = WORLD.resurrected, []
        for o in back:
            self.pool.append(Entry(o, "finalized (resurrected by __del__)"))

    def drop_all(self):
        while self.pool:
            self.drop(len(self.pool) - 1)

    # --- the plain engine's choice of operation

    def random_entry(self):
        pool = self.pool
        if self.shared and self.rng.random() < 0.4:
            return self.rng.choice(self.shared)
        if self.published and self.rng.random() < 0.2:
            return self.rng.choice(self.published)
        return self.rng.choice(pool) if pool else None

    def step(self):
        """One operation chosen by weight (the plain engine, and threads)."""
        rng = self.rng
        x = rng.random()
        pool = self.pool
        if x < 0.12 or not pool:
            self.make(rng.choice(KIND_NAMES))
        elif x < 0.52:
            fn = rng.choice(OBJECT_FUNCTIONS)
            self.call(fn, None if rng.random() < 0.03 else self.random_entry())
        elif x < 0.67:
            self.call_fresh(rng.choice(OBJECT_FUNCTIONS), rng.choice(KIND_NAMES))
        elif x < 0.74:
            e = self.random_entry()
            if e is not None:
                self.incdec(e, rng.choice((1, 2, 10, 100, 1000)))
        elif x < 0.77:
            self.registry_count()
        elif x < 0.785:
            self.visit(rng.choice((0, 0, 1, 3)), rng.random() < 0.3)
        elif x < 0.79:
            self.visit_null()
        elif x < 0.80:
            self.target()
        elif x < 0.86:
            e = self.random_entry()
            if e is not None:
                self.use(e)
        elif x < 0.97:
            if pool:
                self.drop(rng.randrange(len(pool)))
        elif x < 0.9725:
            self.collect(rng.choice((0, 0, 1, 2)))
        elif x < 0.975:
            WORLD.check_immortals(limit=64)
        elif self.thread is not None:
            self.thread_extra()
        if len(pool) > 256:
            self.drop(rng.randrange(len(pool)))

    def thread_extra(self):
        """Only in threads: publish an immortal object to the other threads,
        or (free-threaded, rarely) ImmortalizeHeap, which must refuse."""
        rng = self.rng
        if FREE_THREADED and rng.random() < 0.02:
            n = self.heap()
            check(n == -1, "ImmortalizeHeap ran while other threads exist")
            return
        if self.published is not None and len(self.published) < 64:
            e = self.call_fresh(IMMORTALIZE, rng.choice(("list", "instance", "capsule", "tuple")))
            if HAS_IMMORTALITY and ext.oracle_immortal(e.obj):
                e.private = False
                self.published.append(e)


def hash_or_none(o):
    try:
        return hash(o)
    except TypeError:
        return None


# --- threads ---------------------------------------------------------------------------


def burst(main, seed, nthreads, steps):
    """Runs `steps` operations in each of `nthreads` threads at once: each
    with its own objects, the main thread's objects shared, and immortal
    objects published between them. Afterwards the registry is exact again,
    and the threads' objects join the main pool (owned by threads that have
    ended)."""
    shared = [Entry(e.obj, e.kind, private=False) for e in main.pool if e.obj is not None]
    published = []
    barrier = threading.Barrier(nthreads)
    errors = []
    fuzzers = [Fuzzer(random.Random(seed * 1000 + i), thread=i, shared=shared, published=published)
               for i in range(nthreads)]

    def work(f):
        try:
            barrier.wait()
            for _ in range(steps):
                f.step()
        except BaseException as e:  # re-raised in the main thread
            errors.append((f.thread, e))
            barrier.abort()

    threads = [threading.Thread(target=work, args=(f,)) for f in fuzzers]
    WORLD.count_at_burst = len(WORLD.registered)
    WORLD.threaded = True
    WORLD.bursts += 1
    WORLD.threads_started += nthreads
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    WORLD.threaded = False
    for i, e in errors:
        if not isinstance(e, threading.BrokenBarrierError):
            raise Violation("thread %d of burst %d (seed %d): %s: %s" % (
                i, WORLD.bursts, seed, type(e).__name__, e)) from e
    # The registry is exact again; its order among the threads' objects is
    # the registry's own.
    n = ext.registry_count()
    check(n == len(WORLD.registered), "after the threads: Registry_Count %d, model %d",
          n, len(WORLD.registered))
    r, seen, made = ext.visit(0, False)
    check(made is None and set(map(id, seen)) == set(WORLD.reg_order),
          "after the threads: Registry_Visit lists other objects than the model")
    WORLD.reg_order[:] = [id(o) for o in seen]
    for f in fuzzers:
        kept, f.pool = f.pool[:16], f.pool[16:]
        for e in kept:
            # Only the main thread runs from here on.
            e.private = e.kind not in SHARED_KINDS
            main.pool.append(e)
        f.drop_all()
    for e in published:
        e.private = e.kind not in SHARED_KINDS
        main.pool.append(e)
    WORLD.raise_problems()


# --- the engines -----------------------------------------------------------------------


def run_plain(seed, budget, threads):
    rng = random.Random(seed)
    main = Fuzzer(rng)
    next_burst = rng.randrange(budget // 4 + 1) if threads else None
    while WORLD.calls < budget:
        main.step()
        if WORLD.heap_left and WORLD.calls >= WORLD.heap_at:
            WORLD.heap_left -= 1
            main.heap()
        if next_burst is not None and WORLD.calls >= next_burst:
            n = rng.randint(2, threads)
            steps = min(rng.randint(100, 800), (budget - WORLD.calls) // n + 10)
            burst(main, rng.getrandbits(32), n, steps)
            next_burst = WORLD.calls + rng.randint(1000, 10000)
    return main


def run_hypothesis(seed, budget, threads, step_count=50):
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st
    from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize,
                                     invariant, precondition, rule, run_state_machine_as_test)

    entries = st.sampled_from(KIND_NAMES)
    functions = st.sampled_from(OBJECT_FUNCTIONS)

    class APISequences(RuleBasedStateMachine):
        """The operations of Fuzzer as rules; objects live in a bundle."""
        objects = Bundle("objects")

        def __init__(self):
            super().__init__()
            self.f = Fuzzer(random.Random(0))
            self.heap_done = False

        @initialize(target=objects, kind=entries)
        def first(self, kind):
            return self.f.make(kind)

        @rule(target=objects, kind=entries)
        def make(self, kind):
            return self.f.make(kind)

        @rule(fn=functions, entry=objects)
        def call(self, fn, entry):
            if entry.obj is not None:
                self.f.call(fn, entry)

        @rule(fn=functions)
        def call_null(self, fn):
            self.f.call(fn, None)

        @rule(target=objects, fn=functions, kind=entries)
        def call_fresh(self, fn, kind):
            return self.f.call_fresh(fn, kind)

        @rule(entry=objects, n=st.sampled_from((1, 2, 10, 100, 1000)))
        def incdec(self, entry, n):
            if entry.obj is not None:
                self.f.incdec(entry, n)

        @rule()
        def registry_count(self):
            self.f.registry_count()

        @rule(stop_after=st.integers(0, 3), reenter=st.booleans())
        def visit(self, stop_after, reenter):
            self.f.visit(stop_after, reenter)

        @rule()
        def visit_null(self):
            self.f.visit_null()

        @rule()
        def target(self):
            self.f.target()

        @rule(entry=objects)
        def use(self, entry):
            if entry.obj is not None:
                self.f.use(entry)

        @rule(entry=consumes(objects))
        def drop(self, entry):
            if entry.obj is not None and entry in self.f.pool:
                self.f.drop(self.f.pool.index(entry))

        @rule(generation=st.sampled_from((0, 0, 0, 1, 2)))
        def collect(self, generation):
            self.f.collect(generation)

        @precondition(lambda self: threads > 1)
        @rule(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(2, max(2, threads)),
              steps=st.integers(5, 60))
        def threads_at_once(self, seed, n, steps):
            burst(self.f, seed, n, steps)

        # Preconditions read only the machine's own state, fixed for a
        # whole chunk of examples (Hypothesis replays examples and requires
        # the same data to draw the same rules).
        heap_enabled = False

        @precondition(lambda self: self.heap_enabled and not self.heap_done)
        @rule()
        def immortalize_heap(self):
            self.heap_done = True
            WORLD.heap_left = max(0, WORLD.heap_left - 1)
            self.f.heap()

        @invariant()
        def immortal_objects_stay_immortal(self):
            WORLD.check_immortals(limit=16)

        def teardown(self):
            self.f.drop_all()

    rng = random.Random(seed)
    chunk = 0
    while WORLD.calls < budget:
        chunk += 1
        left = budget - WORLD.calls
        examples = max(1, min(20, left // (step_count // 2) + 1))
        # ImmortalizeHeap in the examples of one chunk, once the calls have
        # reached the point chosen for it.
        APISequences.heap_enabled = bool(WORLD.heap_left) and WORLD.calls >= WORLD.heap_at
        machine = hypothesis_seed(rng.getrandbits(64))(APISequences)
        run_state_machine_as_test(machine, settings=settings(
            max_examples=examples, stateful_step_count=step_count, deadline=None,
            database=None, suppress_health_check=list(HealthCheck), derandomize=False,
            phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False,
            verbosity=Verbosity.verbose if os.environ.get("PYIMMORTAL_FUZZ_VERBOSE") else Verbosity.normal,
            print_blob=False))
        if APISequences.heap_enabled:
            WORLD.heap_left = 0
    return Fuzzer(rng)


# --- main ---------------------------------------------------------------------------------


def finish(main):
    """Drop everything, collect, check the model a last time."""
    main.drop_all()
    WORLD.deferred.clear()   # deferred objects must stay collectable
    gc.enable()
    gc.collect()
    gc.collect()
    main.after_collect()
    main.drop_all()
    gc.collect()
    WORLD.check_del_outcomes()
    WORLD.check_immortals()
    n = ext.registry_count()
    check(n == len(WORLD.registered), "at the end: Registry_Count %d, model %d", n, len(WORLD.registered))
    r, seen, made = ext.visit(0, False)
    check([id(o) for o in seen] == WORLD.reg_order, "at the end: Registry_Visit differs from the model")
    for ref in WORLD.weakrefs:
        o = ref()
        if o is not None:
            check(ext.oracle_immortal(o), "a mortal weakly referenced object outlived its references")
    WORLD.raise_problems()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--calls", type=int, default=20000, help="exported-function calls to make")
    ap.add_argument("--engine", choices=("plain", "hypothesis"), default="plain")
    ap.add_argument("--threads", type=int, default=4,
                    help="at most this many threads per burst (0 or 1: no threads)")
    ap.add_argument("--heap-calls", type=int, default=1, help="ImmortalizeHeap calls in the main thread")
    args = ap.parse_args()

    print("fuzz: seed %d, engine %s, %d calls, CPython %s%s%s, pyimmortal target %s" % (
        args.seed, args.engine, args.calls, sys.version.split()[0], " free-threaded" if FREE_THREADED else "",
        " debug" if hasattr(sys, "gettotalrefcount") else "", ext.target()[0]), flush=True)
    # Deterministic collection: the cyclic GC runs only when an operation asks.
    gc.disable()
    random.seed(args.seed)
    heap_rng = random.Random(args.seed ^ 0x5eed)
    WORLD.heap_left = args.heap_calls
    WORLD.heap_at = int(args.calls * heap_rng.uniform(0.5, 0.9))
    unraisable = []
    sys.unraisablehook = lambda u: unraisable.append("%s: %s (in %r)" % (
        u.exc_type.__name__, u.exc_value, u.object))
    t0 = time.perf_counter()
    try:
        if args.engine == "plain":
            f = run_plain(args.seed, args.calls, args.threads if args.threads > 1 else 0)
        else:
            f = run_hypothesis(args.seed, args.calls, args.threads if args.threads > 1 else 0)
        elapsed = time.perf_counter() - t0
        finish(f)
        check(not unraisable, "unraisable exceptions: %s", "; ".join(unraisable[:5]))
    except BaseException as e:
        sys.stdout.flush()
        print("fuzz: FAILED after %d calls: %s: %s" % (WORLD.calls, type(e).__name__, e), file=sys.stderr)
        print("fuzz: replay with --seed %d --calls %d --engine %s" % (args.seed, args.calls, args.engine),
              file=sys.stderr, flush=True)
        if not isinstance(e, (Violation, ext.ContractError)):
            raise
        return 1
    per = ", ".join("%s %d" % (k, v) for k, v in WORLD.per_function.items())
    print("fuzz: calls per function: %s" % per)
    print("fuzz: done: seed %d, engine %s, %d calls in %.1fs (%.0f calls/s), %d Py_INCREF/Py_DECREF "
          "pairs, %d pyimmortal calls with the checks, %d thread bursts (%d threads), ImmortalizeHeap %s, "
          "registry %d, %d objects seen immortal" % (
              args.seed, args.engine, WORLD.calls, elapsed, WORLD.calls / elapsed if elapsed else 0,
              WORLD.pairs, ext.calls_made(), WORLD.bursts, WORLD.threads_started,
              WORLD.heap_runs or "not run", len(WORLD.registered), len(WORLD.immortal)), flush=True)
    WORLD.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
