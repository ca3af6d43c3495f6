//! Calls into the running CPython: thin wrappers over [`crate::ffi`] that
//! state what each call requires, functions looked up at run time, and the
//! check that the running interpreter is the one the library was built for
//! ([`runtime`]).
//!
//! This layer knows no layout or version fact; those live in
//! [`crate::refcount`], which calls down into this one.

pub mod runtime;

use crate::ffi::{self, PyObject};
use core::ffi::{c_int, c_ulong, c_void, CStr};
use core::ptr;

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
pub unsafe fn set_error(exc: Exception, msg: &CStr) {
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

/// A Python exception is set (by the CPython call that failed).
#[derive(Debug)]
pub struct Raised;

/// A strong reference, released when dropped.
///
/// Only made and dropped by an attached thread: every `Ref` lives inside a
/// call that requires one.
pub struct Ref(*mut PyObject);

impl Ref {
    /// Takes ownership of a new reference; NULL means the call that
    /// returned it set an exception.
    ///
    /// # Safety
    /// `op` must be NULL or a new (owned) reference; the calling thread must
    /// be attached.
    pub unsafe fn new(op: *mut PyObject) -> Result<Self, Raised> {
        if op.is_null() {
            Err(Raised)
        } else {
            Ok(Self(op))
        }
    }

    pub fn as_ptr(&self) -> *mut PyObject {
        self.0
    }
}

impl Drop for Ref {
    fn drop(&mut self) {
        // SAFETY: an owned reference, released by the attached thread that
        // holds it (see the type's documentation).
        unsafe { ffi::Py_DecRef(self.0) }
    }
}

/// `import name`.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn import(name: &CStr) -> Result<Ref, Raised> {
    // SAFETY: attached thread (caller's contract); returns a new reference.
    unsafe { Ref::new(ffi::PyImport_ImportModule(name.as_ptr())) }
}

/// `obj.name()`.
///
/// # Safety
/// `obj` must be a live object; the calling thread must be attached.
pub unsafe fn call_method(obj: *mut PyObject, name: &CStr) -> Result<Ref, Raised> {
    // SAFETY: live object, attached thread (caller's contract); both calls
    // return new references.
    unsafe {
        let method = Ref::new(ffi::PyObject_GetAttrString(obj, name.as_ptr()))?;
        Ref::new(ffi::PyObject_CallNoArgs(method.as_ptr()))
    }
}

/// `bool(obj)`.
///
/// # Safety
/// `obj` must be a live object; the calling thread must be attached.
pub unsafe fn is_true(obj: *mut PyObject) -> Result<bool, Raised> {
    // SAFETY: live object, attached thread (caller's contract).
    match unsafe { ffi::PyObject_IsTrue(obj) } {
        r if r < 0 => Err(Raised),
        r => Ok(r != 0),
    }
}

/// `int(obj)` as a `Py_ssize_t`.
///
/// # Safety
/// `obj` must be a live `int`; the calling thread must be attached.
pub unsafe fn as_ssize(obj: *mut PyObject) -> Result<isize, Raised> {
    // SAFETY: live object, attached thread (caller's contract).
    let v = unsafe { ffi::PyLong_AsSsize_t(obj) };
    // SAFETY: attached thread.
    if v == -1 && unsafe { error_occurred() } {
        Err(Raised)
    } else {
        Ok(v)
    }
}

/// The items of a `list`, borrowed: `len(list)` and `list[i]`.
///
/// # Safety
/// `list` must be a live `list` that nothing changes while the items are
/// used; the calling thread must be attached.
pub unsafe fn list_items(list: *mut PyObject) -> impl Iterator<Item = *mut PyObject> {
    // SAFETY: a live list (caller's contract).
    let n = unsafe { ffi::PyList_Size(list) }.max(0);
    // SAFETY: `0 <= i < len(list)` of a list that does not change
    // (caller's contract): a borrowed, non-NULL item.
    (0..n).map(move |i| unsafe { ffi::PyList_GetItem(list, i) })
}

/// Sets `MemoryError`; returns [`Raised`].
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn no_memory() -> Raised {
    // SAFETY: attached thread (caller's contract).
    unsafe { ffi::PyErr_NoMemory() };
    Raised
}

/// Runs `f` with the pending exception, if any, put aside, and sets it
/// again afterwards (3.12+: `PyErr_GetRaisedException`).
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn with_exception_aside<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: attached thread (caller's contract); the exception taken out
    // (a new reference, or NULL) is handed back, which steals it.
    unsafe {
        let exc = ffi::PyErr_GetRaisedException();
        let r = f();
        if !exc.is_null() {
            ffi::PyErr_SetRaisedException(exc);
        }
        r
    }
}

/// Whether `op` is tracked by the cyclic GC.
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn gc_is_tracked(op: *mut PyObject) -> bool {
    // SAFETY: live object, attached thread (caller's contract).
    unsafe { ffi::PyObject_GC_IsTracked(op) != 0 }
}

/// `PyObject_IS_GC(op)`: whether the cyclic GC manages `op`, that is its
/// type has `Py_TPFLAGS_HAVE_GC` and its `tp_is_gc`, if any, says yes. A
/// static type is an instance of `type`, a GC type, whose `tp_is_gc`
/// (`type_is_gc`, `Objects/typeobject.c`) says no: it has no GC header, and
/// its `tp_traverse` must not be called (`type_traverse` aborts the process
/// on a static type).
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached.
pub unsafe fn is_gc(op: *mut PyObject) -> bool {
    // SAFETY: live object, attached thread (caller's contract).
    unsafe { ffi::PyObject_IS_GC(op) != 0 }
}

/// `PyCapsule_Type`, for exact type checks.
pub fn capsule_type() -> *mut PyObject {
    (&raw mut ffi::PyCapsule_Type).cast()
}

/// `PyUnicode_Type`, for exact type checks.
pub fn str_type() -> *mut PyObject {
    (&raw mut ffi::PyUnicode_Type).cast()
}

/// Data owned by the current interpreter: a pointer kept in a capsule in
/// the interpreter's own dict (`PyInterpreterState_GetDict`, 3.8+) under
/// a key of the caller's. CPython clears that dict when the interpreter ends
/// (`PyInterpreterState_Clear` in `Python/pystate.c`, during `Py_FinalizeEx`
/// for the main interpreter), which runs the capsule's destructor; so each
/// interpreter, and each runtime after `Py_FinalizeEx`, starts without it.
pub struct InterpreterData {
    /// The capsule's name (`PyCapsule_New` keeps the pointer).
    pub name: &'static CStr,
    /// Frees the data; runs as the capsule's destructor.
    pub destructor: unsafe extern "C" fn(*mut PyObject),
}

/// `PyInterpreterState_GetDict(PyInterpreterState_Get())`: the current
/// interpreter's dict, or NULL if it cannot be made.
///
/// CPython makes the dict on first use without a lock
/// (`PyInterpreterState_GetDict` in `Python/pystate.c`, 3.9 to 3.15), so
/// two free-threaded threads asking first at once could each make one, and
/// one would be lost with what was stored in it. pyimmortal's own calls
/// take a lock for it on free-threaded builds; `PyDict_New` under it runs no
/// Python code and never detaches the thread. (On GIL builds the GIL of the
/// interpreter serializes them.)
///
/// # Safety
/// The calling thread must be attached.
unsafe fn interpreter_dict() -> *mut PyObject {
    #[cfg(Py_GIL_DISABLED)]
    let _guard = {
        static LOCK: crate::spin::SpinLock = crate::spin::SpinLock::new();
        LOCK.lock()
    };
    // SAFETY: attached thread (caller's contract), so there is a current
    // interpreter.
    unsafe { ffi::PyInterpreterState_GetDict(ffi::PyInterpreterState_Get()) }
}

impl InterpreterData {
    /// The current interpreter's pointer under `key`, or NULL if none is
    /// stored. Sets no exception.
    ///
    /// # Safety
    /// The calling thread must be attached, and only [`Self::store`] of this
    /// `InterpreterData` may write under `key` (so the entry, once there,
    /// is its capsule and stays until the interpreter ends).
    pub unsafe fn get(&self, key: &CStr) -> *mut c_void {
        // SAFETY: attached thread (caller's contract). The dict is the
        // interpreter's own; `PyDict_GetItemString` suppresses its errors
        // and returns a borrowed reference, which stays valid because the
        // entry is never replaced or removed (caller's contract).
        unsafe {
            let dict = interpreter_dict();
            if dict.is_null() {
                return ptr::null_mut();
            }
            let capsule = ffi::PyDict_GetItemString(dict, key.as_ptr());
            if capsule.is_null() {
                return ptr::null_mut();
            }
            ffi::PyCapsule_GetPointer(capsule, self.name.as_ptr())
        }
    }

    /// Stores `data` for the current interpreter under `key` unless a pointer is
    /// stored already (by another thread), and returns the stored pointer:
    /// `data`, the earlier one, or NULL if memory ran out (the error is
    /// cleared: sets no exception). Whenever the result is not `data`,
    /// `data` is still the caller's to free.
    ///
    /// # Safety
    /// The calling thread must be attached; `data` must be non-NULL and
    /// something `destructor` frees; the caller's contract of [`Self::get`].
    pub unsafe fn store(&self, key: &CStr, data: *mut c_void) -> *mut c_void {
        // SAFETY: attached thread (caller's contract). The capsule frees
        // `data` through `destructor` only if it is the one stored, since
        // its destructor is removed otherwise before our reference is
        // dropped. `PyDict_SetDefault` returns a borrowed reference to the
        // stored value, which the dict keeps alive; `Py_DecRef` accepts NULL.
        unsafe {
            let capsule = ffi::PyCapsule_New(data, self.name.as_ptr(), Some(self.destructor));
            if capsule.is_null() {
                ffi::PyErr_Clear();
                return ptr::null_mut();
            }
            let dict = interpreter_dict();
            let key = ffi::PyUnicode_FromString(key.as_ptr());
            let stored = if dict.is_null() || key.is_null() {
                ptr::null_mut()
            } else {
                ffi::PyDict_SetDefault(dict, key, capsule)
            };
            let result = if stored.is_null() {
                ffi::PyErr_Clear();
                ptr::null_mut()
            } else {
                ffi::PyCapsule_GetPointer(stored, self.name.as_ptr())
            };
            if result != data {
                ffi::PyCapsule_SetDestructor(capsule, None);
            }
            ffi::Py_DecRef(key);
            ffi::Py_DecRef(capsule);
            result
        }
    }
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

/// `_Py_ThreadId()` of the calling thread: the owner id that free-threaded
/// CPython stores in `ob_tid`.
///
/// On x86-64 and AArch64 Linux it is read inline, as the target's headers
/// do (`Include/object.h` 3.13 and 3.14, `Include/cpython/object.h` 3.15;
/// gh-110481): the first word of the thread control block (`fs:0`), or
/// `tpidr_el0`. Elsewhere it calls the headers' own definition, compiled in
/// `src/cpython/thread_id.c`; a unit test checks that both agree.
#[cfg(Py_GIL_DISABLED)]
#[inline(always)]
pub fn thread_id() -> usize {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let tid: usize;
        // SAFETY: reads the word at fs:0, which the C library sets to the
        // thread control block's own address for every thread; no memory is
        // written and no thread state is needed.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tid,
                options(nostack, readonly, preserves_flags, pure))
        };
        tid
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    {
        let tid: usize;
        // SAFETY: reads the thread pointer register; no memory is touched.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", out(reg) tid,
                options(nostack, nomem, preserves_flags, pure))
        };
        tid
    }
    #[cfg(not(any(
        all(target_arch = "x86_64", target_os = "linux"),
        all(target_arch = "aarch64", target_os = "linux")
    )))]
    // SAFETY: `_Py_ThreadId()` only reads the thread pointer register (or
    // the address of a thread-local); it needs no thread state.
    unsafe {
        ffi::pyimmortal_sys_thread_id()
    }
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
    let text = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) };
    parse_minor(text.to_bytes())
}

/// Parses the minor version out of a `Py_GetVersion()` string: the digits
/// after a leading `3.`.
pub fn parse_minor(version: &[u8]) -> Option<u32> {
    let rest = version.strip_prefix(b"3.")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit());
    let (count, minor) = digits.fold((0, 0u32), |(count, v), b| {
        (
            count + 1,
            v.wrapping_mul(10).wrapping_add(u32::from(b - b'0')),
        )
    });
    (1..=3).contains(&count).then_some(minor)
}

/// Writes `n` in decimal into `buf` and returns the digits.
pub fn format_decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    // u32::MAX has 10 digits, so the loop ends with `n == 0`.
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{format_decimal, parse_minor};

    #[test]
    fn parses_version_strings() {
        assert_eq!(parse_minor(b"3.14.0 (main, Oct 7 2025)"), Some(14));
        assert_eq!(parse_minor(b"3.9.18 (main)"), Some(9));
        assert_eq!(parse_minor(b"3.15.0a7+ experimental"), Some(15));
        assert_eq!(parse_minor(b"3.15"), Some(15));
        assert_eq!(parse_minor(b"2.7.18"), None);
        assert_eq!(parse_minor(b"3."), None);
        assert_eq!(parse_minor(b"3.12345"), None);
        assert_eq!(parse_minor(b""), None);
    }

    #[cfg(Py_GIL_DISABLED)]
    #[test]
    fn thread_id_is_the_headers() {
        let here = || {
            // SAFETY: the headers' `_Py_ThreadId()` needs no thread state.
            (super::thread_id(), unsafe {
                crate::ffi::pyimmortal_sys_thread_id()
            })
        };
        let (mine, headers) = here();
        assert_eq!(mine, headers);
        let (mine2, headers2) = std::thread::spawn(here).join().unwrap();
        assert_eq!(mine2, headers2);
        assert_ne!(mine, mine2, "two threads have two ids");
    }

    #[test]
    fn formats_decimals() {
        let mut buf = [0; 10];
        assert_eq!(format_decimal(0, &mut buf), b"0");
        assert_eq!(format_decimal(15, &mut buf), b"15");
        assert_eq!(format_decimal(u32::MAX, &mut buf), b"4294967295");
    }
}
