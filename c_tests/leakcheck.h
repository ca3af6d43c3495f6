/* What the tests tell LeakSanitizer about intended immortals.
 *
 * An immortal object is never freed, not even by Py_FinalizeEx, so once the
 * interpreter has let go of it LeakSanitizer finds it unreachable at exit
 * and reports it as a leak. Under AddressSanitizer (PYIMMORTAL_SANITIZE,
 * c_tests/CMakeLists.txt) the tests therefore declare their intended
 * immortals with __lsan_ignore_object, which also keeps everything those
 * objects point to out of the report:
 *
 * - the objects that pyimmortal_Immortalize made immortal are read from
 *   pyimmortal's registry (leakcheck_registry), just before the interpreter
 *   that owns it finalizes and frees it;
 * - the calls that do not register (PyUnstable_SetImmortal,
 *   pyimmortal_ImmortalizeHeap) are declared by the test that makes them:
 *   leakcheck_intended for one object, leakcheck_ImmortalizeHeap in place
 *   of pyimmortal_ImmortalizeHeap.
 *
 * Without AddressSanitizer every function here does nothing. Objects that
 * live in mimalloc pages (free-threaded builds, which refuse
 * PYTHONMALLOC=malloc) are not malloc blocks: LeakSanitizer neither sees
 * nor reports them, and __lsan_ignore_object passes over them. Nor does it
 * scan them, so malloc memory that only an immortal object there points to
 * is reported: sanitize/lsan-free-threaded-3.13.supp says where that
 * happens. (Registering each object as a root region instead costs a pass
 * over /proc/self/maps per object at exit: minutes for the heap tests.) */
#ifndef PYIMMORTAL_LEAKCHECK_H
#define PYIMMORTAL_LEAKCHECK_H

#include "pyimmortal.h"

#if defined(__SANITIZE_ADDRESS__)
#  define LEAKCHECK_ON 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define LEAKCHECK_ON 1
#  endif
#endif
#if !defined(LEAKCHECK_ON)
#  define LEAKCHECK_ON 0
#endif

#if LEAKCHECK_ON
#  include <sanitizer/lsan_interface.h>
#endif

/* obj is meant to outlive the interpreter: LeakSanitizer does not report
 * it, nor what it references. */
static inline void
leakcheck_intended(PyObject *obj)
{
#if LEAKCHECK_ON
    if (obj == NULL) {
        return;
    }
    __lsan_ignore_object(obj);
#else
    (void)obj;
#endif
}

#if LEAKCHECK_ON
static int
leakcheck_visit(PyObject *obj, void *arg)
{
    (void)arg;
    leakcheck_intended(obj);
    return 0;
}
#endif

/* Every object in pyimmortal's registry of the current interpreter (made
 * immortal by this copy of the library): call before the interpreter
 * finalizes, which frees the registry. Returns the number declared. */
static inline Py_ssize_t
leakcheck_registry(void)
{
#if LEAKCHECK_ON
    if (pyimmortal_Registry_Visit(leakcheck_visit, NULL) < 0) {
        return -1;
    }
    return pyimmortal_Registry_Count();
#else
    return 0;
#endif
}

#if LEAKCHECK_ON
static PyObject *
leakcheck_registry_now(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (leakcheck_registry() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef leakcheck_registry_def = {
    "leakcheck_registry", leakcheck_registry_now, METH_NOARGS,
    "Declares pyimmortal's registry to the leak checker.",
};
#endif

/* For an extension module: declares the registry at interpreter exit, from
 * an atexit function (they run at the start of Py_FinalizeEx, while the
 * registry is still there). Returns 0, or -1 with an exception. */
static inline int
leakcheck_registry_at_exit(void)
{
#if LEAKCHECK_ON
    PyObject *fn = PyCFunction_New(&leakcheck_registry_def, NULL);
    if (fn == NULL) {
        return -1;
    }
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *r = atexit == NULL ? NULL : PyObject_CallMethod(atexit, "register", "O", fn);
    Py_XDECREF(atexit);
    Py_DECREF(fn);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
#endif
    return 0;
}

#if LEAKCHECK_ON && !defined(Py_GIL_DISABLED)
/* The walk's state, all in raw memory: it makes no Python object, so that
 * it changes neither the heap nor a debug build's -X showrefcount totals,
 * and it runs no Python code. */
struct leakcheck_walk {
    PyObject **todo;  /* the objects still to look at (a stack) */
    size_t len, cap;
    PyObject **seen;  /* the objects queued so far: open addressing */
    size_t seen_len, seen_cap;  /* seen_cap is a power of two */
};

/* Adds obj to the seen set; 1 if it was new, 0 if seen, -1 if out of memory. */
static int
leakcheck_see(struct leakcheck_walk *w, PyObject *obj)
{
    if (2 * (w->seen_len + 1) > w->seen_cap) {
        size_t cap = w->seen_cap ? 2 * w->seen_cap : 1024;
        PyObject **table = (PyObject **)PyMem_RawCalloc(cap, sizeof(PyObject *));
        if (table == NULL) {
            return -1;
        }
        for (size_t i = 0; i < w->seen_cap; i++) {
            PyObject *o = w->seen[i];
            if (o != NULL) {
                size_t j = ((uintptr_t)o >> 4) & (cap - 1);
                while (table[j] != NULL) {
                    j = (j + 1) & (cap - 1);
                }
                table[j] = o;
            }
        }
        PyMem_RawFree(w->seen);
        w->seen = table;
        w->seen_cap = cap;
    }
    size_t j = ((uintptr_t)obj >> 4) & (w->seen_cap - 1);
    while (w->seen[j] != NULL) {
        if (w->seen[j] == obj) {
            return 0;
        }
        j = (j + 1) & (w->seen_cap - 1);
    }
    w->seen[j] = obj;
    w->seen_len++;
    return 1;
}

/* tp_traverse's visitproc: queues an untracked referent not seen yet (the
 * tracked ones are all in the collector's list). */
static int
leakcheck_referent(PyObject *obj, void *arg)
{
    struct leakcheck_walk *w = (struct leakcheck_walk *)arg;
    if (obj == NULL || PyObject_GC_IsTracked(obj)) {
        return 0;
    }
    int r = leakcheck_see(w, obj);
    if (r <= 0) {
        return r;
    }
    if (w->len == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        PyObject **todo = (PyObject **)PyMem_RawRealloc(w->todo, cap * sizeof(PyObject *));
        if (todo == NULL) {
            return -1;
        }
        w->todo = todo;
        w->cap = cap;
    }
    w->todo[w->len++] = obj;
    return 0;
}

/* Declares obj if immortal, then queues the untracked objects it
 * references. tp_traverse is called as pyimmortal's walk calls it: on
 * objects the collector manages (PyObject_IS_GC), except untracked
 * capsules. */
static int
leakcheck_look_at(PyObject *obj, struct leakcheck_walk *w)
{
    if (PyUnstable_IsImmortal(obj)) {
        leakcheck_intended(obj);
    }
    traverseproc traverse = Py_TYPE(obj)->tp_traverse;
    if (PyObject_IS_GC(obj) && traverse != NULL &&
        !(PyCapsule_CheckExact(obj) && !PyObject_GC_IsTracked(obj))) {
        return traverse(obj, leakcheck_referent, w);
    }
    return 0;
}
#endif

/* pyimmortal_ImmortalizeHeap, with what it made immortal declared to the
 * leak checker: the objects it starts from (gc.get_objects(), listed before
 * the call) that are immortal after it, and the untracked objects reachable
 * from them that are immortal, found as pyimmortal walks them (depth first
 * through tp_traverse). Nothing runs between the listing and the end of
 * the walk, and the call frees nothing, so the listed objects are still
 * alive when the walk reads them. The result is pyimmortal_ImmortalizeHeap's. */
static inline Py_ssize_t
leakcheck_ImmortalizeHeap(void)
{
#if LEAKCHECK_ON && !defined(Py_GIL_DISABLED)
    PyObject *gc = PyImport_ImportModule("gc");
    if (gc == NULL) {
        return -1;
    }
    PyObject *listed = PyObject_CallMethod(gc, "get_objects", NULL);
    Py_DECREF(gc);
    if (listed == NULL) {
        return -1;
    }
    /* Borrowed pointers, so that the listing neither keeps an object alive
     * nor becomes part of the heap that the call walks. */
    size_t n_listed = (size_t)PyList_GET_SIZE(listed);
    PyObject **tracked = (PyObject **)PyMem_RawMalloc(sizeof(PyObject *) * (n_listed + 1));
    if (tracked == NULL) {
        Py_DECREF(listed);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n_listed; i++) {
        tracked[i] = PyList_GET_ITEM(listed, (Py_ssize_t)i);
    }
    Py_DECREF(listed);

    Py_ssize_t made = pyimmortal_ImmortalizeHeap();
    struct leakcheck_walk w = {NULL, 0, 0, NULL, 0, 0};
    for (size_t i = 0; i < n_listed && made >= 0; i++) {
        if (leakcheck_look_at(tracked[i], &w) < 0) {
            made = -1;
        }
        while (made >= 0 && w.len > 0) {
            if (leakcheck_look_at(w.todo[--w.len], &w) < 0) {
                made = -1;
            }
        }
    }
    if (made < 0 && !PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    PyMem_RawFree(w.todo);
    PyMem_RawFree(w.seen);
    PyMem_RawFree(tracked);
    return made;
#else
    return pyimmortal_ImmortalizeHeap();
#endif
}

#endif /* PYIMMORTAL_LEAKCHECK_H */
