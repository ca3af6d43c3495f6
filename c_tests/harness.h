/* Shared helpers for the embedding tests: each test program starts an
 * interpreter, runs its cases with checks that are always on, and finalizes
 * the interpreter. A program exits 77 (ctest's SKIP_RETURN_CODE) for a case
 * that does not apply to the running target. */
#ifndef PYIMMORTAL_HARNESS_H
#define PYIMMORTAL_HARNESS_H

#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#undef NDEBUG
#include <assert.h>
#if defined(NDEBUG)
#  error "the tests need assertions"
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define RUN(test)                                   \
    do {                                            \
        fprintf(stderr, "  %s ... ", #test);        \
        test();                                     \
        CHECK(!PyErr_Occurred());                   \
        fprintf(stderr, "ok\n");                    \
    } while (0)

static inline void
harness_start(const char *name)
{
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
}

static inline int
harness_finish(void)
{
    CHECK(Py_FinalizeEx() == 0);
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

#endif /* PYIMMORTAL_HARNESS_H */
