//! Beyond CPython: make immortal an object that the calling thread owns,
//! whatever its reference count, idempotently, with a checked variant.

use crate::api::registry;
use crate::cpython::{self, runtime};
use crate::ffi::PyObject;
use crate::guard::{checked_call, object_call};
use crate::refcount::{self, Reach, Refusal};
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
/// `register`, an object made immortal enters the registry. `reach` is what
/// the caller vouches for about other threads (see [`Reach`]).
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached. With
/// [`Reach::Unpublished`], no other thread may hold or be able to read a
/// reference to `op`.
pub unsafe fn immortalize(
    op: *mut PyObject,
    register: bool,
    reach: Reach,
) -> Result<Outcome, Refusal> {
    if !refcount::HAS_IMMORTALITY {
        return Err(Refusal::NoImmortality);
    }
    // SAFETY: live object, attached thread (caller's contract). Past the
    // HAS_IMMORTALITY check the target is 3.12+, as `finalizer_pending`
    // requires. `write_immortal` runs right after `owned_references`
    // accepted `op` (for the `reach` the caller vouches for), with nothing
    // in between that could hand `op` to another thread, as each target's
    // contract asks; `op` may be shared, and may stay tracked (dicts where
    // DICTS_CAN_BE_IMMORTAL allows them, objects whose finalizer may run).
    unsafe {
        let dict = refcount::is_dict(op);
        // The last Py_DECREF runs tp_finalize (`__del__`) through
        // PyObject_CallFinalizerFromDealloc (Objects/object.c), which
        // requires a GC object that its finalizer resurrected to still be
        // tracked when the finalizer returns: debug builds assert it
        // (3.13.0rc2 line 528; 3.14.7 line 610, right after the finalizer
        // since gh-130202). The finalizer may be running right now, and may
        // be what called this function, so such an object is made immortal
        // but left tracked. Then the deallocator never runs again, and
        // neither does the finalizer. The 3.12 and 3.13 collectors keep
        // tracked immortal objects (`update_refs` moves them to the
        // permanent generation, Python/gc.c 3.13.0rc2 line 488); the 3.14
        // one untracks them when it next meets them (Python/gc.c 3.14.7
        // line 400).
        // On free-threaded builds an immortal object must not stay tracked
        // (TRACKED_IMMORTALS_SURVIVE), so there such an object is refused.
        let finalizer_pending = refcount::finalizer_pending(op);
        let keep_tracked = dict || (finalizer_pending && refcount::TRACKED_IMMORTALS_SURVIVE);
        if refcount::is_immortal(op) {
            refcount::normalize_immortal(op);
            if !keep_tracked {
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
        if finalizer_pending && !refcount::TRACKED_IMMORTALS_SURVIVE {
            return Err(Refusal::FinalizerPending);
        }
        let references = refcount::owned_references(op, reach)?;
        if !keep_tracked {
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
/// - Free-threaded builds: `op` must be owned by the calling thread.
///   - Deferred reference counting off: its shared count must be 0 (no
///     reference taken by another thread, no queued or merged state; the
///     weakref flag is allowed), and if the owner holds more than one
///     reference no other thread may exist in the interpreter.
///   - Deferred reference counting on (heap types, functions, modules,
///     enums): on 3.14t and later any count is accepted, other threads or
///     not, unless references are queued or merged; on 3.13t, while no
///     other thread exists (CPython makes deferred objects immortal itself
///     when one starts).
/// - Refused everywhere: a mortal `str` (intern it instead; an immortal
///   one is success, like any immortal object); on 3.14+ `dict` and
///   subclasses, which must stay GC-tracked (gh-153051); everything on
///   3.9-3.11, which have no immortal objects.
/// - Refused on free-threaded builds: a GC object whose finalizer has not
///   run (see below), since a tracked object does not stay immortal there.
/// - On success the object leaves the cyclic GC, is never deallocated, and
///   is listed by the registry (`pyimmortal_Registry_*`). Two kinds stay
///   tracked: dicts on 3.12, 3.13 and 3.13t, and, on GIL builds, GC objects
///   whose finalizer (`__del__`, `tp_finalize`: generators, coroutines, io
///   objects) has not run, since it may be running from the object's
///   deallocator, which requires the object to be tracked when the
///   finalizer returns; the finalizer then never runs again. The 3.14
///   collector untracks them at its next pass. On debug builds the
///   object's references are taken out of the total refcount.
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
        unsafe { immortalize(op, true, Reach::Any) }.is_ok() as c_int
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
///   - `RuntimeError` on free-threaded builds when the object is owned by
///     another thread, is referenced by other threads, has several
///     references while other threads exist, or (3.13t) uses deferred
///     reference counting while other threads exist;
///   - `RuntimeError` on free-threaded builds for a GC object whose
///     finalizer has not run;
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
            immortalize(op, true, Reach::Any)
                .map(|_| ())
                .map_err(Refusal::error)
        })
    }
}

/// [`pyimmortal_ImmortalizeChecked`] for an object that the calling thread
/// has not published yet: one that no other thread holds a reference to or
/// can read one from (not yet stored in a module, a type, a container or
/// any other object that another thread can reach). Meant for objects made
/// while other threads run, such as a type created lazily on first use:
/// its MRO tuple and caches already reference it, so
/// [`pyimmortal_ImmortalizeChecked`] would refuse it then.
///
/// - Returns 0 on success (made immortal now, or immortal already), -1 with
///   an exception set otherwise, exactly as [`pyimmortal_ImmortalizeChecked`].
/// - GIL builds: the same as [`pyimmortal_ImmortalizeChecked`].
/// - Free-threaded builds: the rule on other threads is lifted, and the rest
///   is checked as there: `op` must be owned by the calling thread, and its
///   shared count must be 0 (above the deferred bias for a deferred object
///   on 3.14t+; the weakref flag is allowed). A 3.13t deferred object is
///   still refused while other threads exist.
/// - The caller's obligation, which no check can see: until this call
///   returns, no other thread holds or can obtain a reference to `op`. A
///   violation is a data race on the object's header.
/// - `op` is a borrowed reference. The object enters the registry.
///
/// # Safety
/// `op` must be NULL or point to a live Python object that no other thread
/// holds or can obtain a reference to until the call returns, and the
/// calling thread must hold an attached thread state (the GIL on GIL
/// builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_ImmortalizeUnpublished(op: *mut PyObject) -> c_int {
    // SAFETY: attached thread, a live `op` that no other thread can reach
    // (this function's contract); the guard calls `immortalize` only on a
    // non-NULL `op`.
    unsafe {
        checked_call(op, |op| {
            immortalize(op, true, Reach::Unpublished)
                .map(|_| ())
                .map_err(Refusal::error)
        })
    }
}
