//! Beyond CPython: make the whole heap immortal, for pre-fork servers.
//!
//! After `pyimmortal_ImmortalizeHeap` (and `gc.freeze()`), a forked worker
//! that only reads the objects the parent built writes neither their
//! reference counts nor their GC headers, so their pages stay shared.

use crate::api::immortalize::{immortalize, Outcome};
use crate::api::registry;
use crate::cpython::{self, runtime, Exception, Raised, Ref};
use crate::ffi::{self, visitproc, PyObject, Py_ssize_t};
use crate::guard;
use crate::refcount::{self, Reach};
use core::ffi::{c_int, c_void};
use core::mem::size_of;
use core::ptr;

/// Makes immortal every object that the cyclic GC tracks in the current
/// interpreter, and the objects they reference that it does not track:
/// ints, floats, bytes, code objects, exact strings (by interning them as
/// immortal, where that keeps the object), and containers the GC does not
/// track (tuples and dicts of atomic values), with what those reference in
/// turn.
///
/// - Returns how many objects it made immortal (0 or more), or -1 with an
///   exception set.
/// - Skips, leaving them as they are, whatever `pyimmortal_Immortalize`
///   refuses: mortal `str` subclasses, exact strings whose interned twin is
///   another object, `dict` and subclasses on 3.14+ (gh-153051), GC objects
///   whose finalizer has not run (`__del__`, generators, coroutines), and on
///   free-threaded builds objects the calling thread does not own.
/// - The objects are not entered in the registry (`pyimmortal_Registry_*`).
///   The registries themselves stay mortal, and so does the interpreter's
///   dict that holds them (`PyInterpreterState_GetDict`), so that the
///   interpreter still frees them when it ends.
/// - The collector is disabled while it runs and restored after. If the
///   collector was frozen (`gc.freeze()`), it is unfrozen to list every
///   object and frozen again afterwards. Call `gc.freeze()` after it (or
///   before it) so that the collector also leaves the GC headers of the
///   objects that stay tracked (dicts on 3.12 and 3.13) alone.
/// - Raises `NotImplementedError` on CPython 3.9-3.11 (no immortal objects),
///   `RuntimeError` on free-threaded builds while other threads exist in the
///   interpreter, `RuntimeError` when the library was built for another
///   CPython, `MemoryError` if its work list cannot grow.
/// - The objects are never freed, and their finalizers, destructors and
///   weakref callbacks never run. This cannot be undone.
/// - Requires an attached thread state (the GIL on GIL builds). It runs no
///   Python code of the program's (no finalizer, no `__hash__`).
///
/// # Safety
/// The calling thread must hold an attached thread state (the GIL on GIL
/// builds).
#[no_mangle]
pub unsafe extern "C" fn pyimmortal_ImmortalizeHeap() -> Py_ssize_t {
    let body = || -> Result<Py_ssize_t, (Exception, &'static core::ffi::CStr)> {
        if !refcount::HAS_IMMORTALITY {
            return Err(refcount::Refusal::NoImmortality.error());
        }
        #[cfg(Py_GIL_DISABLED)]
        // SAFETY: attached thread (this function's contract).
        if unsafe { cpython::other_threads_exist() } {
            return Err((
                Exception::RuntimeError,
                c"pyimmortal: immortalizing the heap on a free-threaded build needs the calling thread to be the only one in the interpreter",
            ));
        }
        // SAFETY: attached thread (this function's contract), on 3.12+.
        Ok(unsafe { immortalize_heap() }.unwrap_or(-1))
    };
    // SAFETY: attached thread (this function's contract).
    unsafe { guard::checked(-1, body) }
}

/// The collector's state, changed for the walk and restored by [`Self::restore`].
struct Collector {
    gc: Ref,
    was_enabled: bool,
    was_frozen: bool,
}

impl Collector {
    /// Disables the collector and unfreezes it.
    ///
    /// # Safety
    /// The calling thread must be attached.
    unsafe fn take() -> Result<Self, Raised> {
        // SAFETY: attached thread (caller's contract).
        unsafe {
            let gc = cpython::import(c"gc")?;
            let was_enabled =
                cpython::is_true(cpython::call_method(gc.as_ptr(), c"isenabled")?.as_ptr())?;
            let frozen = cpython::call_method(gc.as_ptr(), c"get_freeze_count")?;
            let was_frozen = cpython::as_ssize(frozen.as_ptr())? > 0;
            let c = Self {
                gc,
                was_enabled,
                was_frozen,
            };
            cpython::call_method(c.gc.as_ptr(), c"disable")?;
            if was_frozen {
                cpython::call_method(c.gc.as_ptr(), c"unfreeze")?;
            }
            Ok(c)
        }
    }

    /// Freezes the collector again if it was frozen, and enables it if it
    /// was enabled. A pending exception is kept.
    ///
    /// # Safety
    /// The calling thread must be attached.
    unsafe fn restore(self) -> Result<(), Raised> {
        // SAFETY: attached thread (caller's contract).
        unsafe {
            cpython::with_exception_aside(|| {
                if self.was_frozen {
                    cpython::call_method(self.gc.as_ptr(), c"freeze")?;
                }
                if self.was_enabled {
                    cpython::call_method(self.gc.as_ptr(), c"enable")?;
                }
                Ok(())
            })
        }
    }
}

/// # Safety
/// The calling thread must be attached; the target is 3.12+.
unsafe fn immortalize_heap() -> Result<Py_ssize_t, Raised> {
    // SAFETY: attached thread (caller's contract).
    unsafe {
        let collector = Collector::take()?;
        let walked =
            tracked_objects(collector.gc.as_ptr()).and_then(|objects| walk(objects.as_ptr()));
        let restored = collector.restore();
        let changed = walked?;
        restored?;
        Ok(changed)
    }
}

/// Every object the collector tracks, in a new list: `gc.get_objects()`.
///
/// # Safety
/// `gc` must be the `gc` module; the calling thread must be attached.
#[cfg(not(all(Py_GIL_DISABLED, not(Py_3_14))))]
unsafe fn tracked_objects(gc: *mut PyObject) -> Result<Ref, Raised> {
    // SAFETY: a module and an attached thread (caller's contract).
    unsafe { cpython::call_method(gc, c"get_objects") }
}

/// Every object the collector tracks, in a new list, listed with
/// `PyUnstable_GC_VisitObjects`. Free-threaded 3.13's `gc.get_objects()`
/// cannot be used: it borrows each object's `ob_tid` and restores it from
/// the object's memory segment, and for an object made by a thread that has
/// ended (an abandoned segment) it merges the reference count, which makes
/// a tracked immortal object mortal (`gc_restore_tid`,
/// `Python/gc_free_threading.c` 3.13; 3.14 lists objects without touching
/// `ob_tid`). Such objects exist after any thread has ended: objects that
/// 3.13t makes immortal instead of deferred (gh-117783) and tracks again,
/// and dicts that stay tracked when made immortal. Found by
/// `c_tests/fuzz`.
///
/// # Safety
/// The calling thread must be attached and the only one in the interpreter.
#[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
unsafe fn tracked_objects(_gc: *mut PyObject) -> Result<Ref, Raised> {
    struct Found {
        stack: Stack,
        complete: bool,
    }
    /// Takes a reference to each object; stops if the stack cannot grow.
    unsafe extern "C" fn collect(op: *mut PyObject, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Found` below, used by nothing else
        // meanwhile; `op` is a live object. The world is stopped and no
        // other thread exists, so nothing else touches its counts; a
        // reference count change allocates and frees nothing.
        unsafe {
            let found = &mut *arg.cast::<Found>();
            if !found.stack.push(op) {
                found.complete = false;
                return 0;
            }
            ffi::Py_IncRef(op);
        }
        1
    }
    let mut found = Found {
        stack: Stack {
            items: ptr::null_mut(),
            len: 0,
            cap: 0,
        },
        complete: true,
    };
    // SAFETY: attached thread (caller's contract); `collect` matches
    // `gcvisitobjects_t` and `found` outlives the call.
    unsafe {
        ffi::PyUnstable_GC_VisitObjects(Some(collect), ptr::from_mut(&mut found).cast());
    }
    let len = found.stack.len;
    let list = if found.complete {
        // SAFETY: attached thread (caller's contract).
        unsafe { ffi::PyList_New(len as Py_ssize_t) }
    } else {
        ptr::null_mut()
    };
    for i in 0..len {
        // SAFETY: the first `len` items were written by `push`, each with
        // a reference taken, which `PyList_SetItem` steals (or which is
        // released here when there is no list).
        unsafe {
            let op = *found.stack.items.add(i);
            if list.is_null() {
                ffi::Py_DecRef(op);
            } else {
                ffi::PyList_SetItem(list, i as Py_ssize_t, op);
            }
        }
    }
    if list.is_null() {
        // SAFETY: attached thread (caller's contract).
        return Err(unsafe { cpython::no_memory() });
    }
    // SAFETY: a new reference.
    unsafe { Ref::new(list) }
}

/// Objects still to visit: borrowed pointers in `PyMem_RawMalloc` memory.
struct Stack {
    items: *mut *mut PyObject,
    len: usize,
    cap: usize,
}

impl Stack {
    fn push(&mut self, op: *mut PyObject) -> bool {
        if self.len == self.cap {
            let cap = if self.cap == 0 { 1024 } else { self.cap * 2 };
            let Some(bytes) = cap.checked_mul(size_of::<*mut PyObject>()) else {
                return false;
            };
            // SAFETY: `items` is NULL or from PyMem_RawRealloc.
            let items = unsafe { ffi::PyMem_RawRealloc(self.items.cast(), bytes) };
            if items.is_null() {
                return false;
            }
            self.items = items.cast();
            self.cap = cap;
        }
        // SAFETY: `len < cap` slots are allocated.
        unsafe { *self.items.add(self.len) = op };
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<*mut PyObject> {
        self.len = self.len.checked_sub(1)?;
        // SAFETY: slot `len` was written by `push`.
        Some(unsafe { *self.items.add(self.len) })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: NULL or from PyMem_RawRealloc, no longer used.
        unsafe { ffi::PyMem_RawFree(self.items.cast()) }
    }
}

/// Visits every object of `objects` (the collector's list) and, depth
/// first, the untracked objects they reach.
///
/// Every pointer on the stack is borrowed: each object it points to is
/// reachable from `objects`, which holds a reference to every tracked one,
/// and nothing runs that could change a container meanwhile (no Python
/// code, the collector disabled, and immortalizing frees nothing).
///
/// # Safety
/// `objects` must be a live list; the calling thread must be attached; the
/// target is 3.12+.
unsafe fn walk(objects: *mut PyObject) -> Result<Py_ssize_t, Raised> {
    let mut stack = Stack {
        items: ptr::null_mut(),
        len: 0,
        cap: 0,
    };
    // SAFETY: attached thread (caller's contract).
    let interpreter_dict = unsafe { cpython::interpreter_dict() };
    let mut changed: Py_ssize_t = 0;
    // SAFETY: a live list that nothing changes during the walk; attached
    // thread (caller's contract).
    for op in unsafe { cpython::list_items(objects) } {
        let mut next = Some(op);
        while let Some(op) = next {
            // SAFETY: `op` is alive (see above); attached thread.
            changed += unsafe { visit(op, interpreter_dict, &mut stack) }?;
            next = stack.pop();
        }
    }
    Ok(changed)
}

/// Whether `op` stays mortal so that the interpreter still frees it when it
/// ends: the interpreter's own dict (`interpreter_dict`), which
/// `PyInterpreterState_Clear` clears, and the capsules in it that hold the
/// registry of a copy of this library, whose destructors free the tables.
///
/// # Safety
/// `op` must be a live object of type `ty`; the calling thread must be
/// attached.
unsafe fn stays_mortal(
    op: *mut PyObject,
    ty: *mut PyObject,
    interpreter_dict: *mut PyObject,
) -> bool {
    // SAFETY: live capsule, attached thread (caller's contract); the type
    // is compared first so that only capsules cost a call.
    op == interpreter_dict
        || (ty == cpython::capsule_type()
            && unsafe { ffi::PyCapsule_IsValid(op, registry::CAPSULE_NAME.as_ptr()) } != 0)
}

/// Makes `op` immortal if allowed, then pushes the untracked objects it
/// references. Returns 1 if `op` was made immortal, else 0.
/// `interpreter_dict` is the interpreter's dict, which stays mortal
/// (`stays_mortal`).
///
/// # Safety
/// `op` must be a live object; the calling thread must be attached; the
/// target is 3.12+.
unsafe fn visit(
    op: *mut PyObject,
    interpreter_dict: *mut PyObject,
    stack: &mut Stack,
) -> Result<Py_ssize_t, Raised> {
    // SAFETY: live object, attached thread (caller's contract).
    unsafe {
        let ty = refcount::type_of(op);
        if ty == cpython::str_type() {
            return Ok(intern_immortal(op) as Py_ssize_t);
        }
        let made = !stays_mortal(op, ty, interpreter_dict)
            && matches!(immortalize(op, false, Reach::Any), Ok(Outcome::Made));
        if traversable(op, ty) {
            let traverse = cpython::type_slot(ty, refcount::TP_TRAVERSE_SLOT);
            if !traverse.is_null() {
                // SAFETY: the slot of a GC type is its `traverseproc`.
                let traverse = core::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(*mut PyObject, visitproc, *mut c_void) -> c_int,
                >(traverse);
                let arg = ptr::from_mut(stack).cast::<c_void>();
                if traverse(op, Some(push_untracked), arg) != 0 {
                    return Err(cpython::no_memory());
                }
            }
        }
        Ok(made as Py_ssize_t)
    }
}

/// Whether the walk may call `op`'s `tp_traverse`: only for objects the GC
/// manages (`PyObject_IS_GC`). A static type reached from the heap is an
/// instance of `type`, a GC type, but has no GC header, and `type_traverse`
/// aborts the process on it. Untracked capsules are skipped too: CPython
/// tracks a capsule exactly when it has a traverse function
/// (`_PyCapsule_SetTraverse`, 3.13+), so an untracked one references
/// nothing to visit, and 3.13.0rc1 and rc2 call its NULL traverse function
/// (gh-124538, fixed in 3.13.0). Both were found by `c_tests/fuzz`.
///
/// # Safety
/// `op` must be a live object of type `ty`; the calling thread must be
/// attached.
unsafe fn traversable(op: *mut PyObject, ty: *mut PyObject) -> bool {
    // SAFETY: live object, attached thread (caller's contract).
    unsafe { cpython::is_gc(op) && (ty != cpython::capsule_type() || cpython::gc_is_tracked(op)) }
}

/// The `visitproc` of [`visit`]: pushes a referent that the collector does
/// not track and that is not immortal yet; non-zero if the stack cannot
/// grow.
///
/// # Safety
/// `arg` must be the walk's `Stack`; `op` a live object (as `tp_traverse`
/// passes it).
unsafe extern "C" fn push_untracked(op: *mut PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: live object passed by tp_traverse, attached thread (the walk's
    // caller); `arg` is the walk's stack, used by nothing else meanwhile.
    unsafe {
        if op.is_null() || cpython::gc_is_tracked(op) || refcount::is_immortal(op) {
            return 0;
        }
        let stack = &mut *arg.cast::<Stack>();
        if stack.push(op) {
            0
        } else {
            -1
        }
    }
}

/// Interns the exact string `op` as immortal if that keeps `op` itself (no
/// other equal string is interned already). Returns whether `op` became
/// immortal.
///
/// # Safety
/// `op` must be a live exact `str`; the calling thread must be attached.
unsafe fn intern_immortal(op: *mut PyObject) -> bool {
    let Some(f) = runtime::UNICODE_INTERN_IMMORTAL.address() else {
        return false;
    };
    // SAFETY: the symbol is `void PyUnicode_InternImmortal(PyObject **)`;
    // live exact str, attached thread (caller's contract). It consumes the
    // reference passed in and returns one to the result, which is dropped
    // here: `op` stays alive through its own references.
    unsafe {
        if refcount::is_immortal(op) {
            return false;
        }
        let intern =
            core::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut *mut PyObject)>(f);
        ffi::Py_IncRef(op);
        let mut result = op;
        intern(&mut result);
        let kept = result == op && refcount::is_immortal(op);
        ffi::Py_DecRef(result);
        kept
    }
}
