/* Input for bindgen: the target interpreter's own headers. The bindings
 * generated from this file are compared with the hand-written layouts and
 * constants in src/refcount/ by src/cpython/oracle.rs. Each constant is
 * restated as an enumerator so that clang, not a macro parser, evaluates it. */
#include <Python.h>

#define PYIMMORTAL_ORACLE(name, value) enum { pyimmortal_oracle_##name = (value) };

PYIMMORTAL_ORACLE(PY_MINOR_VERSION, PY_MINOR_VERSION)
PYIMMORTAL_ORACLE(SIZEOF_PYOBJECT, sizeof(PyObject))
PYIMMORTAL_ORACLE(TPFLAGS_HAVE_GC, Py_TPFLAGS_HAVE_GC)
PYIMMORTAL_ORACLE(TPFLAGS_UNICODE_SUBCLASS, Py_TPFLAGS_UNICODE_SUBCLASS)
PYIMMORTAL_ORACLE(TP_FINALIZE_SLOT, Py_tp_finalize)

#if defined(Py_GIL_DISABLED)
PYIMMORTAL_ORACLE(IMMORTAL_REFCNT_LOCAL, _Py_IMMORTAL_REFCNT_LOCAL)
PYIMMORTAL_ORACLE(UNOWNED_TID, _Py_UNOWNED_TID)
PYIMMORTAL_ORACLE(REF_SHARED_SHIFT, _Py_REF_SHARED_SHIFT)
PYIMMORTAL_ORACLE(REF_MAYBE_WEAKREF, _Py_REF_MAYBE_WEAKREF)
#elif PY_VERSION_HEX >= 0x030E0000
PYIMMORTAL_ORACLE(IMMORTAL_INITIAL_REFCNT, _Py_IMMORTAL_INITIAL_REFCNT)
PYIMMORTAL_ORACLE(IMMORTAL_MINIMUM_REFCNT, _Py_IMMORTAL_MINIMUM_REFCNT)
PYIMMORTAL_ORACLE(IMMORTAL_FLAGS, _Py_IMMORTAL_FLAGS)
PYIMMORTAL_ORACLE(STATICALLY_ALLOCATED_FLAG, _Py_STATICALLY_ALLOCATED_FLAG)
#elif PY_VERSION_HEX >= 0x030C0000
PYIMMORTAL_ORACLE(IMMORTAL_REFCNT, _Py_IMMORTAL_REFCNT)
#endif

/* The free-threaded GC bits are internal (Include/internal/pycore_gc.h). */
#if defined(Py_GIL_DISABLED)
#  define Py_BUILD_CORE 1
#  include "internal/pycore_gc.h"
PYIMMORTAL_ORACLE(GC_BITS_TRACKED, _PyGC_BITS_TRACKED)
PYIMMORTAL_ORACLE(GC_BITS_DEFERRED, _PyGC_BITS_DEFERRED)
#  if PY_VERSION_HEX >= 0x030E0000
/* The deferred bias, Include/internal/pycore_object.h (3.14+). */
#    include "internal/pycore_object.h"
PYIMMORTAL_ORACLE(REF_DEFERRED, _Py_REF_DEFERRED)
#  endif
#endif
