//! Functions looked up in the running interpreter with `dlsym`.
//!
//! Where the interpreter exports CPython's own version of one of the two
//! functions that change an object (`PyUnstable_SetImmortal`,
//! `PyUnstable_Object_EnableDeferredRefcount`), for example a 3.15
//! pre-release built between alphas whose `PY_VERSION_HEX` cannot tell,
//! pyimmortal calls it instead of its own implementation. (The two queries
//! read the header fields that CPython's own read, and call nothing.) The
//! environment variable `PYIMMORTAL_FORCE_BUILTIN=1` (read once) turns that
//! off, so the tests can compare both implementations on one interpreter.

use crate::ffi::PyObject;
use core::ffi::{c_int, c_ulong, c_void, CStr};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// Signature shared by CPython's refcount functions.
pub type ObjectPredicate = unsafe extern "C" fn(*mut PyObject) -> c_int;

const ABSENT: *mut c_void = 1 as *mut c_void;

/// A symbol looked up once, on first use.
pub struct Export {
    name: &'static CStr,
    slot: AtomicPtr<c_void>,
}

impl Export {
    pub const fn new(name: &'static CStr) -> Self {
        Self {
            name,
            slot: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The symbol's address, or `None` if the process does not export it.
    pub fn address(&self) -> Option<*mut c_void> {
        let mut p = self.slot.load(Ordering::Acquire);
        if p.is_null() {
            // SAFETY: dlsym with a NUL-terminated name is always safe to call.
            let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, self.name.as_ptr()) };
            p = if found.is_null() { ABSENT } else { found };
            self.slot.store(p, Ordering::Release);
        }
        (p != ABSENT).then_some(p)
    }

    /// The symbol as one of CPython's object predicates, unless
    /// `PYIMMORTAL_FORCE_BUILTIN` is set.
    pub fn predicate(&self) -> Option<ObjectPredicate> {
        if force_builtin() {
            return None;
        }
        // SAFETY: only used for symbols whose C signature is
        // `int (PyObject *)`.
        self.address()
            .map(|p| unsafe { core::mem::transmute::<*mut c_void, ObjectPredicate>(p) })
    }
}

pub static SET_IMMORTAL: Export = Export::new(c"PyUnstable_SetImmortal");
pub static ENABLE_DEFERRED_REFCOUNT: Export =
    Export::new(c"PyUnstable_Object_EnableDeferredRefcount");
/// Exported by `Py_REF_DEBUG` builds 3.12+ (`Include/object.h`,
/// `Include/refcount.h`): lowers the interpreter's total refcount by one.
pub static DECREF_DEC_REF_TOTAL: Export = Export::new(c"_Py_DECREF_DecRefTotal");
/// Declared and exported only by free-threaded builds (`Include/object.h`
/// 3.13+, gh-110481); its presence tells the flavor of the running
/// interpreter.
pub static MERGE_ZERO_LOCAL_REFCOUNT: Export = Export::new(c"_Py_MergeZeroLocalRefcount");

/// Lowers a debug interpreter's total refcount by `n`; nothing on release
/// builds.
///
/// # Safety
/// The calling thread must be attached, as for `Py_DECREF`.
pub unsafe fn dec_ref_total(n: isize) {
    if let Some(p) = DECREF_DEC_REF_TOTAL.address() {
        // SAFETY: the symbol is `void _Py_DECREF_DecRefTotal(void)`.
        let f = unsafe { core::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(p) };
        for _ in 0..n {
            // SAFETY: attached thread (caller's contract).
            unsafe { f() }
        }
    }
}

/// `void PyUnicode_InternImmortal(PyObject **)`: exported for the stable ABI
/// (`Objects/unicodeobject.c`, 3.12 to 3.15). It interns `*p` and makes the
/// interned string immortal, as CPython interns identifiers; the reference
/// passed in becomes a reference to the result. Found at run time, since the
/// headers no longer declare it.
pub static UNICODE_INTERN_IMMORTAL: Export = Export::new(c"PyUnicode_InternImmortal");

fn force_builtin() -> bool {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // SAFETY: getenv with a NUL-terminated name; the result, if not
            // NULL, is a NUL-terminated string that is only compared here.
            let on = unsafe {
                let v = libc::getenv(c"PYIMMORTAL_FORCE_BUILTIN".as_ptr());
                !v.is_null() && CStr::from_ptr(v) == c"1"
            };
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// `Py_Version`: the running interpreter's `PY_VERSION_HEX`, exported as
/// data since 3.11 (`Include/pylifecycle.h`, stable ABI).
pub static PY_VERSION: Export = Export::new(c"Py_Version");

/// The running interpreter's minor version: from `Py_Version` where it is
/// exported (3.11+), else from the `Py_GetVersion()` string (3.9, 3.10, GIL
/// builds only).
///
/// # Safety
/// The calling thread must be attached (see [`super::running_minor`]).
unsafe fn running_minor() -> Option<u32> {
    match PY_VERSION.address() {
        // SAFETY: the symbol is `const unsigned long Py_Version`, read-only
        // data.
        Some(p) => Some(((unsafe { *p.cast::<c_ulong>() } >> 16) & 0xff) as u32),
        // SAFETY: attached thread (caller's contract).
        None => unsafe { super::running_minor() },
    }
}

/// What [`target_matches`] decided: not yet, or its answer.
static TARGET: AtomicU8 = AtomicU8::new(UNCHECKED);
const UNCHECKED: u8 = 0;
const MATCHES: u8 = 1;
const MISMATCH: u8 = 2;

/// Whether the running interpreter is the target the library was built
/// for. Decided by the first caller; a mismatch is reported once on stderr
/// and makes every function return its "did nothing" value. After the first
/// call this is one load and a compare.
///
/// # Safety
/// The calling thread must be attached: the first call may read
/// `Py_GetVersion()`.
#[inline(always)]
pub unsafe fn target_matches() -> bool {
    // Relaxed: the answer publishes no other data, and every thread that
    // computes it computes the same one.
    match TARGET.load(Ordering::Relaxed) {
        MATCHES => true,
        MISMATCH => false,
        // SAFETY: attached thread (caller's contract).
        _ => unsafe { check_target() },
    }
}

/// The first call of [`target_matches`].
///
/// # Safety
/// The calling thread must be attached.
#[cold]
#[inline(never)]
unsafe fn check_target() -> bool {
    let built_minor = crate::abi::parse_decimal(env!("PYIMMORTAL_TARGET_MINOR"));
    let built_ft = cfg!(Py_GIL_DISABLED);
    // SAFETY: attached thread (caller's contract).
    let running_minor = unsafe { running_minor() };
    let running_ft = MERGE_ZERO_LOCAL_REFCOUNT.address().is_some();
    let ok = running_minor == Some(built_minor) && running_ft == built_ft;
    let answer = if ok { MATCHES } else { MISMATCH };
    // Only the thread that stores the answer reports it.
    let first = TARGET
        .compare_exchange(UNCHECKED, answer, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok();
    if first && !ok {
        report_mismatch(running_minor, running_ft);
    }
    ok
}

/// Prints the one line that says the library is for another interpreter.
fn report_mismatch(running_minor: Option<u32>, running_ft: bool) {
    let mut digits = [0u8; 10];
    let minor: &[u8] = match running_minor {
        Some(m) => super::format_decimal(m, &mut digits),
        None => b"?",
    };
    let parts: [&[u8]; 6] = [
        b"pyimmortal: this library was built for CPython ",
        env!("PYIMMORTAL_TARGET").as_bytes(),
        b" but the running interpreter is 3.",
        minor,
        if running_ft { b"t" } else { b"" },
        b"; pyimmortal leaves every object unchanged. \
          Rebuild libpyimmortal.a for this interpreter.\n",
    ];
    for part in parts {
        // SAFETY: writes `part.len()` bytes from a live slice to stderr. A
        // failed or short write loses (part of) a diagnostic, nothing else.
        unsafe { libc::write(libc::STDERR_FILENO, part.as_ptr().cast(), part.len()) };
    }
}
