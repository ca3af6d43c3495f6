/* PyUnstable_Object_EnableDeferredRefcount on a running interpreter. */
#include "harness.h"

/* Expected first result for a fresh, tracked instance of a GC type. Only
 * 3.14t and later turn deferred reference counting on; 3.13t refuses, as
 * pyimmortal documents; GIL builds always refuse. */
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
#  define DEFERRED_WORKS 1
#else
#  define DEFERRED_WORKS 0
#endif

static PyObject *Thing;

typedef int (*enable_fn)(PyObject *);

static int
mapped_enable(PyObject *op)
{
    return PyUnstable_Object_EnableDeferredRefcount(op);
}

static const enable_fn spellings[] = {
    mapped_enable,
    pyimmortal_PyUnstable_Object_EnableDeferredRefcount,
};

static void
test_once_then_zero(void)
{
    for (size_t s = 0; s < sizeof(spellings) / sizeof(spellings[0]); s++) {
        PyObject *o = new_instance(Thing);
        CHECK(PyObject_GC_IsTracked(o));
        CHECK(spellings[s](o) == DEFERRED_WORKS);
        CHECK(!PyErr_Occurred());
        CHECK(spellings[s](o) == 0);
        CHECK(spellings[1 - s](o) == 0);
        CHECK(!PyUnstable_IsImmortal(o));
        Py_DECREF(o);
    }
    CHECK(pyimmortal_PyUnstable_Object_EnableDeferredRefcount(NULL) == 0);
}

static void
test_non_gc_refused(void)
{
    PyObject *f = PyFloat_FromDouble(2.5);
    CHECK(PyUnstable_Object_EnableDeferredRefcount(f) == 0);
    CHECK(pyimmortal_PyUnstable_Object_EnableDeferredRefcount(f) == 0);
    Py_DECREF(f);
}

/* A deferred object stays collectable: after its last reference goes, the
 * cyclic GC frees it. */
static void
test_stays_collectable(void)
{
    PyObject *o = new_instance(Thing);
    int r = PyUnstable_Object_EnableDeferredRefcount(o);
    CHECK(r == DEFERRED_WORKS);
    CHECK(dropped_and_freed(o));
}

int
main(void)
{
    harness_start("test_deferred");
    Thing = make_class();
    RUN(test_once_then_zero);
    RUN(test_non_gc_refused);
    RUN(test_stays_collectable);
    Py_CLEAR(Thing);
    return harness_finish();
}
