//! The registry of objects that pyimmortal made immortal.
//!
//! Leak checkers can tell intended immortals from leaks with it. Entries are
//! kept per interpreter (by `PyInterpreterState_GetID`); interpreter IDs are
//! not reused while the runtime lives. The registry belongs to this copy of
//! the library: two extensions that each link `libpyimmortal.a` keep two
//! registries.
//!
//! Each interpreter's objects are kept in the order they were made immortal
//! (for `pyimmortal_Registry_Visit`), and a hash set of (object, interpreter)
//! pairs answers `pyimmortal_Registry_Contains` in constant time on average.
//!
//! At the end of `Py_FinalizeEx` the registry is emptied, so that an
//! embedding application that initializes Python again never sees objects of
//! the previous runtime. The emptying is a `Py_AtExit` callback, and CPython
//! forgets its `Py_AtExit` callbacks once it has called them
//! (`call_ll_exitfuncs` in `Python/pylifecycle.c` pops each one), so the
//! callback is registered anew in every runtime: by the first entry recorded
//! while none is registered. The callback itself marks it unregistered. A
//! runtime that records nothing needs no callback, since it leaves the
//! registry empty. If `Py_AtExit` refuses (its table holds 32 callbacks),
//! the next entry tries again.

use crate::cpython::{self, Exception};
use crate::ffi::{visitproc, PyObject, Py_ssize_t};
use crate::guard;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_int, c_void};
use std::panic::catch_unwind;
use std::sync::Mutex;

/// `(object address, interpreter ID)`.
type Key = (usize, i64);

struct Registry {
    /// Per interpreter, its objects in the order they were made immortal.
    ordered: Option<HashMap<i64, Vec<usize>>>,
    /// Every (object, interpreter) pair of `ordered`.
    members: Option<HashSet<Key>>,
    /// Whether `clear_at_exit` is registered with the current runtime.
    at_exit_registered: bool,
}

impl Registry {
    fn ordered(&mut self) -> &mut HashMap<i64, Vec<usize>> {
        self.ordered.get_or_insert_with(HashMap::new)
    }

    fn members(&mut self) -> &mut HashSet<Key> {
        self.members.get_or_insert_with(HashSet::new)
    }

    fn clear(&mut self) {
        self.ordered = None;
        self.members = None;
        self.at_exit_registered = false;
    }
}

// `HashMap::new` is not `const`: the maps are made on first use.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    ordered: None,
    members: None,
    at_exit_registered: false,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs at the end of `Py_FinalizeEx` (registered with `Py_AtExit`).
extern "C" fn clear_at_exit() {
    let _ = catch_unwind(|| registry().clear());
}

/// Records `op`, made immortal by this library in the current interpreter.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn record(op: *mut PyObject) {
    // SAFETY: attached thread (caller's contract).
    let interpreter = unsafe { cpython::interpreter_id() };
    let mut r = registry();
    if !r.at_exit_registered {
        // SAFETY: attached thread (caller's contract). Py_AtExit only stores
        // the pointer; it does not call back, so holding the lock is fine.
        r.at_exit_registered = unsafe { cpython::at_exit(clear_at_exit) };
    }
    let key = (op as usize, interpreter);
    if r.members().insert(key) {
        r.ordered().entry(interpreter).or_default().push(key.0);
    }
}

/// Runs `f` over the registered objects of the current interpreter, in
/// order, under the registry's lock (so `f` must not call back into
/// Python).
///
/// # Safety
/// The calling thread must be attached.
unsafe fn with_current<R>(f: impl FnOnce(&[usize]) -> R) -> R {
    // SAFETY: attached thread (caller's contract).
    let interpreter = unsafe { cpython::interpreter_id() };
    let r = registry();
    let objects = r
        .ordered
        .as_ref()
        .and_then(|m| m.get(&interpreter))
        .map_or(&[][..], Vec::as_slice);
    f(objects)
}

/// Number of objects that this copy of pyimmortal made immortal (with
/// `pyimmortal_Immortalize` or `pyimmortal_ImmortalizeChecked`) in the
/// current interpreter.
///
/// - Returns the count (0 or more). Never sets an exception.
/// - Requires an attached thread state.
/// - Objects that were immortal already when passed in are not counted.
///
/// # Safety
/// The calling thread must hold an attached thread state (the GIL on GIL
/// builds): the count is per interpreter, read from the current one.
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_Registry_Count() -> Py_ssize_t {
    let body = || {
        // SAFETY: attached thread (this function's contract).
        unsafe { with_current(|objects| objects.len()) as Py_ssize_t }
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { guard::call(0, body) }
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
/// The calling thread must hold an attached thread state (the GIL on GIL
/// builds). `visit` must be NULL or a valid function; it receives `arg`
/// unchanged.
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_Registry_Visit(visit: visitproc, arg: *mut c_void) -> c_int {
    let Some(visit) = visit else {
        // SAFETY: attached thread (this function's contract).
        unsafe {
            cpython::set_error(
                Exception::SystemError,
                c"pyimmortal_Registry_Visit: visit is NULL",
            )
        };
        return -1;
    };
    // The visits run after the lock is released: `visit` may call back.
    let body = || {
        // SAFETY: attached thread (this function's contract).
        unsafe { with_current(|objects| objects.to_vec()) }
    };
    // SAFETY: attached thread (this function's contract).
    let objects: Vec<_> = unsafe { guard::call(Vec::new(), body) };
    for obj in objects {
        let obj = obj as *mut PyObject;
        // SAFETY: a valid visitproc (this function's contract), called on a
        // registered object, which is immortal and so still alive.
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
/// - Constant time on average (a hash set lookup).
/// - Requires an attached thread state.
///
/// # Safety
/// The calling thread must hold an attached thread state (the GIL on GIL
/// builds). `op` is only compared, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_Registry_Contains(op: *mut PyObject) -> c_int {
    if op.is_null() {
        return 0;
    }
    let body = || {
        // SAFETY: attached thread (this function's contract).
        let interpreter = unsafe { cpython::interpreter_id() };
        registry()
            .members
            .as_ref()
            .is_some_and(|m| m.contains(&(op as usize, interpreter))) as c_int
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { guard::call(0, body) }
}
