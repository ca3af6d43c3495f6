/* Finalization with many immortal objects: the interpreter makes 100,000
 * objects of every kind immortal, then Py_FinalizeEx must return 0 without
 * a crash, and the objects must still be there afterwards (never
 * deallocated: no capsule destructor ran, and their contents are intact).
 *
 * Each kind uses the call that accepts it: PyUnstable_SetImmortal (through
 * pyimmortal's export, which calls CPython's own where the interpreter has
 * it) for fresh, uniquely referenced objects, and pyimmortal_Immortalize
 * for what SetImmortal refuses: heap types (they start with several
 * references), objects with weak references (free-threaded builds keep a
 * flag for them), dicts. Interned strings are made immortal by
 * pyimmortal_ImmortalizeHeap, the call that interns strings as immortal
 * (from 3.13 on, interning makes them mortal, and pyimmortal_Immortalize
 * refuses mortal strings); it runs last, over everything still alive.
 *
 * A kind that the target refuses as a whole (every object of it, with the
 * documented exception) is reported as skipped with the reason. */
#include "harness.h"

#define N 100000

static PyObject *ns;     /* a namespace, the __main__ module's dict */
static PyObject *code;   /* the code object of the functions */
static PyObject *Thing;  /* a class, for instances */
static int capsule_destructor_calls;

/* One object of each kind that was made immortal, looked at again after
 * finalization. */
static PyObject *kept_float, *kept_tuple, *kept_list, *kept_capsule;

static void
capsule_destructor(PyObject *capsule)
{
    (void)capsule;
    capsule_destructor_calls++;
}

static PyType_Slot heap_type_slots[] = {{0, NULL}};
static PyType_Spec heap_type_spec = {
    "pyimmortal_shutdown.HeapType", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, heap_type_slots,
};

static PyObject *make_int(long i) { return PyLong_FromLong(1000000 + i); }
static PyObject *make_float(long i) { return PyFloat_FromDouble((double)i + 0.25); }
static PyObject *make_bytes(long i) { return PyBytes_FromFormat("pyimmortal-bytes-%ld", i); }

static PyObject *
make_tuple(long i)
{
    PyObject *a = PyLong_FromLong(2000000 + i), *b = PyFloat_FromDouble((double)i);
    CHECK(a != NULL && b != NULL);
    PyObject *t = PyTuple_Pack(2, a, b);
    Py_DECREF(a);
    Py_DECREF(b);
    return t;
}

static PyObject *
make_list(long i)
{
    PyObject *l = PyList_New(0), *item = PyLong_FromLong(3000000 + i);
    CHECK(l != NULL && item != NULL);
    CHECK(PyList_Append(l, item) == 0 && PyList_Append(l, Py_None) == 0);
    Py_DECREF(item);
    return l;
}

static PyObject *
make_dict(long i)
{
    PyObject *d = PyDict_New(), *v = PyLong_FromLong(i);
    CHECK(d != NULL && v != NULL);
    CHECK(PyDict_SetItemString(d, "value", v) == 0);
    Py_DECREF(v);
    return d;
}

static PyObject *
make_set(long i)
{
    PyObject *s = PySet_New(NULL), *v = PyLong_FromLong(4000000 + i);
    CHECK(s != NULL && v != NULL);
    CHECK(PySet_Add(s, v) == 0);
    Py_DECREF(v);
    return s;
}

static PyObject *
make_instance(long i)
{
    (void)i;
    return new_instance(Thing);
}

static PyObject *make_heap_type(long i) { (void)i; return PyType_FromSpec(&heap_type_spec); }
static PyObject *make_function(long i) { (void)i; return PyFunction_New(code, ns); }

static PyObject *
make_module(long i)
{
    char name[64];
    snprintf(name, sizeof(name), "pyimmortal_shutdown_%ld", i);
    return PyModule_New(name);
}

static PyObject *
make_capsule(long i)
{
    (void)i;
    return PyCapsule_New(&capsule_destructor_calls, "pyimmortal_shutdown.capsule",
                         capsule_destructor);
}

/* An instance with a live weak reference (kept in ns["weakrefs"], which
 * finalization clears while the referent is immortal). */
static PyObject *
make_weakly_referenced(long i)
{
    (void)i;
    PyObject *o = new_instance(Thing);
    PyObject *ref = PyWeakref_NewRef(o, NULL);
    CHECK(ref != NULL);
    PyObject *refs = PyDict_GetItemString(ns, "weakrefs");
    CHECK(refs != NULL && PyList_Append(refs, ref) == 0);
    Py_DECREF(ref);
    return o;
}

/* Refusals that apply to the target, per kind (NULL: accepted). */
#if PY_VERSION_HEX >= 0x030E0000
#  define DICTS_REFUSED "dicts stay mortal on 3.14+ (gh-153051): TypeError"
#else
#  define DICTS_REFUSED NULL
#endif
enum call { SET_IMMORTAL, IMMORTALIZE };

static const struct kind {
    const char *name;
    PyObject *(*make)(long i);
    enum call call;
    const char *refused;
    PyObject *refused_with; /* the checked call's exception, set in main */
    PyObject **kept;
} kinds_template[] = {
    {"ints", make_int, SET_IMMORTAL, NULL, NULL, NULL},
    {"floats", make_float, SET_IMMORTAL, NULL, NULL, &kept_float},
    {"bytes", make_bytes, SET_IMMORTAL, NULL, NULL, NULL},
    {"tuples", make_tuple, SET_IMMORTAL, NULL, NULL, &kept_tuple},
    {"lists", make_list, SET_IMMORTAL, NULL, NULL, &kept_list},
    {"dicts", make_dict, IMMORTALIZE, DICTS_REFUSED, NULL, NULL},
    {"sets", make_set, SET_IMMORTAL, NULL, NULL, NULL},
    {"instances of a heap type", make_instance, SET_IMMORTAL, NULL, NULL, NULL},
    {"heap types", make_heap_type, IMMORTALIZE, NULL, NULL, NULL},
    {"functions", make_function, IMMORTALIZE, NULL, NULL, NULL},
    {"modules", make_module, IMMORTALIZE, NULL, NULL, NULL},
    {"capsules", make_capsule, SET_IMMORTAL, NULL, NULL, &kept_capsule},
    {"objects with weak references", make_weakly_referenced, IMMORTALIZE, NULL, NULL, NULL},
};
#define N_KINDS (sizeof(kinds_template) / sizeof(kinds_template[0]))
static struct kind kinds[N_KINDS];
static size_t current;
static Py_ssize_t registered; /* how many pyimmortal_Immortalize made */

static void
run_kind(void)
{
    const struct kind *k = &kinds[current];
    long made = 0, refused = 0;
    for (long i = 0; i < N; i++) {
        PyObject *o = k->make(i);
        CHECK(o != NULL);
        CHECK(!PyUnstable_IsImmortal(o));
        int r;
        if (k->call == SET_IMMORTAL) {
            r = pyimmortal_PyUnstable_SetImmortal(o);
            if (r) {
                leakcheck_intended(o); /* SetImmortal does not register */
            }
        }
        else {
            r = pyimmortal_Immortalize(o);
            registered += r;
        }
        CHECK(!PyErr_Occurred());
        CHECK(!!PyUnstable_IsImmortal(o) == r);
        if (r) {
            made++;
            if (k->kept != NULL && *k->kept == NULL) {
                *k->kept = o;
            }
        }
        else {
            refused++;
            if (refused == 1 && k->call == IMMORTALIZE) {
                CHECK(pyimmortal_ImmortalizeChecked(o) == -1);
                if (!PyErr_ExceptionMatches(k->refused_with)) {
                    PyErr_Print();
                    CHECK(0);
                }
                PyErr_Clear();
            }
        }
        Py_DECREF(o);
    }
    if (k->refused != NULL) {
        CHECK(refused == N);
        SKIP(k->refused);
    }
    if (made != N) {
        fprintf(stderr, "%s: %ld of %d made immortal\n", k->name, made, N);
        CHECK(0);
    }
}

/* Interned strings, held in ns["strings"], made immortal by
 * pyimmortal_ImmortalizeHeap together with the rest of the heap. */
static void
test_interned_strings_and_the_heap(void)
{
    PyObject *strings = PyList_New(0);
    CHECK(strings != NULL);
    for (long i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof(text), "pyimmortal-shutdown-%ld", i);
        PyObject *s = PyUnicode_InternFromString(text);
        CHECK(s != NULL && PyList_Append(strings, s) == 0);
        Py_DECREF(s);
    }
    CHECK(PyDict_SetItemString(ns, "strings", strings) == 0);
    Py_ssize_t n = leakcheck_ImmortalizeHeap();
    CHECK(n >= 0);
    for (long i = 0; i < N; i++) {
        PyObject *s = PyList_GET_ITEM(strings, i);
        if (!PyUnstable_IsImmortal(s)) {
            fprintf(stderr, "string %ld (%s) is mortal\n", i, PyUnicode_AsUTF8(s));
            CHECK(0);
        }
    }
    fprintf(stderr, "(%zd objects) ", n);
    Py_DECREF(strings);
}

int
main(void)
{
    harness_start("test_shutdown");
    if (!HAS_IMMORTALITY) {
        fprintf(stderr, "test_shutdown: skipped (no immortal objects before 3.12)\n");
        harness_finalize();
        return HARNESS_SKIP_EXIT;
    }
    PyObject *main_module = PyImport_AddModule("__main__");
    CHECK(main_module != NULL);
    ns = PyModule_GetDict(main_module);
    PyObject *weakrefs = PyList_New(0);
    CHECK(weakrefs != NULL && PyDict_SetItemString(ns, "weakrefs", weakrefs) == 0);
    Py_DECREF(weakrefs);
    PyObject *r = PyRun_String("class Thing:\n"
                               "    def __init__(self):\n"
                               "        self.payload = [1, 2, 3]\n"
                               "def function(x):\n"
                               "    return x + 1\n",
                               Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    Thing = PyDict_GetItemString(ns, "Thing");
    code = PyFunction_GetCode(PyDict_GetItemString(ns, "function"));
    CHECK(Thing != NULL && code != NULL);

    for (size_t i = 0; i < N_KINDS; i++) {
        kinds[i] = kinds_template[i];
        kinds[i].refused_with = kinds[i].refused == NULL ? NULL
                                : kinds[i].make == make_dict ? PyExc_TypeError
                                                             : PyExc_RuntimeError;
    }
    for (current = 0; current < N_KINDS; current++) {
        harness_run(kinds[current].name, run_kind);
    }
    CHECK(pyimmortal_Registry_Count() == registered);
    RUN(test_interned_strings_and_the_heap);
    fprintf(stderr, "  %d objects per kind; %zd in the registry\n", N, registered);

    int status = harness_finish();

    /* Never deallocated: the objects are still there after finalization
     * (read with field macros only: the runtime is gone). */
    CHECK(capsule_destructor_calls == 0);
    CHECK(kept_float != NULL && PyFloat_AS_DOUBLE(kept_float) == 0.25);
    CHECK(kept_tuple != NULL && PyTuple_GET_SIZE(kept_tuple) == 2);
    CHECK(kept_list != NULL && PyList_GET_SIZE(kept_list) == 2 &&
          PyList_GET_ITEM(kept_list, 1) == Py_None);
    CHECK(kept_capsule != NULL && Py_REFCNT(kept_capsule) > 0);
    fprintf(stderr, "  after Py_FinalizeEx: no capsule destructor ran, contents intact ... ok\n");
    return status;
}
