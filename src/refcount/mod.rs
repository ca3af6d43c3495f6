//! The object header and refcount encoding of each CPython target.
//!
//! Exactly one module below is compiled, chosen by the cfgs that `build.rs`
//! derives from the target interpreter. Each one is the single home of the
//! layout facts and constants for its versions, with the CPython header and
//! issue each fact comes from. `src/cpython/oracle.rs` checks every layout
//! and constant here against bindgen's reading of the real headers.
//!
//! Every module offers the same items:
//! - `ObjectHead`: the `PyObject` header, field for field;
//! - `HAS_IMMORTALITY`: whether the version has immortal objects at all;
//! - `is_immortal`, `is_uniquely_referenced`: CPython's predicates;
//! - `write_immortal`: store the immortal encoding into an object that the
//!   caller has checked is uniquely referenced and GC-untracked;
//! - `enable_deferred`: turn on deferred reference counting, or refuse.

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

/// `Py_TYPE(op)`.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn type_of(op: *mut PyObject) -> *mut PyObject {
    // SAFETY: the caller passes a live object; `ob_type` is at the offset
    // the oracle verified for this target.
    unsafe { (*op.cast::<ObjectHead>()).ob_type }
}

/// Casts a `PyObject *` to this target's header.
pub(crate) fn head(op: *mut PyObject) -> *mut ObjectHead {
    op.cast()
}
