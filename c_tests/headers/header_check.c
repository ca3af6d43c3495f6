/* Compiled as C99, C11, C++11 and C++20 with -Wall -Wextra -Werror
 * -pedantic: pyimmortal.h must be clean on its own in each of them. The
 * program also runs: every mapped name links and the NULL contract holds. */
#include "pyimmortal.h"

#include <stdio.h>
#include <string.h>

int
main(void)
{
    Py_Initialize();
    int ok = pyimmortal_PyUnstable_SetImmortal(NULL) == 0
             && pyimmortal_PyUnstable_IsImmortal(NULL) == 0
             && pyimmortal_PyUnstable_Object_EnableDeferredRefcount(NULL) == 0
             && pyimmortal_PyUnstable_Object_IsUniquelyReferenced(NULL) == 0
             && strlen(pyimmortal_target()) >= 3
             && pyimmortal_target_version_hex() >> 16 == PY_VERSION_HEX >> 16;
    PyObject *list = PyList_New(0);
    ok = ok && PyUnstable_Object_IsUniquelyReferenced(list) == 1;
    ok = ok && PyUnstable_IsImmortal(list) == 0;
    ok = ok && PyUnstable_Object_EnableDeferredRefcount(Py_None) == 0;
    ok = ok && PyUnstable_SetImmortal(Py_None) == 0;
    Py_DECREF(list);
    if (Py_FinalizeEx() != 0) {
        ok = 0;
    }
    printf("header_check (%s): %s\n",
#if defined(__cplusplus)
           "C++",
#else
           "C",
#endif
           ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
