// example_cmake: at import, a module-level capsule and a heap type, both
// made immortal with pyimmortal_Immortalize before they are published as
// module attributes. check() -> (capsule immortal, type immortal).
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

namespace {

constexpr const char *kHandlerName = "example_cmake.handler";

int handler_data = 42;

PyType_Slot handler_slots[] = {
    {Py_tp_doc, const_cast<char *>("A type created at import and made immortal.")},
    {0, nullptr},
};

PyType_Spec handler_spec = {
    "example_cmake.Handler", 0, 0, Py_TPFLAGS_DEFAULT, handler_slots,
};

// Makes obj immortal, then stores it as module attribute `name`; steals the
// reference to obj. pyimmortal_Immortalize, unlike PyUnstable_SetImmortal,
// accepts an object with several references, such as a fresh heap type. It
// returns 0 when it refuses, and obj then stays an ordinary object; it always
// refuses on 3.9-3.11 (no immortal objects).
int add_immortal(PyObject *module, const char *name, PyObject *obj)
{
    if (obj == nullptr) {
        return -1;
    }
    static_cast<void>(pyimmortal_Immortalize(obj));
    if (PyModule_AddObject(module, name, obj) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    return 0;
}

int exec_module(PyObject *module)
{
    if (add_immortal(module, "handler", PyCapsule_New(&handler_data, kHandlerName, nullptr)) < 0) {
        return -1;
    }
    return add_immortal(module, "Handler", PyType_FromSpec(&handler_spec));
}

// A strong reference to a module attribute, released at scope exit.
struct Attr {
    PyObject *obj;
    Attr(PyObject *module, const char *name) : obj(PyObject_GetAttrString(module, name)) {}
    ~Attr() { Py_XDECREF(obj); }
    Attr(const Attr &) = delete;
    Attr &operator=(const Attr &) = delete;
};

// check() -> (PyUnstable_IsImmortal(handler), PyUnstable_IsImmortal(Handler)),
// each 1 or 0: (1, 1) on CPython 3.12+, GIL or free-threaded, (0, 0) on
// 3.9-3.11.
PyObject *check(PyObject *module, PyObject *)
{
    Attr capsule(module, "handler");
    Attr type(module, "Handler");
    if (capsule.obj == nullptr || type.obj == nullptr) {
        return nullptr;
    }
    return Py_BuildValue("(ii)", PyUnstable_IsImmortal(capsule.obj) != 0,
                         PyUnstable_IsImmortal(type.obj) != 0);
}

PyMethodDef methods[] = {
    {"check", check, METH_NOARGS, "(capsule immortal, type immortal)"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef_Slot slots[] = {
    {Py_mod_exec, reinterpret_cast<void *>(exec_module)},
#if defined(Py_GIL_DISABLED)
    // Free-threaded builds: the module runs safely without the GIL.
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "example_cmake", nullptr, 0, methods, slots, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC
PyInit_example_cmake(void)
{
    return PyModuleDef_Init(&module_def);
}
