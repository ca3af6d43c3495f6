/* A real extension module that links libpyimmortal.a; test_ext.py,
 * test_heap.py and test_interpreters.py import it and drive it from Python
 * (test_interpreters.py also in isolated subinterpreters). */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"
#include "../leakcheck.h"

#include <dlfcn.h>

/* new_immortal(callable, builtin=False) -> (result, obj)
 * Calls `callable()` to make a fresh object, passes it to
 * PyUnstable_SetImmortal (or to pyimmortal's own export when `builtin` is
 * true) while it is still uniquely referenced, and returns the result with
 * the object. */
static PyObject *
new_immortal(PyObject *self, PyObject *args)
{
    PyObject *callable;
    int builtin = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "O|p", &callable, &builtin)) {
        return NULL;
    }
    PyObject *obj = PyObject_CallNoArgs(callable);
    if (obj == NULL) {
        return NULL;
    }
    int r = builtin ? pyimmortal_PyUnstable_SetImmortal(obj) : PyUnstable_SetImmortal(obj);
    if (PyErr_Occurred()) {
        Py_DECREF(obj);
        return NULL;
    }
    if (r == 1) {
        leakcheck_intended(obj);
    }
    PyObject *result = Py_BuildValue("(iO)", r, obj);
    Py_DECREF(obj);
    return result;
}

/* set_immortal(obj) -> int: on an object Python already holds (never
 * uniquely referenced here, so the answer is 0). */
static PyObject *
set_immortal(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyLong_FromLong(PyUnstable_SetImmortal(obj));
}

static PyObject *
is_immortal(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyBool_FromLong(PyUnstable_IsImmortal(obj));
}

/* new_deferred(callable) -> (first, second, obj) */
static PyObject *
new_deferred(PyObject *self, PyObject *callable)
{
    (void)self;
    PyObject *obj = PyObject_CallNoArgs(callable);
    if (obj == NULL) {
        return NULL;
    }
    int first = PyUnstable_Object_EnableDeferredRefcount(obj);
    int second = PyUnstable_Object_EnableDeferredRefcount(obj);
    PyObject *result = Py_BuildValue("(iiO)", first, second, obj);
    Py_DECREF(obj);
    return result;
}

/* new_is_unique(callable) -> int: uniqueness of a fresh object. */
static PyObject *
new_is_unique(PyObject *self, PyObject *callable)
{
    (void)self;
    PyObject *obj = PyObject_CallNoArgs(callable);
    if (obj == NULL) {
        return NULL;
    }
    int r = PyUnstable_Object_IsUniquelyReferenced(obj);
    Py_DECREF(obj);
    return PyLong_FromLong(r);
}

/* immortalize_lists(n, builtin=False) -> int: makes n fresh lists immortal
 * and drops the references; returns how many calls returned 1. */
static PyObject *
immortalize_lists(PyObject *self, PyObject *args)
{
    Py_ssize_t n;
    int builtin = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "n|p", &n, &builtin)) {
        return NULL;
    }
    Py_ssize_t made = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *list = PyList_New(0);
        if (list == NULL) {
            return NULL;
        }
        int r = builtin ? pyimmortal_PyUnstable_SetImmortal(list)
                        : PyUnstable_SetImmortal(list);
        if (r == 1) {
            leakcheck_intended(list);
        }
        made += r;
        Py_DECREF(list);
    }
    return PyLong_FromSsize_t(made);
}

/* immortalize(obj) -> None, or raises the reason pyimmortal refused. */
static PyObject *
immortalize(PyObject *self, PyObject *obj)
{
    (void)self;
    if (pyimmortal_ImmortalizeChecked(obj) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* immortalize_shared_lists(n) -> int: makes n lists immortal while each has
 * three references, then drops them all; returns how many succeeded. */
static PyObject *
immortalize_shared_lists(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *holder = PyList_New(0);
    if (holder == NULL) {
        return NULL;
    }
    Py_ssize_t made = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *list = PyList_New(0);
        if (list == NULL || PyList_Append(holder, list) < 0 || PyList_Append(holder, list) < 0) {
            Py_XDECREF(list);
            Py_DECREF(holder);
            return NULL;
        }
        made += pyimmortal_Immortalize(list);
        Py_DECREF(list);
    }
    Py_DECREF(holder);
    return PyLong_FromSsize_t(made);
}

static PyObject *
registry_count(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromSsize_t(pyimmortal_Registry_Count());
}

static PyObject *
target(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(pyimmortal_target());
}

/* cpython_exports() -> list of the CPython functions, among the four that
 * pyimmortal calls instead of its own where the interpreter exports them,
 * that this process exports (looked up as the library does, with dlsym). */
static PyObject *
cpython_exports(PyObject *self, PyObject *unused)
{
    static const char *const names[] = {
        "PyUnstable_SetImmortal",
        "PyUnstable_IsImmortal",
        "PyUnstable_Object_EnableDeferredRefcount",
        "PyUnstable_Object_IsUniquelyReferenced",
    };
    (void)self;
    (void)unused;
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (dlsym(RTLD_DEFAULT, names[i]) == NULL) {
            continue;
        }
        PyObject *name = PyUnicode_FromString(names[i]);
        if (name == NULL || PyList_Append(found, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(found);
            return NULL;
        }
        Py_DECREF(name);
    }
    return found;
}

static PyObject *
immortalize_heap(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_ssize_t n = leakcheck_ImmortalizeHeap();
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static int capsule_destructor_calls;

static void
capsule_destructor(PyObject *capsule)
{
    (void)capsule;
    capsule_destructor_calls++;
}

/* new_capsule() -> a fresh capsule whose destructor counts its calls. */
static PyObject *
new_capsule(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyCapsule_New(&capsule_destructor_calls, "pyimmortal_testext.capsule",
                         capsule_destructor);
}

static void
report_capsule_destructors(void)
{
    fprintf(stderr, "pyimmortal_testext: capsule destructors run: %d after Py_FinalizeEx\n",
            capsule_destructor_calls);
}

/* report_capsule_destructors_at_exit(): prints how many capsule destructors
 * ran, once the interpreter is finalized (Py_AtExit). */
static PyObject *
report_capsule_destructors_at_exit(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (Py_AtExit(report_capsule_destructors) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "Py_AtExit: no room");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* leak_checker() -> bool: whether this module was built with
 * AddressSanitizer, whose leak checker it tells about intended immortals. */
static PyObject *
leak_checker(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyBool_FromLong(LEAKCHECK_ON);
}

/* registry_contains(obj) -> bool */
static PyObject *
registry_contains(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyBool_FromLong(pyimmortal_Registry_Contains(obj));
}

static int
append_visited(PyObject *obj, void *list)
{
    return PyList_Append((PyObject *)list, obj) < 0 ? -1 : 0;
}

/* registry_objects() -> list: what pyimmortal_Registry_Visit walks in the
 * current interpreter, in order. */
static PyObject *
registry_objects(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    if (pyimmortal_Registry_Visit(append_visited, list) != 0) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* One capsule for the whole process, as NumPy keeps its module-level
 * capsules in C statics: made (and made immortal) once, by the main
 * interpreter, then only read, from every interpreter. */
static const char shared_capsule_name[] = "pyimmortal_testext.shared";
static int shared_data = 42;
static PyObject *shared;
static int shared_destroyed;

static void
shared_destructor(PyObject *capsule)
{
    (void)capsule;
    shared_destroyed = 1;
}

/* make_shared_capsule() -> capsule: in the main interpreter only. */
static PyObject *
make_shared_capsule(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_RuntimeError, "the shared capsule is made by the main interpreter");
        return NULL;
    }
    if (shared == NULL) {
        PyObject *c = PyCapsule_New(&shared_data, shared_capsule_name, shared_destructor);
        if (c == NULL) {
            return NULL;
        }
        if (pyimmortal_ImmortalizeChecked(c) < 0) {
            Py_DECREF(c);
            return NULL;
        }
        shared = c; /* the reference made here is never released */
    }
    Py_INCREF(shared);
    return shared;
}

/* shared_capsule() -> the capsule, from any interpreter. */
static PyObject *
shared_capsule(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (shared == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "make_shared_capsule() was not called");
        return NULL;
    }
    Py_INCREF(shared);
    return shared;
}

/* shared_capsule_state() -> (pointer is the static data, destroyed) */
static PyObject *
shared_capsule_state(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    void *p = shared != NULL ? PyCapsule_GetPointer(shared, shared_capsule_name) : NULL;
    if (p == NULL && PyErr_Occurred()) {
        return NULL;
    }
    return Py_BuildValue("(NN)", PyBool_FromLong(p == &shared_data), PyBool_FromLong(shared_destroyed));
}

/* hammer(obj, n) -> refcount: n Py_INCREF/Py_DECREF pairs on obj, then
 * Py_REFCNT(obj). */
static PyObject *
hammer(PyObject *self, PyObject *args)
{
    PyObject *obj;
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "On", &obj, &n)) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(obj);
        Py_DECREF(obj);
    }
    return PyLong_FromSsize_t(Py_REFCNT(obj));
}

static PyMethodDef methods[] = {
    {"immortalize_heap", immortalize_heap, METH_NOARGS, NULL},
    {"new_immortal", new_immortal, METH_VARARGS, NULL},
    {"set_immortal", set_immortal, METH_O, NULL},
    {"is_immortal", is_immortal, METH_O, NULL},
    {"new_deferred", new_deferred, METH_O, NULL},
    {"new_is_unique", new_is_unique, METH_O, NULL},
    {"immortalize_lists", immortalize_lists, METH_VARARGS, NULL},
    {"immortalize", immortalize, METH_O, NULL},
    {"immortalize_shared_lists", immortalize_shared_lists, METH_O, NULL},
    {"registry_count", registry_count, METH_NOARGS, NULL},
    {"registry_contains", registry_contains, METH_O, NULL},
    {"registry_objects", registry_objects, METH_NOARGS, NULL},
    {"make_shared_capsule", make_shared_capsule, METH_NOARGS, NULL},
    {"shared_capsule", shared_capsule, METH_NOARGS, NULL},
    {"shared_capsule_state", shared_capsule_state, METH_NOARGS, NULL},
    {"hammer", hammer, METH_VARARGS, NULL},
    {"target", target, METH_NOARGS, NULL},
    {"cpython_exports", cpython_exports, METH_NOARGS, NULL},
    {"leak_checker", leak_checker, METH_NOARGS, NULL},
    {"new_capsule", new_capsule, METH_NOARGS, NULL},
    {"report_capsule_destructors_at_exit", report_capsule_destructors_at_exit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* Multi-phase initialization, with no module state: the module can be
 * imported in every interpreter, including isolated subinterpreters with
 * their own GIL (3.12+), and it does not need the GIL on free-threaded
 * builds (3.13+). */
/* Each interpreter that imports the module declares its registry to the
 * leak checker when it ends (leakcheck.h; nothing without ASan). */
static int
exec_module(PyObject *m)
{
    (void)m;
    return leakcheck_registry_at_exit();
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)exec_module},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyimmortal_testext", NULL, 0, methods,
    slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_pyimmortal_testext(void)
{
    return PyModuleDef_Init(&module);
}
