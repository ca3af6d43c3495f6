"""The Python loops that the benchmark's threads run.

Each loop takes the per-thread iteration count and one per-thread argument.
What the loops touch on every iteration, and who owns it:

* ``capsule_loop(n, call)``: ``call`` is a function object made by the
  calling thread itself (``pyimmortal_bench.capsule_caller()`` or
  ``ceiling_caller()``) and held in a local, so loading and calling it only
  touches thread-owned reference counts. The C function behind it does the
  shared (or, for the ceiling, thread-local) Py_INCREF/Py_DECREF.
* ``callable_loop``: loads ``CALLABLE`` from this module's globals (as code
  that calls an extension's module-level function does) and calls it. The
  only shared reference count in the loop is the callable's own.
* ``singleton_loop``: loads ``SINGLETON`` and ``SINGLETON_TYPE`` from the
  globals, calls ``isinstance`` and reads one attribute. Besides the
  singleton this touches the heap type, the ``isinstance`` builtin and the
  ``kind`` member descriptor, the same in every mode. On 3.14t all three are
  deferred or immortal. On 3.13t the builtin and the descriptor become
  immortal at the first thread start, but a type made with PyType_FromSpec
  stays an ordinary mortal object (classes made by a ``class`` statement are
  deferred there, types from PyType_FromSpec are not), so loading
  ``SINGLETON_TYPE`` contends in every mode and this kernel stays below the
  ceiling on 3.13t whatever happens to the singleton. That is the pattern's
  real cost on 3.13t, so the loop keeps it.

The worker sets the globals before it starts any thread. ``range`` is looked
up once per call, and its items are either immortal small ints or fresh
objects owned by the thread.
"""

CALLABLE = None
SINGLETON = None
SINGLETON_TYPE = None


def capsule_loop(n, call):
    for _ in range(n):
        call()


def callable_loop(n, _unused):
    for _ in range(n):
        CALLABLE()


def singleton_loop(n, _unused):
    for _ in range(n):
        if isinstance(SINGLETON, SINGLETON_TYPE):
            SINGLETON.kind  # the attribute lookup is the work
