/* Shared helpers for the embedding tests: each test program starts an
 * interpreter, runs its cases with checks that are always on, and finalizes
 * the interpreter.
 *
 * A case that does not apply to the running target (a version or flavor
 * without the behaviour it checks) calls SKIP(reason) and returns; RUN
 * reports it as "skipped (reason)". A program whose every case was skipped,
 * or that does not apply as a whole, exits 77, which CMakeLists.txt declares
 * as ctest's SKIP_RETURN_CODE, so that ctest reports it as skipped. */
#ifndef PYIMMORTAL_HARNESS_H
#define PYIMMORTAL_HARNESS_H

#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"
#include "leakcheck.h"

#undef NDEBUG
#include <assert.h>
#if defined(NDEBUG)
#  error "the tests need assertions"
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ctest's SKIP_RETURN_CODE for these programs. */
#define HARNESS_SKIP_EXIT 77

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            if (PyErr_Occurred()) {                                          \
                PyErr_Print();                                               \
            }                                                                \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* Immortal objects exist from CPython 3.12 on (PEP 683). */
#define HAS_IMMORTALITY (PY_VERSION_HEX >= 0x030C0000)

static const char *harness_name = "test";
static const char *harness_skip_reason; /* set by SKIP in the running case */
static const char *harness_last_skip;   /* the reason of the last skipped case */
static int harness_ran, harness_skipped;

/* Ends the running case as skipped: it does not apply to this target. */
#define SKIP(reason)                      \
    do {                                  \
        harness_skip_reason = (reason);   \
        return;                           \
    } while (0)

#define RUN(test) harness_run(#test, test)

static inline void
harness_run(const char *name, void (*test)(void))
{
    fprintf(stderr, "  %s ... ", name);
    harness_skip_reason = NULL;
    test();
    CHECK(!PyErr_Occurred());
    if (harness_skip_reason != NULL) {
        fprintf(stderr, "skipped (%s)\n", harness_skip_reason);
        harness_last_skip = harness_skip_reason;
        harness_skipped++;
    }
    else {
        fprintf(stderr, "ok\n");
        harness_ran++;
    }
}

/* Whether this process exports one of CPython's two functions that
 * pyimmortal calls instead of its own implementation (looked up as the
 * library does, with dlsym). */
static inline int
harness_cpython_exports_any(void)
{
    static const char *const names[] = {
        "PyUnstable_SetImmortal",
        "PyUnstable_Object_EnableDeferredRefcount",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (dlsym(RTLD_DEFAULT, names[i]) != NULL) {
            return 1;
        }
    }
    return 0;
}

/* Finalizes the interpreter, which must succeed. The registry's objects
 * are declared to the leak checker first: finalizing frees the registry
 * but not the objects (leakcheck.h). */
static inline void
harness_finalize(void)
{
    CHECK(leakcheck_registry() >= 0);
    CHECK(Py_FinalizeEx() == 0);
}

static inline void
harness_start(const char *name)
{
    harness_name = name;
    Py_Initialize();
    CHECK(Py_IsInitialized());
    fprintf(stderr, "%s: pyimmortal built for %s, running %s%s\n", name,
            pyimmortal_target(), Py_GetVersion(),
#if defined(Py_GIL_DISABLED)
            " (free-threaded)"
#else
            ""
#endif
    );
    /* PYIMMORTAL_FORCE_BUILTIN=1 makes pyimmortal use its own implementation
     * where the interpreter exports CPython's. Where it exports none, the
     * run without it has checked pyimmortal's own implementation already. */
    const char *force = getenv("PYIMMORTAL_FORCE_BUILTIN");
    if (force != NULL && strcmp(force, "1") == 0 && !harness_cpython_exports_any()) {
        fprintf(stderr, "%s: skipped (the interpreter exports neither of the two CPython "
                        "functions that pyimmortal would call instead of its own, so "
                        "PYIMMORTAL_FORCE_BUILTIN changes nothing)\n",
                name);
        harness_finalize();
        exit(HARNESS_SKIP_EXIT);
    }
}

/* Finalizes the interpreter and returns the program's exit status: 0, or
 * HARNESS_SKIP_EXIT if every case so far was skipped. */
static inline int
harness_finish(void)
{
    harness_finalize();
    if (harness_skipped == 0) {
        return 0;
    }
    if (harness_ran == 0) {
        fprintf(stderr, "%s: every case skipped (%s)\n", harness_name, harness_last_skip);
        return HARNESS_SKIP_EXIT;
    }
    fprintf(stderr, "%s: %d cases ran, %d skipped\n", harness_name, harness_ran,
            harness_skipped);
    return 0;
}

/* Runs Python source in a fresh namespace and returns the value of `result`
 * (a new reference). */
static inline PyObject *
eval_result(const char *source)
{
    PyObject *globals = PyDict_New();
    CHECK(globals != NULL);
    CHECK(PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0);
    PyObject *r = PyRun_String(source, Py_file_input, globals, globals);
    CHECK(r != NULL);
    Py_DECREF(r);
    PyObject *result = PyDict_GetItemString(globals, "result");
    CHECK(result != NULL);
    Py_INCREF(result);
    Py_DECREF(globals);
    return result;
}

/* A Python class whose instances are GC-tracked and weakly referenceable. */
static inline PyObject *
make_class(void)
{
    return eval_result("class Thing:\n"
                       "    def __init__(self):\n"
                       "        self.payload = [1, 2, 3]\n"
                       "result = Thing\n");
}

/* A fresh instance of `cls`: a new reference, uniquely referenced. */
static inline PyObject *
new_instance(PyObject *cls)
{
    PyObject *o = PyObject_CallNoArgs(cls);
    CHECK(o != NULL);
    return o;
}

static inline void
gc_collect(void)
{
    PyGC_Collect();
    PyGC_Collect();
}

/* Drops the last reference to `obj` and checks, through a weak reference,
 * whether the object was freed (after a collection). */
static inline int
dropped_and_freed(PyObject *obj)
{
    PyObject *ref = PyWeakref_NewRef(obj, NULL);
    CHECK(ref != NULL);
    Py_DECREF(obj);
    gc_collect();
    PyObject *now = PyObject_CallNoArgs(ref);
    CHECK(now != NULL);
    int freed = now == Py_None;
    Py_DECREF(now);
    Py_DECREF(ref);
    return freed;
}

struct harness_walk {
    PyObject **expected;
    Py_ssize_t len, n;
};

static inline int
harness_expect_visit(PyObject *obj, void *arg)
{
    struct harness_walk *w = (struct harness_walk *)arg;
    CHECK(w->n < w->len);
    CHECK(w->expected[w->n] == obj);
    w->n++;
    return 0;
}

/* The current interpreter's registry holds exactly `expected[0..n)`:
 * Count is n, Visit walks them in that order, Contains finds each. */
static inline void
check_registry(PyObject **expected, Py_ssize_t n)
{
    CHECK(pyimmortal_Registry_Count() == n);
    struct harness_walk w = {expected, n, 0};
    CHECK(pyimmortal_Registry_Visit(harness_expect_visit, &w) == 0);
    CHECK(w.n == n);
    for (Py_ssize_t i = 0; i < n; i++) {
        CHECK(pyimmortal_Registry_Contains(expected[i]) == 1);
    }
}

#endif /* PYIMMORTAL_HARNESS_H */
