/* pyimmortal._pyimmortal: the library's calls for Python code.
 *
 * Each function follows the C contract (docs/contract.md): the result of
 * the C call, or the exception that the checked call sets.
 */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

static PyObject *
is_immortal(PyObject *Py_UNUSED(module), PyObject *obj)
{
    return PyBool_FromLong(PyUnstable_IsImmortal(obj));
}

static PyObject *
immortalize(PyObject *Py_UNUSED(module), PyObject *obj)
{
    if (pyimmortal_ImmortalizeChecked(obj) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
enable_deferred_refcount(PyObject *Py_UNUSED(module), PyObject *obj)
{
    return PyBool_FromLong(PyUnstable_Object_EnableDeferredRefcount(obj));
}

static PyObject *
registry_count(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return PyLong_FromSsize_t(pyimmortal_Registry_Count());
}

static PyMethodDef methods[] = {
    {"is_immortal", is_immortal, METH_O,
     "is_immortal(obj, /)\n--\n\n"
     "True if obj is immortal (PyUnstable_IsImmortal). Always False before 3.12."},
    {"immortalize", immortalize, METH_O,
     "immortalize(obj, /)\n--\n\n"
     "Make obj immortal (pyimmortal_ImmortalizeChecked): it is never freed and\n"
     "its reference count is never written again. Idempotent. Raises TypeError\n"
     "for a mortal str (intern it) and, on 3.14+, a dict; RuntimeError where the\n"
     "free-threaded rules or a pending finalizer refuse; NotImplementedError\n"
     "before 3.12."},
    {"enable_deferred_refcount", enable_deferred_refcount, METH_O,
     "enable_deferred_refcount(obj, /)\n--\n\n"
     "Turn on deferred reference counting for obj\n"
     "(PyUnstable_Object_EnableDeferredRefcount). True if this call turned it\n"
     "on, which happens only on free-threaded 3.14+."},
    {"registry_count", registry_count, METH_NOARGS,
     "registry_count()\n--\n\n"
     "How many objects this copy of pyimmortal made immortal in the current\n"
     "interpreter (pyimmortal_Registry_Count)."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    return PyModule_AddStringConstant(module, "target", pyimmortal_target());
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

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyimmortal._pyimmortal",
    .m_doc = "pyimmortal's calls for Python code; see the pyimmortal package.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__pyimmortal(void)
{
    return PyModuleDef_Init(&moduledef);
}
