//! Calls into the running CPython: thin wrappers over [`crate::ffi`] that
//! state what each call requires, functions looked up at run time, and the
//! check that the running interpreter is the one the library was built for
//! ([`runtime`]).
//!
//! This layer knows no layout or version fact; those live in
//! [`crate::refcount`], which calls down into this one.

pub mod runtime;

use crate::ffi::{self, PyObject};
use std::ffi::{c_int, c_ulong, c_void};

/// The exceptions pyimmortal raises.
#[derive(Debug, Clone, Copy)]
pub enum Exception {
    TypeError,
    RuntimeError,
    SystemError,
    NotImplementedError,
}

/// `PyErr_SetString(exc, msg)`.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn set_error(exc: Exception, msg: &std::ffi::CStr) {
    // SAFETY: attached thread (caller's contract); the exception objects
    // are set up by the interpreter's initialization and never change.
    unsafe {
        let e = match exc {
            Exception::TypeError => ffi::PyExc_TypeError,
            Exception::RuntimeError => ffi::PyExc_RuntimeError,
            Exception::SystemError => ffi::PyExc_SystemError,
            Exception::NotImplementedError => ffi::PyExc_NotImplementedError,
        };
        ffi::PyErr_SetString(e, msg.as_ptr());
    }
}

/// Whether an exception is set.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn error_occurred() -> bool {
    // SAFETY: attached thread (caller's contract).
    unsafe { !ffi::PyErr_Occurred().is_null() }
}

/// `PyInterpreterState_GetID(PyInterpreterState_Get())`.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn interpreter_id() -> i64 {
    // SAFETY: attached thread (caller's contract), so there is a current
    // interpreter.
    unsafe { ffi::PyInterpreterState_GetID(ffi::PyInterpreterState_Get()) }
}

/// Whether the current interpreter has a thread state other than the
/// calling thread's.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn other_threads_exist() -> bool {
    // SAFETY: attached thread (caller's contract), as these functions
    // require. The public API offers no way to take the lock under which
    // CPython links thread states in and out of this list (`HEAD_LOCK` in
    // `Python/pystate.c`), so the walk never reads through another thread's
    // state: it stops at the first entry that is not the caller's, and the
    // only one it passes to `PyThreadState_Next` is the caller's own, which
    // stays alive while the caller is attached. New thread states are linked
    // in at the head, so "the caller is the head and has no successor" is
    // exactly "no other thread state"; a thread linked in concurrently has
    // run no code yet and holds no reference to the caller's object.
    unsafe {
        let me = ffi::PyThreadState_Get();
        let mut t = ffi::PyInterpreterState_ThreadHead(ffi::PyInterpreterState_Get());
        while !t.is_null() {
            if t != me {
                return true;
            }
            t = ffi::PyThreadState_Next(t);
        }
    }
    false
}

/// `Py_AtExit(func)`: runs `func` at the end of `Py_FinalizeEx`. Returns
/// false when CPython's table of such callbacks is full.
///
/// # Safety
/// The calling thread must be attached: before 3.13, `Py_AtExit` appends to
/// its table without a lock of its own (`Python/pylifecycle.c`), so only the
/// GIL keeps two callers apart.
pub unsafe fn at_exit(func: extern "C" fn()) -> bool {
    // SAFETY: attached thread (caller's contract); `Py_AtExit` only stores
    // the pointer.
    unsafe { ffi::Py_AtExit(Some(func)) == 0 }
}

/// `_Py_ThreadId()` of the calling thread, as the target's headers define it.
#[cfg(Py_GIL_DISABLED)]
pub fn thread_id() -> usize {
    // SAFETY: `_Py_ThreadId()` only reads the thread pointer register (or
    // the address of a thread-local); it needs no thread state.
    unsafe { ffi::pyimmortal_sys_thread_id() }
}

/// `PyType_GetFlags(ty)`.
///
/// # Safety
/// `ty` must point to a live type object.
pub unsafe fn type_flags(ty: *mut PyObject) -> c_ulong {
    // SAFETY: a live type object (caller's contract); the function reads
    // `tp_flags` and needs no thread state.
    unsafe { ffi::PyType_GetFlags(ty) }
}

/// `PyType_GetSlot(ty, slot)`: the slot's function pointer, or NULL.
///
/// # Safety
/// `ty` must point to a live type object and the calling thread must be
/// attached. Static types are accepted from CPython 3.10 on (bpo-41073).
pub unsafe fn type_slot(ty: *mut PyObject, slot: c_int) -> *mut c_void {
    // SAFETY: live type, attached thread, 3.10+ for static types (caller's
    // contract).
    unsafe { ffi::PyType_GetSlot(ty, slot) }
}

/// Takes `op` out of the cyclic GC if it is tracked, as `_Py_SetImmortal`
/// does before writing the immortal encoding (`Objects/object.c` 3.13+).
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn gc_untrack(op: *mut PyObject) {
    // SAFETY: live object, attached thread (caller's contract).
    unsafe {
        if ffi::PyObject_GC_IsTracked(op) != 0 {
            ffi::PyObject_GC_UnTrack(op.cast());
        }
    }
}

/// `PyObject_GC_IsFinalized(op)`: whether the GC marked `op` finalized.
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn gc_is_finalized(op: *mut PyObject) -> bool {
    // SAFETY: live object, attached thread (caller's contract).
    unsafe { ffi::PyObject_GC_IsFinalized(op) != 0 }
}

/// `major.minor` of the running interpreter, from `Py_GetVersion()`.
///
/// # Safety
/// The calling thread must be attached: on 3.9 and 3.10, where pyimmortal
/// uses it, `Py_GetVersion` formats its result into a static buffer on every
/// call (`Python/getversion.c`), so only the GIL keeps two callers apart.
pub unsafe fn running_minor() -> Option<u32> {
    // SAFETY: attached thread (caller's contract); the result is a
    // NUL-terminated string in a static buffer.
    let text = unsafe { std::ffi::CStr::from_ptr(ffi::Py_GetVersion()) };
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
