//! Free-threaded CPython: 3.13t, 3.14t and 3.15t (PEP 703; biased reference
//! counting, gh-110481).
//!
//! The header is `{ uintptr_t ob_tid; uint16_t ob_flags; PyMutex ob_mutex;
//! uint8_t ob_gc_bits; uint32_t ob_ref_local; Py_ssize_t ob_ref_shared;
//! PyTypeObject *ob_type; }` (`Include/object.h`; 3.13 names `ob_flags`
//! `_padding`). An object is immortal when `ob_ref_local` is
//! `_Py_IMMORTAL_REFCNT_LOCAL`. Other threads touch `ob_ref_local` and
//! `ob_ref_shared` concurrently, so every access here is atomic.

use super::head;
use crate::cpython;
use crate::ffi::PyObject;
use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicU8, AtomicUsize, Ordering::Relaxed};

crate::layout::object_head! {
    /// `PyObject` in free-threaded CPython 3.13-3.15, `Include/object.h`.
    pub struct ObjectHead {
        pub ob_tid: usize,
        /// `_padding` in 3.13.
        #[cfg(not(Py_3_14))]
        pub ob_flags: u16 => _padding,
        /// `ob_flags` since 3.14.
        #[cfg(Py_3_14)]
        pub ob_flags: u16,
        /// `PyMutex`, one byte (`Include/cpython/lock.h`).
        pub ob_mutex: u8,
        pub ob_gc_bits: u8,
        pub ob_ref_local: u32,
        pub ob_ref_shared: isize,
        pub ob_type: *mut PyObject,
    }
}

crate::layout::facts! {
    /// `_Py_IMMORTAL_REFCNT_LOCAL`: `UINT32_MAX` (`Include/object.h` 3.13,
    /// `Include/refcount.h` 3.14+).
    IMMORTAL_REFCNT_LOCAL: u32 = u32::MAX => "_Py_IMMORTAL_REFCNT_LOCAL";
    /// `_Py_UNOWNED_TID` (`Include/object.h`).
    UNOWNED_TID: usize = 0 => "_Py_UNOWNED_TID";
    /// `_Py_REF_SHARED_SHIFT`: the shared count sits above two flag bits
    /// (`Include/object.h` 3.13, `Include/refcount.h` 3.14+).
    REF_SHARED_SHIFT: u32 = 2 => "_Py_REF_SHARED_SHIFT";
    /// `_Py_REF_MAYBE_WEAKREF`: other threads may resurrect the object through a weak
    /// reference (`Include/object.h` 3.13, `Include/refcount.h` 3.14+).
    REF_MAYBE_WEAKREF: isize = 1 => "_Py_REF_MAYBE_WEAKREF";
    /// `_Py_REF_SHARED_FLAG_MASK`: the two flag bits below the shared count
    /// (`Include/object.h` 3.13, `Include/refcount.h` 3.14+).
    REF_SHARED_FLAG_MASK: isize = 3 => "_Py_REF_SHARED_FLAG_MASK";
    /// `_Py_REF_QUEUED`: the object is queued for its owner to merge its counts, or, on
    /// 3.13t, deferred (`_PyObject_SetDeferredRefcount`, `Objects/object.c` 3.13.0rc2
    /// lines 2465-2466) (`Include/object.h` 3.13, `Include/refcount.h` 3.14+).
    REF_QUEUED: isize = 2 => "_Py_REF_QUEUED";
    /// `_PyGC_BITS_TRACKED` (`Include/internal/pycore_gc.h`).
    GC_BITS_TRACKED: u8 = 1 => "_PyGC_BITS_TRACKED";
    /// `_PyGC_BITS_SHARED` (`Include/internal/pycore_gc.h`, 3.13+): a container that
    /// other threads may read, set by CPython on another thread's first read
    /// (`ensure_shared_on_read` in `Objects/listobject.c` and `Objects/dictobject.c`).
    GC_BITS_SHARED: u8 = 16 => "_PyGC_BITS_SHARED";
    /// `_PyGC_BITS_DEFERRED` (`Include/internal/pycore_gc.h`, 3.13+).
    GC_BITS_DEFERRED: u8 = 64 => "_PyGC_BITS_DEFERRED";
    /// `_Py_REF_DEFERRED`: `PY_SSIZE_T_MAX / 8`, the bias that deferred objects carry in
    /// `ob_ref_shared` (`Include/internal/pycore_object.h` 3.14+, gh-123619).
    #[cfg(Py_3_14)]
    REF_DEFERRED: isize = isize::MAX / 8 => "_Py_REF_DEFERRED";
    /// Immortal objects exist from 3.12 on (PEP 683, gh-84436), in every free-threaded
    /// build.
    HAS_IMMORTALITY: bool = true => "PY_VERSION_HEX >= 0x030C0000";
    /// As on the GIL build of the same version: 3.13t makes a dict immortal and leaves it
    /// tracked.
    #[cfg(not(Py_3_14))]
    DICTS_CAN_BE_IMMORTAL: bool = true => "PY_VERSION_HEX < 0x030E0000";
    /// As on the GIL build of the same version: 3.14t refuses dicts, which must stay
    /// GC-tracked (`dict_merge_api` asserts it, gh-153051).
    #[cfg(Py_3_14)]
    DICTS_CAN_BE_IMMORTAL: bool = false => "PY_VERSION_HEX < 0x030E0000";
    /// An immortal object must not stay tracked on free-threaded builds: passes that
    /// borrow `ob_tid` for their own use give it back from the object's memory segment,
    /// and merge the object's counts when that segment's thread has ended
    /// (`gc_restore_tid`, `Python/gc_free_threading.c` 3.13.0rc2 lines 190-207 and
    /// 3.14.7 lines 325-339; `merge_refcount` stores 0 in `ob_ref_local`), which makes
    /// the object mortal again. 3.13t's `gc.get_objects()` does it to every tracked
    /// object (`visit_get_objects`, 3.13.0rc2 lines 1365-1409); 3.14t's collector to the
    /// objects it first marked alive from the roots, which `update_refs` skips before
    /// it would untrack an immortal one (3.14.7 lines 1000-1010, `scan_heap_visitor`).
    TRACKED_IMMORTALS_SURVIVE: bool = false => "PY_VERSION_HEX < 0x030C0000";
}

// The header fields that other threads read and write concurrently, as
// atomics. CPython accesses them with atomic operations of the same size
// (`_Py_atomic_*` in `Include/refcount.h` and `Objects/object.c`).
//
// Safety of each accessor: `op` must point to a live object, and the
// reference must not be used after the object may have been freed; the
// caller chooses the lifetime `'a` accordingly (every caller here uses it
// within one call that holds a borrowed reference to `op`). The field is
// naturally aligned (`#[repr(C)]`, checked against the headers).

/// `ob_tid`, the owning thread.
unsafe fn tid<'a>(op: *mut PyObject) -> &'a AtomicUsize {
    // SAFETY: see above.
    unsafe { AtomicUsize::from_ptr(&raw mut (*head(op)).ob_tid) }
}

/// `ob_ref_local`, the owner's count.
unsafe fn local<'a>(op: *mut PyObject) -> &'a AtomicU32 {
    // SAFETY: see above.
    unsafe { AtomicU32::from_ptr(&raw mut (*head(op)).ob_ref_local) }
}

/// `ob_ref_shared`, the other threads' count and its flags.
unsafe fn shared<'a>(op: *mut PyObject) -> &'a AtomicIsize {
    // SAFETY: see above.
    unsafe { AtomicIsize::from_ptr(&raw mut (*head(op)).ob_ref_shared) }
}

/// `ob_gc_bits`.
unsafe fn gc_bits<'a>(op: *mut PyObject) -> &'a AtomicU8 {
    // SAFETY: see above.
    unsafe { AtomicU8::from_ptr(&raw mut (*head(op)).ob_gc_bits) }
}

/// `_Py_IsImmortal`: a relaxed load of `ob_ref_local` equals
/// `_Py_IMMORTAL_REFCNT_LOCAL`.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn is_immortal(op: *mut PyObject) -> bool {
    // SAFETY: live object (caller's contract), used within this call.
    unsafe { local(op) }.load(Relaxed) == IMMORTAL_REFCNT_LOCAL
}

/// `_PyObject_IsUniquelyReferenced` (`Include/internal/pycore_object.h`):
/// owned by the calling thread, local count 1, and the whole shared word
/// (flags included) 0, so that no other thread can make a new reference.
///
/// # Safety
/// `op` must point to a live object; the calling thread must be attached.
pub unsafe fn is_uniquely_referenced(op: *mut PyObject) -> bool {
    // SAFETY: live object (caller's contract), used within this call.
    unsafe {
        local(op).load(Relaxed) == 1
            && tid(op).load(Relaxed) == cpython::thread_id()
            && shared(op).load(Relaxed) == 0
    }
}

/// `_Py_SetImmortalUntracked` (`Objects/object.c`): unowned, local count
/// `_Py_IMMORTAL_REFCNT_LOCAL`. Since 3.14 immortals also carry
/// `_PyGC_BITS_DEFERRED` so that the specializing interpreter may cache them
/// (gh-129984). A GC object is also marked `_PyGC_BITS_SHARED`, which CPython
/// would set on another thread's first read of a list or dict: an immortal
/// object is made to be shared, and a reader then has nothing left to write
/// into its header (which matters for a forked worker's pages too). CPython
/// also stores 0 in the shared word; pyimmortal leaves it alone (but for
/// 3.13t's deferred objects, below): callers get here with a shared word of
/// 0, of exactly `_Py_REF_MAYBE_WEAKREF`, whose flag must survive so that
/// another thread's weakref dereference racing with this store still
/// succeeds, or, on 3.14t, holding the `_Py_REF_DEFERRED` bias, which keeps
/// every other thread's decref racing with these stores from queueing the
/// object (see [`owned_references`]).
///
/// The object may hold several references and may still be GC-tracked:
/// `pyimmortal_Immortalize` leaves dicts tracked on 3.13t. Every reference
/// stays valid, since an immortal object is never freed, and a later decref
/// through any of them leaves it immortal.
///
/// # Safety
/// `op` must point to a live object, and the calling thread must be
/// attached and have found `op` [`is_uniquely_referenced`], or
/// [`owned_references`] `Ok`, with nothing since that could have handed
/// `op` to another thread. No other thread then writes `ob_ref_local` or
/// `ob_tid` during the stores.
pub unsafe fn write_immortal(op: *mut PyObject) {
    // SAFETY: live object (caller's contract), used within this call.
    unsafe {
        // 3.13t: a deferred object is made immortal as CPython does it
        // (`immortalize_visitor`, `Python/gc_free_threading.c` 3.13.0rc2
        // lines 1845-1846): the shared word (`_Py_REF_QUEUED`) is cleared and
        // so is `_PyGC_BITS_DEFERRED`. `owned_references` accepts such an
        // object only while no other thread exists, so nothing races with
        // these stores.
        #[cfg(not(Py_3_14))]
        if gc_bits(op).load(Relaxed) & GC_BITS_DEFERRED != 0 {
            shared(op).store(0, Relaxed);
            gc_bits(op).fetch_and(!GC_BITS_DEFERRED, Relaxed);
        }
        local(op).store(IMMORTAL_REFCNT_LOCAL, Relaxed);
        tid(op).store(UNOWNED_TID, Relaxed);
        let mut bits = 0;
        if super::type_is_gc(super::type_of(op)) {
            bits |= GC_BITS_SHARED;
        }
        #[cfg(Py_3_14)]
        {
            bits |= GC_BITS_DEFERRED;
        }
        if bits != 0 {
            gc_bits(op).fetch_or(bits, Relaxed);
        }
    }
}

/// CPython 3.13t keeps deferred reference counting internal and turns every
/// deferred object into an immortal once a second thread starts
/// (`_PyGC_ImmortalizeDeferredObjects`, gh-117783), which would make the
/// object uncollectable. pyimmortal therefore refuses on 3.13t.
///
/// # Safety
/// `op` must point to a live object.
#[cfg(not(Py_3_14))]
pub unsafe fn enable_deferred(_op: *mut PyObject) -> bool {
    false
}

/// `PyUnstable_Object_EnableDeferredRefcount` as of 3.14.7 and 3.15
/// (`Objects/object.c`, gh-123619; untracked objects refused since
/// gh-144054): GC types only, tracked only, and only the first caller wins
/// the compare-and-swap on `_PyGC_BITS_DEFERRED`; the winner adds the
/// `_Py_REF_DEFERRED` bias to the shared count. Other threads may call it on
/// the same object at the same time.
///
/// # Safety
/// `op` must point to a live object; the calling thread must be attached.
#[cfg(Py_3_14)]
pub unsafe fn enable_deferred(op: *mut PyObject) -> bool {
    // SAFETY: a live object has a live type (caller's contract).
    if !unsafe { super::type_is_gc(super::type_of(op)) } {
        return false;
    }
    // SAFETY: live object (caller's contract), used within this call.
    let (bits, shared) = unsafe { (gc_bits(op), shared(op)) };
    let old = bits.load(Relaxed);
    if old & GC_BITS_TRACKED == 0 || old & GC_BITS_DEFERRED != 0 {
        return false;
    }
    if bits
        .compare_exchange(old, old | GC_BITS_DEFERRED, Relaxed, Relaxed)
        .is_err()
    {
        return false;
    }
    shared.fetch_add(REF_DEFERRED << REF_SHARED_SHIFT, Relaxed);
    true
}

/// Decides whether the calling thread may immortalize `op` although it may
/// not be uniquely referenced, and returns the references to take out of a
/// debug build's total.
///
/// Every rule comes from what other threads may write into the header while
/// [`write_immortal`] stores into it. Only the owner writes `ob_ref_local`
/// (`Py_INCREF`/`Py_DECREF` in `Include/refcount.h`), so the calling thread
/// must own `op`. Other threads add to and subtract from `ob_ref_shared`
/// with atomic operations; that is harmless unless their decref drives the
/// shared count below zero, which queues the object for its owner to merge
/// (`_Py_DecRefShared`, `Objects/object.c`), and the merge
/// (`_Py_ExplicitMergeRefcount`) would overwrite the immortal count. So:
///
/// - Not deferred: the shared word must be 0 or exactly the weakref flag (no
///   reference counted by another thread, nothing queued or merged), and if
///   the owner holds more than one reference, no other thread may exist in
///   the interpreter, since one of those references might have been handed
///   to it, unless the caller vouches that `op` is unpublished.
/// - Deferred, 3.14t and later: `_PyObject_SetDeferredRefcount` and
///   `PyUnstable_Object_EnableDeferredRefcount` put the `_Py_REF_DEFERRED`
///   bias in the shared word (`Objects/object.c` 3.14.7 lines 2717 and
///   2750), so another thread's decref can never make it negative and never
///   queues the object; the interpreter's stack references to a deferred
///   object are tagged and count nothing (`PyStackRef_FromPyObjectNew`,
///   `Include/internal/pycore_stackref.h`), and stay tagged once it is
///   immortal, which keeps `_PyGC_BITS_DEFERRED` (`_Py_SetImmortalUntracked`,
///   `Objects/object.c` 3.14.7 line 2691). Such an object therefore
///   qualifies whatever its count and whatever other threads exist, as long
///   as the flags below the bias are neither queued nor merged. Unpublished,
///   the count above the bias must be 0.
/// - Deferred, 3.13t: the object carries one uncounted local reference and
///   `_Py_REF_QUEUED` in the shared word (`Objects/object.c` 3.13.0rc2 lines
///   2465-2466), and the collector subtracts that reference
///   (`update_refs`, `Python/gc_free_threading.c` line 390). CPython makes
///   every deferred object immortal itself, with every other thread stopped,
///   when the interpreter's first other thread starts
///   (`_PyGC_ImmortalizeDeferredObjects`, same file lines 1840-1861,
///   gh-117783): it qualifies while no other thread exists, and the
///   returned count leaves the uncounted reference out.
///
/// # Safety
/// `op` must point to a live object; the calling thread must be attached.
/// With [`Reach::Unpublished`], no other thread may hold a reference to
/// `op` or be able to read one.
pub unsafe fn owned_references(
    op: *mut PyObject,
    reach: super::Reach,
) -> Result<isize, super::Refusal> {
    use super::{Reach, Refusal};
    // SAFETY: live object (caller's contract), used within this call.
    let (tid, bits, shared, local) = unsafe { (tid(op), gc_bits(op), shared(op), local(op)) };
    if tid.load(Relaxed) != cpython::thread_id() {
        return Err(Refusal::NotOwned);
    }
    let deferred = bits.load(Relaxed) & GC_BITS_DEFERRED != 0;
    let shared_word = shared.load(Relaxed);
    let count = local.load(Relaxed) as isize;
    if deferred {
        #[cfg(not(Py_3_14))]
        {
            // SAFETY: attached thread (caller's contract).
            if unsafe { cpython::other_threads_exist() } {
                return Err(Refusal::Deferred);
            }
            if shared_word != REF_QUEUED {
                return Err(Refusal::SharedWithThreads);
            }
            return Ok(count - 1);
        }
        #[cfg(Py_3_14)]
        {
            let above = shared_word.wrapping_sub(REF_DEFERRED << REF_SHARED_SHIFT);
            let flags = above & REF_SHARED_FLAG_MASK;
            if above < 0 || (flags != 0 && flags != REF_MAYBE_WEAKREF) {
                return Err(Refusal::SharedWithThreads);
            }
            if reach == Reach::Unpublished && above >> REF_SHARED_SHIFT != 0 {
                return Err(Refusal::SharedWithThreads);
            }
            return Ok(count);
        }
    }
    if shared_word != 0 && shared_word != REF_MAYBE_WEAKREF {
        return Err(Refusal::SharedWithThreads);
    }
    // SAFETY: attached thread (caller's contract).
    if count > 1 && reach == Reach::Any && unsafe { cpython::other_threads_exist() } {
        return Err(Refusal::OtherThreadsExist);
    }
    Ok(count)
}

/// Completes the encoding of an object that is immortal by the
/// `_Py_IsImmortal` test but still owned by the calling thread: free-threaded
/// `Py_SET_REFCNT(op, UINT32_MAX)` stores exactly `UINT32_MAX` in
/// `ob_ref_local` and leaves `ob_tid` set (`Include/refcount.h`), whereas
/// an immortal is unowned.
///
/// # Safety
/// `op` must be live and immortal; the calling thread must be attached.
pub unsafe fn normalize_immortal(op: *mut PyObject) {
    let me = cpython::thread_id();
    // SAFETY: live object (caller's contract), used within this call. Only
    // the owner's own id is swapped out: another thread cannot own `op` at
    // the same time.
    let _ = unsafe { tid(op) }.compare_exchange(me, UNOWNED_TID, Relaxed, Relaxed);
}
