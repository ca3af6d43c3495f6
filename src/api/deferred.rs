//! `PyUnstable_Object_EnableDeferredRefcount`.

use crate::cpython::runtime;
use crate::ffi::PyObject;
use crate::guard::object_call;
use crate::refcount;
use core::ffi::c_int;

/// Asks for deferred reference counting on `op`, with the contract of
/// CPython 3.14's `PyUnstable_Object_EnableDeferredRefcount` (gh-123619).
///
/// `pyimmortal.h` maps `PyUnstable_Object_EnableDeferredRefcount` to this
/// function when the target's `Python.h` is older than 3.14.0a2.
///
/// - Returns 1 if this call turned deferred reference counting on, 0
///   otherwise: on GIL builds, for objects whose type is not GC, for
///   untracked objects, and when it is already on. Cannot fail and never
///   sets an exception. `op` is a borrowed reference.
/// - Once on, `op` is freed only by the cyclic garbage collector, never by
///   its last `Py_DECREF`.
/// - 3.13t: always 0. CPython 3.13 turns deferred objects into immortal
///   ones when a second thread starts (gh-117783), so they would never be
///   collected; pyimmortal leaves the object as it is.
/// - Thread-safe; meant to be called soon after `op` is created.
/// - `op == NULL` returns 0.
///
/// # Safety
/// `op` must be NULL or point to a live Python object, and the calling
/// thread must hold an attached thread state (the GIL on GIL builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_PyUnstable_Object_EnableDeferredRefcount(
    op: *mut PyObject,
) -> c_int {
    let body = |op: *mut PyObject| {
        if let Some(own) = runtime::ENABLE_DEFERRED_REFCOUNT.predicate() {
            // SAFETY: CPython's own function, whose contract this one
            // repeats; the guard passes a non-NULL `op`.
            return unsafe { own(op) };
        }
        // SAFETY: live object, attached thread (this function's contract).
        unsafe { refcount::enable_deferred(op) as c_int }
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { object_call(op, 0, body) }
}
