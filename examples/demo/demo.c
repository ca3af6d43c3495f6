/* pyimmortal_demo: a module-level capsule made immortal at import, the way
 * an extension would protect a shared singleton from refcount contention. */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

static int handler_data = 42;

/* make_capsule() -> (PyUnstable_SetImmortal result, capsule) */
static PyObject *
make_capsule(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *capsule = PyCapsule_New(&handler_data, "pyimmortal_demo.handler", NULL);
    if (capsule == NULL) {
        return NULL;
    }
    /* Still uniquely referenced: the moment to make it immortal. */
    int made = PyUnstable_SetImmortal(capsule);
    PyObject *result = Py_BuildValue("(iO)", made, capsule);
    Py_DECREF(capsule);
    return result;
}

/* set_immortal_new(callable) -> result of PyUnstable_SetImmortal on a fresh
 * object made by callable(). */
static PyObject *
set_immortal_new(PyObject *self, PyObject *callable)
{
    (void)self;
    PyObject *obj = PyObject_CallNoArgs(callable);
    if (obj == NULL) {
        return NULL;
    }
    int made = PyUnstable_SetImmortal(obj);
    Py_DECREF(obj);
    return PyLong_FromLong(made);
}

static PyObject *
is_immortal(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyLong_FromLong(PyUnstable_IsImmortal(obj));
}

/* enable_deferred_new(callable) -> result on a fresh object */
static PyObject *
enable_deferred_new(PyObject *self, PyObject *callable)
{
    (void)self;
    PyObject *obj = PyObject_CallNoArgs(callable);
    if (obj == NULL) {
        return NULL;
    }
    int r = PyUnstable_Object_EnableDeferredRefcount(obj);
    Py_DECREF(obj);
    return PyLong_FromLong(r);
}

static PyObject *
target(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(pyimmortal_target());
}

static PyMethodDef methods[] = {
    {"make_capsule", make_capsule, METH_NOARGS, NULL},
    {"set_immortal_new", set_immortal_new, METH_O, NULL},
    {"is_immortal", is_immortal, METH_O, NULL},
    {"enable_deferred_new", enable_deferred_new, METH_O, NULL},
    {"target", target, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyimmortal_demo", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_pyimmortal_demo(void)
{
    PyObject *m = PyModule_Create(&module);
#if defined(Py_GIL_DISABLED)
    if (m != NULL) {
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
    }
#endif
    return m;
}
