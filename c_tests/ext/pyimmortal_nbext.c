/* An extension shaped like a nanobind module, without nanobind's code: at
 * import (Py_mod_exec) it creates a metaclass, a bound class of that
 * metaclass, an enum (through Python's enum module) with its members, and
 * function objects, and makes each immortal with
 * pyimmortal_ImmortalizeChecked before publishing it; a refusal fails the
 * import. A second type is created lazily, on the first call of
 * lazy_type(), possibly while other threads run, and made immortal with
 * pyimmortal_ImmortalizeUnpublished before it is stored anywhere another
 * thread can read it.
 *
 * CPython 3.9-3.11 have no immortal objects: there the module makes nothing
 * immortal, as an extension would, and c_tests/ext/test_nbext.py checks
 * only that everything works from several threads. */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#include "../leakcheck.h"

#define HAS_IMMORTALITY (PY_VERSION_HEX >= 0x030C0000)

/* Makes `op` immortal, or fails the import with pyimmortal's exception. */
static int
make_immortal(PyObject *op)
{
#if HAS_IMMORTALITY
    return pyimmortal_ImmortalizeChecked(op);
#else
    (void)op;
    return 0;
#endif
}

/* --- the bound class ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    double x;
    double y;
} Point;

static int
Point_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    Point *p = (Point *)self;
    if (!PyArg_ParseTuple(args, "dd", &p->x, &p->y)) {
        return -1;
    }
    (void)kwds;
    return 0;
}

static PyObject *
Point_norm2(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Point *p = (Point *)self;
    return PyFloat_FromDouble(p->x * p->x + p->y * p->y);
}

static PyObject *
Point_get_x(PyObject *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(((Point *)self)->x);
}

static PyObject *
Point_get_y(PyObject *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(((Point *)self)->y);
}

static PyMethodDef Point_methods[] = {
    {"norm2", Point_norm2, METH_NOARGS, "x*x + y*y"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Point_getset[] = {
    {"x", Point_get_x, NULL, "x", NULL},
    {"y", Point_get_y, NULL, "y", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Point_slots[] = {
    {Py_tp_init, (void *)Point_init},
    {Py_tp_methods, Point_methods},
    {Py_tp_getset, Point_getset},
    {0, NULL},
};

static PyType_Spec Point_spec = {
    "pyimmortal_nbext.Point", sizeof(Point), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    Point_slots,
};

/* The metaclass of bound classes, as nanobind's nb_type. */
static PyType_Slot meta_slots[] = {{0, NULL}};
static PyType_Spec meta_spec = {
    "pyimmortal_nbext.meta", 0, 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, meta_slots,
};

/* --- the lazily created type ---------------------------------------------- */

static PyObject *
Lazy_iter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PyObject *
Lazy_next(PyObject *Py_UNUSED(self))
{
    return NULL; /* exhausted, without an exception: StopIteration */
}

static PyType_Slot Lazy_slots[] = {
    {Py_tp_iter, (void *)Lazy_iter},
    {Py_tp_iternext, (void *)Lazy_next},
    {0, NULL},
};

static PyType_Spec Lazy_spec = {
    "pyimmortal_nbext.LazyIterator", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, Lazy_slots,
};

static PyObject *lazy; /* the lazy type once made; immortal, never released */
#if PY_VERSION_HEX >= 0x030D0000
static PyMutex lazy_lock;
#endif

/* lazy_type() -> the type, created on the first call from any thread. */
static PyObject *
lazy_type(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX >= 0x030D0000
    PyMutex_Lock(&lazy_lock);
#endif
    PyObject *result = lazy;
    if (result == NULL) {
        PyObject *type = PyType_FromSpec(&Lazy_spec);
        /* Not yet published: only this thread holds a reference. */
#if HAS_IMMORTALITY
        if (type != NULL && pyimmortal_ImmortalizeUnpublished(type) < 0) {
            Py_CLEAR(type);
        }
#endif
        lazy = result = type;
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyMutex_Unlock(&lazy_lock);
#endif
    Py_XINCREF(result);
    return result;
}

/* --- functions ------------------------------------------------------------ */

static PyObject *
add(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "add(a, b)");
        return NULL;
    }
    return PyNumber_Add(args[0], args[1]);
}

static PyObject *
mul(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mul(a, b)");
        return NULL;
    }
    return PyNumber_Multiply(args[0], args[1]);
}

/* Function objects made at import, as nanobind's nb_func objects. */
static PyMethodDef function_defs[] = {
    {"add", (PyCFunction)(void (*)(void))add, METH_FASTCALL, "a + b"},
    {"mul", (PyCFunction)(void (*)(void))mul, METH_FASTCALL, "a * b"},
    {NULL, NULL, 0, NULL},
};

static PyObject *
is_immortal(PyObject *Py_UNUSED(module), PyObject *op)
{
    return PyLong_FromLong(pyimmortal_PyUnstable_IsImmortal(op));
}

static PyObject *
immortalize_checked(PyObject *Py_UNUSED(module), PyObject *op)
{
    if (pyimmortal_ImmortalizeChecked(op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* unpublished_pair() -> (checked, unpublished, immortal): a fresh list
 * held twice (by this function and by a fresh tuple), as a new type is held
 * by its MRO tuple; neither is published. pyimmortal_ImmortalizeChecked,
 * then pyimmortal_ImmortalizeUnpublished, each with its result (0, or -1
 * with the exception cleared), and whether the list is immortal then. */
static PyObject *
unpublished_pair(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    PyObject *holder = PyTuple_Pack(1, list);
    if (holder == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    int checked = pyimmortal_ImmortalizeChecked(list);
    if (checked < 0) {
        PyErr_Clear();
    }
    int unpublished = pyimmortal_ImmortalizeUnpublished(list);
    if (unpublished < 0) {
        PyErr_Clear();
    }
    int immortal = pyimmortal_PyUnstable_IsImmortal(list);
    Py_DECREF(holder);
    Py_DECREF(list);
    return Py_BuildValue("(iii)", checked, unpublished, immortal);
}

static PyMethodDef module_methods[] = {
    {"unpublished_pair", unpublished_pair, METH_NOARGS, "(checked, unpublished, immortal)"},
    {"lazy_type", lazy_type, METH_NOARGS, "the type created on first use"},
    {"is_immortal", is_immortal, METH_O, "pyimmortal_PyUnstable_IsImmortal(op)"},
    {"immortalize_checked", immortalize_checked, METH_O, "pyimmortal_ImmortalizeChecked(op)"},
    {NULL, NULL, 0, NULL},
};

/* --- import ----------------------------------------------------------------- */

/* Makes `obj` immortal and appends it to `made`; 0, or -1 with an
 * exception set. */
static int
keep(PyObject *made, PyObject *obj)
{
    return make_immortal(obj) < 0 ? -1 : PyList_Append(made, obj);
}

/* Makes `obj` immortal, then stores it as attribute `name` of `module` and
 * appends it to `made`; steals the reference to `obj`. */
static int
publish(PyObject *module, PyObject *made, const char *name, PyObject *obj)
{
    if (obj == NULL) {
        return -1;
    }
    int r = keep(made, obj);
    if (r == 0) {
        r = PyObject_SetAttrString(module, name, obj);
    }
    Py_DECREF(obj);
    return r;
}

static int
exec_module(PyObject *module)
{
    /* Sanitized builds: the registry is declared to the leak checker when
     * the interpreter ends (leakcheck.h; nothing without ASan). */
    if (leakcheck_registry_at_exit() < 0) {
        return -1;
    }
    PyObject *made = PyList_New(0); /* every object made immortal, in order */
    if (made == NULL || PyObject_SetAttrString(module, "made", made) < 0) {
        Py_XDECREF(made);
        return -1;
    }
    Py_DECREF(made); /* the module holds it */

    PyObject *bases = PyTuple_Pack(1, (PyObject *)&PyType_Type);
    if (bases == NULL) {
        return -1;
    }
    PyObject *meta = PyType_FromSpecWithBases(&meta_spec, bases);
    Py_DECREF(bases);
    if (meta == NULL) {
        return -1;
    }
    Py_INCREF(meta);
    if (publish(module, made, "meta", meta) < 0) {
        Py_DECREF(meta);
        return -1;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *point = PyType_FromMetaclass((PyTypeObject *)meta, module, &Point_spec, NULL);
#else
    PyObject *point = PyType_FromModuleAndSpec(module, &Point_spec, NULL);
#endif
    Py_DECREF(meta);
    if (publish(module, made, "Point", point) < 0) {
        return -1;
    }

    for (PyMethodDef *def = function_defs; def->ml_name != NULL; def++) {
        if (publish(module, made, def->ml_name, PyCFunction_NewEx(def, module, NULL)) < 0) {
            return -1;
        }
    }
    /* The functions of the method table, which the module made already. */
    for (PyMethodDef *def = module_methods; def->ml_name != NULL; def++) {
        PyObject *f = PyObject_GetAttrString(module, def->ml_name);
        if (f == NULL || keep(made, f) < 0) {
            Py_XDECREF(f);
            return -1;
        }
        Py_DECREF(f);
    }

    /* An enum, made by Python's enum module, and its members. */
    PyObject *enum_mod = PyImport_ImportModule("enum");
    if (enum_mod == NULL) {
        return -1;
    }
    PyObject *color = PyObject_CallMethod(enum_mod, "Enum", "ss", "Color", "RED GREEN BLUE");
    Py_DECREF(enum_mod);
    if (color == NULL) {
        return -1;
    }
    /* Its metaclass (enum.EnumType), as nanobind makes its own immortal. */
    PyObject *enum_meta = (PyObject *)Py_TYPE(color);
    if (keep(made, enum_meta) < 0) {
        Py_DECREF(color);
        return -1;
    }
    static const char *const members[] = {"RED", "GREEN", "BLUE"};
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        PyObject *m = PyObject_GetAttrString(color, members[i]);
        if (m == NULL || keep(made, m) < 0) {
            Py_XDECREF(m);
            Py_DECREF(color);
            return -1;
        }
        Py_DECREF(m);
    }
    return publish(module, made, "Color", color);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)exec_module},
#if defined(Py_GIL_DISABLED)
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "pyimmortal_nbext", NULL, 0, module_methods, module_slots,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_pyimmortal_nbext(void)
{
    return PyModuleDef_Init(&module_def);
}
