/* One extension module, compiled twice (COPY=a and COPY=b, as
 * pyimmortal_copy_a and pyimmortal_copy_b), each linking its own copy of
 * libpyimmortal.a. test_twocopies.py loads both into one interpreter and
 * checks that each copy keeps its own registry. */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"
#include "../leakcheck.h"

#include <dlfcn.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define MODULE_NAME "pyimmortal_copy_" STR(COPY)

/* copy() -> "a" or "b" */
static PyObject *
copy(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(STR(COPY));
}

static PyObject *
target(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(pyimmortal_target());
}

/* immortalize(obj) -> None, or raises why this copy refused. */
static PyObject *
immortalize(PyObject *self, PyObject *obj)
{
    (void)self;
    if (pyimmortal_ImmortalizeChecked(obj) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
registry_count(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromSsize_t(pyimmortal_Registry_Count());
}

static PyObject *
contains(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyBool_FromLong(pyimmortal_Registry_Contains(obj));
}

static int
append(PyObject *obj, void *list)
{
    return PyList_Append((PyObject *)list, obj);
}

/* registered() -> the objects of this copy's registry, in order. */
static PyObject *
registered(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    if (pyimmortal_Registry_Visit(append, list) != 0) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* library_address() -> the address of this copy's pyimmortal_Registry_Count,
 * as this module calls it. */
static PyObject *
library_address(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_ssize_t (*fn)(void) = pyimmortal_Registry_Count;
    void *p;
    memcpy(&p, &fn, sizeof(p));
    return PyLong_FromVoidPtr(p);
}

/* visible(name) -> whether dlsym(RTLD_DEFAULT) finds name from this module:
 * among its own dynamic symbols, or in the process's global scope, where a
 * module loaded with RTLD_GLOBAL adds its own. */
static PyObject *
visible(PyObject *self, PyObject *name)
{
    (void)self;
    const char *s = PyUnicode_AsUTF8(name);
    if (s == NULL) {
        return NULL;
    }
    return PyBool_FromLong(dlsym(RTLD_DEFAULT, s) != NULL);
}

static PyMethodDef methods[] = {
    {"copy", copy, METH_NOARGS, NULL},
    {"target", target, METH_NOARGS, NULL},
    {"immortalize", immortalize, METH_O, NULL},
    {"registry_count", registry_count, METH_NOARGS, NULL},
    {"contains", contains, METH_O, NULL},
    {"registered", registered, METH_NOARGS, NULL},
    {"library_address", library_address, METH_NOARGS, NULL},
    {"visible", visible, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, MODULE_NAME, NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
CAT(PyInit_pyimmortal_copy_, COPY)(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
#if defined(Py_GIL_DISABLED)
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    if (leakcheck_registry_at_exit() < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
