//! Why pyimmortal refuses to make an object immortal, and the exception that
//! `pyimmortal_ImmortalizeChecked` raises for each reason.

use crate::cpython::Exception;
use core::ffi::CStr;

/// Why pyimmortal refuses to make an object immortal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// CPython before 3.12 has no immortal objects.
    NoImmortality,
    /// `str` and subclasses: an immortal string must be interned.
    Str,
    /// A type whose objects break when untracked by the GC.
    TypeCannotBeImmortal,
    /// Free-threaded: the object is owned by another thread.
    NotOwned,
    /// Free-threaded: other threads hold references (shared count or flags).
    SharedWithThreads,
    /// Free-threaded: more than one reference while other threads exist.
    OtherThreadsExist,
    /// 3.13t: deferred reference counting is on while other threads exist.
    Deferred,
    /// Free-threaded: a GC object whose finalizer has not run. It may be
    /// running from the object's deallocator, which requires the object to
    /// stay tracked, and a tracked object does not stay immortal there.
    FinalizerPending,
}

impl Refusal {
    /// The message and exception for each refusal.
    pub fn error(self) -> (Exception, &'static CStr) {
        match self {
            Self::NoImmortality => (
                Exception::NotImplementedError,
                c"pyimmortal: this CPython has no immortal objects (they exist from CPython 3.12 on, PEP 683)",
            ),
            Self::Str => (
                Exception::TypeError,
                c"pyimmortal: str objects cannot be made immortal; intern the string instead (PyUnicode_InternInPlace() or sys.intern())",
            ),
            Self::TypeCannotBeImmortal => (
                Exception::TypeError,
                c"pyimmortal: dict objects cannot be made immortal on CPython 3.14+: a dict must stay tracked by the garbage collector (gh-153051)",
            ),
            Self::NotOwned => (
                Exception::RuntimeError,
                c"pyimmortal: the object is owned by another thread; make it immortal on the thread that created it",
            ),
            Self::SharedWithThreads => (
                Exception::RuntimeError,
                c"pyimmortal: other threads hold references to the object (its shared reference count is not zero, or references are queued for merging)",
            ),
            Self::OtherThreadsExist => (
                Exception::RuntimeError,
                c"pyimmortal: the object has more than one reference while other threads exist; make it immortal before starting threads, while it is uniquely referenced, or before publishing it (pyimmortal_ImmortalizeUnpublished)",
            ),
            Self::FinalizerPending => (
                Exception::RuntimeError,
                c"pyimmortal: on free-threaded CPython an object whose finalizer (__del__ or tp_finalize) has not run cannot be made immortal: the finalizer may be running from the object's deallocation, which requires the object to stay tracked by the garbage collector, and a tracked object does not stay immortal there",
            ),
            Self::Deferred => (
                Exception::RuntimeError,
                c"pyimmortal: on CPython 3.13t an object with deferred reference counting can be made immortal only while no other thread exists in the interpreter (CPython makes such objects immortal itself when the first other thread starts, gh-117783)",
            ),
        }
    }
}
