//! The registry of objects that pyimmortal made immortal.
//!
//! Leak checkers can tell intended immortals from leaks with it. Entries are
//! kept per interpreter (by `PyInterpreterState_GetID`); interpreter IDs are
//! not reused while the runtime lives. The registry belongs to this copy of
//! the library: two extensions that each link `libpyimmortal.a` keep two
//! registries. At the end of `Py_FinalizeEx` (through `Py_AtExit`) the
//! registry is emptied, so that an embedding application that initializes
//! Python again never sees objects of the previous runtime.

use crate::cpython::{self, visitproc, Exception, PyObject};
use crate::guard;
use std::ffi::{c_int, c_void};
use std::panic::catch_unwind;
use std::sync::{Mutex, Once};

/// `Py_ssize_t`; the header uses `Python.h`'s.
pub type Py_ssize_t = isize;

struct Entry {
    object: usize,
    interpreter: i64,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

fn entries() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn clear_at_exit() {
    let _ = catch_unwind(|| {
        let mut e = entries();
        e.clear();
        e.shrink_to_fit();
    });
}

/// Records `op`, made immortal by this library in the current interpreter.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn record(op: *mut PyObject) {
    AT_EXIT.call_once(|| {
        cpython::at_exit(clear_at_exit);
    });
    // SAFETY: attached thread.
    let interpreter = unsafe { cpython::interpreter_id() };
    entries().push(Entry {
        object: op as usize,
        interpreter,
    });
}

/// Runs `f` over the registered objects of the current interpreter, under
/// the registry's lock (so `f` must not call back into Python).
///
/// # Safety
/// The calling thread must be attached.
unsafe fn with_current<R>(f: impl FnOnce(&mut dyn Iterator<Item = *mut PyObject>) -> R) -> R {
    // SAFETY: attached thread.
    let interpreter = unsafe { cpython::interpreter_id() };
    let entries = entries();
    let mut objects = entries
        .iter()
        .filter(|e| e.interpreter == interpreter)
        .map(|e| e.object as *mut PyObject);
    f(&mut objects)
}

/// Number of objects that this copy of pyimmortal made immortal (with
/// `pyimmortal_Immortalize` or `pyimmortal_ImmortalizeChecked`) in the
/// current interpreter.
///
/// - Returns the count (0 or more). Never sets an exception.
/// - Requires an attached thread state.
/// - Objects that were immortal already when passed in are not counted.
#[no_mangle]
pub extern "C" fn pyimmortal_Registry_Count() -> Py_ssize_t {
    // SAFETY: attached thread, per the contract.
    guard::call(0, || unsafe { with_current(|objects| objects.count()) }
        as Py_ssize_t)
}

/// Calls `visit(obj, arg)` for every registered object of the current
/// interpreter, in the order they were made immortal, like a
/// `tp_traverse` visit.
///
/// - Each `obj` is a borrowed reference, valid for the life of the process
///   (immortal objects are never freed).
/// - If `visit` returns non-zero, the walk stops and that value is returned;
///   otherwise returns 0. Sets no exception itself.
/// - `visit == NULL` returns -1 with `SystemError` set.
/// - `visit` may call pyimmortal functions, including this one.
/// - Requires an attached thread state.
///
/// # Safety
/// `visit` must be NULL or a valid function; it receives `arg` unchanged.
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_Registry_Visit(visit: visitproc, arg: *mut c_void) -> c_int {
    let Some(visit) = visit else {
        // SAFETY: attached thread, per the contract.
        unsafe {
            cpython::set_error(
                Exception::SystemError,
                c"pyimmortal_Registry_Visit: visit is NULL",
            )
        };
        return -1;
    };
    // SAFETY: attached thread, per the contract.
    // The visits run after the lock is released: `visit` may call back.
    let objects: Vec<_> = guard::call(Vec::new(), || unsafe {
        with_current(|objects| objects.collect())
    });
    for obj in objects {
        // SAFETY: a C callback with the visitproc signature.
        let r = unsafe { visit(obj, arg) };
        if r != 0 {
            return r;
        }
    }
    0
}

/// Whether `op` is in the registry of the current interpreter.
///
/// - Returns 1 or 0; `op == NULL` returns 0. Never sets an exception.
/// - Requires an attached thread state.
///
/// # Safety
/// `op` is only compared, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_Registry_Contains(op: *mut PyObject) -> c_int {
    if op.is_null() {
        return 0;
    }
    // SAFETY: attached thread, per the contract.
    guard::call(0, || unsafe {
        with_current(|mut objects| Iterator::any(&mut objects, |o| o == op))
    } as c_int)
}
