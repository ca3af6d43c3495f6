// size_ext_cpp: the C++ module that bench/size.py builds twice, to measure
// what linking pyimmortal adds to an extension written in C++.
//
// The same module as bench/size_ext.c: exercise() calls every function that
// libpyimmortal.a exports and returns the results as a dict. Built with
// -DSIZE_WITHOUT_PYIMMORTAL, only Python.h is included and each call is
// replaced by a constant of the same type.
#define PY_SSIZE_T_CLEAN
#ifdef SIZE_WITHOUT_PYIMMORTAL
#include <Python.h>
#else
#include "pyimmortal.h"
#endif

#include <array>

namespace {

#ifdef SIZE_WITHOUT_PYIMMORTAL
struct Calls {
    static int set_immortal(PyObject *) { return 0; }
    static int is_immortal(PyObject *) { return 0; }
    static int enable_deferred(PyObject *) { return 0; }
    static int is_unique(PyObject *) { return 0; }
    static int immortalize(PyObject *) { return 0; }
    static int immortalize_checked(PyObject *) { return 0; }
    static Py_ssize_t registry_count() { return 0; }
    static int registry_visit(Py_ssize_t *) { return 0; }
    static int registry_contains(PyObject *) { return 0; }
    static const char *target() { return "-"; }
    static unsigned long target_version_hex() { return 0; }
};
#else
struct Calls {
    static int set_immortal(PyObject *op) { return pyimmortal_PyUnstable_SetImmortal(op); }
    static int is_immortal(PyObject *op) { return pyimmortal_PyUnstable_IsImmortal(op); }
    static int enable_deferred(PyObject *op)
    {
        return pyimmortal_PyUnstable_Object_EnableDeferredRefcount(op);
    }
    static int is_unique(PyObject *op)
    {
        return pyimmortal_PyUnstable_Object_IsUniquelyReferenced(op);
    }
    static int immortalize(PyObject *op) { return pyimmortal_Immortalize(op); }
    static int immortalize_checked(PyObject *op) { return pyimmortal_ImmortalizeChecked(op); }
    static Py_ssize_t registry_count() { return pyimmortal_Registry_Count(); }
    static int registry_visit(Py_ssize_t *visited)
    {
        // A lambda without captures converts to the visitproc it needs.
        return pyimmortal_Registry_Visit(
            [](PyObject *, void *arg) -> int {
                ++*static_cast<Py_ssize_t *>(arg);
                return 0;
            },
            visited);
    }
    static int registry_contains(PyObject *op) { return pyimmortal_Registry_Contains(op); }
    static const char *target() { return pyimmortal_target(); }
    static unsigned long target_version_hex() { return pyimmortal_target_version_hex(); }
};
#endif

// Owns the fresh lists; releasing an immortal object's reference does nothing.
struct Fresh {
    std::array<PyObject *, 4> objs{};
    ~Fresh()
    {
        for (PyObject *op : objs) {
            Py_XDECREF(op);
        }
    }
    bool make()
    {
        for (PyObject *&op : objs) {
            op = PyList_New(0);
            if (op == nullptr) {
                return false;
            }
        }
        return true;
    }
};

// exercise() -> dict: one call of each function on fresh lists.
PyObject *
exercise(PyObject *, PyObject *)
{
    Fresh fresh;
    if (!fresh.make()) {
        return nullptr;
    }
    const auto &o = fresh.objs;
    const int unique = Calls::is_unique(o[0]);
    const int set_immortal = Calls::set_immortal(o[0]);
    const int is_immortal = Calls::is_immortal(o[0]);
    const int deferred = Calls::enable_deferred(o[1]);
    const int immortalize = Calls::immortalize(o[2]);
    const int checked = Calls::immortalize_checked(o[3]);
    if (checked < 0) {
        PyErr_Clear();  // NotImplementedError on 3.9-3.11
    }
    Py_ssize_t visited = 0;
    const int visit = Calls::registry_visit(&visited);
    return Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:n,s:i,s:n,s:i,s:s,s:k}",
        "IsUniquelyReferenced", unique,
        "SetImmortal", set_immortal,
        "IsImmortal", is_immortal,
        "EnableDeferredRefcount", deferred,
        "Immortalize", immortalize,
        "ImmortalizeChecked", checked,
        "Registry_Count", Calls::registry_count(),
        "Registry_Visit", visit,
        "visited", visited,
        "Registry_Contains", Calls::registry_contains(o[2]),
        "target", Calls::target(),
        "target_version_hex", Calls::target_version_hex());
}

PyMethodDef methods[] = {
    {"exercise", exercise, METH_NOARGS, "Calls every pyimmortal function once."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "size_ext_cpp",               // m_name
    "bench/size.py's C++ module.",  // m_doc
    -1,                           // m_size
    methods,                      // m_methods
    nullptr,                      // m_slots
    nullptr,                      // m_traverse
    nullptr,                      // m_clear
    nullptr,                      // m_free
};

}  // namespace

PyMODINIT_FUNC
PyInit_size_ext_cpp(void)
{
    PyObject *m = PyModule_Create(&module_def);
#ifdef Py_GIL_DISABLED
    if (m != nullptr && PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
#endif
    return m;
}
