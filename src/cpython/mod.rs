//! Raw access to the running CPython: the few exported functions pyimmortal
//! calls, functions looked up at run time, and the check that the running
//! interpreter is the one the library was built for.

pub mod oracle;
pub mod runtime;

use std::ffi::{c_int, c_ulong, c_void};

/// CPython's `PyObject`, opaque here: its layout lives in
/// [`crate::refcount::ObjectHead`]. The header uses `Python.h`'s own type.
#[repr(C)]
pub struct PyObject {
    _private: [u8; 0],
}

/// `Py_TPFLAGS_HAVE_GC` (`Include/object.h`).
pub(crate) const TPFLAGS_HAVE_GC: c_ulong = 1 << 14;
/// `Py_TPFLAGS_UNICODE_SUBCLASS` (`Include/object.h`).
pub(crate) const TPFLAGS_UNICODE_SUBCLASS: c_ulong = 1 << 28;

extern "C" {
    // Stable ABI since 3.2.
    fn PyType_GetFlags(ty: *mut PyObject) -> c_ulong;
    // Public since 3.9 (bpo-40241).
    fn PyObject_GC_IsTracked(op: *mut PyObject) -> c_int;
    fn PyObject_GC_UnTrack(op: *mut c_void);
    fn Py_GetVersion() -> *const std::ffi::c_char;
}

#[cfg(Py_GIL_DISABLED)]
extern "C" {
    // src/cpython/thread_id.c
    fn pyimmortal_sys_thread_id() -> usize;
}

/// `_Py_ThreadId()` of the calling thread, as the target's headers define it.
#[cfg(Py_GIL_DISABLED)]
pub fn thread_id() -> usize {
    // SAFETY: a pure read of the thread pointer.
    unsafe { pyimmortal_sys_thread_id() }
}

/// `PyType_IS_GC(ty)`.
///
/// # Safety
/// `ty` must be a live type object.
pub unsafe fn type_is_gc(ty: *mut PyObject) -> bool {
    // SAFETY: live type object.
    unsafe { PyType_GetFlags(ty) & TPFLAGS_HAVE_GC != 0 }
}

/// `PyUnicode_Check(op)`: `str` or a subclass.
///
/// # Safety
/// `op` must be a live object.
pub unsafe fn is_str(op: *mut PyObject) -> bool {
    // SAFETY: live object, hence a live type.
    unsafe { PyType_GetFlags(crate::refcount::type_of(op)) & TPFLAGS_UNICODE_SUBCLASS != 0 }
}

/// Takes `op` out of the cyclic GC if it is tracked, as `_Py_SetImmortal`
/// does before writing the immortal encoding (`Objects/object.c` 3.13+).
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn gc_untrack(op: *mut PyObject) {
    // SAFETY: live object, attached thread.
    unsafe {
        if PyObject_GC_IsTracked(op) != 0 {
            PyObject_GC_UnTrack(op.cast());
        }
    }
}

/// `major.minor` of the running interpreter, from `Py_GetVersion()`.
pub fn running_minor() -> Option<u32> {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may
    // be called at any time.
    let text = unsafe { std::ffi::CStr::from_ptr(Py_GetVersion()) };
    parse_minor(text.to_str().ok()?)
}

/// Parses the minor version out of a `Py_GetVersion()` string.
pub fn parse_minor(version: &str) -> Option<u32> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    if parts.next()? != "3" {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_minor;

    #[test]
    fn parses_version_strings() {
        assert_eq!(parse_minor("3.14.0 (main, Oct 7 2025)"), Some(14));
        assert_eq!(parse_minor("3.9.18 (main)"), Some(9));
        assert_eq!(parse_minor("3.15.0a7+ experimental"), Some(15));
        assert_eq!(parse_minor("2.7.18"), None);
        assert_eq!(parse_minor(""), None);
    }
}
