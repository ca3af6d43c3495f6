/* PyUnstable_Object_IsUniquelyReferenced on a running interpreter. */
#include "harness.h"

#include <pthread.h>

static void
test_counts(void)
{
    PyObject *list = PyList_New(0);
    CHECK(PyUnstable_Object_IsUniquelyReferenced(list) == 1);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(list) == 1);
    Py_INCREF(list);
    CHECK(PyUnstable_Object_IsUniquelyReferenced(list) == 0);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(list) == 0);
    Py_DECREF(list);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(list) == 1);
    Py_DECREF(list);

    /* Immortal objects are never uniquely referenced. */
    CHECK(PyUnstable_Object_IsUniquelyReferenced(Py_None) == 0);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(Py_None) == 0);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(NULL) == 0);
}

/* An object created by another thread: on free-threaded builds it is owned
 * by that thread, so the main thread sees 0 while the owner sees 1. On GIL
 * builds only the count matters. */
struct handoff {
    PyObject *obj;
    int seen_by_owner;
};

static void *
make_in_thread(void *arg)
{
    struct handoff *h = (struct handoff *)arg;
    PyGILState_STATE st = PyGILState_Ensure();
    h->obj = PyList_New(0);
    h->seen_by_owner = PyUnstable_Object_IsUniquelyReferenced(h->obj);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(h->obj) == h->seen_by_owner);
    PyGILState_Release(st);
    return NULL;
}

static void
test_owned_by_another_thread(void)
{
    struct handoff h = {NULL, -1};
    pthread_t t;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&t, NULL, make_in_thread, &h) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    Py_END_ALLOW_THREADS
    CHECK(h.obj != NULL);
    CHECK(h.seen_by_owner == 1);
#if defined(Py_GIL_DISABLED)
    CHECK(PyUnstable_Object_IsUniquelyReferenced(h.obj) == 0);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(h.obj) == 0);
    /* And it cannot be made immortal from here. */
    CHECK(PyUnstable_SetImmortal(h.obj) == 0);
    CHECK(pyimmortal_PyUnstable_SetImmortal(h.obj) == 0);
    CHECK(!PyUnstable_IsImmortal(h.obj));
#else
    CHECK(PyUnstable_Object_IsUniquelyReferenced(h.obj) == 1);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(h.obj) == 1);
#endif
    Py_DECREF(h.obj);
}

int
main(void)
{
    harness_start("test_unique");
    RUN(test_counts);
    RUN(test_owned_by_another_thread);
    return harness_finish();
}
