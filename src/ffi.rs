//! The raw C interface to CPython: opaque types and the `extern "C"`
//! declarations of the few functions and data that pyimmortal imports.
//!
//! This module is a leaf: it uses nothing else in the crate. Everything here
//! is unsafe to use directly; [`crate::cpython`] wraps it with documented
//! obligations. cbindgen does not read this module (see `lib.rs`), so none
//! of these declarations reach `include/pyimmortal.h`: C code gets them from
//! `Python.h`.

use core::ffi::{c_char, c_int, c_ulong, c_void};

/// CPython's `PyObject`, opaque here: its layout lives in
/// [`crate::refcount::ObjectHead`]. The header uses `Python.h`'s own type.
#[repr(C)]
pub struct PyObject {
    _private: [u8; 0],
}

/// `Py_ssize_t`; the header uses `Python.h`'s.
pub type Py_ssize_t = isize;

/// `visitproc` (`Include/object.h`).
pub type visitproc = Option<unsafe extern "C" fn(*mut PyObject, *mut c_void) -> c_int>;

/// `PyCapsule_Destructor` (`Include/pycapsule.h`).
pub type PyCapsule_Destructor = Option<unsafe extern "C" fn(*mut PyObject)>;

/// Opaque `PyTypeObject`: only its address is used.
#[repr(C)]
pub struct PyTypeObject {
    _private: [u8; 0],
}

/// Opaque `PyInterpreterState`.
#[repr(C)]
pub struct PyInterpreterState {
    _private: [u8; 0],
}

/// Opaque `PyThreadState`.
#[repr(C)]
pub struct PyThreadState {
    _private: [u8; 0],
}

extern "C" {
    // Stable ABI since 3.2.
    pub fn PyType_GetFlags(ty: *mut PyObject) -> c_ulong;
    // Public since 3.9 (bpo-40241).
    pub fn PyObject_GC_IsTracked(op: *mut PyObject) -> c_int;
    pub fn PyObject_GC_UnTrack(op: *mut c_void);
    // Public since 3.9 (bpo-40241).
    pub fn PyObject_GC_IsFinalized(op: *mut PyObject) -> c_int;
    // `_PyObject_IS_GC` as a function, public since 3.9
    // (`Include/cpython/objimpl.h`).
    pub fn PyObject_IS_GC(op: *mut PyObject) -> c_int;
    // Stable ABI; accepts static types from 3.10 on (bpo-41073).
    pub fn PyType_GetSlot(ty: *mut PyObject, slot: c_int) -> *mut c_void;
    pub fn Py_GetVersion() -> *const c_char;
    pub fn PyErr_SetString(exc: *mut PyObject, msg: *const c_char);
    pub fn PyErr_Occurred() -> *mut PyObject;
    pub fn PyErr_Clear();
    pub fn PyInterpreterState_Get() -> *mut PyInterpreterState;
    // Since 3.8 (`Include/pystate.h`).
    pub fn PyInterpreterState_GetDict(interp: *mut PyInterpreterState) -> *mut PyObject;
    pub fn PyDict_GetItemString(dict: *mut PyObject, key: *const c_char) -> *mut PyObject;
    // Public since 3.4 (`Include/cpython/dictobject.h`).
    pub fn PyDict_SetDefault(
        dict: *mut PyObject,
        key: *mut PyObject,
        default: *mut PyObject,
    ) -> *mut PyObject;
    pub fn PyUnicode_FromString(s: *const c_char) -> *mut PyObject;
    pub fn PyCapsule_New(
        pointer: *mut c_void,
        name: *const c_char,
        destructor: PyCapsule_Destructor,
    ) -> *mut PyObject;
    pub fn PyCapsule_GetPointer(capsule: *mut PyObject, name: *const c_char) -> *mut c_void;
    pub fn PyCapsule_SetDestructor(
        capsule: *mut PyObject,
        destructor: PyCapsule_Destructor,
    ) -> c_int;
    pub fn Py_DecRef(op: *mut PyObject);
    pub fn Py_IncRef(op: *mut PyObject);
    pub fn PyImport_ImportModule(name: *const c_char) -> *mut PyObject;
    pub fn PyObject_GetAttrString(op: *mut PyObject, name: *const c_char) -> *mut PyObject;
    // Since 3.9.
    pub fn PyObject_CallNoArgs(callable: *mut PyObject) -> *mut PyObject;
    pub fn PyObject_IsTrue(op: *mut PyObject) -> c_int;
    pub fn PyLong_AsSsize_t(op: *mut PyObject) -> Py_ssize_t;
    pub fn PyList_Size(list: *mut PyObject) -> Py_ssize_t;
    pub fn PyList_GetItem(list: *mut PyObject, index: Py_ssize_t) -> *mut PyObject;
    pub fn PyList_New(len: Py_ssize_t) -> *mut PyObject;
    // Steals `item`.
    pub fn PyList_SetItem(list: *mut PyObject, index: Py_ssize_t, item: *mut PyObject) -> c_int;
    // Since 3.12 (`Include/cpython/objimpl.h`).
    pub fn PyUnstable_GC_VisitObjects(
        callback: Option<unsafe extern "C" fn(*mut PyObject, *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
    pub fn PyErr_NoMemory() -> *mut PyObject;
    // Since 3.12.
    pub fn PyErr_GetRaisedException() -> *mut PyObject;
    pub fn PyErr_SetRaisedException(exc: *mut PyObject);
    pub static mut PyUnicode_Type: PyTypeObject;
    pub static mut PyCapsule_Type: PyTypeObject;
    pub fn PyMem_RawMalloc(size: usize) -> *mut c_void;
    pub fn PyMem_RawCalloc(nelem: usize, elsize: usize) -> *mut c_void;
    pub fn PyMem_RawRealloc(p: *mut c_void, size: usize) -> *mut c_void;
    pub fn PyMem_RawFree(p: *mut c_void);
    pub fn PyInterpreterState_ThreadHead(interp: *mut PyInterpreterState) -> *mut PyThreadState;
    pub fn PyThreadState_Next(t: *mut PyThreadState) -> *mut PyThreadState;
    pub fn PyThreadState_Get() -> *mut PyThreadState;
    pub static mut PyExc_TypeError: *mut PyObject;
    pub static mut PyExc_RuntimeError: *mut PyObject;
    pub static mut PyExc_SystemError: *mut PyObject;
    pub static mut PyExc_NotImplementedError: *mut PyObject;
}

#[cfg(Py_GIL_DISABLED)]
extern "C" {
    /// `_Py_ThreadId()` as the target's headers define it
    /// (`src/cpython/thread_id.c`).
    pub fn pyimmortal_sys_thread_id() -> usize;
}
