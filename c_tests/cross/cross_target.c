/* An extension module compiled for one CPython target and linked with a
 * libpyimmortal.a built for another (suite `abi` of scripts/runtests.py).
 *
 * Calls through pyimmortal.h name the target symbol, so importing the
 * module must fail with "undefined symbol: pyimmortal_abi_cpython_3_<minor>[t]".
 * With CROSS_TARGET_BYPASS the calls go through parenthesized names, which
 * the header's macros do not expand; the module then imports, and the
 * library's run-time check must refuse to touch any object. */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

static PyObject *
is_immortal(PyObject *self, PyObject *obj)
{
    (void)self;
#if defined(CROSS_TARGET_BYPASS)
    return PyLong_FromLong((pyimmortal_PyUnstable_IsImmortal)(obj));
#else
    return PyLong_FromLong(pyimmortal_PyUnstable_IsImmortal(obj));
#endif
}

static PyMethodDef methods[] = {
    {"is_immortal", is_immortal, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cross_target", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_cross_target(void)
{
    return PyModule_Create(&module);
}
