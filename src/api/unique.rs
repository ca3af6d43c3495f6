//! `PyUnstable_Object_IsUniquelyReferenced`.

use crate::ffi::PyObject;
use crate::guard::object_call;
use crate::refcount;
use core::ffi::c_int;

/// Tells whether `op` is uniquely referenced, with the contract of CPython
/// 3.14's `PyUnstable_Object_IsUniquelyReferenced` (gh-133140).
///
/// `pyimmortal.h` maps `PyUnstable_Object_IsUniquelyReferenced` to this
/// function when the target's `Python.h` is older than 3.14.0b1.
///
/// - Returns 1 or 0. Cannot fail and never sets an exception. `op` is a
///   borrowed reference.
/// - GIL builds: `Py_REFCNT(op) == 1`. Immortal objects give 0.
/// - Free-threaded builds: 1 only if the calling thread owns `op`, its local
///   count is 1 and its shared count (flags included) is 0. An object owned
///   by another thread gives 0.
/// - `op == NULL` returns 0.
/// - Requires an attached thread state.
/// - Reads the object header directly, also where the interpreter exports
///   CPython's own function, which reads the same fields.
///
/// # Safety
/// `op` must be NULL or point to a live Python object, and the calling
/// thread must hold an attached thread state (the GIL on GIL builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_PyUnstable_Object_IsUniquelyReferenced(
    op: *mut PyObject,
) -> c_int {
    // SAFETY: live object, attached thread (this function's contract); the
    // guard passes a non-NULL `op`.
    unsafe { object_call(op, 0, |op| refcount::is_uniquely_referenced(op) as c_int) }
}
