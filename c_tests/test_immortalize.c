/* pyimmortal_Immortalize and pyimmortal_ImmortalizeChecked: objects the
 * calling thread owns, whatever their count; idempotent; safety rails. */
#include "harness.h"

#include <pthread.h>

static PyObject *Thing;

/* Free-threaded builds refuse GC objects whose finalizer has not run: a
 * tracked object does not stay immortal there. */
#if defined(Py_GIL_DISABLED)
#  define FINALIZERS_REFUSED 1
#else
#  define FINALIZERS_REFUSED 0
#endif

/* The immortal refcount each target reads back (Py_REFCNT). */
#if PY_VERSION_HEX >= 0x030E0000
#  define IMMORTAL_REFCNT ((Py_ssize_t)0xC0000000)
#else
#  define IMMORTAL_REFCNT ((Py_ssize_t)0xFFFFFFFF)
#endif

/* Checks that the exception set is `type` and that its message contains
 * `needle`, then clears it. */
static void
expect_error(PyObject *type, const char *needle)
{
    CHECK(PyErr_Occurred());
    CHECK(PyErr_ExceptionMatches(type));
    PyObject *exc_type, *value, *tb;
    PyErr_Fetch(&exc_type, &value, &tb);
    PyObject *s = PyObject_Str(value);
    CHECK(s != NULL);
    const char *msg = PyUnicode_AsUTF8(s);
    CHECK(msg != NULL);
    if (strstr(msg, needle) == NULL) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, needle);
        CHECK(0);
    }
    Py_DECREF(s);
    Py_XDECREF(exc_type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* An object with three references, as a fresh heap type or a published
 * registry entry has. */
static void
test_shared_object(void)
{
    PyObject *o = new_instance(Thing);
    PyObject *holders = PyList_New(0);
    CHECK(PyList_Append(holders, o) == 0);
    CHECK(PyList_Append(holders, o) == 0);
    Py_ssize_t before = Py_REFCNT(o);
    CHECK(before == 3);
    CHECK(pyimmortal_PyUnstable_SetImmortal(o) == 0); /* CPython's rule */
    int r = pyimmortal_Immortalize(o);
    CHECK(!PyErr_Occurred());
    if (!HAS_IMMORTALITY) {
        CHECK(r == 0);
        CHECK(Py_REFCNT(o) == before);
        CHECK(pyimmortal_ImmortalizeChecked(o) == -1);
        expect_error(PyExc_NotImplementedError, "3.12");
        CHECK(Py_REFCNT(o) == before);
        Py_DECREF(holders);
        Py_DECREF(o);
        return;
    }
    CHECK(r == 1);
    CHECK(PyUnstable_IsImmortal(o));
    CHECK(!PyObject_GC_IsTracked(o));
    CHECK(Py_REFCNT(o) == IMMORTAL_REFCNT);
    for (long i = 0; i < 1000000; i++) {
        Py_INCREF(o);
        Py_DECREF(o);
    }
    CHECK(Py_REFCNT(o) == IMMORTAL_REFCNT);
    /* Idempotent. */
    CHECK(pyimmortal_Immortalize(o) == 1);
    CHECK(pyimmortal_ImmortalizeChecked(o) == 0);
    /* Every holder lets go; the object lives on. */
    PyObject *ref = PyWeakref_NewRef(o, NULL);
    Py_DECREF(holders);
    Py_DECREF(o);
    gc_collect();
    PyObject *still = PyObject_CallNoArgs(ref);
    CHECK(still != Py_None);
    CHECK(PyObject_IsInstance(still, Thing) == 1);
    Py_DECREF(still);
    Py_DECREF(ref);
}

/* A heap type made with PyType_FromSpec, as NumPy makes its dtype types. */
static PyType_Slot heap_slots[] = {{0, NULL}};
static PyType_Spec heap_spec = {
    "pyimmortal_test.HeapType", sizeof(PyObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, heap_slots,
};

static void
test_heap_type(void)
{
    PyObject *type = PyType_FromSpec(&heap_spec);
    CHECK(type != NULL);
    int r = pyimmortal_ImmortalizeChecked(type);
    if (!HAS_IMMORTALITY) {
        CHECK(r == -1);
        expect_error(PyExc_NotImplementedError, "immortal");
        Py_DECREF(type);
        return;
    }
    /* Free-threaded 3.14+ gives heap types deferred reference counting:
     * accepted as well. */
    CHECK(r == 0);
    CHECK(PyUnstable_IsImmortal(type));
    PyObject *inst = PyObject_CallNoArgs(type);
    CHECK(inst != NULL);
    CHECK(Py_TYPE(inst) == (PyTypeObject *)type);
    Py_DECREF(inst);
    Py_DECREF(type);
    gc_collect();
    CHECK(PyUnstable_IsImmortal(type));
    inst = PyObject_CallNoArgs(type);
    CHECK(inst != NULL);
    Py_DECREF(inst);
}

static void
test_already_immortal(void)
{
    int r = pyimmortal_Immortalize(Py_None);
    CHECK(r == HAS_IMMORTALITY);
    CHECK(pyimmortal_ImmortalizeChecked(Py_None) == (HAS_IMMORTALITY ? 0 : -1));
    if (!HAS_IMMORTALITY) {
        expect_error(PyExc_NotImplementedError, "immortal");
    }
    CHECK(pyimmortal_Immortalize((PyObject *)&PyLong_Type) == HAS_IMMORTALITY);
}

static void
test_str_refused(void)
{
    PyObject *s = PyUnicode_FromString("pyimmortal-a-str-that-is-not-interned");
    Py_ssize_t before = Py_REFCNT(s);
    CHECK(pyimmortal_Immortalize(s) == 0);
    CHECK(!PyErr_Occurred());
    CHECK(pyimmortal_ImmortalizeChecked(s) == -1);
    if (HAS_IMMORTALITY) {
        expect_error(PyExc_TypeError, "intern");
    }
    else {
        expect_error(PyExc_NotImplementedError, "immortal");
    }
    CHECK(Py_REFCNT(s) == before);
    CHECK(!PyUnstable_IsImmortal(s));
    Py_DECREF(s);
}

/* Idempotence wins over the str rule: a str that is immortal already (the
 * empty string and one-character Latin-1 strings are static singletons on
 * 3.12+; interned strings are immortal on 3.12, mortal by default from
 * 3.13 on) counts as success, and is not registered. */
static void
check_str_by_immortality(PyObject *s)
{
    Py_ssize_t count = pyimmortal_Registry_Count();
    if (PyUnstable_IsImmortal(s)) {
        CHECK(pyimmortal_Immortalize(s) == 1);
        CHECK(pyimmortal_ImmortalizeChecked(s) == 0);
        CHECK(pyimmortal_Registry_Contains(s) == 0);
    }
    else {
        CHECK(pyimmortal_Immortalize(s) == 0);
        CHECK(pyimmortal_ImmortalizeChecked(s) == -1);
        expect_error(HAS_IMMORTALITY ? PyExc_TypeError : PyExc_NotImplementedError,
                     HAS_IMMORTALITY ? "intern" : "immortal");
        CHECK(!PyUnstable_IsImmortal(s));
    }
    CHECK(pyimmortal_Registry_Count() == count);
}

static void
test_immortal_str_accepted(void)
{
    PyObject *empty = PyUnicode_FromString("");
    PyObject *one = PyUnicode_FromString("a");
    PyObject *interned = PyUnicode_InternFromString("pyimmortal-interned-str");
    CHECK(empty != NULL && one != NULL && interned != NULL);
    CHECK(!!PyUnstable_IsImmortal(empty) == HAS_IMMORTALITY);
    CHECK(!!PyUnstable_IsImmortal(one) == HAS_IMMORTALITY);
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    CHECK(PyUnstable_IsImmortal(interned));
#endif
    check_str_by_immortality(empty);
    check_str_by_immortality(one);
    check_str_by_immortality(interned);
    Py_DECREF(empty);
    Py_DECREF(one);
    Py_DECREF(interned);
}

/* A dict must keep working after the call (gh-153051: on debug builds
 * PyDict_Update asserts that the dict is GC-tracked on 3.14+). */
static void
test_dict_stays_correct(void)
{
    PyObject *d = PyDict_New();
    PyObject *value = PyList_New(0);
    CHECK(PyDict_SetItemString(d, "k", value) == 0); /* a container: tracked */
    Py_DECREF(value);
    CHECK(PyObject_GC_IsTracked(d));
    PyObject *other = PyDict_New();
    CHECK(PyDict_SetItemString(other, "x", Py_True) == 0);
    int r = pyimmortal_ImmortalizeChecked(d);
#if PY_VERSION_HEX >= 0x030E0000
    CHECK(r == -1);
    expect_error(PyExc_TypeError, "gh-153051");
    CHECK(!PyUnstable_IsImmortal(d));
#elif PY_VERSION_HEX >= 0x030C0000
    CHECK(r == 0);
    CHECK(PyUnstable_IsImmortal(d));
    CHECK(PyObject_GC_IsTracked(d));
#else
    CHECK(r == -1);
    expect_error(PyExc_NotImplementedError, "immortal");
#endif
    CHECK(PyDict_Update(d, other) == 0);
    CHECK(PyDict_Size(d) == 2);
    gc_collect();
    CHECK(PyDict_Update(d, other) == 0);
    CHECK(PyDict_GetItemString(d, "x") == Py_True);
    Py_DECREF(other);
    Py_DECREF(d);
}

/* Objects that are immortal by CPython's test but not fully encoded are
 * completed: free-threaded Py_SET_REFCNT(op, UINT32_MAX) leaves the object
 * owned; on GIL builds Py_SET_REFCNT to 2**31 skips ob_flags (3.14+). The
 * value written is always the field's own type, never a Py_ssize_t that
 * overflows on 32-bit machines (cython#7742). */
static void
test_partial_encodings_completed(void)
{
    if (!HAS_IMMORTALITY) {
        SKIP("CPython 3.9-3.11 have no immortal objects");
    }
    PyObject *o = new_instance(Thing);
    /* Made immortal here, so not registered by pyimmortal. */
    leakcheck_intended(o);
#if defined(Py_GIL_DISABLED)
    Py_SET_REFCNT(o, (Py_ssize_t)UINT32_MAX);
    CHECK(PyUnstable_IsImmortal(o));
    CHECK(o->ob_tid != 0);
    CHECK(pyimmortal_Immortalize(o) == 1);
    CHECK(o->ob_tid == 0);
    CHECK(o->ob_ref_local == UINT32_MAX);
#else
    Py_SET_REFCNT(o, (Py_ssize_t)1 << 31);
    CHECK(PyUnstable_IsImmortal(o));
    CHECK(pyimmortal_Immortalize(o) == 1);
    CHECK(Py_REFCNT(o) == IMMORTAL_REFCNT);
#  if PY_VERSION_HEX >= 0x030E0000
    CHECK((o->ob_flags & _Py_IMMORTAL_FLAGS) != 0);
#  endif
#endif
    CHECK(Py_REFCNT(o) > 0);
    for (int i = 0; i < 1000; i++) {
        Py_DECREF(o);
    }
    CHECK(PyUnstable_IsImmortal(o));
}

/* Several threads incref and decref an object while its owner makes it
 * immortal. Under the GIL this succeeds; free-threaded builds refuse (the
 * other threads' references sit in the shared count) and the object stays
 * a correct mortal object. */
#define N_THREADS 3
#define N_ROUNDS 100000

struct hammer_arg {
    PyObject *obj;
    pthread_barrier_t *started;
    pthread_barrier_t *decided;
};

static void *
hammer(void *p)
{
    struct hammer_arg *a = (struct hammer_arg *)p;
    PyGILState_STATE st = PyGILState_Ensure();
    Py_INCREF(a->obj);
    Py_BEGIN_ALLOW_THREADS
    pthread_barrier_wait(a->started);
    Py_END_ALLOW_THREADS
    for (long i = 0; i < N_ROUNDS; i++) {
        Py_INCREF(a->obj);
        Py_DECREF(a->obj);
    }
    /* Keep the first reference until the owner has made its call. */
    Py_BEGIN_ALLOW_THREADS
    pthread_barrier_wait(a->decided);
    Py_END_ALLOW_THREADS
    Py_DECREF(a->obj);
    PyGILState_Release(st);
    return NULL;
}

static void
test_threads_while_immortalizing(void)
{
    PyObject *o = new_instance(Thing);
    Py_ssize_t before = Py_REFCNT(o);
    pthread_barrier_t started, decided;
    CHECK(pthread_barrier_init(&started, NULL, N_THREADS + 1) == 0);
    CHECK(pthread_barrier_init(&decided, NULL, N_THREADS + 1) == 0);
    struct hammer_arg arg = {o, &started, &decided};
    pthread_t threads[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, hammer, &arg) == 0);
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_barrier_wait(&started);
    Py_END_ALLOW_THREADS
    /* Every thread holds a reference now and is running its loop. */
    int r = pyimmortal_ImmortalizeChecked(o);
    Py_BEGIN_ALLOW_THREADS
    pthread_barrier_wait(&decided);
    for (int i = 0; i < N_THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    Py_END_ALLOW_THREADS
    pthread_barrier_destroy(&started);
    pthread_barrier_destroy(&decided);
#if defined(Py_GIL_DISABLED)
    CHECK(r == -1);
    expect_error(PyExc_RuntimeError, "thread");
    CHECK(!PyUnstable_IsImmortal(o));
    CHECK(Py_REFCNT(o) == before);
    CHECK(dropped_and_freed(o));
#else
    if (HAS_IMMORTALITY) {
        CHECK(r == 0);
        CHECK(PyUnstable_IsImmortal(o));
        CHECK(Py_REFCNT(o) == IMMORTAL_REFCNT);
    }
    else {
        CHECK(r == -1);
        expect_error(PyExc_NotImplementedError, "immortal");
        CHECK(Py_REFCNT(o) == before);
    }
    Py_DECREF(o);
#endif
}

/* Free-threaded: an object owned by another thread is refused. */
static void *
make_in_thread(void *p)
{
    PyObject **out = (PyObject **)p;
    PyGILState_STATE st = PyGILState_Ensure();
    *out = PyList_New(0);
    PyGILState_Release(st);
    return NULL;
}

static void
test_not_owned(void)
{
    PyObject *o = NULL;
    pthread_t t;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&t, NULL, make_in_thread, &o) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    Py_END_ALLOW_THREADS
    int r = pyimmortal_ImmortalizeChecked(o);
#if defined(Py_GIL_DISABLED)
    CHECK(r == -1);
    expect_error(PyExc_RuntimeError, "owned by another thread");
    CHECK(!PyUnstable_IsImmortal(o));
#else
    CHECK(r == (HAS_IMMORTALITY ? 0 : -1));
    if (!HAS_IMMORTALITY) {
        expect_error(PyExc_NotImplementedError, "immortal");
    }
#endif
    Py_DECREF(o);
}

/* Called from Python as immortalize(obj): runs pyimmortal_Immortalize and
 * pyimmortal_ImmortalizeChecked on obj and returns
 * (unchecked result, checked result, exception type name or None, message
 * or None). The exception is cleared, so a __del__ can report it. The
 * object is remembered, but no reference to it is kept. */
static PyObject *last_immortalized; /* borrowed: the last obj passed */

static PyObject *
py_immortalize(PyObject *Py_UNUSED(module), PyObject *obj)
{
    last_immortalized = obj;
    int unchecked = pyimmortal_Immortalize(obj);
    CHECK(!PyErr_Occurred());
    int checked = pyimmortal_ImmortalizeChecked(obj);
    PyObject *name = Py_None, *msg = Py_None;
    Py_INCREF(name);
    Py_INCREF(msg);
    if (checked != 0) {
        CHECK(PyErr_Occurred());
        PyObject *exc_type, *value, *tb;
        PyErr_Fetch(&exc_type, &value, &tb);
        Py_DECREF(name);
        Py_DECREF(msg);
        name = PyUnicode_FromString(((PyTypeObject *)exc_type)->tp_name);
        msg = PyObject_Str(value);
        CHECK(name != NULL && msg != NULL);
        Py_XDECREF(exc_type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
    return Py_BuildValue("(iiNN)", unchecked, checked, name, msg);
}

static PyMethodDef py_immortalize_def = {"immortalize", py_immortalize, METH_O, NULL};

/* Runs `source` in a namespace holding immortalize() and an empty list
 * `outcome`, and returns the namespace (a new reference). */
static PyObject *
finalizer_namespace(const char *source)
{
    PyObject *ns = PyDict_New();
    CHECK(ns != NULL);
    CHECK(PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0);
    PyObject *f = PyCFunction_New(&py_immortalize_def, NULL);
    CHECK(f != NULL);
    CHECK(PyDict_SetItemString(ns, "immortalize", f) == 0);
    Py_DECREF(f);
    PyObject *outcome = PyList_New(0);
    CHECK(outcome != NULL);
    CHECK(PyDict_SetItemString(ns, "outcome", outcome) == 0);
    Py_DECREF(outcome);
    PyObject *r = PyRun_String(source, Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    return ns;
}

/* The one (unchecked, checked, exception name, message) tuple that a
 * __del__ appended to `outcome`. */
static PyObject *
single_outcome(PyObject *ns)
{
    PyObject *outcome = PyDict_GetItemString(ns, "outcome");
    CHECK(outcome != NULL);
    if (PyList_GET_SIZE(outcome) != 1) {
        fprintf(stderr, "outcome has %zd entries\n", PyList_GET_SIZE(outcome));
        CHECK(0);
    }
    return PyList_GET_ITEM(outcome, 0);
}

/* Checks an (unchecked, checked, exception name, message) outcome: made
 * immortal (`made`: 1 and 0) or refused (0 and -1), and for a refusal the
 * exception's name `exc` and, unless NULL, a part of its message. Prints
 * the outcome when it differs. */
static void
expect_outcome(PyObject *o, int made, const char *exc, const char *needle)
{
    long unchecked = PyLong_AsLong(PyTuple_GET_ITEM(o, 0));
    long checked = PyLong_AsLong(PyTuple_GET_ITEM(o, 1));
    PyObject *name = PyTuple_GET_ITEM(o, 2);
    PyObject *msg = PyTuple_GET_ITEM(o, 3);
    int ok = made ? unchecked == 1 && checked == 0 && name == Py_None
                  : unchecked == 0 && checked == -1 && name != Py_None &&
                        PyUnicode_CompareWithASCIIString(name, exc) == 0 &&
                        (needle == NULL || strstr(PyUnicode_AsUTF8(msg), needle) != NULL);
    if (!ok) {
        PyObject_Print(o, stderr, 0);
        fprintf(stderr, "\n");
    }
    CHECK(ok);
}

/* The last Py_DECREF runs __del__ through PyObject_CallFinalizerFromDealloc
 * (Objects/object.c), which requires a GC object that __del__ resurrected
 * to still be tracked when __del__ returns; debug builds assert it. The
 * object is made immortal and left tracked: it is resurrected, immortal,
 * and its __del__ never runs again. */
static void
test_immortalize_from_dealloc_finalizer(void)
{
    PyObject *ns = finalizer_namespace(
        "import weakref\n"
        "class Phoenix:\n"
        "    def __del__(self):\n"
        "        outcome.append(immortalize(self))\n"
        "obj = Phoenix()\n"
        "obj.payload = [1, 2, 3]\n"
        "ref = weakref.ref(obj)\n");
    PyObject *obj = PyDict_GetItemString(ns, "obj");
    CHECK(obj != NULL);
    Py_INCREF(obj);
    CHECK(PyDict_DelItemString(ns, "obj") == 0);
    CHECK(Py_REFCNT(obj) == 1);
    Py_DECREF(obj); /* runs __del__ from the deallocator */
    PyObject *o = single_outcome(ns);
    PyObject *ref = PyDict_GetItemString(ns, "ref");
    PyObject *now = PyObject_CallNoArgs(ref);
    CHECK(now != NULL);
    if (!HAS_IMMORTALITY) {
        expect_outcome(o, 0, "NotImplementedError", NULL);
        CHECK(now == Py_None); /* not resurrected: freed */
        Py_DECREF(now);
        Py_DECREF(ns);
        return;
    }
#if FINALIZERS_REFUSED
    /* Free-threaded: refused, since a tracked object does not stay immortal
     * there; the object is freed as usual. */
    expect_outcome(o, 0, "RuntimeError", "finalizer");
    CHECK(now == Py_None);
    Py_DECREF(now);
    Py_DECREF(ns);
    return;
#endif
    expect_outcome(o, 1, NULL, NULL);
    /* Resurrected, immortal, registered, and usable. */
    CHECK(now == last_immortalized);
    CHECK(PyUnstable_IsImmortal(now));
    CHECK(pyimmortal_Registry_Contains(now) == 1);
    PyObject *payload = PyObject_GetAttrString(now, "payload");
    CHECK(payload != NULL && PyList_GET_SIZE(payload) == 3);
    Py_DECREF(payload);
    Py_DECREF(now);
    gc_collect();
    gc_collect();
    CHECK(PyUnstable_IsImmortal(last_immortalized));
    CHECK(single_outcome(ns) == o); /* __del__ does not run again */
    Py_DECREF(ns);
}

/* Objects whose finalizer has not run (a generator suspended in a try
 * block, a coroutine never awaited, an instance of a class with __del__),
 * made immortal: they keep working, survive every reference, and their
 * finalizer never runs (the generator's finally block, the coroutine's
 * "never awaited" warning, __del__). A __del__ that makes another such
 * object immortal, run by the last Py_DECREF and by the collector on a
 * cycle, succeeds too. (An object in the collected cycle itself may still
 * be finalized once by that collection, as CPython finalizes every object
 * of the cycle whatever the other finalizers resurrect.) */
static void
test_immortalize_with_finalizers(void)
{
    PyObject *ns = finalizer_namespace(
        "import gc, warnings\n"
        "log = []\n"
        "def gen():\n"
        "    try:\n"
        "        yield 1\n"
        "        yield 2\n"
        "    finally:\n"
        "        log.append('generator finalized')\n"
        "async def coro():\n"
        "    log.append('coroutine ran')\n"
        "class WithDel:\n"
        "    def __del__(self):\n"
        "        log.append('__del__ ran')\n"
        "class MakesOthers:\n"
        "    def __init__(self, other):\n"
        "        self.other = other\n"
        "    def __del__(self):\n"
        "        outcome.append(immortalize(self.other))\n"
        "g = gen()\n"
        "assert next(g) == 1\n"
        "c = coro()\n"
        "w = WithDel()\n"
        "made = [immortalize(g), immortalize(c), immortalize(w)]\n"
        "assert next(g) == 2\n"
        "w.attr = 5\n"
        "refs = [g, c, w]\n"
        "del g, c, w\n"
        "refs.clear()\n"
        "gc.collect()\n"
        "other1 = WithDel()\n"
        "m = MakesOthers(other1)\n"
        "del other1, m\n"
        "other2 = gen()\n"
        "next(other2)\n"
        "keep = [other2]\n"
        "m = MakesOthers(other2)\n"
        "m.me = m\n"
        "del other2, m\n"
        "gc.collect()\n"
        "keep.clear()\n"
        "gc.collect()\n");
    PyObject *made = PyDict_GetItemString(ns, "made");
    PyObject *log = PyDict_GetItemString(ns, "log");
    PyObject *outcome = PyDict_GetItemString(ns, "outcome");
    CHECK(made != NULL && log != NULL && outcome != NULL);
    CHECK(PyList_GET_SIZE(made) == 3);
    CHECK(PyList_GET_SIZE(outcome) == 2);
    for (Py_ssize_t i = 0; i < 5; i++) {
        PyObject *o = i < 3 ? PyList_GET_ITEM(made, i) : PyList_GET_ITEM(outcome, i - 3);
        if (!HAS_IMMORTALITY) {
            expect_outcome(o, 0, "NotImplementedError", NULL);
        }
        else if (FINALIZERS_REFUSED) {
            expect_outcome(o, 0, "RuntimeError", "finalizer");
        }
        else {
            expect_outcome(o, 1, NULL, NULL);
        }
    }
    if (HAS_IMMORTALITY && !FINALIZERS_REFUSED) {
        /* No finalizer ran: the log is empty (the coroutine never ran). */
        if (PyList_GET_SIZE(log) != 0) {
            PyObject_Print(log, stderr, 0);
            fprintf(stderr, "\n");
        }
        CHECK(PyList_GET_SIZE(log) == 0);
    }
    else {
        /* Mortal: each finalizer ran once (the generator's, both __del__,
         * the collected generator's); the coroutine's "never awaited"
         * warning logs nothing. */
        CHECK(PyList_GET_SIZE(log) == 4);
    }
    Py_DECREF(ns);
}

/* The cyclic GC runs __del__ on unreachable objects with the finalized
 * flag already set (finalize_garbage in Python/gc.c and
 * Python/gc_free_threading.c), and resurrection is legal there: making
 * the object immortal from that __del__ succeeds, and the object (and
 * what it references) survives the collection. */
static void
test_immortalize_from_collector_finalizer(void)
{
    PyObject *ns = finalizer_namespace(
        "import gc\n"
        "class Cyclic:\n"
        "    def __del__(self):\n"
        "        outcome.append(immortalize(self))\n"
        "obj = Cyclic()\n"
        "obj.me = obj\n"
        "obj.payload = [1, 2, 3]\n"
        "del obj\n"
        "gc.collect()\n");
    PyObject *o = single_outcome(ns);
    if (!HAS_IMMORTALITY) {
        expect_outcome(o, 0, "NotImplementedError", NULL);
        Py_DECREF(ns);
        return;
    }
#if defined(Py_GIL_DISABLED)
    /* The free-threaded collector merges the counts of unreachable objects
     * and leaves them unowned (ob_tid 0) before it runs finalizers
     * (Python/gc_free_threading.c), so the ownership rule refuses them:
     * a clean RuntimeError, and the cycle is collected as usual. */
    expect_outcome(o, 0, "RuntimeError", "owned by another thread");
    Py_DECREF(ns);
    return;
#endif
    expect_outcome(o, 1, NULL, NULL);
    /* The collector cleared the weak references before running __del__;
     * the object itself survived, immortal. */
    PyObject *now = last_immortalized;
    CHECK(PyUnstable_IsImmortal(now));
    CHECK(!PyObject_GC_IsTracked(now));
    CHECK(pyimmortal_Registry_Contains(now) == 1);
    PyObject *payload = PyObject_GetAttrString(now, "payload");
    CHECK(payload != NULL && PyList_Check(payload) && PyList_GET_SIZE(payload) == 3);
    Py_DECREF(payload);
    gc_collect();
    CHECK(PyUnstable_IsImmortal(now));
    payload = PyObject_GetAttrString(now, "payload");
    CHECK(payload != NULL && PyList_GET_SIZE(payload) == 3);
    Py_DECREF(payload);
    CHECK(single_outcome(ns) == o); /* __del__ does not run again */
    Py_DECREF(ns);
}

static void
test_null(void)
{
    CHECK(pyimmortal_Immortalize(NULL) == 0);
    CHECK(!PyErr_Occurred());
    CHECK(pyimmortal_ImmortalizeChecked(NULL) == -1);
    expect_error(PyExc_SystemError, "NULL");
}

int
main(void)
{
    harness_start("test_immortalize");
    Thing = make_class();
    RUN(test_shared_object);
    RUN(test_heap_type);
    RUN(test_already_immortal);
    RUN(test_str_refused);
    RUN(test_immortal_str_accepted);
    RUN(test_dict_stays_correct);
    RUN(test_partial_encodings_completed);
    RUN(test_threads_while_immortalizing);
    RUN(test_not_owned);
    RUN(test_immortalize_from_collector_finalizer);
    RUN(test_immortalize_from_dealloc_finalizer);
    RUN(test_immortalize_with_finalizers);
    RUN(test_null);
    Py_CLEAR(Thing);
    return harness_finish();
}
