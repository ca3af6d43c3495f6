/* The fixed part of the C probe for the layout check. build.rs includes it
 * from the probe it generates out of the facts! tables in src/refcount/ (see
 * build/layout_probe.rs), and bindgen reads the result with the target
 * interpreter's own headers. Each fact is an enumerator so that clang, not a
 * macro parser, evaluates it. */
#include <Python.h>

/* The free-threaded GC bits are internal (Include/internal/pycore_gc.h, 3.13+),
 * and so is the deferred bias (Include/internal/pycore_object.h, 3.14+). */
#if defined(Py_GIL_DISABLED)
#  define Py_BUILD_CORE 1
#  include "internal/pycore_gc.h"
#  if PY_VERSION_HEX >= 0x030E0000
#    include "internal/pycore_object.h"
#  endif
#endif

enum { pyimmortal_oracle_PY_MINOR_VERSION = PY_MINOR_VERSION };
