//! Constants that pyimmortal exposes to C in `pyimmortal.h`.
//!
//! This module is self-contained (no `OUT_DIR` includes, no `crate::`
//! paths) so that the layout test crate in `systest/` (ctest 0.5) can parse
//! it, compile it as its own module, and check every item against the
//! generated header.

use core::ffi::c_uint;

/// Major version of pyimmortal.
pub const PYIMMORTAL_VERSION_MAJOR: c_uint = 0;
/// Minor version of pyimmortal.
pub const PYIMMORTAL_VERSION_MINOR: c_uint = 1;
/// Patch version of pyimmortal.
pub const PYIMMORTAL_VERSION_PATCH: c_uint = 0;
/// `MAJOR * 10000 + MINOR * 100 + PATCH`, for `#if` comparisons.
pub const PYIMMORTAL_VERSION_NUMBER: c_uint =
    PYIMMORTAL_VERSION_MAJOR * 10000 + PYIMMORTAL_VERSION_MINOR * 100 + PYIMMORTAL_VERSION_PATCH;

/// Parses a decimal number at compile time (version strings from cargo and
/// `build.rs`).
pub(crate) const fn parse_decimal(s: &str) -> c_uint {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as c_uint;
        i += 1;
    }
    v
}
