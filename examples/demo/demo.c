/* pyimmortal_demo: a capsule shared by every caller, the way NumPy shares
 * its allocator handler, made immortal with pyimmortal. */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#define HANDLER_NAME "pyimmortal_demo.handler"

static int handler_data = 42;
static long destroyed;          /* capsule destructor calls */
static PyObject *last_immortal; /* borrowed: the last capsule made immortal */

static void
count_destruction(PyObject *capsule)
{
    (void)capsule;
    destroyed++;
}

/* new_capsule() -> a fresh, mortal capsule whose destructor is counted */
static PyObject *
new_capsule(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyCapsule_New(&handler_data, HANDLER_NAME, count_destruction);
}

/* immortalize(obj): pyimmortal_ImmortalizeChecked, which accepts an object
 * that already has several references (PyUnstable_SetImmortal needs it to
 * be uniquely referenced). Raises when it refuses. */
static PyObject *
immortalize(PyObject *self, PyObject *obj)
{
    (void)self;
    if (pyimmortal_ImmortalizeChecked(obj) < 0) {
        return NULL;
    }
    last_immortal = obj;
    Py_RETURN_NONE;
}

/* destroyed() -> how many demo capsules have been deallocated */
static PyObject *
destroyed_count(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(destroyed);
}

/* read_last_immortal() -> the int behind the last immortal capsule, read
 * through a pointer kept without a reference: valid only because the
 * capsule can never be freed. */
static PyObject *
read_last_immortal(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (last_immortal == NULL) {
        Py_RETURN_NONE;
    }
    int *data = (int *)PyCapsule_GetPointer(last_immortal, HANDLER_NAME);
    if (data == NULL) {
        return NULL;
    }
    return PyLong_FromLong(*data);
}

/* fetch(capsule, n): the hot path of an extension that shares a capsule,
 * n times: take a reference, read the pointer, drop the reference. */
static PyObject *
fetch(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "On", &capsule, &n)) {
        return NULL;
    }
    long sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(capsule);
        int *data = (int *)PyCapsule_GetPointer(capsule, HANDLER_NAME);
        Py_DECREF(capsule);
        if (data == NULL) {
            return NULL;
        }
        sum += *data;
    }
    return PyLong_FromLong(sum);
}

static PyObject *
is_immortal(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyLong_FromLong(PyUnstable_IsImmortal(obj));
}

static PyObject *
target(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(pyimmortal_target());
}

static PyMethodDef methods[] = {
    {"new_capsule", new_capsule, METH_NOARGS, NULL},
    {"immortalize", immortalize, METH_O, NULL},
    {"destroyed", destroyed_count, METH_NOARGS, NULL},
    {"read_last_immortal", read_last_immortal, METH_NOARGS, NULL},
    {"fetch", fetch, METH_VARARGS, NULL},
    {"is_immortal", is_immortal, METH_O, NULL},
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
