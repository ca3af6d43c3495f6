//! The layout oracle: bindgen's reading of the target's real `Python.h`,
//! compared at compile time with the hand-written definitions in
//! [`crate::refcount`] and [`crate::cpython`]. A difference stops the build
//! with a message naming the fact; no layout is ever guessed.

#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    clippy::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/cpython_oracle.rs"));
}

use crate::refcount::ObjectHead;
use bindings as c;
use std::mem::{align_of, offset_of, size_of};

/// Stops the build when a hand-written fact differs from the headers.
macro_rules! same {
    ($what:literal, $ours:expr, $theirs:expr) => {
        const _: () = assert!(
            ($ours) as u128 == ($theirs) as u128,
            concat!("pyimmortal: ", $what, " differs from the target's Python.h")
        );
    };
}

same!(
    "sizeof(PyObject)",
    size_of::<ObjectHead>(),
    size_of::<c::PyObject>()
);
same!(
    "sizeof(PyObject) (clang)",
    size_of::<ObjectHead>(),
    c::pyimmortal_oracle_SIZEOF_PYOBJECT
);
same!(
    "alignof(PyObject)",
    align_of::<ObjectHead>(),
    align_of::<c::PyObject>()
);
same!(
    "offsetof(PyObject, ob_type)",
    offset_of!(ObjectHead, ob_type),
    offset_of!(c::PyObject, ob_type)
);
same!(
    "Py_TPFLAGS_HAVE_GC",
    crate::refcount::TPFLAGS_HAVE_GC,
    c::pyimmortal_oracle_TPFLAGS_HAVE_GC
);
same!(
    "Py_TPFLAGS_UNICODE_SUBCLASS",
    crate::refcount::TPFLAGS_UNICODE_SUBCLASS,
    c::pyimmortal_oracle_TPFLAGS_UNICODE_SUBCLASS
);
same!(
    "Py_tp_finalize",
    crate::refcount::TP_FINALIZE_SLOT,
    c::pyimmortal_oracle_TP_FINALIZE_SLOT
);
same!(
    "PY_MINOR_VERSION",
    c::pyimmortal_oracle_PY_MINOR_VERSION,
    crate::abi::parse_decimal(env!("PYIMMORTAL_TARGET_MINOR"))
);

// CPython 3.9-3.11: Py_ssize_t ob_refcnt.
#[cfg(not(Py_3_12))]
same!(
    "offsetof(PyObject, ob_refcnt)",
    offset_of!(ObjectHead, ob_refcnt),
    offset_of!(c::PyObject, ob_refcnt)
);

// CPython 3.12-3.13 GIL: union { Py_ssize_t ob_refcnt; uint32_t ob_refcnt_split[2]; }.
#[cfg(all(Py_3_12, not(Py_3_14), not(Py_GIL_DISABLED)))]
mod py3_12 {
    use super::*;
    use crate::refcount as ours;
    same!(
        "offsetof(PyObject, ob_refcnt)",
        offset_of!(ObjectHead, ob_refcnt),
        offset_of!(c::PyObject, __bindgen_anon_1) + offset_of!(c::_object__bindgen_ty_1, ob_refcnt)
    );
    same!(
        "sizeof(ob_refcnt)",
        size_of::<isize>(),
        size_of::<c::_object__bindgen_ty_1>()
    );
    same!(
        "_Py_IMMORTAL_REFCNT",
        ours::IMMORTAL_REFCNT,
        c::pyimmortal_oracle_IMMORTAL_REFCNT
    );
}

// CPython 3.14-3.15 GIL: union { int64_t ob_refcnt_full; struct { uint32_t
// ob_refcnt; uint16_t ob_overflow; uint16_t ob_flags; }; }.
#[cfg(all(Py_3_14, not(Py_GIL_DISABLED)))]
mod py3_14 {
    use super::*;
    use crate::refcount as ours;
    type Split = c::_object__bindgen_ty_1__bindgen_ty_1;
    const BASE: usize = offset_of!(c::PyObject, __bindgen_anon_1);
    same!(
        "offsetof(PyObject, ob_refcnt)",
        offset_of!(ObjectHead, ob_refcnt),
        BASE + offset_of!(c::_object__bindgen_ty_1, __bindgen_anon_1)
            + offset_of!(Split, ob_refcnt)
    );
    same!(
        "offsetof(PyObject, ob_overflow)",
        offset_of!(ObjectHead, ob_overflow),
        BASE + offset_of!(c::_object__bindgen_ty_1, __bindgen_anon_1)
            + offset_of!(Split, ob_overflow)
    );
    same!(
        "offsetof(PyObject, ob_flags)",
        offset_of!(ObjectHead, ob_flags),
        BASE + offset_of!(c::_object__bindgen_ty_1, __bindgen_anon_1) + offset_of!(Split, ob_flags)
    );
    same!(
        "_Py_IMMORTAL_INITIAL_REFCNT",
        ours::IMMORTAL_INITIAL_REFCNT,
        c::pyimmortal_oracle_IMMORTAL_INITIAL_REFCNT
    );
    same!(
        "_Py_IMMORTAL_MINIMUM_REFCNT",
        ours::IMMORTAL_MINIMUM_REFCNT,
        c::pyimmortal_oracle_IMMORTAL_MINIMUM_REFCNT
    );
    same!(
        "_Py_IMMORTAL_FLAGS",
        ours::IMMORTAL_FLAGS,
        c::pyimmortal_oracle_IMMORTAL_FLAGS
    );
    same!(
        "_Py_STATICALLY_ALLOCATED_FLAG",
        ours::STATICALLY_ALLOCATED_FLAG,
        c::pyimmortal_oracle_STATICALLY_ALLOCATED_FLAG
    );
}

// Free-threaded 3.13t-3.15t.
#[cfg(Py_GIL_DISABLED)]
mod ft {
    use super::*;
    use crate::refcount as ours;
    same!(
        "offsetof(PyObject, ob_tid)",
        offset_of!(ObjectHead, ob_tid),
        offset_of!(c::PyObject, ob_tid)
    );
    #[cfg(not(Py_3_14))]
    same!(
        "offsetof(PyObject, _padding)",
        offset_of!(ObjectHead, ob_flags),
        offset_of!(c::PyObject, _padding)
    );
    #[cfg(Py_3_14)]
    same!(
        "offsetof(PyObject, ob_flags)",
        offset_of!(ObjectHead, ob_flags),
        offset_of!(c::PyObject, ob_flags)
    );
    same!(
        "offsetof(PyObject, ob_mutex)",
        offset_of!(ObjectHead, ob_mutex),
        offset_of!(c::PyObject, ob_mutex)
    );
    same!("sizeof(PyMutex)", size_of::<u8>(), size_of::<c::PyMutex>());
    same!(
        "offsetof(PyObject, ob_gc_bits)",
        offset_of!(ObjectHead, ob_gc_bits),
        offset_of!(c::PyObject, ob_gc_bits)
    );
    same!(
        "offsetof(PyObject, ob_ref_local)",
        offset_of!(ObjectHead, ob_ref_local),
        offset_of!(c::PyObject, ob_ref_local)
    );
    same!(
        "offsetof(PyObject, ob_ref_shared)",
        offset_of!(ObjectHead, ob_ref_shared),
        offset_of!(c::PyObject, ob_ref_shared)
    );
    same!(
        "_Py_IMMORTAL_REFCNT_LOCAL",
        ours::IMMORTAL_REFCNT_LOCAL,
        c::pyimmortal_oracle_IMMORTAL_REFCNT_LOCAL
    );
    same!(
        "_Py_UNOWNED_TID",
        ours::UNOWNED_TID,
        c::pyimmortal_oracle_UNOWNED_TID
    );
    same!(
        "_Py_REF_SHARED_SHIFT",
        ours::REF_SHARED_SHIFT,
        c::pyimmortal_oracle_REF_SHARED_SHIFT
    );
    same!(
        "_PyGC_BITS_TRACKED",
        ours::GC_BITS_TRACKED,
        c::pyimmortal_oracle_GC_BITS_TRACKED
    );
    same!(
        "_PyGC_BITS_DEFERRED",
        ours::GC_BITS_DEFERRED,
        c::pyimmortal_oracle_GC_BITS_DEFERRED
    );
}
