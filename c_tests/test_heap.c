/* pyimmortal_ImmortalizeHeap on a running interpreter: what it makes
 * immortal, what it leaves alone, and that the program keeps working and
 * the interpreter finalizes cleanly afterwards. */
#include "harness.h"

#if HAS_IMMORTALITY
/* A heap like a loaded application's: records of ints, floats, strings,
 * bytes and tuples in dicts in a list, instances of a class, plus objects
 * that must stay mortal. Returns the namespace (a new reference). */
static PyObject *
build_heap(void)
{
    PyObject *ns = PyDict_New();
    CHECK(ns != NULL);
    CHECK(PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0);
    PyObject *r = PyRun_String(
        "import gc\n"
        "class Record:\n"
        "    def __init__(self, i):\n"
        "        self.i = i\n"
        "        self.label = 'record-%d' % i\n"
        "class WithDel:\n"
        "    def __del__(self):\n"
        "        pass\n"
        "def gen():\n"
        "    yield 1\n"
        "rows = [{'id': 10_000 + i, 'name': 'user-%d' % i, 'score': i * 0.5,\n"
        "         'blob': b'x' * (i % 7 + 20), 'pair': (i, float(i))}\n"
        "        for i in range(20_000)]\n"
        "records = [Record(i) for i in range(1_000)]\n"
        "with_del = WithDel()\n"
        "generator = gen()\n"
        "twin = ''.join(['user-', '1'])\n",
        Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    return ns;
}

static PyObject *
item(PyObject *ns, const char *expr)
{
    PyObject *v = PyRun_String(expr, Py_eval_input, ns, ns);
    CHECK(v != NULL);
    return v;
}

static int
immortal(PyObject *ns, const char *expr)
{
    PyObject *v = item(ns, expr);
    int r = PyUnstable_IsImmortal(v) != 0;
    Py_DECREF(v);
    return r;
}
#endif /* HAS_IMMORTALITY */

static void
test_heap_objects_become_immortal(void)
{
#if !HAS_IMMORTALITY
    CHECK(pyimmortal_ImmortalizeHeap() == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_NotImplementedError));
    PyErr_Clear();
    SKIP("no immortal objects before 3.12: NotImplementedError");
#else
    PyObject *ns = build_heap();
    CHECK(!immortal(ns, "rows"));
    CHECK(!immortal(ns, "rows[5]['score']"));
    Py_ssize_t registered = pyimmortal_Registry_Count();

    Py_ssize_t n = leakcheck_ImmortalizeHeap();
    CHECK(n > 20000);
    fprintf(stderr, "(%zd objects) ", n);

    /* Tracked containers, and what they reference that is not tracked. */
    CHECK(immortal(ns, "rows"));
    CHECK(immortal(ns, "records"));
    CHECK(immortal(ns, "records[3]"));
    /* Classes too, deferred on free-threaded 3.14+. */
    CHECK(immortal(ns, "Record"));
    CHECK(immortal(ns, "rows[5]['score']"));
    CHECK(immortal(ns, "rows[5]['id']"));
    CHECK(immortal(ns, "rows[5]['blob']"));
    CHECK(immortal(ns, "rows[5]['pair']"));
    CHECK(immortal(ns, "rows[5]['pair'][1]"));
    /* Exact strings are interned as immortal where that keeps the object. */
    CHECK(immortal(ns, "rows[5]['name']"));
    CHECK(immortal(ns, "records[3].label"));
#if PY_VERSION_HEX >= 0x030E0000
    /* Dicts stay mortal on 3.14+ (gh-153051). */
    CHECK(!immortal(ns, "rows[5]"));
#else
    CHECK(immortal(ns, "rows[5]"));
#endif
#if defined(Py_GIL_DISABLED)
    /* Objects whose finalizer has not run stay mortal on free-threaded
     * builds, where a tracked object does not stay immortal. */
    CHECK(!immortal(ns, "with_del"));
    CHECK(!immortal(ns, "generator"));
#else
    /* Objects whose finalizer has not run too; it never runs. */
    CHECK(immortal(ns, "with_del"));
    CHECK(immortal(ns, "generator"));
#endif
    /* Nothing entered the registry. */
    CHECK(pyimmortal_Registry_Count() == registered);

    /* A second pass finds nothing left to change among those. */
    Py_ssize_t again = leakcheck_ImmortalizeHeap();
    CHECK(again >= 0 && again < n / 10);

    /* The program keeps working. */
    PyObject *r = PyRun_String(
        "import json, collections\n"
        "rows[0]['new'] = [1, 2, 3]\n"
        "rows.append({'id': -1})\n"
        "assert json.loads(json.dumps(rows[1]['name'])) == 'user-1'\n"
        "class Later(Record):\n"
        "    pass\n"
        "assert Later(5).label == 'record-5'\n"
        "try:\n"
        "    raise ValueError('still works')\n"
        "except ValueError as e:\n"
        "    assert str(e) == 'still works'\n"
        "gc.collect()\n"
        "assert sum(r['id'] for r in rows[:3]) == 30_003\n",
        Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    Py_DECREF(ns);
    gc_collect();
#endif
}

static void
test_collector_state_is_restored(void)
{
#if !HAS_IMMORTALITY
    SKIP("no immortal objects before 3.12");
#else
    PyObject *ns = build_heap();
    PyObject *r = PyRun_String("gc.disable()\ngc.freeze()\n", Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    CHECK(leakcheck_ImmortalizeHeap() >= 0);
    PyObject *state = item(ns, "(gc.isenabled(), gc.get_freeze_count() > 0)");
    CHECK(PyTuple_GET_ITEM(state, 0) == Py_False);
    CHECK(PyTuple_GET_ITEM(state, 1) == Py_True);
    Py_DECREF(state);
    /* A frozen heap is still found: it was unfrozen for the walk. */
    CHECK(immortal(ns, "rows[7]['score']"));
    r = PyRun_String("gc.unfreeze()\ngc.enable()\n", Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    CHECK(leakcheck_ImmortalizeHeap() >= 0);
    state = item(ns, "(gc.isenabled(), gc.get_freeze_count())");
    CHECK(PyTuple_GET_ITEM(state, 0) == Py_True);
    CHECK(PyLong_AsLong(PyTuple_GET_ITEM(state, 1)) == 0);
    Py_DECREF(state);
    Py_DECREF(ns);
#endif
}

/* The registry stays mortal, with the interpreter's dict that holds it,
 * so that Py_FinalizeEx still frees it (a leak that the sanitized build's
 * leak checker reports otherwise). */
static void
test_registry_stays_mortal(void)
{
#if !HAS_IMMORTALITY
    SKIP("no immortal objects before 3.12");
#else
    PyObject *o = PyList_New(0);
    CHECK(o != NULL && pyimmortal_Immortalize(o) == 1); /* makes the registry */
    Py_DECREF(o);
    CHECK(leakcheck_ImmortalizeHeap() >= 0);
    PyObject *dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    CHECK(dict != NULL && !PyUnstable_IsImmortal(dict));
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int registries = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (PyCapsule_IsValid(value, "pyimmortal.registry")) {
            CHECK(!PyUnstable_IsImmortal(value));
            registries++;
        }
    }
    CHECK(registries == 1);
    CHECK(pyimmortal_Registry_Contains(o) == 1);
#endif
}

static void
test_free_threaded_refuses_other_threads(void)
{
#if !defined(Py_GIL_DISABLED)
    SKIP("GIL build: other threads do not matter");
#else
    PyObject *ns = PyDict_New();
    CHECK(ns != NULL);
    CHECK(PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0);
    PyObject *r = PyRun_String("import threading\n"
                               "stop = threading.Event()\n"
                               "t = threading.Thread(target=stop.wait)\n"
                               "t.start()\n",
                               Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    CHECK(pyimmortal_ImmortalizeHeap() == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_RuntimeError));
    PyErr_Clear();
    r = PyRun_String("stop.set()\nt.join()\n", Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    Py_DECREF(ns);
#endif
}

/* An extension's static type: an instance of `type`, a GC type, without a
 * GC header (the GC does not manage static types), and mortal on GIL
 * builds. */
#if HAS_IMMORTALITY
static PyTypeObject StaticType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "test_heap.Static",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
};
#endif

/* A static type reached from the heap is made immortal, and its
 * tp_traverse is never called: `type_traverse` aborts the process on a
 * static type. Nor is an untracked capsule's, which 3.13.0rc1 and rc2 call
 * through a NULL pointer (gh-124538). Both found by c_tests/fuzz. */
static void
test_static_type_and_capsule_reached_from_the_heap(void)
{
#if !HAS_IMMORTALITY
    SKIP("no immortal objects before 3.12");
#else
    CHECK(PyType_Ready(&StaticType) == 0);
    PyObject *holder = PyList_New(0);
    CHECK(holder != NULL);
    PyObject *instance = PyObject_CallNoArgs((PyObject *)&StaticType);
    CHECK(instance != NULL);
    CHECK(PyList_Append(holder, (PyObject *)&StaticType) == 0);
    CHECK(PyList_Append(holder, instance) == 0);
    PyObject *capsule = PyCapsule_New(&StaticType, "test_heap.capsule", NULL);
    CHECK(capsule != NULL);
    CHECK(PyList_Append(holder, capsule) == 0);
    CHECK(leakcheck_ImmortalizeHeap() >= 0);
    CHECK(PyUnstable_IsImmortal((PyObject *)&StaticType));
    CHECK(PyUnstable_IsImmortal(instance));
    CHECK(PyUnstable_IsImmortal(holder));
    CHECK(PyUnstable_IsImmortal(capsule));
    Py_DECREF(capsule);
    Py_DECREF(instance);
    Py_DECREF(holder);
#endif
}

/* Objects made by a thread that has ended stay immortal if they were:
 * free-threaded 3.13's gc.get_objects() would merge the reference count of
 * those the collector tracks, which 3.13t's modules made after a thread
 * started are (immortal instead of deferred, gh-117783). Found by
 * c_tests/fuzz. */
static void
test_immortal_objects_of_ended_threads_stay_immortal(void)
{
#if !HAS_IMMORTALITY
    SKIP("no immortal objects before 3.12");
#else
    PyObject *ns = PyDict_New();
    CHECK(ns != NULL);
    CHECK(PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0);
    PyObject *r = PyRun_String("import threading, types\n"
                               "made = []\n"
                               "def work():\n"
                               "    for i in range(100):\n"
                               "        made.append(types.ModuleType('m%d' % i))\n"
                               "for _ in range(2):\n"
                               "    t = threading.Thread(target=work)\n"
                               "    t.start()\n"
                               "    t.join()\n",
                               Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    PyObject *made = item(ns, "made");
    Py_ssize_t n = PyList_GET_SIZE(made);
    CHECK(n == 200);
    int before[200];
    int were = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        before[i] = PyUnstable_IsImmortal(PyList_GET_ITEM(made, i)) != 0;
        were += before[i];
    }
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030E0000
    CHECK(were == n); /* 3.13t: immortal instead of deferred once a thread ran */
#endif
    CHECK(leakcheck_ImmortalizeHeap() >= 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        CHECK(!before[i] || PyUnstable_IsImmortal(PyList_GET_ITEM(made, i)));
    }
    fprintf(stderr, "(%d of %zd immortal before, all still immortal) ", were, n);
    Py_DECREF(made);
    Py_DECREF(ns);
#endif
}

int
main(void)
{
    harness_start("test_heap");
    RUN(test_free_threaded_refuses_other_threads);
    RUN(test_heap_objects_become_immortal);
    RUN(test_collector_state_is_restored);
    RUN(test_static_type_and_capsule_reached_from_the_heap);
    RUN(test_immortal_objects_of_ended_threads_stay_immortal);
    RUN(test_registry_stays_mortal);
    return harness_finish();
}
