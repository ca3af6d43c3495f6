//! CPython 3.9, 3.10 and 3.11 (GIL builds only).
//!
//! `PyObject` is `{ Py_ssize_t ob_refcnt; PyTypeObject *ob_type; }`
//! (`Include/object.h`). `Py_TRACE_REFS` builds prepend two pointers and are
//! refused by the layout check. These versions have no immortal objects: PEP 683
//! (gh-84436) arrived in 3.12.

use super::head;
use crate::ffi::PyObject;

crate::layout::object_head! {
    /// `PyObject` in CPython 3.9-3.11, `Include/object.h`.
    pub struct ObjectHead {
        pub ob_refcnt: isize,
        pub ob_type: *mut PyObject,
    }
}

crate::layout::facts! {
    /// No immortality before 3.12 (PEP 683, gh-84436).
    HAS_IMMORTALITY: bool = false => "PY_VERSION_HEX >= 0x030C0000";
    /// Never consulted: nothing can be made immortal before 3.12.
    DICTS_CAN_BE_IMMORTAL: bool = true => "PY_VERSION_HEX < 0x030E0000";
    /// Never consulted: nothing can be made immortal before 3.12.
    TRACKED_IMMORTALS_SURVIVE: bool = false => "PY_VERSION_HEX >= 0x030C0000";
}

/// Always false: nothing is immortal before 3.12.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn is_immortal(_op: *mut PyObject) -> bool {
    false
}

/// `Py_REFCNT(op) == 1`.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn is_uniquely_referenced(op: *mut PyObject) -> bool {
    // SAFETY: live object, GIL held.
    unsafe { (*head(op)).ob_refcnt == 1 }
}

/// Never called: there is no immortal encoding to write, and callers check
/// [`HAS_IMMORTALITY`] first. Panics.
///
/// # Safety
/// None; the signature is that of the other targets.
pub unsafe fn write_immortal(_op: *mut PyObject) {
    unreachable!("CPython before 3.12 has no immortal objects")
}

/// GIL builds have no deferred reference counting.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn enable_deferred(_op: *mut PyObject) -> bool {
    false
}

/// References to remove from a debug build's total when immortalizing.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn owned_references(
    _op: *mut PyObject,
    _reach: super::Reach,
) -> Result<isize, super::Refusal> {
    Err(super::Refusal::NoImmortality)
}

/// Nothing is immortal before 3.12: does nothing.
///
/// # Safety
/// None; the signature is that of the other targets.
pub unsafe fn normalize_immortal(_op: *mut PyObject) {}
