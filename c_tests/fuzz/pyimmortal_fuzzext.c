/* The fuzzer's extension module: every exported function of libpyimmortal.a
 * behind one entry point each, with an argument that may be NULL, and the
 * contract's defined results (docs/contract.md) checked on every call.
 *
 * c_tests/fuzz/fuzz.py drives it. Each call reads the object's state before
 * and after with the headers' own inline functions (never through
 * pyimmortal), compares the result with what the contract defines for that
 * state, and raises ContractError with the details when they differ.
 *
 * "Strict" checks apply where the object's state cannot change under the
 * call: always on GIL builds (the call holds the GIL throughout), and on
 * free-threaded builds when no other thread exists in the interpreter or
 * the caller says the object is private (no other thread can reach it).
 * Otherwise only what another thread cannot change is checked (for
 * example: a success implies the object was owned by the calling thread,
 * and it is immortal afterwards). */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#include <stdint.h>
#include <string.h>

#define HAS_IMMORTALITY (PY_VERSION_HEX >= 0x030C0000)
/* 3.14+ refuses dicts in pyimmortal_Immortalize (gh-153051). */
#define REFUSES_DICTS (PY_VERSION_HEX >= 0x030E0000)
#if defined(Py_GIL_DISABLED)
#  define FREE_THREADED 1
/* EnableDeferredRefcount does something on free-threaded 3.14+ only. */
#  define DEFERRED_WORKS (PY_VERSION_HEX >= 0x030E0000)
/* _PyGC_BITS_TRACKED and _PyGC_BITS_DEFERRED (Include/internal/pycore_gc.h);
 * the object header's ob_gc_bits is public, the names are not. */
#  define GC_BITS_TRACKED 1
#  define GC_BITS_DEFERRED 64
/* _Py_REF_SHARED(_Py_REF_DEFERRED, 0): the bias a deferred object carries in
 * ob_ref_shared on 3.14t+ (Include/internal/pycore_object.h). */
#  define DEFERRED_BIAS ((PY_SSIZE_T_MAX / 8) << _Py_REF_SHARED_SHIFT)
#else
#  define FREE_THREADED 0
#  define DEFERRED_WORKS 0
#endif

/* 3.14+ GIL builds (64-bit): immortality is "sticky" (gh-125174). An
 * object is immortal while the low 32 bits of its count are at least
 * _Py_IMMORTAL_MINIMUM_REFCNT (2**31); Py_DECREF leaves it alone, but the
 * interpreter releases stack references it took while the object was
 * mortal with a plain decrement, so the count may sit below
 * _Py_IMMORTAL_INITIAL_REFCNT (3 << 30), and Py_INCREF raises it back up
 * to that value (Include/refcount.h). */
#if !FREE_THREADED && PY_VERSION_HEX >= 0x030E0000 && SIZEOF_VOID_P > 4
#  define STICKY_IMMORTAL_CEILING ((Py_ssize_t)_Py_IMMORTAL_INITIAL_REFCNT)
#endif

/* What Py_REFCNT of an immortal object whose count was `rc` reads after
 * `n` Py_INCREF (and any number of Py_DECREF). */
static Py_ssize_t
immortal_count_after_increfs(Py_ssize_t rc, Py_ssize_t n)
{
#ifdef STICKY_IMMORTAL_CEILING
    if (rc < STICKY_IMMORTAL_CEILING) {
        return rc + n < STICKY_IMMORTAL_CEILING ? rc + n : STICKY_IMMORTAL_CEILING;
    }
#else
    (void)n;
#endif
    return rc;
}

/* The object functions, as numbered for fuzz.py. */
enum {
    F_SET_IMMORTAL,
    F_IS_IMMORTAL,
    F_ENABLE_DEFERRED,
    F_IS_UNIQUE,
    F_IMMORTALIZE,
    F_IMMORTALIZE_CHECKED,
    F_REGISTRY_CONTAINS,
    F_IMMORTALIZE_UNPUBLISHED,
    F_OBJECT_FUNCTIONS,
};

static const char *const fn_names[F_OBJECT_FUNCTIONS] = {
    "pyimmortal_PyUnstable_SetImmortal",
    "pyimmortal_PyUnstable_IsImmortal",
    "pyimmortal_PyUnstable_Object_EnableDeferredRefcount",
    "pyimmortal_PyUnstable_Object_IsUniquelyReferenced",
    "pyimmortal_Immortalize",
    "pyimmortal_ImmortalizeChecked",
    "pyimmortal_Registry_Contains",
    "pyimmortal_ImmortalizeUnpublished",
};

static PyObject *ContractError; /* raised on a result the contract rules out */
static PyObject *NullSentinel;  /* stands for NULL in call() */

/* Calls of exported functions made here, checks included; read by stats(). */
#if FREE_THREADED
#  define COUNT(n) _Py_atomic_add_ssize(&calls_made, (n))
#else
#  define COUNT(n) (calls_made += (n))
#endif
static Py_ssize_t calls_made;

/* --- the object's state, read without pyimmortal --------------------------- */

static int
oracle_immortal(PyObject *op)
{
#if HAS_IMMORTALITY
    return _Py_IsImmortal(op) ? 1 : 0;
#else
    (void)op;
    return 0;
#endif
}

/* Whether another thread state exists in the current interpreter, read as
 * pyimmortal documents it ("no other thread exists in the interpreter"). */
static int
other_threads_exist(void)
{
    PyThreadState *me = PyThreadState_Get();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); t != NULL;
         t = PyThreadState_Next(t)) {
        if (t != me) {
            return 1;
        }
    }
    return 0;
}

struct state {
    int immortal;
    int is_str;       /* str or a subclass */
    int is_dict;      /* dict or a subclass */
    int gc_type;
    int tracked;
    int fin_pending;  /* a GC object whose tp_finalize has not run */
    int unique;       /* uniquely referenced, by the contract's definition */
    int registered;   /* Registry_Contains, read before */
    Py_ssize_t refcnt;
#if FREE_THREADED
    int owned;
    uint32_t local;
    Py_ssize_t shared;
    int deferred;
#endif
};

static void
read_state(PyObject *op, struct state *s)
{
    PyTypeObject *tp = Py_TYPE(op);
    memset(s, 0, sizeof(*s));
    s->immortal = oracle_immortal(op);
    s->is_str = PyUnicode_Check(op);
    s->is_dict = PyDict_Check(op);
    s->gc_type = PyType_IS_GC(tp);
    s->tracked = s->gc_type && PyObject_GC_IsTracked(op);
    s->fin_pending = s->gc_type && tp->tp_finalize != NULL && !PyObject_GC_IsFinalized(op);
    s->refcnt = Py_REFCNT(op);
    s->registered = pyimmortal_Registry_Contains(op);
    COUNT(1);
#if FREE_THREADED
    s->owned = _Py_atomic_load_uintptr_relaxed(&op->ob_tid) == _Py_ThreadId();
    s->local = _Py_atomic_load_uint32_relaxed(&op->ob_ref_local);
    s->shared = _Py_atomic_load_ssize_relaxed(&op->ob_ref_shared);
    s->deferred = (_Py_atomic_load_uint8_relaxed(&op->ob_gc_bits) & GC_BITS_DEFERRED) != 0;
    s->unique = s->owned && s->local == 1 && s->shared == 0;
#else
    s->unique = s->refcnt == 1;
#endif
}

/* --- reporting --------------------------------------------------------------- */

static PyObject *
violation(int fn, PyObject *op, const struct state *before, int r, const char *what)
{
    const char *name = fn >= 0 && fn < F_OBJECT_FUNCTIONS ? fn_names[fn] : "?";
    if (op == NULL) {
        PyErr_Format(ContractError, "%s(NULL) returned %d: %s", name, r, what);
        return NULL;
    }
#if FREE_THREADED
    PyErr_Format(ContractError,
                 "%s(<%s object at %p>) returned %d: %s [before: immortal=%d str=%d dict=%d "
                 "gc=%d tracked=%d finalizer_pending=%d refcnt=%zd registered=%d owned=%d "
                 "local=%u shared=%zd deferred=%d other_threads=%d]",
                 name, Py_TYPE(op)->tp_name, (void *)op, r, what, before->immortal,
                 before->is_str, before->is_dict, before->gc_type, before->tracked,
                 before->fin_pending, before->refcnt, before->registered, before->owned,
                 (unsigned)before->local, before->shared, before->deferred,
                 other_threads_exist());
#else
    PyErr_Format(ContractError,
                 "%s(<%s object at %p>) returned %d: %s [before: immortal=%d str=%d dict=%d "
                 "gc=%d tracked=%d finalizer_pending=%d refcnt=%zd registered=%d]",
                 name, Py_TYPE(op)->tp_name, (void *)op, r, what, before->immortal,
                 before->is_str, before->is_dict, before->gc_type, before->tracked,
                 before->fin_pending, before->refcnt, before->registered);
#endif
    return NULL;
}

#define VIOLATION(what) return violation(fn, op, &before, r, (what))
#define EXPECT(cond, what)   \
    do {                     \
        if (!(cond)) {       \
            VIOLATION(what); \
        }                    \
    } while (0)

/* The exception the checked call must set for a refused `op` (3.12+), or
 * NULL when the refusal is a RuntimeError (finalizer pending, or a
 * free-threaded ownership rule). */
static PyObject *
type_error_expected(const struct state *s)
{
    if (s->is_str || (REFUSES_DICTS && s->is_dict)) {
        return PyExc_TypeError;
    }
    return NULL;
}

/* Whether pyimmortal_Immortalize (unpublished: ImmortalizeUnpublished) must
 * accept a mortal `op` in state `s` (strict: the state cannot change under
 * the call). */
static int
immortalize_accepts(const struct state *s, int others, int unpublished)
{
    if (!HAS_IMMORTALITY) {
        return 0;
    }
    if (s->immortal) {
        return 1;
    }
    if (s->is_str || (REFUSES_DICTS && s->is_dict)) {
        return 0;
    }
#if FREE_THREADED
    if (s->fin_pending) {
        return 0; /* a tracked object does not stay immortal there */
    }
    if (!s->owned) {
        return 0;
    }
    if (s->deferred) {
#  if PY_VERSION_HEX >= 0x030E0000
        /* 3.14t: the _Py_REF_DEFERRED bias keeps other threads' decrefs
         * from queueing: any count, other threads or not, unless queued or
         * merged (or, unpublished, a shared count above the bias). */
        Py_ssize_t above = s->shared - DEFERRED_BIAS;
        Py_ssize_t flags = above & _Py_REF_SHARED_FLAG_MASK;
        if (above < 0 || (flags != 0 && flags != _Py_REF_MAYBE_WEAKREF)) {
            return 0;
        }
        return !unpublished || (above >> _Py_REF_SHARED_SHIFT) == 0;
#  else
        /* 3.13t: while no other thread exists at all. */
        return !other_threads_exist() && s->shared == _Py_REF_QUEUED;
#  endif
    }
    /* Shared word empty or only the weakref flag (_Py_REF_MAYBE_WEAKREF),
     * and several references only while no other thread exists, unless
     * unpublished. */
    if (s->shared != 0 && s->shared != _Py_REF_MAYBE_WEAKREF) {
        return 0;
    }
    if (s->local > 1 && others && !unpublished) {
        return 0;
    }
#else
    (void)others;
    (void)unpublished;
#endif
    return 1;
}

/* The checks of one call of object function `fn` on `op` (may be NULL);
 * returns the (r, immortal_before, immortal_after) tuple, or NULL with
 * ContractError set. */
static PyObject *
checked_apply(int fn, PyObject *op, int private_obj)
{
    struct state before;
    int r = 0;
    memset(&before, 0, sizeof(before));
    if (PyErr_Occurred()) {
        return NULL;
    }
    int others_before = other_threads_exist();
    int strict = !FREE_THREADED || private_obj || !others_before;
    int unpublished = 0; /* ImmortalizeUnpublished was called */
    if (op != NULL) {
        read_state(op, &before);
        /* A registered object was made immortal and never ends. */
        EXPECT(!before.registered || before.immortal, "a registered object is not immortal");
    }
#if PY_VERSION_HEX >= 0x030E0000
    /* CPython's own queries, where the headers declare them (3.14+). */
    int cpython_unique = op != NULL && strict ? PyUnstable_Object_IsUniquelyReferenced(op) : 0;
#endif

    switch (fn) {
    case F_SET_IMMORTAL: r = pyimmortal_PyUnstable_SetImmortal(op); break;
    case F_IS_IMMORTAL: r = pyimmortal_PyUnstable_IsImmortal(op); break;
    case F_ENABLE_DEFERRED: r = pyimmortal_PyUnstable_Object_EnableDeferredRefcount(op); break;
    case F_IS_UNIQUE: r = pyimmortal_PyUnstable_Object_IsUniquelyReferenced(op); break;
    case F_IMMORTALIZE: r = pyimmortal_Immortalize(op); break;
    case F_IMMORTALIZE_CHECKED: r = pyimmortal_ImmortalizeChecked(op); break;
    case F_REGISTRY_CONTAINS: r = pyimmortal_Registry_Contains(op); break;
    case F_IMMORTALIZE_UNPUBLISHED:
        /* Its contract: no other thread can reach `op`, which is what
         * `strict` says. Only then is it called; otherwise this is the
         * plain checked call. */
        unpublished = strict;
        r = unpublished ? pyimmortal_ImmortalizeUnpublished(op) : pyimmortal_ImmortalizeChecked(op);
        break;
    default:
        PyErr_SetString(PyExc_ValueError, "no such function");
        return NULL;
    }
    COUNT(1);

    /* Exceptions: only the checked call sets one, exactly when it returns -1. */
    PyObject *exc = PyErr_Occurred();
    if (fn == F_IMMORTALIZE_CHECKED || fn == F_IMMORTALIZE_UNPUBLISHED) {
        EXPECT(r == 0 || r == -1, "the checked call returned neither 0 nor -1");
        EXPECT((r == -1) == (exc != NULL), r == -1 ? "-1 without an exception"
                                                   : "0 with an exception set");
    }
    else if (exc != NULL) {
        PyObject *type = PyErr_Occurred();
        PyErr_Clear();
        (void)type;
        VIOLATION("set an exception, which the contract rules out");
    }
    else {
        EXPECT(r == 0 || r == 1, "returned neither 0 nor 1");
    }

    if (op == NULL) {
        /* NULL: "did nothing", and SystemError for the checked call. */
        if (fn == F_IMMORTALIZE_CHECKED || fn == F_IMMORTALIZE_UNPUBLISHED) {
            EXPECT(PyErr_ExceptionMatches(PyExc_SystemError), "NULL did not give SystemError");
            PyErr_Clear();
            return Py_BuildValue("(iii)", r, 0, 0);
        }
        EXPECT(r == 0, "NULL did not give 0");
        return Py_BuildValue("(iii)", r, 0, 0);
    }

    struct state after;
    read_state(op, &after);
    int others = others_before || other_threads_exist();
    if (others_before != other_threads_exist()) {
        strict = strict && private_obj; /* a thread started or ended meanwhile */
    }
    /* Immortal stays immortal, whatever the call. */
    EXPECT(!before.immortal || after.immortal, "an immortal object became mortal");
    EXPECT(!after.registered || after.immortal, "a registered object is not immortal");
    /* Mortal objects are never listed; listed ones stay listed. */
    EXPECT(!before.registered || after.registered, "an object left the registry");

    switch (fn) {
    case F_SET_IMMORTAL: {
        int want = HAS_IMMORTALITY && !before.immortal && !before.is_str &&
                   !(REFUSES_DICTS && before.is_dict) && before.unique &&
                   !(FREE_THREADED && PY_VERSION_HEX < 0x030F0000 && before.fin_pending);
        if (strict) {
            EXPECT(r == want, want ? "refused an object the contract accepts"
                                   : "accepted an object the contract refuses");
        }
        if (r == 1) {
            EXPECT(!before.immortal && !before.is_str, "accepted an immortal object or a str");
            EXPECT(after.immortal, "returned 1 but the object is mortal");
            /* pyimmortal's own implementation (3.12-3.14) leaves an object
             * whose finalizer has not run tracked; CPython 3.15's untracks. */
            EXPECT(!after.tracked || before.fin_pending,
                   "returned 1 but the object is still GC-tracked");
            EXPECT(!after.registered, "SetImmortal entered the object in the registry");
        }
        else {
            EXPECT(after.immortal == before.immortal, "returned 0 but the object changed");
            if (strict && !FREE_THREADED) {
                EXPECT(after.refcnt == before.refcnt, "returned 0 but the refcount changed");
            }
        }
        break;
    }
    case F_IS_IMMORTAL:
        EXPECT(r == before.immortal, "disagrees with the headers' _Py_IsImmortal");
#if PY_VERSION_HEX >= 0x030E0000
        EXPECT(r == (PyUnstable_IsImmortal(op) != 0), "disagrees with CPython's PyUnstable_IsImmortal");
#endif
        break;
    case F_ENABLE_DEFERRED:
        EXPECT(after.immortal == before.immortal, "changed whether the object is immortal");
        if (!DEFERRED_WORKS) {
            EXPECT(r == 0, "returned 1 where deferred reference counting does nothing");
        }
#if DEFERRED_WORKS
        else {
            int want = before.gc_type && before.tracked && !before.deferred;
            if (strict) {
                EXPECT(r == want, want ? "returned 0 for a tracked GC object with deferred off"
                                       : "returned 1 for an untracked, non-GC or deferred object");
            }
            if (r == 1) {
                EXPECT(before.gc_type && !before.deferred, "returned 1 for a non-GC or deferred object");
                EXPECT(after.deferred, "returned 1 but deferred is off");
            }
            if (before.deferred) {
                EXPECT(r == 0, "returned 1 a second time");
            }
        }
#endif
        break;
    case F_IS_UNIQUE:
        if (strict) {
            EXPECT(r == before.unique, "disagrees with the object's counts");
#if PY_VERSION_HEX >= 0x030E0000
            EXPECT(r == (cpython_unique != 0),
                   "disagrees with CPython's PyUnstable_Object_IsUniquelyReferenced");
#endif
        }
        if (r == 1) {
            EXPECT(!before.immortal, "an immortal object is uniquely referenced");
#if FREE_THREADED
            EXPECT(before.owned && before.local == 1, "unique but not owned with local count 1");
#endif
        }
        break;
    case F_IMMORTALIZE:
    case F_IMMORTALIZE_CHECKED:
    case F_IMMORTALIZE_UNPUBLISHED: {
        int ok = fn == F_IMMORTALIZE ? r == 1 : r == 0;
        if (strict) {
            int want = immortalize_accepts(&before, others, unpublished);
            EXPECT(ok == want, want ? "refused an object the contract accepts"
                                    : "accepted an object the contract refuses");
        }
        if (ok) {
            EXPECT(HAS_IMMORTALITY, "succeeded before 3.12");
            EXPECT(after.immortal, "succeeded but the object is mortal");
            if (!before.immortal) {
                EXPECT(!before.is_str, "made a mortal str immortal");
                EXPECT(!(REFUSES_DICTS && before.is_dict), "made a dict immortal on 3.14+");
#if FREE_THREADED
                EXPECT(before.owned, "made an object of another thread immortal");
#endif
                EXPECT(after.registered, "made the object immortal but did not register it");
                EXPECT(before.is_dict || before.fin_pending || !after.tracked,
                       "immortal but still GC-tracked");
                EXPECT(!(before.fin_pending && before.tracked) || after.tracked,
                       "an object whose finalizer has not run was untracked");
            }
            else {
                EXPECT(after.registered == before.registered,
                       "an already immortal object entered the registry");
            }
        }
        else {
            EXPECT(after.immortal == before.immortal, "refused, but the object changed");
            EXPECT(!after.registered, "refused, but the object is registered");
            if (fn == F_IMMORTALIZE_CHECKED || fn == F_IMMORTALIZE_UNPUBLISHED) {
                PyObject *want_type = !HAS_IMMORTALITY ? PyExc_NotImplementedError
                                                       : type_error_expected(&before);
                if (want_type == NULL) {
                    want_type = PyExc_RuntimeError;
                }
                PyObject *got = PyErr_Occurred();
                if (!PyErr_ExceptionMatches(want_type) || got != want_type) {
                    PyErr_Clear();
                    VIOLATION(want_type == PyExc_TypeError
                                  ? "the refusal is not a TypeError"
                                  : want_type == PyExc_RuntimeError
                                        ? "the refusal is not a RuntimeError"
                                        : "the refusal is not a NotImplementedError");
                }
                PyErr_Clear();
            }
        }
        break;
    }
    case F_REGISTRY_CONTAINS:
        EXPECT(r == before.registered, "disagrees with itself before the call");
        EXPECT(!r || after.immortal, "lists a mortal object");
        break;
    }
    return Py_BuildValue("(iii)", r, before.immortal, after.immortal);
}

/* PyModule_AddObjectRef (3.10+) for every version. */
static int
add_object_ref(PyObject *m, const char *name, PyObject *value)
{
    Py_INCREF(value);
    if (PyModule_AddObject(m, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}

static int
object_argument(PyObject *obj, PyObject **op)
{
    *op = obj == NullSentinel ? NULL : obj;
    return 0;
}

/* call(fn, obj, private=False) -> (result, immortal_before, immortal_after)
 * Calls object function `fn` on `obj` (NULL when `obj` is the NULL
 * sentinel), a borrowed reference Python holds. `private`: no other thread
 * can reach `obj`, so the strict checks apply on free-threaded builds while
 * other threads run. */
static PyObject *
fuzz_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "call(fn, obj, private=False)");
        return NULL;
    }
    int fn = (int)PyLong_AsLong(args[0]);
    if (fn == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *op;
    object_argument(args[1], &op);
    int private_obj = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    if (private_obj < 0) {
        return NULL;
    }
    return checked_apply(fn, op, private_obj);
}

/* call_fresh(fn, factory, private=True)
 *     -> (result, immortal_before, immortal_after, obj)
 * Makes an object with factory() and calls `fn` on it while this function
 * holds its only reference (if the factory kept none). `private`: the
 * factory makes a new object, which no other thread can reach. */
static PyObject *
fuzz_call_fresh(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "call_fresh(fn, factory, private=True)");
        return NULL;
    }
    int private_obj = nargs == 3 ? PyObject_IsTrue(args[2]) : 1;
    if (private_obj < 0) {
        return NULL;
    }
    int fn = (int)PyLong_AsLong(args[0]);
    if (fn == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *obj = PyObject_CallNoArgs(args[1]);
    if (obj == NULL) {
        return NULL;
    }
    PyObject *res = checked_apply(fn, obj, private_obj);
    if (res == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    PyObject *out = Py_BuildValue("(OOOO)", PyTuple_GET_ITEM(res, 0), PyTuple_GET_ITEM(res, 1),
                                  PyTuple_GET_ITEM(res, 2), obj);
    Py_DECREF(res);
    Py_DECREF(obj);
    return out;
}

/* incdec(obj, n, private=False): n Py_INCREF then n Py_DECREF. An immortal
 * object stays immortal and its count never moves (on 3.14+ GIL builds it
 * only rises, up to _Py_IMMORTAL_INITIAL_REFCNT); a mortal one's is back
 * where it was (when no other thread can touch it). */
static PyObject *
fuzz_incdec(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "incdec(obj, n, private=False)");
        return NULL;
    }
    PyObject *op = args[0];
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "n < 0");
        }
        return NULL;
    }
    int private_obj = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    if (private_obj < 0) {
        return NULL;
    }
    int strict = !FREE_THREADED || private_obj || !other_threads_exist();
    int immortal = oracle_immortal(op);
    Py_ssize_t rc = Py_REFCNT(op);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(op);
        if (immortal && Py_REFCNT(op) != immortal_count_after_increfs(rc, i + 1)) {
            for (Py_ssize_t j = 0; j <= i; j++) {
                Py_DECREF(op);
            }
            PyErr_Format(ContractError,
                         "Py_INCREF moved the count of an immortal <%s object at %p>: %zd -> %zd",
                         Py_TYPE(op)->tp_name, (void *)op, rc, Py_REFCNT(op));
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(op);
    }
    if (immortal && !oracle_immortal(op)) {
        PyErr_Format(ContractError, "an immortal <%s object at %p> became mortal after %zd "
                     "Py_INCREF/Py_DECREF pairs", Py_TYPE(op)->tp_name, (void *)op, n);
        return NULL;
    }
    Py_ssize_t want = immortal ? immortal_count_after_increfs(rc, n) : rc;
    if ((immortal || strict) && Py_REFCNT(op) != want) {
        PyErr_Format(ContractError, "%zd Py_INCREF/Py_DECREF pairs moved the count of %s <%s "
                     "object at %p>: %zd -> %zd, want %zd", n, immortal ? "an immortal" : "a mortal",
                     Py_TYPE(op)->tp_name, (void *)op, rc, Py_REFCNT(op), want);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
fuzz_registry_count(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_ssize_t n = pyimmortal_Registry_Count();
    COUNT(1);
    if (PyErr_Occurred()) {
        return PyErr_Format(ContractError, "pyimmortal_Registry_Count set an exception");
    }
    if (n < 0) {
        return PyErr_Format(ContractError, "pyimmortal_Registry_Count returned %zd", n);
    }
    return PyLong_FromSsize_t(n);
}

struct walk {
    PyObject *bad;      /* the object of the first violation */
    PyObject *seen;     /* list of the visited objects */
    Py_ssize_t stop_after;
    int reenter;
    PyObject *made;     /* an object made immortal from inside the walk */
    const char *error;  /* the first violation found */
};

static int
count_visit(PyObject *obj, void *arg)
{
    (void)obj;
    (*(Py_ssize_t *)arg)++;
    return 0;
}

static int
walk_visit(PyObject *obj, void *arg)
{
    struct walk *w = (struct walk *)arg;
    if (w->error != NULL) {
        return -7;
    }
    if (obj == NULL) {
        w->error = "visited NULL";
        return -7;
    }
    if (!oracle_immortal(obj)) {
        w->error = "visited a mortal object";
        w->bad = obj;
        return -7;
    }
    if (pyimmortal_Registry_Contains(obj) != 1) {
        w->error = "visited an object that Registry_Contains denies";
        return -7;
    }
    COUNT(1);
    if (PyList_Append(w->seen, obj) < 0) {
        w->error = "memory";
        return -7;
    }
    if (w->reenter && PyList_GET_SIZE(w->seen) == 1) {
        /* visit may call pyimmortal, Registry_Visit included, and may add
         * entries. */
        /* Other threads may add entries meanwhile: counts only grow. */
        Py_ssize_t before = pyimmortal_Registry_Count();
        Py_ssize_t counted = 0;
        if (pyimmortal_Registry_Visit(count_visit, &counted) != 0 || counted < before ||
            counted > pyimmortal_Registry_Count()) {
            w->error = "a nested Registry_Visit did not walk Registry_Count entries";
            return -7;
        }
        PyObject *fresh = PyList_New(0);
        if (fresh == NULL) {
            w->error = "memory";
            return -7;
        }
        int r = pyimmortal_Immortalize(fresh);
        COUNT(3);
        if (r == 1) {
            if (pyimmortal_Registry_Count() < before + 1 || !pyimmortal_Registry_Contains(fresh)) {
                Py_DECREF(fresh);
                w->error = "an object made immortal inside the walk is not registered";
                return -7;
            }
            COUNT(2);
            w->made = fresh; /* the new reference goes to the caller */
        }
        else {
            Py_DECREF(fresh);
        }
    }
    if (w->stop_after > 0 && PyList_GET_SIZE(w->seen) == w->stop_after) {
        return 42;
    }
    return 0;
}

/* visit(stop_after=0, reenter=False) -> (result, [visited], made)
 * pyimmortal_Registry_Visit with a callback that checks each object
 * (immortal, contained) and stops with 42 after `stop_after` objects when
 * that is positive. With `reenter`, the first callback calls
 * Registry_Count, a nested Registry_Visit and Immortalize on a fresh list
 * (returned as `made`, else None). */
static PyObject *
fuzz_visit(PyObject *self, PyObject *args)
{
    (void)self;
    struct walk w = {NULL, NULL, 0, 0, NULL, NULL};
    if (!PyArg_ParseTuple(args, "|np", &w.stop_after, &w.reenter)) {
        return NULL;
    }
    w.seen = PyList_New(0);
    if (w.seen == NULL) {
        return NULL;
    }
    int r = pyimmortal_Registry_Visit(walk_visit, &w);
    COUNT(1);
    if (w.error != NULL) {
        Py_DECREF(w.seen);
        Py_XDECREF(w.made);
        PyErr_Clear();
        if (w.bad != NULL) {
            struct state s;
            read_state(w.bad, &s);
            return violation(F_REGISTRY_CONTAINS, w.bad, &s, 1,
                             "Registry_Visit walked it, and it is mortal (state now)");
        }
        return PyErr_Format(ContractError, "pyimmortal_Registry_Visit: %s", w.error);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(w.seen);
        Py_XDECREF(w.made);
        return PyErr_Format(ContractError, "pyimmortal_Registry_Visit set an exception");
    }
    Py_ssize_t n = PyList_GET_SIZE(w.seen);
    int want = w.stop_after > 0 && n == w.stop_after ? 42 : 0;
    if (r != want) {
        Py_DECREF(w.seen);
        Py_XDECREF(w.made);
        return PyErr_Format(ContractError,
                            "pyimmortal_Registry_Visit returned %d after %zd objects, want %d", r,
                            n, want);
    }
    PyObject *made = w.made;
    if (made == NULL) {
        made = Py_None;
        Py_INCREF(made);
    }
    PyObject *out = Py_BuildValue("(iNN)", r, w.seen, made);
    return out;
}

/* visit_null(): Registry_Visit(NULL, ...) is -1 with SystemError. */
static PyObject *
fuzz_visit_null(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    int r = pyimmortal_Registry_Visit(NULL, NULL);
    COUNT(1);
    if (r != -1 || !PyErr_Occurred() || !PyErr_ExceptionMatches(PyExc_SystemError)) {
        PyErr_Clear();
        return PyErr_Format(ContractError,
                            "pyimmortal_Registry_Visit(NULL) returned %d without SystemError", r);
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* target() -> (target, version_hex), both read with the thread detached
 * (they need no thread state). */
static PyObject *
fuzz_target(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    const char *t;
    unsigned long hex;
    Py_BEGIN_ALLOW_THREADS
    t = pyimmortal_target();
    hex = pyimmortal_target_version_hex();
    Py_END_ALLOW_THREADS
    COUNT(2);
    if (t == NULL) {
        return PyErr_Format(ContractError, "pyimmortal_target returned NULL");
    }
    if (hex != (unsigned long)PY_VERSION_HEX) {
        return PyErr_Format(ContractError, "pyimmortal_target_version_hex is %lx, the headers' %lx",
                            hex, (unsigned long)PY_VERSION_HEX);
    }
    return Py_BuildValue("(sk)", t, hex);
}

/* heap() -> (count, None) or (-1, exception type): pyimmortal_ImmortalizeHeap.
 * The registry does not change; -1 comes with an exception, which is
 * returned (and cleared) for fuzz.py to judge. */
static PyObject *
fuzz_heap(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_ssize_t before = pyimmortal_Registry_Count();
    int others = other_threads_exist();
    Py_ssize_t n = pyimmortal_ImmortalizeHeap();
    Py_ssize_t after = pyimmortal_Registry_Count();
    COUNT(3);
    PyObject *exc = PyErr_Occurred();
    if ((n < 0) != (exc != NULL) || n < -1) {
        PyErr_Clear();
        return PyErr_Format(ContractError, "pyimmortal_ImmortalizeHeap returned %zd %s", n,
                            exc ? "with an exception" : "without an exception");
    }
    if (after != before) {
        PyErr_Clear();
        return PyErr_Format(ContractError, "pyimmortal_ImmortalizeHeap changed Registry_Count "
                            "from %zd to %zd", before, after);
    }
    if (n >= 0) {
        if (!HAS_IMMORTALITY || (FREE_THREADED && others)) {
            return PyErr_Format(ContractError, "pyimmortal_ImmortalizeHeap succeeded %s",
                                HAS_IMMORTALITY ? "while other threads exist" : "before 3.12");
        }
        return Py_BuildValue("(nO)", n, Py_None);
    }
    PyObject *want = !HAS_IMMORTALITY ? PyExc_NotImplementedError
                   : (FREE_THREADED && others) ? PyExc_RuntimeError : NULL;
    if (want == NULL || !PyErr_ExceptionMatches(want)) {
        PyTypeObject *got = (PyTypeObject *)PyErr_Occurred();
        const char *name = got->tp_name;
        PyErr_Clear();
        return PyErr_Format(ContractError, "pyimmortal_ImmortalizeHeap raised %s", name);
    }
    PyErr_Clear();
    return Py_BuildValue("(nO)", n, want);
}

/* oracle_immortal(obj) -> bool: the headers' _Py_IsImmortal, for fuzz.py's
 * own checks. */
static PyObject *
fuzz_oracle_immortal(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyBool_FromLong(oracle_immortal(obj));
}

/* --- capsules that say when they are destroyed ---------------------------------- */

#define MAX_CAPSULES (1 << 22)
#define CAPSULE_DESTROYED 1
#define CAPSULE_IMMORTAL 2
static unsigned char capsule_flags[MAX_CAPSULES];
static Py_ssize_t capsules_made;
static const char capsule_name[] = "pyimmortal_fuzzext.capsule";

static void
capsule_destructor(PyObject *capsule)
{
    uintptr_t idx = (uintptr_t)PyCapsule_GetPointer(capsule, capsule_name) - 1;
    if (idx >= MAX_CAPSULES) {
        return;
    }
    if (capsule_flags[idx] & CAPSULE_IMMORTAL) {
        Py_FatalError("pyimmortal_fuzzext: the destructor of an immortal capsule ran");
    }
    capsule_flags[idx] |= CAPSULE_DESTROYED;
}

/* new_capsule() -> a capsule whose destructor records that it ran */
static PyObject *
fuzz_new_capsule(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#if FREE_THREADED
    Py_ssize_t idx = _Py_atomic_add_ssize(&capsules_made, 1);
#else
    Py_ssize_t idx = capsules_made++;
#endif
    if (idx >= MAX_CAPSULES - 1) {
        idx = MAX_CAPSULES - 1; /* past the table: shares the last flags */
    }
    return PyCapsule_New((void *)(uintptr_t)(idx + 1), capsule_name, capsule_destructor);
}

/* mark_immortal_capsule(obj) -> bool: for one of new_capsule()'s capsules,
 * seen immortal: from now on its destructor aborts the process if it ever
 * runs. False for any other object. */
static PyObject *
fuzz_mark_immortal_capsule(PyObject *self, PyObject *obj)
{
    (void)self;
    if (!PyCapsule_IsValid(obj, capsule_name)) {
        Py_RETURN_FALSE;
    }
    uintptr_t idx = (uintptr_t)PyCapsule_GetPointer(obj, capsule_name) - 1;
    if (idx >= MAX_CAPSULES - 1) {
        Py_RETURN_FALSE;
    }
    if (capsule_flags[idx] & CAPSULE_DESTROYED) {
        return PyErr_Format(ContractError, "a live capsule was destroyed");
    }
    capsule_flags[idx] |= CAPSULE_IMMORTAL;
    Py_RETURN_TRUE;
}

static PyObject *
fuzz_calls_made(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromSsize_t(calls_made);
}

/* --- a static type (not a heap type) --------------------------------------------- */

static PyTypeObject StaticThing_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyimmortal_fuzzext.StaticThing",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_doc = "A static type of an extension, with plain instances.",
};

static PyMethodDef methods[] = {
    {"call", (PyCFunction)(void (*)(void))fuzz_call, METH_FASTCALL, NULL},
    {"call_fresh", (PyCFunction)(void (*)(void))fuzz_call_fresh, METH_FASTCALL, NULL},
    {"incdec", (PyCFunction)(void (*)(void))fuzz_incdec, METH_FASTCALL, NULL},
    {"registry_count", fuzz_registry_count, METH_NOARGS, NULL},
    {"visit", fuzz_visit, METH_VARARGS, NULL},
    {"visit_null", fuzz_visit_null, METH_NOARGS, NULL},
    {"target", fuzz_target, METH_NOARGS, NULL},
    {"heap", fuzz_heap, METH_NOARGS, NULL},
    {"oracle_immortal", fuzz_oracle_immortal, METH_O, NULL},
    {"new_capsule", fuzz_new_capsule, METH_NOARGS, NULL},
    {"mark_immortal_capsule", fuzz_mark_immortal_capsule, METH_O, NULL},
    {"calls_made", fuzz_calls_made, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyimmortal_fuzzext", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_pyimmortal_fuzzext(void)
{
    if (PyType_Ready(&StaticThing_Type) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
#if defined(Py_GIL_DISABLED)
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    if (ContractError == NULL) {
        ContractError = PyErr_NewException("pyimmortal_fuzzext.ContractError", PyExc_AssertionError,
                                           NULL);
        NullSentinel = PyCapsule_New((void *)&NullSentinel, "pyimmortal_fuzzext.NULL", NULL);
        if (ContractError == NULL || NullSentinel == NULL) {
            Py_DECREF(m);
            return NULL;
        }
    }
    static const char *const names[F_OBJECT_FUNCTIONS] = {
        "SET_IMMORTAL", "IS_IMMORTAL", "ENABLE_DEFERRED", "IS_UNIQUE",
        "IMMORTALIZE", "IMMORTALIZE_CHECKED", "REGISTRY_CONTAINS", "IMMORTALIZE_UNPUBLISHED",
    };
    for (int i = 0; i < F_OBJECT_FUNCTIONS; i++) {
        if (PyModule_AddIntConstant(m, names[i], i) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    PyObject *fnames = PyTuple_New(F_OBJECT_FUNCTIONS);
    if (fnames == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    for (int i = 0; i < F_OBJECT_FUNCTIONS; i++) {
        PyObject *s = PyUnicode_FromString(fn_names[i]);
        if (s == NULL) {
            Py_DECREF(fnames);
            Py_DECREF(m);
            return NULL;
        }
        PyTuple_SET_ITEM(fnames, i, s);
    }
    if (PyModule_AddObject(m, "FUNCTION_NAMES", fnames) < 0) {
        Py_DECREF(fnames);
        Py_DECREF(m);
        return NULL;
    }
    if (add_object_ref(m, "ContractError", ContractError) < 0 ||
        add_object_ref(m, "NULL", NullSentinel) < 0 ||
        add_object_ref(m, "StaticThing", (PyObject *)&StaticThing_Type) < 0 ||
        PyModule_AddIntConstant(m, "FREE_THREADED", FREE_THREADED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
