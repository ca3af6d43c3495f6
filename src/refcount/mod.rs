//! The object header and refcount encoding of each CPython target.
//!
//! Exactly one module below is compiled, chosen by the cfgs that `build.rs`
//! derives from the target interpreter. Each one is the single home of the
//! layout facts and constants for its versions, with the CPython header and
//! issue each fact comes from. `src/cpython/oracle.rs` checks every layout
//! and constant here against bindgen's reading of the real headers.
//!
//! Every module offers the same items:
//! - `ObjectHead`: the `PyObject` header, field for field;
//! - `HAS_IMMORTALITY`: whether the version has immortal objects at all;
//! - `is_immortal`, `is_uniquely_referenced`: CPython's predicates;
//! - `write_immortal`: store the immortal encoding into an object that the
//!   caller has checked is uniquely referenced and GC-untracked;
//! - `enable_deferred`: turn on deferred reference counting, or refuse.

#[cfg(not(Py_3_12))]
#[path = "py3_9.rs"]
mod imp;

#[cfg(all(Py_3_12, not(Py_3_14), not(Py_GIL_DISABLED)))]
#[path = "py3_12.rs"]
mod imp;

#[cfg(all(Py_3_14, not(Py_GIL_DISABLED)))]
#[path = "py3_14.rs"]
mod imp;

#[cfg(Py_GIL_DISABLED)]
#[path = "ft.rs"]
mod imp;

pub use imp::*;

use crate::ffi::PyObject;

/// `Py_TYPE(op)`.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn type_of(op: *mut PyObject) -> *mut PyObject {
    // SAFETY: the caller passes a live object; `ob_type` is at the offset
    // the oracle verified for this target.
    unsafe { (*op.cast::<ObjectHead>()).ob_type }
}

/// Casts a `PyObject *` to this target's header.
pub(crate) fn head(op: *mut PyObject) -> *mut ObjectHead {
    op.cast()
}

/// Why pyimmortal refuses to make an object immortal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// CPython before 3.12 has no immortal objects.
    NoImmortality,
    /// `str` and subclasses: an immortal string must be interned.
    Str,
    /// A type whose objects break when untracked by the GC.
    TypeCannotBeImmortal,
    /// Free-threaded: the object is owned by another thread.
    NotOwned,
    /// Free-threaded: other threads hold references (shared count or flags).
    SharedWithThreads,
    /// Free-threaded: more than one reference while other threads exist.
    OtherThreadsExist,
    /// Free-threaded: deferred reference counting is on.
    Deferred,
    /// A GC object whose finalizer has not finished: it may be running from
    /// the object's deallocator, where the object must stay GC-tracked.
    FinalizerPending,
}
