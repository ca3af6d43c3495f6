/* example_skbuild: at import, a module-level capsule and a heap type,
 * both made immortal with pyimmortal_Immortalize before they are published
 * as module attributes. check() -> (capsule immortal, type immortal). */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#define MODULE_NAME "example_skbuild"

static int handler_data = 42;

static PyType_Slot handler_slots[] = {
    {Py_tp_doc, (void *)"A type created at import and made immortal."},
    {0, NULL},
};

static PyType_Spec handler_spec = {
    MODULE_NAME ".Handler", 0, 0, Py_TPFLAGS_DEFAULT, handler_slots,
};

/* Makes obj immortal, then stores it as module attribute `name`; steals the
 * reference to obj. pyimmortal_Immortalize, unlike PyUnstable_SetImmortal,
 * accepts an object with several references, such as a fresh heap type. It
 * returns 0 when it refuses, and obj then stays an ordinary object; it always
 * refuses on 3.9-3.11 (no immortal objects). */
static int
add_immortal(PyObject *module, const char *name, PyObject *obj)
{
    if (obj == NULL) {
        return -1;
    }
    (void)pyimmortal_Immortalize(obj);
    if (PyModule_AddObject(module, name, obj) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    return 0;
}

static int
exec_module(PyObject *module)
{
    if (add_immortal(module, "handler",
                     PyCapsule_New(&handler_data, MODULE_NAME ".handler", NULL)) < 0) {
        return -1;
    }
    return add_immortal(module, "Handler", PyType_FromSpec(&handler_spec));
}

/* check() -> (PyUnstable_IsImmortal(handler), PyUnstable_IsImmortal(Handler)),
 * each 1 or 0: (1, 1) on CPython 3.12+, GIL or free-threaded, (0, 0) on
 * 3.9-3.11. */
static PyObject *
check(PyObject *module, PyObject *unused)
{
    (void)unused;
    PyObject *capsule = PyObject_GetAttrString(module, "handler");
    if (capsule == NULL) {
        return NULL;
    }
    PyObject *type = PyObject_GetAttrString(module, "Handler");
    if (type == NULL) {
        Py_DECREF(capsule);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(ii)", PyUnstable_IsImmortal(capsule) != 0,
                                     PyUnstable_IsImmortal(type) != 0);
    Py_DECREF(type);
    Py_DECREF(capsule);
    return result;
}

static PyMethodDef methods[] = {
    {"check", check, METH_NOARGS, "(capsule immortal, type immortal)"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)exec_module},
#if defined(Py_GIL_DISABLED)
    /* Free-threaded builds: the module runs safely without the GIL. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, MODULE_NAME, NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_example_skbuild(void)
{
    return PyModuleDef_Init(&module_def);
}
