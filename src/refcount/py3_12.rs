//! CPython 3.12 and 3.13, GIL builds (PEP 683, gh-84436).
//!
//! `ob_refcnt` is a union of `Py_ssize_t ob_refcnt` and
//! `uint32_t ob_refcnt_split[2]` (`Include/object.h`). An object is immortal
//! when the low 32 bits, read as `int32_t`, are negative (`_Py_IsImmortal`);
//! immortalization stores `_Py_IMMORTAL_REFCNT` into the whole word
//! (`_Py_SetImmortalUntracked`, `Objects/object.c` 3.13).

use super::head;
use crate::ffi::PyObject;

crate::layout::object_head! {
    /// `PyObject` in CPython 3.12-3.13 on 64-bit little-endian machines,
    /// `Include/object.h`. `ob_refcnt` is a union whose `ob_refcnt_split[0]`
    /// is the low half of the word.
    pub struct ObjectHead {
        pub ob_refcnt: isize => __bindgen_anon_1.ob_refcnt,
        pub ob_type: *mut PyObject,
    }
}

crate::layout::facts! {
    /// `_Py_IMMORTAL_REFCNT` on 64-bit builds: `UINT_MAX` (`Include/object.h` 3.12 and
    /// 3.13; removed in 3.14 by gh-125174).
    IMMORTAL_REFCNT: isize = u32::MAX as isize => "_Py_IMMORTAL_REFCNT";
    /// Immortal objects exist from 3.12 on (PEP 683, gh-84436).
    HAS_IMMORTALITY: bool = true => "PY_VERSION_HEX >= 0x030C0000";
    /// The 3.12 and 3.13 GC keeps immortals tracked (in the permanent generation), so a
    /// dict is made immortal and left tracked, as dicts must stay (`dict_merge_api`
    /// asserts it, gh-153051).
    DICTS_CAN_BE_IMMORTAL: bool = true => "PY_VERSION_HEX < 0x030E0000";
    /// An immortal object may stay tracked: the collector moves it to the permanent
    /// generation and writes nothing into its refcount (`update_refs`, `Python/gc.c`
    /// 3.13.0rc2 line 488).
    TRACKED_IMMORTALS_SURVIVE: bool = true => "PY_VERSION_HEX >= 0x030C0000";
}

/// `_Py_IsImmortal`: `(int32_t)op->ob_refcnt < 0`.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn is_immortal(op: *mut PyObject) -> bool {
    // SAFETY: live object, GIL held.
    let refcnt = unsafe { (*head(op)).ob_refcnt };
    (refcnt as i32) < 0
}

/// `Py_REFCNT(op) == 1`; `Py_REFCNT` returns the whole word in 3.12-3.13.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL.
pub unsafe fn is_uniquely_referenced(op: *mut PyObject) -> bool {
    // SAFETY: live object, GIL held.
    unsafe { (*head(op)).ob_refcnt == 1 }
}

/// Stores `_Py_IMMORTAL_REFCNT` into the whole refcount word.
///
/// The object may hold several references (`pyimmortal_Immortalize` accepts
/// any count under the GIL) and may still be GC-tracked (it leaves dicts
/// tracked; the 3.12 and 3.13 GC keeps immortals tracked). Every reference
/// stays valid, since an immortal object is never freed, and a later decref
/// through any of them leaves it immortal.
///
/// # Safety
/// `op` must point to a live object and the caller must hold the GIL, so
/// that no other thread reads or writes `ob_refcnt` during the store.
pub unsafe fn write_immortal(op: *mut PyObject) {
    // SAFETY: live object, and the GIL keeps every other thread off the
    // word (caller's contract).
    unsafe { (*head(op)).ob_refcnt = IMMORTAL_REFCNT }
}

/// GIL builds have no deferred reference counting.
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
    Ok(unsafe { (*head(op)).ob_refcnt })
}

/// Restores the canonical encoding of an object that is immortal by the
/// `_Py_IsImmortal` test but holds another value (for example after
/// `Py_SET_REFCNT(op, 1 << 31)`, or increfs from pre-3.12 binaries that
/// carried into the high half).
///
/// # Safety
/// `op` must point to a live, immortal object and the caller must hold the
/// GIL.
pub unsafe fn normalize_immortal(op: *mut PyObject) {
    // SAFETY: live object, and the GIL keeps every other thread off the
    // word (caller's contract).
    unsafe {
        if (*head(op)).ob_refcnt != IMMORTAL_REFCNT {
            (*head(op)).ob_refcnt = IMMORTAL_REFCNT;
        }
    }
}
