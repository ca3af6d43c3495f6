//! Immortal objects: `PyUnstable_SetImmortal` and `PyUnstable_IsImmortal`.

use crate::cpython::{self, runtime};
use crate::ffi::PyObject;
use crate::guard::object_call;
use crate::refcount;
use core::ffi::c_int;

/// Makes `op` immortal, with the contract of CPython 3.15's
/// `PyUnstable_SetImmortal` (gh-143300).
///
/// `pyimmortal.h` maps `PyUnstable_SetImmortal` to this function when the
/// target's `Python.h` is older than 3.15.0a7.
///
/// - Returns 1 if `op` was made immortal, 0 otherwise. Never sets an
///   exception and cannot fail.
/// - `op` is a borrowed reference. It must be uniquely referenced: refcount
///   1 on GIL builds; on free-threaded builds owned by the calling thread
///   with a local count of 1 and nothing shared. Otherwise the result is 0
///   and nothing changes. An object that is already immortal is not
///   uniquely referenced and also gets 0, as in CPython 3.15.
/// - `str` objects and subclasses are refused (0): an immortal string must be
///   interned (use `PyUnicode_InternInPlace`).
/// - On 3.14+ `dict` and subclasses are refused (0), here and before calling
///   CPython 3.15's own function: a dict must stay tracked by the collector,
///   which asserts it on a later update in debug builds (gh-153051), and
///   CPython's function untracks it. This is a deliberate difference from
///   CPython 3.15.
/// - On success the object leaves the cyclic GC (it is untracked) and is
///   never deallocated. This cannot be undone. A GC object whose finalizer
///   has not run stays tracked, as with `pyimmortal_Immortalize`, and is
///   refused (0) on free-threaded builds, as there.
/// - CPython 3.9-3.11 have no immortal objects: the result is 0 and nothing
///   changes.
/// - `op == NULL` returns 0 (CPython's own function does not allow NULL).
/// - Requires an attached thread state (the GIL on GIL builds).
/// - On debug builds the creation reference is removed from the total
///   refcount, so `-X showrefcount` counts no reference for the object.
///
/// Where the running interpreter exports `PyUnstable_SetImmortal`, that
/// function is called instead (after the NULL check).
///
/// # Safety
/// `op` must be NULL or point to a live Python object, and the calling
/// thread must hold an attached thread state (the GIL on GIL builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_PyUnstable_SetImmortal(op: *mut PyObject) -> c_int {
    let body = |op: *mut PyObject| {
        // SAFETY: live object (the guard passes a non-NULL `op`), attached
        // thread (this function's contract).
        if unsafe { refcount::is_dict(op) } && !refcount::DICTS_CAN_BE_IMMORTAL {
            return 0;
        }
        if let Some(own) = runtime::SET_IMMORTAL.predicate() {
            // SAFETY: CPython's own function, whose contract this one
            // repeats; the guard passes a non-NULL `op`.
            return unsafe { own(op) };
        }
        // SAFETY: live object, attached thread (this function's contract).
        unsafe { set_immortal(op) as c_int }
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { object_call(op, 0, body) }
}

/// The builtin implementation of [`pyimmortal_PyUnstable_SetImmortal`].
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn set_immortal(op: *mut PyObject) -> bool {
    // SAFETY: live object, attached thread (caller's contract); past the
    // HAS_IMMORTALITY check the target is 3.12+, as `finalizer_pending`
    // requires. `op` is uniquely referenced when `write_immortal` runs, as
    // each target's contract asks.
    unsafe {
        if !refcount::HAS_IMMORTALITY
            || !refcount::is_uniquely_referenced(op)
            || refcount::is_str(op)
            || (refcount::is_dict(op) && !refcount::DICTS_CAN_BE_IMMORTAL)
        {
            return false;
        }
        // As in `pyimmortal_Immortalize`: an object whose finalizer may be
        // running from its deallocator stays tracked, or is refused where
        // the collector does not keep tracked objects immortal.
        if !refcount::finalizer_pending(op) {
            cpython::gc_untrack(op);
        } else if !refcount::TRACKED_IMMORTALS_SURVIVE {
            return false;
        }
        refcount::write_immortal(op);
        // The reference that made the object unique was counted in a debug
        // build's total; immortal decrefs are not, so it would stay forever.
        runtime::dec_ref_total(1);
    }
    true
}

/// Tells whether `op` is immortal, with the contract of CPython 3.14's
/// `PyUnstable_IsImmortal` (gh-128509).
///
/// `pyimmortal.h` maps `PyUnstable_IsImmortal` to this function when the
/// target's `Python.h` is older than 3.14.0a5.
///
/// - Returns non-zero (1) if `op` is immortal, 0 otherwise. Cannot fail and
///   never sets an exception. `op` is a borrowed reference.
/// - 3.12 and 3.13 use their own encoding (low 32 bits of the refcount read
///   as a negative `int32_t`; `ob_ref_local == UINT32_MAX` on 3.13t).
/// - 3.9-3.11 have no immortal objects: always 0.
/// - `op == NULL` returns 0.
/// - Requires an attached thread state.
/// - Reads the object header directly, also where the interpreter exports
///   CPython's own function, which reads the same fields.
///
/// # Safety
/// `op` must be NULL or point to a live Python object, and the calling
/// thread must hold an attached thread state (the GIL on GIL builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_PyUnstable_IsImmortal(op: *mut PyObject) -> c_int {
    // SAFETY: live object, attached thread (this function's contract); the
    // guard passes a non-NULL `op`.
    unsafe { object_call(op, 0, |op| refcount::is_immortal(op) as c_int) }
}
