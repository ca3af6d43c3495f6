//! The one guard every exported function goes through.
//!
//! In order: a NULL `op` gets the function's "did nothing" result, and so
//! does a library built for another CPython than the running one (see
//! [`crate::cpython::runtime::target_matches`]). Both checks are a compare
//! and a load, inlined into every export.
//!
//! No code behind the guard panics; with `panic = "abort"` (the library's
//! build) a panic would end the process, never unwind into C.

use crate::cpython::{self, runtime, Exception};
use crate::ffi::PyObject;
use core::ffi::{c_int, CStr};

/// Runs `body` if the library matches the running interpreter, else
/// returns `refused`.
///
/// # Safety
/// The calling thread must be attached (the target check may call into the
/// interpreter).
#[inline(always)]
pub unsafe fn call<T>(refused: T, body: impl FnOnce() -> T) -> T {
    // SAFETY: attached thread (caller's contract).
    if unsafe { runtime::target_matches() } {
        body()
    } else {
        refused
    }
}

/// Runs `body` on a non-NULL `op`, or returns `refused`.
///
/// # Safety
/// The calling thread must be attached, as for [`call`].
#[inline(always)]
pub unsafe fn object_call(
    op: *mut PyObject,
    refused: c_int,
    body: impl FnOnce(*mut PyObject) -> c_int,
) -> c_int {
    if op.is_null() {
        return refused;
    }
    // SAFETY: attached thread (caller's contract).
    unsafe { call(refused, || body(op)) }
}

/// The guard for functions in CPython's error convention: runs `body` on a
/// non-NULL `op` and returns 0, or returns -1 with an exception set: the
/// body's own, `SystemError` for NULL, `RuntimeError` for a library built
/// for another CPython.
///
/// # Safety
/// The calling thread must be attached (exceptions are set).
pub unsafe fn checked_call(
    op: *mut PyObject,
    body: impl FnOnce(*mut PyObject) -> Result<(), (Exception, &'static CStr)>,
) -> c_int {
    let outcome = if op.is_null() {
        Err((Exception::SystemError, c"pyimmortal: NULL object"))
    // SAFETY: attached thread (caller's contract).
    } else if unsafe { runtime::target_matches() } {
        body(op)
    } else {
        Err((
            Exception::RuntimeError,
            c"pyimmortal: the library was built for another CPython version or flavor",
        ))
    };
    match outcome {
        Ok(()) => 0,
        Err((exc, msg)) => {
            // SAFETY: attached thread (caller's contract).
            unsafe { cpython::set_error(exc, msg) };
            -1
        }
    }
}

/// The guard for functions without an object argument in CPython's error
/// convention: runs `body` and returns its value, or returns `failed` with an
/// exception set: the one `body` names, or `RuntimeError` for a library
/// built for another CPython. (A `body` that returns `Ok(failed)` has set its
/// exception itself.)
///
/// # Safety
/// The calling thread must be attached (exceptions are set).
pub unsafe fn checked<T>(
    failed: T,
    body: impl FnOnce() -> Result<T, (Exception, &'static CStr)>,
) -> T {
    // SAFETY: attached thread (caller's contract).
    let outcome = if unsafe { runtime::target_matches() } {
        body()
    } else {
        Err((
            Exception::RuntimeError,
            c"pyimmortal: the library was built for another CPython version or flavor",
        ))
    };
    match outcome {
        Ok(v) => v,
        Err((exc, msg)) => {
            // SAFETY: attached thread (caller's contract).
            unsafe { cpython::set_error(exc, msg) };
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    #[test]
    fn null_is_refused_without_running_the_body() {
        let mut ran = false;
        // SAFETY: a NULL `op` returns before anything calls the interpreter.
        let r = unsafe {
            object_call(ptr::null_mut(), 0, |_| {
                ran = true;
                1
            })
        };
        assert_eq!(r, 0);
        assert!(!ran);
    }

    #[test]
    fn the_body_runs_on_the_built_target() {
        let mut dummy = 0u64;
        let op = (&raw mut dummy).cast::<PyObject>();
        // SAFETY: attached thread (with_python); the body never reads `op`.
        with_python(|| unsafe {
            assert!(
                runtime::target_matches(),
                "unit tests link the target's libpython"
            );
            assert_eq!(object_call(op, 0, |p| (p == op) as c_int), 1);
        });
    }

    /// Runs `f` with an initialized interpreter and an attached thread
    /// state; the unit tests link the target's libpython.
    fn with_python<R>(f: impl FnOnce() -> R) -> R {
        use core::ffi::c_void;
        use std::sync::Once;
        extern "C" {
            fn Py_InitializeEx(initsigs: c_int);
            fn PyEval_SaveThread() -> *mut c_void;
            fn PyGILState_Ensure() -> c_int;
            fn PyGILState_Release(state: c_int);
        }
        static INIT: Once = Once::new();
        // SAFETY: initialization once, then the GIL (or attachment) is
        // taken per call with the GILState API.
        unsafe {
            INIT.call_once(|| {
                Py_InitializeEx(0);
                PyEval_SaveThread();
            });
            let state = PyGILState_Ensure();
            let r = f();
            PyGILState_Release(state);
            r
        }
    }

    extern "C" {
        fn PyErr_ExceptionMatches(exc: *mut PyObject) -> c_int;
        fn PyErr_Clear();
        static mut PyExc_SystemError: *mut PyObject;
        static mut PyExc_TypeError: *mut PyObject;
    }

    /// Whether the pending exception is `exc`; clears it.
    ///
    /// # Safety
    /// The calling thread must be attached.
    unsafe fn take_error(exc: *mut PyObject) -> bool {
        // SAFETY: attached thread (caller's contract).
        unsafe {
            let matches = cpython::error_occurred() && PyErr_ExceptionMatches(exc) != 0;
            PyErr_Clear();
            matches
        }
    }

    #[test]
    fn checked_call_follows_cpython_error_convention() {
        // SAFETY: attached thread (with_python); the bodies never read `op`.
        with_python(|| unsafe {
            let mut dummy = 0u64;
            let op = (&raw mut dummy).cast::<PyObject>();

            assert_eq!(checked_call(op, |_| Ok(())), 0);
            assert!(!cpython::error_occurred());

            assert_eq!(checked_call(ptr::null_mut(), |_| Ok(())), -1);
            assert!(take_error(PyExc_SystemError), "NULL gives SystemError");

            let r = checked_call(op, |_| Err((Exception::TypeError, c"refused")));
            assert_eq!(r, -1);
            assert!(take_error(PyExc_TypeError), "the body's exception is set");
        });
    }
}
