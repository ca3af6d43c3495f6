//! CPython 3.14 and 3.15, GIL builds (gh-125174, "immortal objects aren't
//! immortal", 3.14.0a1).
//!
//! The refcount word is a union of `int64_t ob_refcnt_full` and
//! `{ uint32_t ob_refcnt; uint16_t ob_overflow; uint16_t ob_flags; }`
//! (`Include/object.h`). Immortals start at `_Py_IMMORTAL_INITIAL_REFCNT`
//! and carry `_Py_IMMORTAL_FLAGS` in `ob_flags` (`Include/refcount.h`); the
//! interpreter's stack references use that flag to skip counting
//! (`Include/internal/pycore_stackref.h`).

use super::head;
use crate::cpython::PyObject;

/// `PyObject` in CPython 3.14-3.15 on 64-bit little-endian machines,
/// `Include/object.h`.
#[repr(C)]
pub struct ObjectHead {
    pub ob_refcnt: u32,
    pub ob_overflow: u16,
    pub ob_flags: u16,
    pub ob_type: *mut PyObject,
}

/// `_Py_IMMORTAL_INITIAL_REFCNT`: `3ULL << 30` (`Include/refcount.h`,
/// gh-125174).
pub(crate) const IMMORTAL_INITIAL_REFCNT: u32 = 3 << 30;
/// `_Py_IMMORTAL_MINIMUM_REFCNT`: `1ULL << 31` (`Include/refcount.h`).
pub(crate) const IMMORTAL_MINIMUM_REFCNT: u32 = 1 << 31;
/// `_Py_IMMORTAL_FLAGS`: bit 0 of `ob_flags` (`Include/refcount.h` in 3.14,
/// `Include/object.h` in 3.15).
pub(crate) const IMMORTAL_FLAGS: u16 = 1;
/// `_Py_STATICALLY_ALLOCATED_FLAG` (`Include/refcount.h` 3.14,
/// `Include/object.h` 3.15).
pub(crate) const STATICALLY_ALLOCATED_FLAG: u16 = 4;

pub(crate) const HAS_IMMORTALITY: bool = true;

/// `_Py_IsImmortal`: `(int32_t)op->ob_refcnt < 0`, i.e. at least
/// `_Py_IMMORTAL_MINIMUM_REFCNT`.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn is_immortal(op: *mut PyObject) -> bool {
    // SAFETY: live object, GIL held.
    unsafe { (*head(op)).ob_refcnt >= IMMORTAL_MINIMUM_REFCNT }
}

/// `Py_REFCNT(op) == 1`; `Py_REFCNT` returns the 32-bit `ob_refcnt`.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn is_uniquely_referenced(op: *mut PyObject) -> bool {
    // SAFETY: live object, GIL held.
    unsafe { (*head(op)).ob_refcnt == 1 }
}

/// Stores `ob_flags = _Py_IMMORTAL_FLAGS` and
/// `ob_refcnt = _Py_IMMORTAL_INITIAL_REFCNT`, as `_Py_SetImmortalUntracked`
/// does (`Objects/object.c` 3.14).
///
/// # Safety
/// `op` must be live, uniquely referenced and untracked; GIL held.
pub unsafe fn write_immortal(op: *mut PyObject) {
    // SAFETY: per the contract above, nobody else reads these fields now.
    unsafe {
        (*head(op)).ob_flags = IMMORTAL_FLAGS;
        (*head(op)).ob_refcnt = IMMORTAL_INITIAL_REFCNT;
    }
}

/// GIL builds have no deferred reference counting
/// (`PyUnstable_Object_EnableDeferredRefcount` returns 0 there).
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn enable_deferred(_op: *mut PyObject) -> bool {
    false
}
