/* The "plain exported C function" of bench/calls.py: the same checks as
 * pyimmortal_PyUnstable_IsImmortal and
 * pyimmortal_PyUnstable_Object_IsUniquelyReferenced (calls_check.h: a NULL
 * check, then CPython's inline expression), in their own translation unit,
 * never inlined, with default visibility. It is what an extension would
 * write itself, so calls.py reports pyimmortal's cost as a multiple of it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "calls_check.h"

#define PLAIN_EXPORT __attribute__((noinline, visibility("default")))

PLAIN_EXPORT int
calls_plain_is_immortal(PyObject *op)
{
    return check_is_immortal(op);
}

PLAIN_EXPORT int
calls_plain_is_uniquely_referenced(PyObject *op)
{
    return check_is_uniquely_referenced(op);
}
