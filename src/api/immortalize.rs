//! Beyond CPython: make immortal an object that the calling thread owns,
//! whatever its reference count, idempotently, with a checked variant.

use crate::api::registry;
use crate::cpython::{self, runtime};
use crate::ffi::PyObject;
use crate::guard::{checked_call, object_call};
use crate::refcount::{self, Refusal};
use core::ffi::c_int;

/// What [`immortalize`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object was made immortal by this call.
    Made,
    /// The object was immortal already.
    Already,
}

/// The builtin implementation behind [`pyimmortal_Immortalize`]; with
/// `register`, an object made immortal enters the registry.
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn immortalize(op: *mut PyObject, register: bool) -> Result<Outcome, Refusal> {
    if !refcount::HAS_IMMORTALITY {
        return Err(Refusal::NoImmortality);
    }
    // SAFETY: live object, attached thread (caller's contract). Past the
    // HAS_IMMORTALITY check the target is 3.12+, as `finalizer_pending`
    // requires. `write_immortal` runs right after `owned_references`
    // accepted `op`, with nothing in between that could hand `op` to another
    // thread, as each target's contract asks; `op` may be shared, and dicts
    // stay tracked where DICTS_CAN_BE_IMMORTAL allows them.
    unsafe {
        let dict = refcount::is_dict(op);
        if refcount::is_immortal(op) {
            refcount::normalize_immortal(op);
            if !dict {
                cpython::gc_untrack(op);
            }
            return Ok(Outcome::Already);
        }
        if refcount::is_str(op) {
            return Err(Refusal::Str);
        }
        if dict && !refcount::DICTS_CAN_BE_IMMORTAL {
            return Err(Refusal::TypeCannotBeImmortal);
        }
        // The last Py_DECREF runs tp_finalize (`__del__`) through
        // PyObject_CallFinalizerFromDealloc (Objects/object.c), which
        // requires a GC object resurrected by its finalizer to still be
        // tracked when the finalizer returns: debug builds assert it, on
        // 3.14+ right after the finalizer (moved there by gh-130202, the
        // temporary resurrection being gh-127582's
        // `_PyObject_ResurrectStart`/`_PyObject_ResurrectEnd`). Making the
        // object immortal untracks it, and on that path the finalized flag
        // is only set once the finalizer has returned
        // (`PyObject_CallFinalizer`), so an object whose finalizer may still
        // run is refused. The collector sets the flag before it calls the
        // finalizer (`finalize_garbage`, Python/gc.c), so `__del__` on a
        // cycle may still make its object immortal: resurrection is legal
        // there, and the object leaves the unreachable set.
        if refcount::finalizer_pending(op) {
            return Err(Refusal::FinalizerPending);
        }
        let references = refcount::owned_references(op)?;
        if !dict {
            cpython::gc_untrack(op);
        }
        refcount::write_immortal(op);
        // Each existing reference was counted in a debug build's total,
        // and no decref of an immortal is: take them out now.
        runtime::dec_ref_total(references);
        if register {
            registry::record(op);
        }
    }
    Ok(Outcome::Made)
}

/// Makes `op` immortal if the calling thread may, even when `op` is not
/// uniquely referenced. Idempotent.
///
/// - Returns 1 if `op` is immortal when the call returns (made immortal
///   now, or immortal already), 0 if it was refused. Never sets an
///   exception; [`pyimmortal_ImmortalizeChecked`] says why.
/// - `op` is a borrowed reference; references held elsewhere stay valid and
///   never need to be released.
/// - GIL builds (3.12+): the caller holds the GIL; any reference count is
///   accepted.
/// - Free-threaded builds: `op` must be owned by the calling thread, its
///   shared count must be 0 (no reference taken by another thread, no queued
///   or merged state; the weakref flag is allowed), deferred reference
///   counting must be off, and if the owner holds more than one reference no
///   other thread may exist in the interpreter.
/// - Refused everywhere: a mortal `str` (intern it instead; an immortal
///   one is success, like any immortal object); on 3.14+ `dict` and
///   subclasses, which must stay GC-tracked (gh-153051); a GC object whose
///   finalizer (`__del__`, `tp_finalize`) has not run yet, since it may be
///   running from the object's deallocator, where the object must stay
///   GC-tracked; everything on 3.9-3.11, which have no immortal objects.
/// - On success the object leaves the cyclic GC (dicts on 3.12 and 3.13 stay
///   tracked), is never deallocated, and is listed by the registry
///   (`pyimmortal_Registry_*`). On debug builds its references are taken out
///   of the total refcount.
/// - An object that is immortal by CPython's test but not fully encoded
///   (after `Py_SET_REFCNT` with a huge count, for example) is completed.
/// - `op == NULL` returns 0.
///
/// # Safety
/// `op` must be NULL or point to a live Python object, and the calling
/// thread must hold an attached thread state (the GIL on GIL builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_Immortalize(op: *mut PyObject) -> c_int {
    let body = |op: *mut PyObject| {
        // SAFETY: live object, attached thread (this function's contract).
        unsafe { immortalize(op, true) }.is_ok() as c_int
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { object_call(op, 0, body) }
}

/// The checked variant of [`pyimmortal_Immortalize`], in CPython's error
/// convention.
///
/// - Returns 0 on success (made immortal now, or immortal already).
/// - Returns -1 with an exception set otherwise:
///   - `TypeError` for a mortal `str` (the message points to interning)
///     and, on 3.14+, for `dict`;
///   - `RuntimeError` for a GC object whose finalizer has not run yet
///     (it may be running now, from the object's deallocator);
///   - `RuntimeError` on free-threaded builds when the object is owned by
///     another thread, is referenced by other threads, uses deferred
///     reference counting, or has several references while other threads
///     exist;
///   - `NotImplementedError` on CPython 3.9-3.11 (no immortal objects);
///   - `SystemError` for `op == NULL`;
///   - `RuntimeError` when the library was built for another CPython.
/// - `op` is a borrowed reference. Same rules as [`pyimmortal_Immortalize`].
///
/// # Safety
/// `op` must be NULL or point to a live Python object, and the calling
/// thread must hold an attached thread state (the GIL on GIL builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_ImmortalizeChecked(op: *mut PyObject) -> c_int {
    // SAFETY: attached thread and a live `op` (this function's contract);
    // the guard calls `immortalize` only on a non-NULL `op`.
    unsafe {
        checked_call(op, |op| {
            immortalize(op, true).map(|_| ()).map_err(Refusal::error)
        })
    }
}
