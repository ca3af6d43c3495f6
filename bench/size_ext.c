/* size_ext_c: the C module that bench/size.py builds twice, to measure what
 * linking pyimmortal adds to an extension.
 *
 * exercise() calls every function that libpyimmortal.a exports and returns
 * the results as a dict. Built with -DSIZE_WITHOUT_PYIMMORTAL, only Python.h
 * is included and each call is replaced by a constant of the same type, so
 * the two builds differ by pyimmortal's code and its call sites only.
 * bench/size_ext.cpp is the same module written in C++.
 */
#define PY_SSIZE_T_CLEAN
#ifdef SIZE_WITHOUT_PYIMMORTAL
#  include <Python.h>
#  define SET_IMMORTAL(op) ((void)(op), 0)
#  define IS_IMMORTAL(op) ((void)(op), 0)
#  define ENABLE_DEFERRED(op) ((void)(op), 0)
#  define IS_UNIQUE(op) ((void)(op), 0)
#  define IMMORTALIZE(op) ((void)(op), 0)
#  define IMMORTALIZE_CHECKED(op) ((void)(op), 0)
#  define REGISTRY_COUNT() ((Py_ssize_t)0)
#  define REGISTRY_VISIT(visited) ((void)(visited), 0)
#  define REGISTRY_CONTAINS(op) ((void)(op), 0)
#  define TARGET() "-"
#  define TARGET_VERSION_HEX() 0UL
#else
#  include "pyimmortal.h"
#  define SET_IMMORTAL(op) pyimmortal_PyUnstable_SetImmortal(op)
#  define IS_IMMORTAL(op) pyimmortal_PyUnstable_IsImmortal(op)
#  define ENABLE_DEFERRED(op) pyimmortal_PyUnstable_Object_EnableDeferredRefcount(op)
#  define IS_UNIQUE(op) pyimmortal_PyUnstable_Object_IsUniquelyReferenced(op)
#  define IMMORTALIZE(op) pyimmortal_Immortalize(op)
#  define IMMORTALIZE_CHECKED(op) pyimmortal_ImmortalizeChecked(op)
#  define REGISTRY_COUNT() pyimmortal_Registry_Count()
#  define REGISTRY_VISIT(visited) pyimmortal_Registry_Visit(count_one, (visited))
#  define REGISTRY_CONTAINS(op) pyimmortal_Registry_Contains(op)
#  define TARGET() pyimmortal_target()
#  define TARGET_VERSION_HEX() pyimmortal_target_version_hex()

/* The visit callback of pyimmortal_Registry_Visit: counts the objects. */
static int
count_one(PyObject *op, void *arg)
{
    (void)op;
    ++*(Py_ssize_t *)arg;
    return 0;
}
#endif

#define N_FRESH 4

/* exercise() -> dict: one call of each function on fresh lists. */
static PyObject *
exercise(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *fresh[N_FRESH] = {NULL};
    PyObject *result = NULL;
    for (int i = 0; i < N_FRESH; i++) {
        fresh[i] = PyList_New(0);
        if (fresh[i] == NULL) {
            goto done;
        }
    }
    int unique = IS_UNIQUE(fresh[0]);
    int set_immortal = SET_IMMORTAL(fresh[0]);
    int is_immortal = IS_IMMORTAL(fresh[0]);
    int deferred = ENABLE_DEFERRED(fresh[1]);
    int immortalize = IMMORTALIZE(fresh[2]);
    int checked = IMMORTALIZE_CHECKED(fresh[3]);
    if (checked < 0) {
        PyErr_Clear(); /* NotImplementedError on 3.9-3.11 */
    }
    Py_ssize_t visited = 0;
    int visit = REGISTRY_VISIT(&visited);
    result = Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:n,s:i,s:n,s:i,s:s,s:k}",
        "IsUniquelyReferenced", unique,
        "SetImmortal", set_immortal,
        "IsImmortal", is_immortal,
        "EnableDeferredRefcount", deferred,
        "Immortalize", immortalize,
        "ImmortalizeChecked", checked,
        "Registry_Count", REGISTRY_COUNT(),
        "Registry_Visit", visit,
        "visited", visited,
        "Registry_Contains", REGISTRY_CONTAINS(fresh[2]),
        "target", TARGET(),
        "target_version_hex", TARGET_VERSION_HEX());
done:
    /* Releasing an immortal object's reference does nothing. */
    for (int i = 0; i < N_FRESH; i++) {
        Py_XDECREF(fresh[i]);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"exercise", exercise, METH_NOARGS, "Calls every pyimmortal function once."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "size_ext_c",
    .m_doc = "bench/size.py's C module.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit_size_ext_c(void)
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
