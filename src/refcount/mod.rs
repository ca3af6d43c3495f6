//! What pyimmortal knows about each CPython target: the object header, the
//! refcount encoding and every other fact taken from the headers.
//!
//! Exactly one target module below is compiled, chosen by the cfgs that
//! `build.rs` derives from the target interpreter:
//!
//! | target              | file        |
//! |---------------------|-------------|
//! | 3.9, 3.10, 3.11     | `py3_9.rs`  |
//! | 3.12, 3.13          | `py3_12.rs` |
//! | 3.14, 3.15          | `py3_14.rs` |
//! | 3.13t, 3.14t, 3.15t | `ft.rs`     |
//!
//! `common.rs` holds the facts shared by every target (type flags and
//! slots) and the type checks built on them; `refusal.rs` the reasons to
//! refuse immortalization and their exceptions. Each fact is declared once,
//! in a `facts!` or `object_head!` table that also compares it with the
//! target's headers at compile time (see `src/layout/`), with the CPython
//! header and issue it comes from.
//!
//! Every target module offers the same items:
//! - `ObjectHead`: the `PyObject` header, field for field;
//! - `HAS_IMMORTALITY`, `DICTS_CAN_BE_IMMORTAL`: what the version allows;
//! - `is_immortal`, `is_uniquely_referenced`: CPython's predicates;
//! - `owned_references`: whether the calling thread may make an object
//!   immortal whatever its count ([`Reach`] says who else may reach it),
//!   and how many references it holds;
//! - `write_immortal`: store the immortal encoding (see each target's
//!   contract), and `normalize_immortal` to complete a partial one;
//! - `enable_deferred`: turn on deferred reference counting, or refuse.
//!
//! This layer calls into the interpreter only through [`crate::cpython`].

#[cfg(not(Py_3_12))]
#[path = "py3_9.rs"]
mod imp;

#[cfg(all(Py_3_12, not(Py_3_14), not(Py_GIL_DISABLED)))]
#[path = "py3_12.rs"]
mod imp;

#[cfg(all(Py_3_14, not(Py_GIL_DISABLED)))]
#[path = "py3_14.rs"]
mod imp;

#[cfg(Py_GIL_DISABLED)]
#[path = "ft.rs"]
mod imp;

mod common;
mod refusal;

pub use common::*;
pub use imp::*;
pub use refusal::Refusal;

use crate::ffi::PyObject;

/// Who may reach the object while it is made immortal: what the caller of
/// [`owned_references`] vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any thread the object was handed to (`pyimmortal_Immortalize`).
    Any,
    /// The calling thread only: the object has not been stored where
    /// another thread can read it (`pyimmortal_ImmortalizeUnpublished`).
    Unpublished,
}

/// `Py_TYPE(op)`.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn type_of(op: *mut PyObject) -> *mut PyObject {
    // SAFETY: the caller passes a live object; `ob_type` is at the offset
    // that the layout check verified for this target.
    unsafe { (*op.cast::<ObjectHead>()).ob_type }
}

/// Casts a `PyObject *` to this target's header.
pub(crate) fn head(op: *mut PyObject) -> *mut ObjectHead {
    op.cast()
}
