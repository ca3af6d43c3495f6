//! The registry of objects that pyimmortal made immortal.
//!
//! Leak checkers can tell intended immortals from leaks with it. Each
//! interpreter owns its registry: a table in memory from `PyMem_RawMalloc`,
//! kept in a capsule in the interpreter's own dict
//! ([`cpython::InterpreterData`]). CPython clears that dict when the
//! interpreter ends, which frees the table, so a subinterpreter's entries go
//! with it and an embedding application that initializes Python again after
//! `Py_FinalizeEx` starts with an empty registry. The dict key carries the
//! address of a static of this copy of the library: two extensions that each
//! link `libpyimmortal.a` keep two registries.
//!
//! The table lists its objects in the order they were made immortal (for
//! `pyimmortal_Registry_Visit`) and indexes them in an open-addressing hash
//! set, which answers `pyimmortal_Registry_Contains` in constant time on
//! average. Entries are never removed: immortal objects are never freed.
//! A spin lock ([`crate::spin`]) serializes threads of one interpreter on
//! free-threaded builds (on GIL builds the GIL already does).

use crate::cpython::{self, Exception, InterpreterData};
use crate::ffi::{self, visitproc, PyObject, Py_ssize_t};
use crate::guard;
use crate::spin::{SpinGuard, SpinLock};
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void, CStr};
use core::mem::size_of;
use core::ptr;

/// One interpreter's registry. All-zero bytes are an empty table, which is
/// how it is allocated.
#[repr(C)]
struct Table {
    lock: SpinLock,
    entries: UnsafeCell<Entries>,
}

/// A table's contents, used only under its lock.
#[repr(C)]
struct Entries {
    /// The objects in the order they were made immortal: `len` of `cap`.
    order: *mut usize,
    len: usize,
    cap: usize,
    /// Open addressing with linear probing over `1 << bits` slots; 0 is
    /// empty (no object lives at address 0). At most half full.
    slots: *mut usize,
    bits: u32,
}

/// A table's entries, with its lock held.
struct Locked<'a> {
    _guard: SpinGuard<'a>,
    e: &'a mut Entries,
}

impl Table {
    fn lock(&self) -> Locked<'_> {
        let guard = self.lock.lock();
        Locked {
            _guard: guard,
            // SAFETY: the lock gives this thread the only access to the
            // entries until the guard drops, and every access to them goes
            // through a guard.
            e: unsafe { &mut *self.entries.get() },
        }
    }
}

impl Locked<'_> {
    /// The slot where `obj` is, or the empty slot where it would go.
    fn probe(&self, obj: usize) -> usize {
        let t = &*self.e;
        let mask = (1usize << t.bits) - 1;
        // Fibonacci hashing of the address without its alignment bits.
        let mut i =
            ((obj >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - t.bits)) & mask;
        loop {
            // SAFETY: `i <= mask`, within the `1 << bits` slots; the table
            // is never full, so the probe stops.
            let slot = unsafe { *t.slots.add(i) };
            if slot == obj || slot == 0 {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn contains(&self, obj: usize) -> bool {
        if self.e.slots.is_null() {
            return false;
        }
        // SAFETY: `probe` returns an index within the slots.
        unsafe { *self.e.slots.add(self.probe(obj)) == obj }
    }

    /// Adds `obj` unless it is there. Returns false if memory ran out
    /// (nothing changed).
    fn insert(&mut self, obj: usize) -> bool {
        if self.contains(obj) {
            return true;
        }
        let t = &mut *self.e;
        if t.len == t.cap {
            let cap = if t.cap == 0 { 16 } else { t.cap * 2 };
            let Some(bytes) = cap.checked_mul(size_of::<usize>()) else {
                return false;
            };
            // SAFETY: `order` is NULL or from PyMem_RawMalloc/Realloc.
            let order = unsafe { ffi::PyMem_RawRealloc(t.order.cast(), bytes) };
            if order.is_null() {
                return false;
            }
            t.order = order.cast();
            t.cap = cap;
        }
        if (t.len + 1) * 2 > 1 << t.bits && !self.rehash() {
            return false;
        }
        let i = self.probe(obj);
        let t = &mut *self.e;
        // SAFETY: `i` is within the slots, and `len < cap` entries of
        // `order` are allocated.
        unsafe {
            *t.slots.add(i) = obj;
            *t.order.add(t.len) = obj;
        }
        t.len += 1;
        true
    }

    /// Doubles the slots (at least 32) and re-inserts every entry.
    fn rehash(&mut self) -> bool {
        let bits = if self.e.slots.is_null() {
            5
        } else {
            self.e.bits + 1
        };
        if bits >= usize::BITS - 1 {
            return false;
        }
        // SAFETY: zeroed memory for `1 << bits` slots, all empty.
        let slots = unsafe { ffi::PyMem_RawCalloc(1 << bits, size_of::<usize>()) };
        if slots.is_null() {
            return false;
        }
        let t = &mut *self.e;
        // SAFETY: `slots` is NULL or from PyMem_RawCalloc, and no longer used.
        unsafe { ffi::PyMem_RawFree(t.slots.cast()) };
        t.slots = slots.cast();
        t.bits = bits;
        for k in 0..t.len {
            // SAFETY: the first `len` entries of `order` are initialized.
            let obj = unsafe { *self.e.order.add(k) };
            let i = self.probe(obj);
            // SAFETY: `i` is within the slots.
            unsafe { *self.e.slots.add(i) = obj };
        }
        true
    }
}

/// The name of the capsules that hold a table, in every copy of the library.
pub const CAPSULE_NAME: &CStr = c"pyimmortal.registry";

/// Where each interpreter keeps this copy's table.
static REGISTRY: InterpreterData = InterpreterData {
    name: CAPSULE_NAME,
    destructor: free_table,
};

const KEY_PREFIX: &[u8] = b"pyimmortal.registry.";
const KEY_LEN: usize = KEY_PREFIX.len() + 2 * size_of::<usize>() + 1;

/// The dict key: `pyimmortal.registry.` and the address of this copy's
/// [`REGISTRY`] in hexadecimal, so that every copy of the library in the
/// process has its own.
fn key(buf: &mut [u8; KEY_LEN]) -> &CStr {
    let addr = ptr::from_ref(&REGISTRY) as usize;
    buf[..KEY_PREFIX.len()].copy_from_slice(KEY_PREFIX);
    let digits = &mut buf[KEY_PREFIX.len()..KEY_LEN - 1];
    let n = digits.len();
    for (i, d) in digits.iter_mut().enumerate() {
        let nibble = (addr >> (4 * (n - 1 - i))) & 0xf;
        *d = b"0123456789abcdef"[nibble];
    }
    buf[KEY_LEN - 1] = 0;
    // The hexadecimal digits and the prefix contain no NUL; the last byte is one.
    match CStr::from_bytes_with_nul(buf) {
        Ok(k) => k,
        Err(_) => c"pyimmortal.registry",
    }
}

/// The current interpreter's table, made on first use if `create`; None
/// if there is none (or memory ran out making it).
///
/// # Safety
/// The calling thread must be attached.
unsafe fn table<'a>(create: bool) -> Option<&'a Table> {
    let mut buf = [0; KEY_LEN];
    let key = key(&mut buf);
    // SAFETY: attached thread (caller's contract); only this module stores
    // under this copy's key.
    let mut t = unsafe { REGISTRY.get(key) }.cast::<Table>();
    if t.is_null() && create {
        // SAFETY: zeroed bytes are an empty table.
        let new = unsafe { ffi::PyMem_RawCalloc(1, size_of::<Table>()) }.cast::<Table>();
        if new.is_null() {
            return None;
        }
        // SAFETY: attached thread; `new` is a table that `free_table` frees.
        t = unsafe { REGISTRY.store(key, new.cast()) }.cast();
        if t != new {
            // SAFETY: `new` was not stored, so nothing else has it.
            unsafe { drop_table(new) };
        }
    }
    // SAFETY: a stored table lives until the interpreter's dict is cleared,
    // at the end of the interpreter, after the last call made in it;
    // its fields are only used under its lock.
    unsafe { t.as_ref() }
}

/// Records `op`, made immortal by this library in the current interpreter.
/// If memory runs out the object stays immortal but unlisted.
///
/// # Safety
/// The calling thread must be attached.
pub unsafe fn record(op: *mut PyObject) {
    // SAFETY: attached thread (caller's contract).
    if let Some(t) = unsafe { table(true) } {
        t.lock().insert(op as usize);
    }
}

/// Frees a table: the capsule's destructor, run when the interpreter's dict
/// is cleared, or when a capsule that lost the race to be stored is dropped.
///
/// # Safety
/// `capsule` must be a capsule that [`REGISTRY`] made, holding a table.
unsafe extern "C" fn free_table(capsule: *mut PyObject) {
    // SAFETY: the capsule's pointer is a table from `new_table` (caller's
    // contract), which nothing else uses once the capsule is gone.
    unsafe { drop_table(ffi::PyCapsule_GetPointer(capsule, REGISTRY.name.as_ptr()).cast()) }
}

/// # Safety
/// `t` must be NULL or a table from `new_table` that nothing else uses.
unsafe fn drop_table(t: *mut Table) {
    if t.is_null() {
        return;
    }
    // SAFETY: the arrays and the table come from PyMem_Raw* (caller's
    // contract); PyMem_RawFree accepts NULL.
    unsafe {
        let e = &*(*t).entries.get();
        ffi::PyMem_RawFree(e.order.cast());
        ffi::PyMem_RawFree(e.slots.cast());
        ffi::PyMem_RawFree(t.cast());
    }
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
        unsafe { table(false) }.map_or(0, |t| t.lock().e.len as Py_ssize_t)
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
    // Each entry is read under the lock and visited after it is released,
    // since `visit` may call back (and add entries, which go to the end).
    // SAFETY: attached thread (this function's contract).
    let Some(t) = (unsafe { guard::call(None, || table(false)) }) else {
        return 0;
    };
    let len = t.lock().e.len;
    for k in 0..len {
        let locked = t.lock();
        // SAFETY: entry `k < len` is initialized, and entries are never
        // removed (`order` may move when it grows, so it is read under the
        // lock).
        let obj = unsafe { *locked.e.order.add(k) } as *mut PyObject;
        drop(locked);
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
        unsafe { table(false) }.is_some_and(|t| t.lock().contains(op as usize)) as c_int
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { guard::call(0, body) }
}
