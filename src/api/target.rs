//! What the library was built for.

use core::ffi::{c_char, c_ulong};

/// The CPython target this copy of the library was built for, as a static
/// NUL-terminated string such as `"3.14"` or `"3.14t"`. Never NULL; needs
/// no thread state.
#[no_mangle]
pub extern "C" fn pyimmortal_target() -> *const c_char {
    concat!(env!("PYIMMORTAL_TARGET"), "\0").as_ptr().cast()
}

/// `PY_VERSION_HEX` of the headers the library was built against. Needs no
/// thread state.
#[no_mangle]
pub extern "C" fn pyimmortal_target_version_hex() -> c_ulong {
    const HEX: c_ulong =
        crate::abi::parse_decimal(env!("PYIMMORTAL_TARGET_VERSION_HEX")) as c_ulong;
    HEX
}
