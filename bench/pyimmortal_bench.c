/* pyimmortal_bench: the extension module behind bench/run.py.
 *
 * It models three patterns in which C extensions share one object between
 * all Python threads, plus a shared-nothing control:
 *
 *   capsule    NumPy's default allocator handler: a module-level PyCapsule
 *              that a small C function fetches from module state, then
 *              Py_INCREFs and Py_DECREFs on every call.
 *   callable   nanobind's function objects: an instance of a custom callable
 *              type (its own tp_call, a GC type, not a PyCFunction) stored
 *              in module globals and called from Python.
 *   singleton  dtype-like singletons: one instance of a heap type made with
 *              PyType_FromSpec, checked with isinstance() and read through
 *              an attribute.
 *   ceiling    the capsule kernel's exact work, but every thread has its own
 *              capsule: nothing is shared, so its speedup is the machine's
 *              own ceiling.
 *
 * Every shared object is built fresh in one of three modes:
 *
 *   mortal     left as created;
 *   immortal   PyUnstable_SetImmortal() right after creation, while the
 *              object is still uniquely referenced;
 *   deferred   PyUnstable_Object_EnableDeferredRefcount() right after
 *              creation.
 *
 * and the make_* functions return what the pyimmortal call returned (None
 * for mortal), so the runner can both check it and print "n/a" where a mode
 * does not apply.
 *
 * Per-thread objects: the C functions that the Python loops call through
 * (capsule_caller(), ceiling_caller()) are created by each worker thread
 * itself, so on free-threaded builds the calling thread owns them and their
 * reference counts never leave the thread. That keeps the shared object
 * under test the only reference count that differs between modes.
 */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#include <stddef.h>

#if PY_VERSION_HEX >= 0x030C0000
#  define BENCH_T_INT Py_T_INT
#  define BENCH_READONLY Py_READONLY
#else
#  include "structmember.h"
#  define BENCH_T_INT T_INT
#  define BENCH_READONLY READONLY
#endif

#define HANDLER_NAME "pyimmortal_bench.handler"
#define HANDLER_MAGIC 0x5eed

/* ---- Modes ---------------------------------------------------------- */

typedef enum {
    MODE_MORTAL,
    MODE_IMMORTAL,
    MODE_DEFERRED,
} bench_mode;

static int
parse_mode(PyObject *arg, bench_mode *out)
{
    static const struct {
        const char *name;
        bench_mode mode;
    } names[] = {
        {"mortal", MODE_MORTAL},
        {"immortal", MODE_IMMORTAL},
        {"deferred", MODE_DEFERRED},
    };
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "mode must be a str");
        return -1;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (PyUnicode_CompareWithASCIIString(arg, names[i].name) == 0) {
            *out = names[i].mode;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown mode %R", arg);
    return -1;
}

/* Applies `mode` to a freshly created `obj` (still uniquely referenced) and
 * returns what the call returned: None for mortal, else an int. */
static PyObject *
apply_mode(PyObject *obj, bench_mode mode)
{
    int r;
    switch (mode) {
    case MODE_IMMORTAL:
        r = PyUnstable_SetImmortal(obj);
        break;
    case MODE_DEFERRED:
        r = PyUnstable_Object_EnableDeferredRefcount(obj);
        break;
    case MODE_MORTAL:
    default:
        Py_RETURN_NONE;
    }
    return PyLong_FromLong(r);
}

/* ---- Module state --------------------------------------------------- */

typedef struct {
    /* Kernel 1's shared handler: a PyCapsule, or a Handle (below). */
    PyObject *handler;
} bench_state;

static bench_state *
get_state(PyObject *module)
{
    return (bench_state *)PyModule_GetState(module);
}

/* What every handler points at: stands in for NumPy's allocator table. */
typedef struct {
    int magic;
} handler_payload;

static const handler_payload default_payload = {HANDLER_MAGIC};

/* ---- Handle: a GC object carrying a pointer, like a capsule ----------
 * PyCapsule is not a GC type, so deferred reference counting never applies
 * to it. make_capsule(mode, gc=True) uses a Handle instead, which lets the
 * benchmark show what deferred reference counting does (and does not do)
 * for the explicit Py_INCREF/Py_DECREF of kernel 1. */
typedef struct {
    PyObject_HEAD
    const handler_payload *pointer;
} HandleObject;

/* tp_traverse of Handle and Callable: they hold no references. */
static int
traverse_nothing(PyObject *self, visitproc visit, void *arg)
{
    (void)self;
    (void)visit;
    (void)arg;
    return 0;
}

static void
handle_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    PyObject_GC_Del(self);
}

static PyTypeObject Handle_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyimmortal_bench.Handle",
    .tp_basicsize = sizeof(HandleObject),
    .tp_dealloc = handle_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A GC object holding a pointer, used like a capsule.",
    .tp_traverse = traverse_nothing,
};

/* Reads the payload out of a handler (capsule or Handle); NULL with an
 * exception if it is neither or the payload is wrong. */
static const handler_payload *
handler_payload_of(PyObject *handler)
{
    const handler_payload *p;
    if (PyCapsule_CheckExact(handler)) {
        p = (const handler_payload *)PyCapsule_GetPointer(handler, HANDLER_NAME);
        if (p == NULL) {
            return NULL;
        }
    }
    else if (Py_IS_TYPE(handler, &Handle_Type)) {
        p = ((HandleObject *)handler)->pointer;
    }
    else {
        PyErr_SetString(PyExc_TypeError, "handler is neither a capsule nor a Handle");
        return NULL;
    }
    if (p->magic != HANDLER_MAGIC) {
        PyErr_SetString(PyExc_RuntimeError, "corrupt handler payload");
        return NULL;
    }
    return p;
}

/* ---- Kernel 1: capsule ---------------------------------------------- */

/* Kernel 1's work per call, shared with the ceiling kernel so that both do
 * exactly the same: INCREF the handler, read its payload, DECREF it. */
static PyObject *
touch_handler(PyObject *handler)
{
    Py_INCREF(handler);
    const handler_payload *p = handler_payload_of(handler);
    Py_DECREF(handler);
    if (p == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The per-call work: fetch the module's handler, hold a new reference for
 * the duration of the call, read its payload, drop the reference. `module`
 * arrives borrowed (PyCFunction calls do not touch its refcount). */
static PyObject *
handler_call(PyObject *module, PyObject *unused)
{
    (void)unused;
    PyObject *handler = get_state(module)->handler;
    if (handler == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call make_capsule() first");
        return NULL;
    }
    return touch_handler(handler);
}

static PyMethodDef handler_call_def = {
    "handler_call", handler_call, METH_NOARGS,
    "Kernel 1's call: INCREF/DECREF the module's shared handler."};

/* The ceiling's per-call work: the same as handler_call(), on the capsule
 * bound as `self`, which belongs to the calling thread alone. */
static PyObject *
own_handler_call(PyObject *handler, PyObject *unused)
{
    (void)unused;
    return touch_handler(handler);
}

static PyMethodDef own_handler_call_def = {
    "own_handler_call", own_handler_call, METH_NOARGS,
    "Ceiling kernel's call: INCREF/DECREF a thread's own handler."};

static PyObject *
new_capsule(void)
{
    return PyCapsule_New((void *)&default_payload, HANDLER_NAME, NULL);
}

/* make_capsule(mode, gc=False) -> (result, handler)
 * Builds a fresh handler (a PyCapsule, or a Handle when gc is true), applies
 * `mode` and installs it as the module's shared handler. */
static PyObject *
make_capsule(PyObject *module, PyObject *args)
{
    PyObject *mode_arg;
    int gc = 0;
    bench_mode mode;
    if (!PyArg_ParseTuple(args, "O|p", &mode_arg, &gc) || parse_mode(mode_arg, &mode) < 0) {
        return NULL;
    }
    PyObject *handler;
    if (gc) {
        HandleObject *h = PyObject_GC_New(HandleObject, &Handle_Type);
        if (h == NULL) {
            return NULL;
        }
        h->pointer = &default_payload;
        PyObject_GC_Track((PyObject *)h);
        handler = (PyObject *)h;
    }
    else {
        handler = new_capsule();
        if (handler == NULL) {
            return NULL;
        }
    }
    PyObject *result = apply_mode(handler, mode);
    if (result == NULL) {
        Py_DECREF(handler);
        return NULL;
    }
    bench_state *st = get_state(module);
    PyObject *old = st->handler;
    Py_INCREF(handler);
    st->handler = handler;
    Py_XDECREF(old);
    PyObject *ret = PyTuple_Pack(2, result, handler);
    Py_DECREF(result);
    Py_DECREF(handler);
    return ret;
}

/* capsule_caller() -> a new function object calling handler_call() on this
 * module. Each worker thread makes its own, so it owns the function. */
static PyObject *
capsule_caller(PyObject *module, PyObject *unused)
{
    (void)unused;
    return PyCFunction_NewEx(&handler_call_def, module, NULL);
}

/* ceiling_caller() -> a new function object bound to a new capsule, both
 * owned by the calling thread. */
static PyObject *
ceiling_caller(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *capsule = new_capsule();
    if (capsule == NULL) {
        return NULL;
    }
    PyObject *f = PyCFunction_NewEx(&own_handler_call_def, capsule, NULL);
    Py_DECREF(capsule);
    return f;
}

/* ---- Kernel 2: a custom callable type (nanobind's function objects) --- */

typedef struct {
    PyObject_HEAD
    PyObject *weakreflist;
} CallableObject;

/* The call itself is deliberately small and touches nothing shared but the
 * callable's own refcount (which the caller manages). */
static PyObject *
callable_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Callable takes no arguments");
        return NULL;
    }
    Py_RETURN_NONE;
}

static void
callable_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    if (((CallableObject *)self)->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    PyObject_GC_Del(self);
}

static PyTypeObject Callable_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyimmortal_bench.Callable",
    .tp_basicsize = sizeof(CallableObject),
    .tp_dealloc = callable_dealloc,
    .tp_call = callable_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A callable with its own tp_call (GC type, weak-referenceable).",
    .tp_traverse = traverse_nothing,
    .tp_weaklistoffset = offsetof(CallableObject, weakreflist),
};

/* make_callable(mode) -> (result, callable) */
static PyObject *
make_callable(PyObject *module, PyObject *mode_arg)
{
    (void)module;
    bench_mode mode;
    if (parse_mode(mode_arg, &mode) < 0) {
        return NULL;
    }
    CallableObject *c = PyObject_GC_New(CallableObject, &Callable_Type);
    if (c == NULL) {
        return NULL;
    }
    c->weakreflist = NULL;
    PyObject_GC_Track((PyObject *)c);
    PyObject *result = apply_mode((PyObject *)c, mode);
    if (result == NULL) {
        Py_DECREF(c);
        return NULL;
    }
    PyObject *ret = PyTuple_Pack(2, result, (PyObject *)c);
    Py_DECREF(result);
    Py_DECREF(c);
    return ret;
}

/* ---- Kernel 3: a singleton instance of a heap type ------------------- */

typedef struct {
    PyObject_HEAD
    int kind;
} SingletonObject;

static PyMemberDef singleton_members[] = {
    {"kind", BENCH_T_INT, offsetof(SingletonObject, kind), BENCH_READONLY,
     "A small int, like dtype.num."},
    {NULL, 0, 0, 0, NULL},
};

static int
singleton_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void
singleton_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot singleton_slots[] = {
    {Py_tp_members, singleton_members},
    {Py_tp_traverse, (void *)singleton_traverse},
    {Py_tp_dealloc, (void *)singleton_dealloc},
    {Py_tp_doc, (void *)"A heap type whose one instance plays a dtype singleton."},
    {0, NULL},
};

#if PY_VERSION_HEX >= 0x030A0000
#  define BENCH_IMMUTABLETYPE Py_TPFLAGS_IMMUTABLETYPE
#else
#  define BENCH_IMMUTABLETYPE 0
#endif

static PyType_Spec singleton_spec = {
    "pyimmortal_bench.Singleton",
    sizeof(SingletonObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | BENCH_IMMUTABLETYPE,
    singleton_slots,
};

/* make_singleton(mode) -> (result, type, instance)
 * A fresh heap type and its one instance; `mode` applies to the instance.
 * The type itself is left alone: it is never uniquely referenced (its own
 * __mro__ holds it), 3.14t already gives it deferred reference counting,
 * and on 3.13t it stays an ordinary mortal object (see kernels.py). */
static PyObject *
make_singleton(PyObject *module, PyObject *mode_arg)
{
    (void)module;
    bench_mode mode;
    if (parse_mode(mode_arg, &mode) < 0) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)PyType_FromSpec(&singleton_spec);
    if (type == NULL) {
        return NULL;
    }
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL) {
        Py_DECREF(type);
        return NULL;
    }
    ((SingletonObject *)obj)->kind = 12;
    PyObject *result = apply_mode(obj, mode);
    if (result == NULL) {
        Py_DECREF(obj);
        Py_DECREF(type);
        return NULL;
    }
    PyObject *ret = PyTuple_Pack(3, result, (PyObject *)type, obj);
    Py_DECREF(result);
    Py_DECREF(obj);
    Py_DECREF(type);
    return ret;
}

/* ---- Inspection ------------------------------------------------------ */

static PyObject *
is_immortal(PyObject *module, PyObject *obj)
{
    (void)module;
    return PyBool_FromLong(PyUnstable_IsImmortal(obj));
}

/* info() -> dict: what this copy of the module was built for. */
static PyObject *
info(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
#if defined(Py_GIL_DISABLED)
    PyObject *ft = Py_True;
#else
    PyObject *ft = Py_False;
#endif
    return Py_BuildValue(
        "{s:s,s:k,s:O}",
        "target", pyimmortal_target(),
        "version_hex", (unsigned long)PY_VERSION_HEX,
        "free_threaded", ft);
}

static PyMethodDef methods[] = {
    {"info", info, METH_NOARGS, "Build target of this module."},
    {"make_capsule", make_capsule, METH_VARARGS,
     "make_capsule(mode, gc=False) -> (result, handler); installs the handler."},
    {"capsule_caller", capsule_caller, METH_NOARGS,
     "A new function calling kernel 1's handler_call(); make one per thread."},
    {"ceiling_caller", ceiling_caller, METH_NOARGS,
     "A new function bound to a new thread-local capsule; make one per thread."},
    {"make_callable", make_callable, METH_O, "make_callable(mode) -> (result, callable)"},
    {"make_singleton", make_singleton, METH_O,
     "make_singleton(mode) -> (result, type, instance)"},
    {"is_immortal", is_immortal, METH_O, "PyUnstable_IsImmortal(obj)"},
    {NULL, NULL, 0, NULL},
};

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    bench_state *st = get_state(module);
    if (st != NULL) {
        Py_VISIT(st->handler);
    }
    return 0;
}

static int
module_clear(PyObject *module)
{
    bench_state *st = get_state(module);
    if (st != NULL) {
        Py_CLEAR(st->handler);
    }
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyimmortal_bench",
    "Kernels for pyimmortal's free-threaded scaling benchmark (bench/run.py).",
    sizeof(bench_state),
    methods,
    NULL,
    module_traverse,
    module_clear,
    module_free,
};

PyMODINIT_FUNC
PyInit_pyimmortal_bench(void)
{
    if (PyType_Ready(&Handle_Type) < 0 || PyType_Ready(&Callable_Type) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
#if defined(Py_GIL_DISABLED)
    if (PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
