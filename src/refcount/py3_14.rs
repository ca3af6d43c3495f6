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
use crate::ffi::PyObject;

crate::layout::object_head! {
    /// `PyObject` in CPython 3.14-3.15 on 64-bit little-endian machines,
    /// `Include/object.h`: the refcount word is a union of `ob_refcnt_full`
    /// and the struct of the first three fields.
    pub struct ObjectHead {
        pub ob_refcnt: u32 => __bindgen_anon_1.__bindgen_anon_1.ob_refcnt,
        pub ob_overflow: u16 => __bindgen_anon_1.__bindgen_anon_1.ob_overflow,
        pub ob_flags: u16 => __bindgen_anon_1.__bindgen_anon_1.ob_flags,
        pub ob_type: *mut PyObject,
    }
}

crate::layout::facts! {
    /// `_Py_IMMORTAL_INITIAL_REFCNT`: `3ULL << 30` (`Include/refcount.h`, gh-125174).
    IMMORTAL_INITIAL_REFCNT: u32 = 3 << 30 => "_Py_IMMORTAL_INITIAL_REFCNT";
    /// `_Py_IMMORTAL_MINIMUM_REFCNT`: `1ULL << 31` (`Include/refcount.h`).
    IMMORTAL_MINIMUM_REFCNT: u32 = 1 << 31 => "_Py_IMMORTAL_MINIMUM_REFCNT";
    /// `_Py_IMMORTAL_FLAGS`: bit 0 of `ob_flags` (`Include/refcount.h` in 3.14,
    /// `Include/object.h` in 3.15).
    IMMORTAL_FLAGS: u16 = 1 => "_Py_IMMORTAL_FLAGS";
    /// `_Py_STATICALLY_ALLOCATED_FLAG` (`Include/refcount.h` 3.14, `Include/object.h`
    /// 3.15).
    STATICALLY_ALLOCATED_FLAG: u16 = 4 => "_Py_STATICALLY_ALLOCATED_FLAG";
    /// Immortal objects exist from 3.12 on (PEP 683, gh-84436).
    HAS_IMMORTALITY: bool = true => "PY_VERSION_HEX >= 0x030C0000";
    /// Dicts must stay GC-tracked (`dict_merge_api` asserts it, gh-153051), and the 3.14+
    /// GC untracks every immortal it meets, so dicts are refused.
    DICTS_CAN_BE_IMMORTAL: bool = false => "PY_VERSION_HEX < 0x030E0000";
    /// An immortal object may stay tracked: the collector untracks it when it meets it
    /// (`update_refs`, `Python/gc.c` 3.14.7 line 400), and no phase writes its refcount.
    TRACKED_IMMORTALS_SURVIVE: bool = true => "PY_VERSION_HEX >= 0x030C0000";
}

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
/// The object may hold several references (`pyimmortal_Immortalize` accepts
/// any count under the GIL). Every reference stays valid, since an immortal
/// object is never freed, and a later decref through any of them leaves it
/// immortal. Both callers untrack the object first: the 3.14 GC untracks
/// the immortals it meets, and dicts, which must stay tracked, are refused.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL, so
/// that no other thread reads or writes the refcount word during the
/// stores.
pub unsafe fn write_immortal(op: *mut PyObject) {
    // SAFETY: live object, and the GIL keeps every other thread off the
    // word (caller's contract).
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

/// Under the GIL the caller may immortalize an object whatever its count;
/// every one of its references was counted in a debug build's total.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn owned_references(
    op: *mut PyObject,
    _reach: super::Reach,
) -> Result<isize, super::Refusal> {
    // SAFETY: live object, GIL held.
    Ok(unsafe { (*head(op)).ob_refcnt } as isize)
}

/// Gives an object that is immortal by the `_Py_IsImmortal` test but lacks
/// `_Py_IMMORTAL_FLAGS` (for example after `Py_SET_REFCNT(op, 1 << 31)`)
/// the full encoding, so that the interpreter's stack references stop
/// counting it (`Include/internal/pycore_stackref.h`). Statically allocated
/// objects are left alone, and an object already fully encoded is only
/// read: an immortal object shared read-only between interpreters with
/// their own GIL may be passed to `pyimmortal_Immortalize` by several of
/// them at once.
///
/// # Safety
/// `op` must point to a live, immortal object and the caller must hold the
/// GIL.
pub unsafe fn normalize_immortal(op: *mut PyObject) {
    // SAFETY: live object, and the GIL keeps every other thread off the
    // word (caller's contract).
    unsafe {
        let h = head(op);
        if (*h).ob_flags & STATICALLY_ALLOCATED_FLAG != 0 {
            return;
        }
        if (*h).ob_flags & IMMORTAL_FLAGS != IMMORTAL_FLAGS {
            (*h).ob_flags |= IMMORTAL_FLAGS;
        }
        if (*h).ob_refcnt < IMMORTAL_INITIAL_REFCNT {
            (*h).ob_refcnt = IMMORTAL_INITIAL_REFCNT;
        }
    }
}
