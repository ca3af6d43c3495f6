//! Facts shared by every target (type flags and slot numbers, the same on
//! CPython 3.9 to 3.15), and the type checks built on them.

use super::type_of;
use crate::cpython;
use crate::ffi::PyObject;
use core::ffi::{c_int, c_ulong};

crate::layout::facts! {
    /// `Py_TPFLAGS_HAVE_GC` (`Include/object.h`).
    TPFLAGS_HAVE_GC: c_ulong = 1 << 14 => "Py_TPFLAGS_HAVE_GC";
    /// `Py_TPFLAGS_UNICODE_SUBCLASS` (`Include/object.h`).
    TPFLAGS_UNICODE_SUBCLASS: c_ulong = 1 << 28 => "Py_TPFLAGS_UNICODE_SUBCLASS";
    /// `Py_TPFLAGS_TUPLE_SUBCLASS` (`Include/object.h`).
    TPFLAGS_TUPLE_SUBCLASS: c_ulong = 1 << 26 => "Py_TPFLAGS_TUPLE_SUBCLASS";
    /// `Py_TPFLAGS_DICT_SUBCLASS` (`Include/object.h`).
    TPFLAGS_DICT_SUBCLASS: c_ulong = 1 << 29 => "Py_TPFLAGS_DICT_SUBCLASS";
    /// `Py_tp_finalize`, the slot number for `PyType_GetSlot` (`Include/typeslots.h`).
    TP_FINALIZE_SLOT: c_int = 80 => "Py_tp_finalize";
    /// `Py_tp_traverse`, the slot number for `PyType_GetSlot` (`Include/typeslots.h`).
    TP_TRAVERSE_SLOT: c_int = 71 => "Py_tp_traverse";
}

/// `PyType_IS_GC(ty)`.
///
/// # Safety
/// `ty` must point to a live type object.
pub unsafe fn type_is_gc(ty: *mut PyObject) -> bool {
    // SAFETY: a live type object (caller's contract).
    unsafe { cpython::type_flags(ty) & TPFLAGS_HAVE_GC != 0 }
}

/// `PyDict_Check(op)`: `dict` or a subclass.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn is_dict(op: *mut PyObject) -> bool {
    // SAFETY: a live object has a live type.
    unsafe { cpython::type_flags(type_of(op)) & TPFLAGS_DICT_SUBCLASS != 0 }
}

/// `PyTuple_Check(op)`: `tuple` or a subclass.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn is_tuple(op: *mut PyObject) -> bool {
    // SAFETY: a live object has a live type.
    unsafe { cpython::type_flags(type_of(op)) & TPFLAGS_TUPLE_SUBCLASS != 0 }
}

/// `PyUnicode_Check(op)`: `str` or a subclass.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn is_str(op: *mut PyObject) -> bool {
    // SAFETY: a live object has a live type.
    unsafe { cpython::type_flags(type_of(op)) & TPFLAGS_UNICODE_SUBCLASS != 0 }
}

/// Whether `op` is a GC object whose type has a finalizer (`tp_finalize`,
/// `__del__` for classes) that has not finished running on it.
///
/// CPython marks a GC object finalized only after `tp_finalize` returns
/// when the finalizer runs from the deallocator (`PyObject_CallFinalizer`
/// in `Objects/object.c`, 3.9 to 3.15), but before it runs when the cyclic
/// GC calls it (`finalize_garbage` in `Python/gc.c` and
/// `Python/gc_free_threading.c`). So `true` covers an object whose
/// finalizer was never called and one whose finalizer is running now from
/// its deallocator; `false` covers one whose finalizer has run, or is
/// running from the collector, where resurrection is legal.
///
/// # Safety
/// `op` must point to a live object and the calling thread must be
/// attached. Only for CPython 3.10+, where `PyType_GetSlot` accepts static
/// types.
pub unsafe fn finalizer_pending(op: *mut PyObject) -> bool {
    // SAFETY: a live object has a live type; attached thread (caller's
    // contract); only reached on 3.12+ (immortality exists).
    unsafe {
        let ty = type_of(op);
        type_is_gc(ty)
            && !cpython::type_slot(ty, TP_FINALIZE_SLOT).is_null()
            && !cpython::gc_is_finalized(op)
    }
}
