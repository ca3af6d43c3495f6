/* calls_ext: the module behind bench/calls.py. It times, in a C loop, what
 * one call of pyimmortal_PyUnstable_IsImmortal and of
 * pyimmortal_PyUnstable_Object_IsUniquelyReferenced costs, next to:
 *
 *   plain    the same check in a plain exported C function of another
 *            translation unit (calls_plain.c, never inlined);
 *   cpython  CPython's own exported function, where the headers declare it
 *            (PyUnstable_IsImmortal from 3.14.0a5,
 *            PyUnstable_Object_IsUniquelyReferenced from 3.14.0b1);
 *   inline   the check itself, inlined into the loop (calls_check.h): the
 *            floor.
 *
 * Every function is called through a pointer read from a volatile before the
 * loop, so the compiler can inline none of them, and every iteration reads
 * the object from a volatile, so no variant (the inline one included) can be
 * hoisted out of the loop. The loops add up the results, which also tell
 * calls.py what each variant answered.
 */
#define PY_SSIZE_T_CLEAN
#define PYIMMORTAL_NO_COMPAT_NAMES /* PyUnstable_* always means CPython's own */
#include "pyimmortal.h"

#include <string.h>
#include <time.h>

#include "calls_check.h"

typedef int (*query_fn)(PyObject *);
typedef long long (*loop_fn)(Py_ssize_t n);

static query_fn volatile callee;
static PyObject *volatile subject;
static volatile long long sink;

static long long
loop_call(Py_ssize_t n)
{
    query_fn fn = callee;
    long long sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        sum += fn(subject);
    }
    return sum;
}

static long long
loop_inline_is_immortal(Py_ssize_t n)
{
    long long sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        sum += check_is_immortal(subject);
    }
    return sum;
}

static long long
loop_inline_is_uniquely_referenced(Py_ssize_t n)
{
    long long sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        sum += check_is_uniquely_referenced(subject);
    }
    return sum;
}

#if PY_VERSION_HEX >= 0x030C0000
#  define INLINE_IMMORTAL_NAME "_Py_IsImmortal, inline"
#else
#  define INLINE_IMMORTAL_NAME "NULL check, then 0, inline"
#endif
#ifdef Py_GIL_DISABLED
#  define INLINE_UNIQUE_NAME "owned && local == 1 && shared == 0, inline"
#else
#  define INLINE_UNIQUE_NAME "Py_REFCNT(op) == 1, inline"
#endif

static const struct variant {
    const char *query;
    const char *variant;
    const char *name; /* what calls.py prints */
    query_fn fn;      /* called through `callee`, or NULL: */
    loop_fn loop;     /* the inline loop */
} variants[] = {
    {"IsImmortal", "pyimmortal", "pyimmortal_PyUnstable_IsImmortal",
     pyimmortal_PyUnstable_IsImmortal, NULL},
    {"IsImmortal", "plain", "calls_plain_is_immortal (plain exported)",
     calls_plain_is_immortal, NULL},
#if PY_VERSION_HEX >= 0x030E00A5
    {"IsImmortal", "cpython", "PyUnstable_IsImmortal (CPython's)",
     PyUnstable_IsImmortal, NULL},
#endif
    {"IsImmortal", "inline", INLINE_IMMORTAL_NAME, NULL, loop_inline_is_immortal},
    {"IsUniquelyReferenced", "pyimmortal", "pyimmortal_PyUnstable_Object_IsUniquelyReferenced",
     pyimmortal_PyUnstable_Object_IsUniquelyReferenced, NULL},
    {"IsUniquelyReferenced", "plain", "calls_plain_is_uniquely_referenced (plain exported)",
     calls_plain_is_uniquely_referenced, NULL},
#if PY_VERSION_HEX >= 0x030E00B1
    {"IsUniquelyReferenced", "cpython", "PyUnstable_Object_IsUniquelyReferenced (CPython's)",
     PyUnstable_Object_IsUniquelyReferenced, NULL},
#endif
    {"IsUniquelyReferenced", "inline", INLINE_UNIQUE_NAME, NULL,
     loop_inline_is_uniquely_referenced},
};

#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* info() -> dict: the library's target and the variants, in table order. */
static PyObject *
info(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < N_VARIANTS; i++) {
        PyObject *row = Py_BuildValue("(sss)", variants[i].query, variants[i].variant,
                                      variants[i].name);
        if (row == NULL || PyList_Append(list, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(row);
    }
    return Py_BuildValue("{s:s,s:k,s:N}", "target", pyimmortal_target(),
                         "target_version_hex", pyimmortal_target_version_hex(),
                         "variants", list);
}

/* time_calls(query, variant, object, n) -> (nanoseconds, sum of results):
 * n calls on `object`, "None" or "list" (a new list, referenced only here). */
static PyObject *
time_calls(PyObject *module, PyObject *args)
{
    (void)module;
    const char *query, *name, *what;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "sssn", &query, &name, &what, &n)) {
        return NULL;
    }
    const struct variant *v = NULL;
    for (size_t i = 0; i < N_VARIANTS && v == NULL; i++) {
        if (strcmp(variants[i].query, query) == 0 && strcmp(variants[i].variant, name) == 0) {
            v = &variants[i];
        }
    }
    if (v == NULL) {
        PyErr_Format(PyExc_ValueError, "no variant %s/%s", query, name);
        return NULL;
    }
    PyObject *obj;
    if (strcmp(what, "None") == 0) {
        obj = Py_None;
        Py_INCREF(obj);
    }
    else if (strcmp(what, "list") == 0) {
        obj = PyList_New(0);
        if (obj == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_ValueError, "object must be 'None' or 'list', not %s", what);
        return NULL;
    }
    subject = obj;
    callee = v->fn;
    double t0 = now_ns();
    long long sum = v->fn != NULL ? loop_call(n) : v->loop(n);
    double t1 = now_ns();
    sink = sum;
    subject = NULL;
    Py_DECREF(obj);
    return Py_BuildValue("(dL)", t1 - t0, sum);
}

static PyMethodDef methods[] = {
    {"info", info, METH_NOARGS, "The library's target and the timed variants."},
    {"time_calls", time_calls, METH_VARARGS,
     "time_calls(query, variant, object, n) -> (ns, sum of the results)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "calls_ext",
    .m_doc = "What one call of pyimmortal's queries costs (bench/calls.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit_calls_ext(void)
{
    PyObject *m = PyModule_Create(&module_def);
#ifdef Py_GIL_DISABLED
    if (m != NULL && PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
