/* The owner id that free-threaded CPython stores in ob_tid. CPython defines
 * _Py_ThreadId() as an inline function with per-architecture assembly in its
 * public headers (Include/object.h in 3.13 and 3.14, Include/cpython/object.h
 * in 3.15; gh-110481). Calling the header's own definition keeps pyimmortal
 * on exactly the interpreter's notion of ownership. */
#include <Python.h>

#if !defined(Py_GIL_DISABLED)
#  error "thread_id.c is only built for free-threaded CPython"
#endif

uintptr_t pyimmortal_sys_thread_id(void);

uintptr_t
pyimmortal_sys_thread_id(void)
{
    return _Py_ThreadId();
}
