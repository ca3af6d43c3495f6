//! pyimmortal: immortal objects and deferred reference counting for CPython
//! C extensions, with CPython's own spelling and contract on CPython 3.9 to
//! 3.15, GIL and free-threaded.
//!
//! The library is built for one CPython target (version and flavor), chosen
//! by `build.rs` from the target interpreter. C code includes
//! `include/pyimmortal.h` and links `libpyimmortal.a`.
//!
//! Layout of the crate:
//! - [`api`]: the exported functions, one module per header section;
//! - [`refcount`]: the object header and refcount encoding of each target;
//! - [`cpython`]: calls into the running interpreter, and the layout oracle;
//! - [`guard`]: the NULL, target and panic guard around every export.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![allow(non_snake_case, non_camel_case_types)]

pub mod abi;
pub mod api;
pub mod cpython;
/// cbindgen:ignore
pub mod ffi;
pub mod guard;
pub mod layout;
pub mod refcount;

// `pyimmortal_abi_cpython_3_<minor>[t]`: see `include/pyimmortal.h`.
include!(concat!(env!("OUT_DIR"), "/abi_symbol.rs"));

#[cfg(test)]
#[allow(dead_code)]
#[path = "../build/python_config.rs"]
mod python_config;
