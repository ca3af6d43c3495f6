/* The checks that bench/calls.py compares pyimmortal's functions with:
 * CPython's own inline expressions for "is immortal" and "is uniquely
 * referenced" on the target of the headers, each after a NULL check as
 * pyimmortal's functions do. calls_plain.c wraps them in plain exported
 * functions (declared at the end); calls_ext.c also runs them inline, as the
 * floor. Include after Python.h.
 */
#ifndef CALLS_CHECK_H
#define CALLS_CHECK_H

/* _Py_IsImmortal exists from 3.12 on; older CPython has no immortal
 * objects. */
static inline int
check_is_immortal(PyObject *op)
{
    if (op == NULL) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030C0000
    return _Py_IsImmortal(op);
#else
    return 0;
#endif
}

/* CPython 3.14's _PyObject_IsUniquelyReferenced (Include/internal/
 * pycore_object.h), the body of PyUnstable_Object_IsUniquelyReferenced. */
static inline int
check_is_uniquely_referenced(PyObject *op)
{
    if (op == NULL) {
        return 0;
    }
#ifdef Py_GIL_DISABLED
    return _Py_IsOwnedByCurrentThread(op)
        && _Py_atomic_load_uint32_relaxed(&op->ob_ref_local) == 1
        && _Py_atomic_load_ssize_relaxed(&op->ob_ref_shared) == 0;
#else
    return Py_REFCNT(op) == 1;
#endif
}

/* The same checks as exported functions, defined in calls_plain.c. */
int calls_plain_is_immortal(PyObject *op);
int calls_plain_is_uniquely_referenced(PyObject *op);

#endif /* CALLS_CHECK_H */
