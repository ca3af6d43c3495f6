//! The layout check: every fact that pyimmortal assumes about the target's
//! headers is compared, at compile time, with the headers themselves. A
//! difference stops the build with a message naming the fact; no layout is
//! ever guessed.
//!
//! This module is on the side of the crate: nothing calls into it at run
//! time. The facts live in `src/refcount/`, each declared once in a table:
//!
//! - [`facts!`]: constants. A row `NAME: TYPE = VALUE => "C expression";`
//!   becomes the constant `NAME`, a C enumerator in the probe that `build.rs`
//!   generates from the same row (`build/layout_probe.rs`), which bindgen
//!   evaluates with clang into [`oracle`]`::NAME`, and an assertion that the
//!   two are equal. A row that the probe lacks has no `oracle::NAME` and does
//!   not compile.
//! - [`object_head!`]: the `PyObject` header. The struct's size and alignment,
//!   and every field's offset and size, are compared with bindgen's reading
//!   of `PyObject`.
//!
//! A unit test below checks that nothing in `src/` declares a header fact
//! outside these tables.

/// bindgen's reading of the target's `Python.h` and of the generated probe
/// (`PyObject`, and one constant per `facts!` row).
#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    clippy::all
)]
pub mod oracle {
    include!(concat!(env!("OUT_DIR"), "/cpython_oracle.rs"));
}

// The headers are those of the version the library is built for.
const _: () = assert!(
    oracle::PY_MINOR_VERSION as u32 == crate::abi::parse_decimal(env!("PYIMMORTAL_TARGET_MINOR")),
    "pyimmortal: PY_MINOR_VERSION of the headers read by bindgen differs from the target's"
);

/// Declares a table of header facts: each row is a `pub(crate) const`,
/// checked against the C expression it names (see the module docs).
///
/// ```text
/// crate::layout::facts! {
///     /// `_Py_REF_SHARED_SHIFT` (`Include/refcount.h`).
///     REF_SHARED_SHIFT: u32 = 2 => "_Py_REF_SHARED_SHIFT";
/// }
/// ```
///
/// Rows are one line each, optionally preceded by doc comments and one
/// `#[cfg(...)]`, and the table starts at column 0 and ends with a `}` line:
/// `build/layout_probe.rs` reads the same text.
macro_rules! facts {
    ($(
        $(#[doc = $doc:literal])*
        $(#[cfg($cfg:meta)])?
        $name:ident: $ty:ty = $value:expr => $c:literal;
    )*) => {$(
        $(#[doc = $doc])*
        #[doc = concat!("\n\nChecked against `", $c, "` in the target's headers.")]
        $(#[cfg($cfg)])?
        pub(crate) const $name: $ty = $value;

        $(#[cfg($cfg)])?
        const _: () = assert!(
            $name as i128 == $crate::layout::oracle::$name as i128,
            concat!(
                "pyimmortal: ", stringify!($name), " = ", stringify!($value),
                " differs from ", $c, " in the target's headers"
            )
        );
    )*};
}

/// Declares the target's `PyObject` header as a `#[repr(C)]` struct and
/// checks it against bindgen's reading of `PyObject`: size, alignment, and
/// each field's offset and size. A field whose C name differs, or that sits
/// in an anonymous union, names its path in bindgen's struct after `=>`.
///
/// ```text
/// crate::layout::object_head! {
///     /// `PyObject` in CPython 3.12-3.13.
///     pub struct ObjectHead {
///         pub ob_refcnt: isize => __bindgen_anon_1.ob_refcnt,
///         pub ob_type: *mut PyObject,
///     }
/// }
/// ```
macro_rules! object_head {
    (
        $(#[doc = $doc:literal])*
        pub struct $head:ident {$(
            $(#[doc = $fdoc:literal])*
            $(#[cfg($cfg:meta)])?
            pub $field:ident: $ty:ty $(=> $($c_field:ident).+)?,
        )*}
    ) => {
        $(#[doc = $doc])*
        #[repr(C)]
        pub struct $head {$(
            $(#[doc = $fdoc])*
            $(#[cfg($cfg)])?
            pub $field: $ty,
        )*}

        const _: () = {
            use std::mem::{align_of, size_of};
            use $crate::layout::oracle::PyObject;
            assert!(
                size_of::<$head>() == size_of::<PyObject>(),
                "pyimmortal: sizeof(PyObject) differs from the target's Python.h"
            );
            assert!(
                align_of::<$head>() == align_of::<PyObject>(),
                "pyimmortal: alignof(PyObject) differs from the target's Python.h"
            );
        };
        $(
            $(#[cfg($cfg)])?
            $crate::layout::field_matches!($head, $field: $ty $(=> $($c_field).+)?);
        )*
    };
}

/// One field of [`object_head!`]: same offset and same size as in C.
macro_rules! field_matches {
    ($head:ident, $field:ident: $ty:ty) => {
        $crate::layout::field_matches!($head, $field: $ty => $field);
    };
    ($head:ident, $field:ident: $ty:ty => $($c_field:ident).+) => {
        #[allow(unused_unsafe)]
        const _: () = {
            use std::mem::{offset_of, size_of};
            use $crate::layout::oracle::PyObject;
            assert!(
                offset_of!($head, $field) == offset_of!(PyObject, $($c_field).+),
                concat!(
                    "pyimmortal: offsetof(PyObject, ", stringify!($field),
                    ") differs from the target's Python.h"
                )
            );
            assert!(
                size_of::<$ty>()
                    // SAFETY: never called; only the field's type is used.
                    == $crate::layout::size_of_field(|o: &PyObject| unsafe { &o.$($c_field).+ }),
                concat!(
                    "pyimmortal: the size of PyObject's ", stringify!($field),
                    " differs from the target's Python.h"
                )
            );
        };
    };
}

pub(crate) use {facts, field_matches, object_head};

/// The size of the field that `field` projects to, without a value.
pub(crate) const fn size_of_field<T, F>(_field: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}
