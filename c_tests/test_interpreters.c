/* Isolated subinterpreters with their own GIL (PEP 684, 3.12+), created
 * with Py_NewInterpreterFromConfig and PyInterpreterConfig_OWN_GIL: the
 * registry is per interpreter and goes with it, several subinterpreters run
 * pyimmortal in parallel threads, a capsule made immortal by the main
 * interpreter is shared read-only with all of them, and the process keeps
 * working after they end and finalizes cleanly.
 *
 * Cases (each skipped on 3.9-3.11, which have no per-interpreter GIL):
 *   registry_per_interpreter   one subinterpreter, entered and left from
 *                              the main thread; its own registry; ended
 *   objects_outlive_their_interpreter
 *                              its immortal object stays readable after it
 *                              ends (it is never freed)
 *   parallel_subinterpreters   two threads, each in its own subinterpreter
 *                              at once: exact registries, and the shared
 *                              immortal capsule increfed millions of times
 *   shared_capsule             the capsule afterwards: count unchanged,
 *                              destructor never run, listed only by the
 *                              main registry
 *   many_subinterpreters       20 made and ended in turn, each starting
 *                              with an empty registry
 *   main_keeps_working         the main interpreter afterwards */
#include "harness.h"

#include <pthread.h>

#define OWN_GIL_SKIP "no per-interpreter GIL before 3.12 (PEP 684)"

#if PY_VERSION_HEX >= 0x030C0000

/* The isolated configuration of concurrent.interpreters: its own GIL and
 * obmalloc, and only extensions that support multiple interpreters. */
static PyThreadState *
new_isolated(void)
{
    PyInterpreterConfig config;
    memset(&config, 0, sizeof(config));
    config.use_main_obmalloc = 0;
    config.allow_fork = 0;
    config.allow_exec = 0;
    config.allow_threads = 1;
    config.allow_daemon_threads = 0;
    config.check_multi_interp_extensions = 1;
    config.gil = PyInterpreterConfig_OWN_GIL;
    PyThreadState *sub = NULL;
    PyStatus status = Py_NewInterpreterFromConfig(&sub, &config);
    CHECK(!PyStatus_Exception(status));
    CHECK(sub != NULL && PyThreadState_Get() == sub);
    CHECK(PyInterpreterState_Get() != PyInterpreterState_Main());
    return sub;
}

/* Ends `sub` (attached: the current thread state) and attaches `back`.
 * What it made immortal outlives it: declared to the leak checker first
 * (leakcheck.h). */
static void
end_isolated(PyThreadState *sub, PyThreadState *back)
{
    CHECK(PyThreadState_Get() == sub);
    CHECK(leakcheck_registry() >= 0);
    Py_EndInterpreter(sub);
    PyThreadState_Swap(back);
}

/* A fresh list [n], allocated by the current interpreter. */
static PyObject *
new_list(long n)
{
    PyObject *item = PyLong_FromLong(n);
    CHECK(item != NULL);
    PyObject *list = PyList_New(1);
    CHECK(list != NULL);
    PyList_SET_ITEM(list, 0, item);
    return list;
}

/* The main interpreter's own immortal objects, made first. */
#define MAIN_OBJECTS 3
static PyObject *main_objects[MAIN_OBJECTS];

/* The capsule shared by every interpreter: a C static, as NumPy keeps its
 * module-level capsules, made immortal by the main interpreter before any
 * subinterpreter sees it. */
static int shared_data = 7;
static const char shared_name[] = "test_interpreters.shared";
static PyObject *shared;
static Py_ssize_t shared_refcnt;
static int shared_destroyed;

static void
shared_destructor(PyObject *capsule)
{
    (void)capsule;
    shared_destroyed = 1;
}

static void
make_main_objects(void)
{
    for (int i = 0; i < MAIN_OBJECTS; i++) {
        main_objects[i] = new_list(i);
        CHECK(pyimmortal_Immortalize(main_objects[i]) == 1);
    }
    shared = PyCapsule_New(&shared_data, shared_name, shared_destructor);
    CHECK(shared != NULL);
    CHECK(pyimmortal_ImmortalizeChecked(shared) == 0);
    shared_refcnt = Py_REFCNT(shared);
}

static PyObject *main_expected[MAIN_OBJECTS + 1];

static void
check_main_registry(void)
{
    CHECK(PyInterpreterState_Get() == PyInterpreterState_Main());
    for (int i = 0; i < MAIN_OBJECTS; i++) {
        main_expected[i] = main_objects[i];
    }
    main_expected[MAIN_OBJECTS] = shared;
    check_registry(main_expected, MAIN_OBJECTS + 1);
}

/* What a subinterpreter sees of the shared capsule: immortal, not in its
 * registry; making it immortal again succeeds and changes nothing. */
static void
check_shared_from_sub(void)
{
    CHECK(pyimmortal_PyUnstable_IsImmortal(shared) == 1);
    CHECK(pyimmortal_Registry_Contains(shared) == 0);
    Py_ssize_t count = pyimmortal_Registry_Count();
    CHECK(pyimmortal_Immortalize(shared) == 1);
    CHECK(pyimmortal_Registry_Count() == count);
    CHECK(pyimmortal_Registry_Contains(shared) == 0);
    CHECK(PyCapsule_GetPointer(shared, shared_name) == &shared_data);
    for (int i = 0; i < MAIN_OBJECTS; i++) {
        CHECK(pyimmortal_Registry_Contains(main_objects[i]) == 0);
    }
}

static PyObject *kept_from_sub;

#endif /* 3.12+ */

static void
test_registry_per_interpreter(void)
{
#if PY_VERSION_HEX < 0x030C0000
    SKIP(OWN_GIL_SKIP);
#else
    make_main_objects();
    check_main_registry();
    PyThreadState *main_ts = PyThreadState_Get();

    PyThreadState *sub = new_isolated();
    CHECK(pyimmortal_Registry_Count() == 0);
    check_shared_from_sub();
    PyObject *mine[4];
    for (int i = 0; i < 4; i++) {
        mine[i] = new_list(100 + i);
        CHECK(pyimmortal_Immortalize(mine[i]) == 1);
    }
    check_registry(mine, 4);
    /* Python code runs in it, and sees the same. */
    CHECK(PyRun_SimpleString("import gc\n"
                             "x = [object() for _ in range(1000)]\n"
                             "gc.collect()\n") == 0);

    /* Back to the main interpreter: its registry is its own. */
    PyThreadState_Swap(main_ts);
    check_main_registry();
    for (int i = 0; i < 4; i++) {
        CHECK(pyimmortal_Registry_Contains(mine[i]) == 0);
    }

    /* And into the subinterpreter again: its registry is still there. */
    PyThreadState_Swap(sub);
    check_registry(mine, 4);
    kept_from_sub = mine[0];
    for (int i = 0; i < 4; i++) {
        Py_DECREF(mine[i]); /* immortal: nothing happens */
    }
    end_isolated(sub, main_ts);
    check_main_registry();
#endif
}

static void
test_objects_outlive_their_interpreter(void)
{
#if PY_VERSION_HEX < 0x030C0000
    SKIP(OWN_GIL_SKIP);
#else
    /* Allocated by the ended subinterpreter (its own obmalloc), immortal,
     * never freed: CPython keeps the memory of an interpreter that leaked
     * blocks. */
    CHECK(kept_from_sub != NULL);
    CHECK(pyimmortal_PyUnstable_IsImmortal(kept_from_sub) == 1);
    CHECK(PyList_GET_SIZE(kept_from_sub) == 1);
    CHECK(PyLong_AsLong(PyList_GET_ITEM(kept_from_sub, 0)) == 100);
    CHECK(pyimmortal_Registry_Contains(kept_from_sub) == 0);
    Py_INCREF(kept_from_sub);
    Py_DECREF(kept_from_sub);
#endif
}

#if PY_VERSION_HEX >= 0x030C0000

#define THREADS 2
#define PER_THREAD 500
#define HAMMER 4000000

struct job {
    int index;
    PyObject *made[PER_THREAD];
};

/* One thread: attach to the main interpreter (PyGILState), make an isolated
 * subinterpreter (which releases the main GIL), work there, end it, and
 * give the main interpreter back. */
static void *
sub_thread(void *arg)
{
    struct job *job = (struct job *)arg;
    PyGILState_STATE g = PyGILState_Ensure();
    PyThreadState *main_ts = PyThreadState_Get();
    PyThreadState *sub = new_isolated();

    CHECK(pyimmortal_Registry_Count() == 0);
    check_shared_from_sub();
    PyObject *holder = PyList_New(0);
    CHECK(holder != NULL);
    for (int i = 0; i < PER_THREAD; i++) {
        job->made[i] = new_list(job->index * 1000 + i);
        CHECK(pyimmortal_Immortalize(job->made[i]) == 1);
        /* The shared capsule is increfed, stored, and released often. */
        for (int k = 0; k < HAMMER / PER_THREAD; k++) {
            Py_INCREF(shared);
            Py_DECREF(shared);
        }
        CHECK(PyList_Append(holder, shared) == 0);
        CHECK(Py_REFCNT(shared) == shared_refcnt);
    }
    Py_DECREF(holder);
    check_registry(job->made, PER_THREAD);
    CHECK(PyRun_SimpleString("import gc\n"
                             "x = {i: str(i) for i in range(10000)}\n"
                             "del x\n"
                             "gc.collect()\n") == 0);
    check_registry(job->made, PER_THREAD);
    for (int i = 0; i < PER_THREAD; i++) {
        Py_DECREF(job->made[i]);
    }
    end_isolated(sub, main_ts);
    PyGILState_Release(g);
    return NULL;
}

#endif

static void
test_parallel_subinterpreters(void)
{
#if PY_VERSION_HEX < 0x030C0000
    SKIP(OWN_GIL_SKIP);
#else
    static struct job jobs[THREADS];
    pthread_t threads[THREADS];
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < THREADS; i++) {
        jobs[i].index = i + 1;
        CHECK(pthread_create(&threads[i], NULL, sub_thread, &jobs[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    Py_END_ALLOW_THREADS
    check_main_registry();
    for (int i = 0; i < THREADS; i++) {
        for (int k = 0; k < PER_THREAD; k++) {
            CHECK(pyimmortal_Registry_Contains(jobs[i].made[k]) == 0);
            CHECK(pyimmortal_PyUnstable_IsImmortal(jobs[i].made[k]) == 1);
        }
    }
    fprintf(stderr, "(%d subinterpreters at once, %d objects each, %d increfs each of the "
                    "shared capsule) ",
            THREADS, PER_THREAD, HAMMER);
#endif
}

static void
test_shared_capsule(void)
{
#if PY_VERSION_HEX < 0x030C0000
    SKIP(OWN_GIL_SKIP);
#else
    CHECK(Py_REFCNT(shared) == shared_refcnt);
    CHECK(!shared_destroyed);
    CHECK(pyimmortal_PyUnstable_IsImmortal(shared) == 1);
    CHECK(pyimmortal_Registry_Contains(shared) == 1);
    CHECK(PyCapsule_GetPointer(shared, shared_name) == &shared_data);
#endif
}

static void
test_many_subinterpreters(void)
{
#if PY_VERSION_HEX < 0x030C0000
    SKIP(OWN_GIL_SKIP);
#else
    PyThreadState *main_ts = PyThreadState_Get();
    for (int round = 0; round < 20; round++) {
        PyThreadState *sub = new_isolated();
        CHECK(pyimmortal_Registry_Count() == 0);
        PyObject *o[2] = {new_list(round), new_list(-round)};
        CHECK(pyimmortal_Immortalize(o[0]) == 1 && pyimmortal_Immortalize(o[1]) == 1);
        check_registry(o, 2);
        Py_DECREF(o[0]);
        Py_DECREF(o[1]);
        end_isolated(sub, main_ts);
    }
    check_main_registry();
#endif
}

static void
test_main_keeps_working(void)
{
#if PY_VERSION_HEX < 0x030C0000
    SKIP(OWN_GIL_SKIP);
#else
    PyObject *later = new_list(-1);
    CHECK(pyimmortal_Immortalize(later) == 1);
    CHECK(pyimmortal_Registry_Count() == MAIN_OBJECTS + 2);
    CHECK(PyRun_SimpleString("import json, gc\n"
                             "assert json.loads(json.dumps({'a': [1]})) == {'a': [1]}\n"
                             "class K:\n"
                             "    pass\n"
                             "k = [K() for _ in range(1000)]\n"
                             "gc.collect()\n") == 0);
    Py_DECREF(later);
    for (int i = 0; i < MAIN_OBJECTS; i++) {
        Py_DECREF(main_objects[i]);
    }
#endif
}

int
main(void)
{
    harness_start("test_interpreters");
    RUN(test_registry_per_interpreter);
    RUN(test_objects_outlive_their_interpreter);
    RUN(test_parallel_subinterpreters);
    RUN(test_shared_capsule);
    RUN(test_many_subinterpreters);
    RUN(test_main_keeps_working);
    return harness_finish();
}
