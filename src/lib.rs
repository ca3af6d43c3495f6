//! pyimmortal: immortal objects and deferred reference counting for CPython
//! C extensions, with CPython's own spelling and contract on CPython 3.9 to
//! 3.15, GIL and free-threaded.
//!
//! The library is built for one CPython target (version and flavor), chosen
//! by `build.rs` from the target interpreter. C code includes
//! `include/pyimmortal.h` and links `libpyimmortal.a`.
//!
//! # Layout of the crate
//!
//! Dependencies run one way, from the exports down to the raw C imports:
//!
//! ```text
//! api       ──► guard, refcount, cpython
//! guard     ──► cpython
//! refcount  ──► cpython, and layout (compile-time checks only)
//! cpython   ──► ffi
//! layout    ──► bindgen's reading of the target's headers
//! ffi, abi, spin ──► nothing: leaves that any module may use
//!               (`ffi::PyObject`, `abi`'s version parser, the spin lock)
//! ```
//!
//! - [`api`]: the exported functions, one module per section of the header.
//!   Each runs inside [`guard`], decides with [`refcount`], and calls
//!   [`cpython`] for what needs no layout fact (run-time lookups, GC
//!   untracking, the interpreter id of the registry).
//! - [`guard`]: the NULL and target guard around every export.
//! - [`refcount`]: everything pyimmortal knows about the target: the
//!   object header, the refcount encoding, type flags, what may be made
//!   immortal, and why not ([`refcount::Refusal`], with its exceptions).
//!   One file per target, and exactly one is compiled:
//!   `src/refcount/py3_9.rs` (3.9-3.11), `py3_12.rs` (3.12-3.13),
//!   `py3_14.rs` (3.14-3.15) and `ft.rs` (3.13t-3.15t; 3.14t's behaviour is
//!   there, with the parts that differ from 3.13t under `cfg(Py_3_14)`).
//!   `common.rs` holds the facts shared by every target.
//! - [`cpython`]: calls into the running interpreter, each stating what it
//!   requires, the functions looked up at run time, and the check that the
//!   running interpreter is the target ([`cpython::runtime`]).
//! - [`ffi`]: the raw C declarations; a leaf that cbindgen does not read.
//! - [`layout`]: on the side, at compile time only: the `facts!` and
//!   `object_head!` macros that declare each fact in `refcount` and compare
//!   it with bindgen's reading of the target's headers, from a C probe that
//!   `build.rs` generates out of the same tables (`build/layout_probe.rs`).
//! - [`spin`]: the spin lock around the little state pyimmortal keeps.
//! - [`abi`]: the constants exported in the header; a leaf that the
//!   `systest/` crate also reads.

// Built with `panic = "abort"` (the release and dev profiles), the crate
// needs only `core` and `libc`: libpyimmortal.a then carries none of the
// standard library's runtime (its panic, formatting and backtrace code), and
// an extension pays a few kilobytes for it. No code path panics; should one
// ever, the handler below aborts, so no panic unwinds into C. Unit tests and
// systest/ build with unwinding, and so with std.
#![cfg_attr(all(not(test), panic = "abort"), no_std)]
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
pub mod spin;

// The header's version is Cargo.toml's version.
const _: () = {
    use abi::*;
    assert!(PYIMMORTAL_VERSION_MAJOR == parse_decimal(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(PYIMMORTAL_VERSION_MINOR == parse_decimal(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(PYIMMORTAL_VERSION_PATCH == parse_decimal(env!("CARGO_PKG_VERSION_PATCH")));
};

// `pyimmortal_abi_cpython_3_<minor>[t]`: see `include/pyimmortal.h`.
include!(concat!(env!("OUT_DIR"), "/abi_symbol.rs"));

#[cfg(all(not(test), panic = "abort"))]
#[panic_handler]
fn abort_on_panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: abort() takes no arguments and never returns.
    unsafe { libc::abort() }
}

#[cfg(test)]
#[allow(dead_code)]
#[path = "../build/python_config.rs"]
mod python_config;
