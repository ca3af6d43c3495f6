/* PyUnstable_SetImmortal and PyUnstable_IsImmortal on a running interpreter.
 * PyUnstable_SetImmortal does not register what it makes immortal, so each
 * case declares its immortals to the leak checker (leakcheck.h). */
#include "harness.h"

#include <pthread.h>

static PyObject *Thing;

/* Both spellings: the name mapped by pyimmortal.h (CPython's own function
 * where Python.h has it) and pyimmortal's export. They must agree. */
typedef int (*set_immortal_fn)(PyObject *);

static int
mapped_set_immortal(PyObject *op)
{
    return PyUnstable_SetImmortal(op);
}

static const set_immortal_fn spellings[] = {
    mapped_set_immortal,
    pyimmortal_PyUnstable_SetImmortal,
};
#define N_SPELLINGS (sizeof(spellings) / sizeof(spellings[0]))

static void
test_fresh_object(void)
{
    for (size_t s = 0; s < N_SPELLINGS; s++) {
        PyObject *o = new_instance(Thing);
        Py_ssize_t before = Py_REFCNT(o);
        CHECK(PyObject_GC_IsTracked(o));
        CHECK(!PyUnstable_IsImmortal(o));
        int r = spellings[s](o);
        CHECK(!PyErr_Occurred());
        if (!HAS_IMMORTALITY) {
            CHECK(r == 0);
            CHECK(Py_REFCNT(o) == before);
            CHECK(PyObject_GC_IsTracked(o));
            CHECK(!PyUnstable_IsImmortal(o));
            Py_DECREF(o);
            continue;
        }
        CHECK(r == 1);
        leakcheck_intended(o);
        CHECK(PyUnstable_IsImmortal(o));
        CHECK(pyimmortal_PyUnstable_IsImmortal(o));
        CHECK(!PyObject_GC_IsTracked(o));
        Py_ssize_t rc = Py_REFCNT(o);
        for (long i = 0; i < 1000000; i++) {
            Py_INCREF(o);
            Py_DECREF(o);
        }
        CHECK(Py_REFCNT(o) == rc);
        for (int i = 0; i < 10000; i++) {
            Py_INCREF(o);
        }
        CHECK(PyUnstable_IsImmortal(o));
        for (int i = 0; i < 10000; i++) {
            Py_DECREF(o);
        }
        CHECK(Py_REFCNT(o) == rc);
        /* One-way: a second call refuses, as CPython 3.15 does. */
        CHECK(spellings[s](o) == 0);
        CHECK(PyUnstable_IsImmortal(o));
        Py_DECREF(o);
    }
}

/* The object outlives every reference and a collection; a mortal control
 * dies, which shows that the check can fail. */
static void
test_survives_dropping_every_reference(void)
{
    PyObject *o = new_instance(Thing);
    int r = PyUnstable_SetImmortal(o);
    CHECK(r == (HAS_IMMORTALITY ? 1 : 0));
    if (r) {
        leakcheck_intended(o);
    }
    PyObject *ref = PyWeakref_NewRef(o, NULL);
    CHECK(ref != NULL);
    PyObject *payload = PyObject_GetAttrString(o, "payload");
    CHECK(payload != NULL);
    Py_DECREF(o);
    o = NULL;
    gc_collect();
    PyObject *still = PyObject_CallNoArgs(ref);
    CHECK(still != NULL);
    if (HAS_IMMORTALITY) {
        CHECK(still != Py_None);
        CHECK(PyObject_IsInstance(still, Thing) == 1);
        PyObject *again = PyObject_GetAttrString(still, "payload");
        CHECK(again == payload);
        CHECK(PyList_GET_SIZE(again) == 3);
        Py_DECREF(again);
    }
    else {
        CHECK(still == Py_None);
    }
    Py_DECREF(still);
    Py_DECREF(payload);
    Py_DECREF(ref);

    CHECK(dropped_and_freed(new_instance(Thing)));
}

/* Non-GC objects are accepted too (CPython 3.15 takes any non-str object). */
static void
test_non_gc_object(void)
{
    for (size_t s = 0; s < N_SPELLINGS; s++) {
        PyObject *f = PyFloat_FromDouble(12345.678 + (double)s);
        CHECK(f != NULL);
        Py_ssize_t before = Py_REFCNT(f);
        int r = spellings[s](f);
        CHECK(r == (HAS_IMMORTALITY ? 1 : 0));
        if (r) {
            leakcheck_intended(f);
        }
        CHECK(PyUnstable_IsImmortal(f) == r);
        if (!r) {
            CHECK(Py_REFCNT(f) == before);
        }
        Py_DECREF(f);
    }
}

/* str, shared objects and immortal objects get CPython 3.15's result: 0,
 * no exception, nothing changed. */
static void
test_refusals(void)
{
    for (size_t s = 0; s < N_SPELLINGS; s++) {
        PyObject *str = PyUnicode_FromFormat("pyimmortal-%d-not-interned", (int)s);
        CHECK(str != NULL);
        Py_ssize_t before = Py_REFCNT(str);
        CHECK(spellings[s](str) == 0);
        CHECK(!PyErr_Occurred());
        CHECK(!PyUnstable_IsImmortal(str));
        CHECK(Py_REFCNT(str) == before);
        Py_DECREF(str);

        PyObject *sub = eval_result("class S(str): pass\nresult = S('x' * 40)\n");
        CHECK(PyUnicode_Check(sub));
        /* The namespace dies with eval_result; the result is unique. */
        CHECK(spellings[s](sub) == 0);
        CHECK(!PyUnstable_IsImmortal(sub));
        Py_DECREF(sub);

        PyObject *shared = new_instance(Thing);
        Py_INCREF(shared);
        before = Py_REFCNT(shared);
        CHECK(spellings[s](shared) == 0);
        CHECK(!PyErr_Occurred());
        CHECK(Py_REFCNT(shared) == before);
        CHECK(!PyUnstable_IsImmortal(shared));
        CHECK(PyObject_GC_IsTracked(shared));
        Py_DECREF(shared);
        Py_DECREF(shared);

        before = Py_REFCNT(Py_None);
        CHECK(spellings[s](Py_None) == 0);
        CHECK(Py_REFCNT(Py_None) == before);
        CHECK(PyUnstable_IsImmortal(Py_None) == HAS_IMMORTALITY);
    }
    CHECK(pyimmortal_PyUnstable_SetImmortal(NULL) == 0);
    CHECK(pyimmortal_PyUnstable_IsImmortal(NULL) == 0);
    CHECK(!PyErr_Occurred());
}

static void
test_is_immortal(void)
{
    PyObject *one = PyLong_FromLong(1);
    CHECK(PyUnstable_IsImmortal(one) == HAS_IMMORTALITY);
    CHECK(pyimmortal_PyUnstable_IsImmortal(one) == HAS_IMMORTALITY);
    Py_DECREF(one);
    CHECK(pyimmortal_PyUnstable_IsImmortal(Py_None) == HAS_IMMORTALITY);
    CHECK(pyimmortal_PyUnstable_IsImmortal((PyObject *)&PyLong_Type) == HAS_IMMORTALITY);
    PyObject *list = PyList_New(0);
    CHECK(!PyUnstable_IsImmortal(list));
    CHECK(!pyimmortal_PyUnstable_IsImmortal(list));
    Py_DECREF(list);
}

/* Several threads incref and decref one immortal object; it stays immortal
 * and its count does not move. */
#define N_THREADS 4
#define N_ROUNDS 200000

static void *
hammer(void *arg)
{
    PyObject *o = (PyObject *)arg;
    PyGILState_STATE st = PyGILState_Ensure();
    for (long i = 0; i < N_ROUNDS; i++) {
        Py_INCREF(o);
        Py_INCREF(o);
        Py_DECREF(o);
        Py_DECREF(o);
    }
    PyGILState_Release(st);
    return NULL;
}

static void
test_threads_share_an_immortal(void)
{
    if (!HAS_IMMORTALITY) {
        SKIP("CPython 3.9-3.11 have no immortal objects");
    }
    PyObject *o = new_instance(Thing);
    CHECK(PyUnstable_SetImmortal(o) == 1);
    leakcheck_intended(o);
    Py_ssize_t rc = Py_REFCNT(o);
    pthread_t threads[N_THREADS];
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < N_THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, hammer, o) == 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    Py_END_ALLOW_THREADS
    CHECK(PyUnstable_IsImmortal(o));
    CHECK(Py_REFCNT(o) == rc);
    Py_DECREF(o);
}

int
main(void)
{
    harness_start("test_immortal");
    Thing = make_class();
    RUN(test_fresh_object);
    RUN(test_survives_dropping_every_reference);
    RUN(test_non_gc_object);
    RUN(test_refusals);
    RUN(test_is_immortal);
    RUN(test_threads_share_an_immortal);
    Py_CLEAR(Thing);
    return harness_finish();
}
