//! `sys.monitoring` callbacks as plain `METH_FASTCALL` C functions, for the events every traced
//! call pays (`PY_START`, `PY_RESUME`, `PY_RETURN`, `PY_YIELD`) and `PY_UNWIND`: CPython calls
//! them with its argument vector, without the keyword-aware argument parsing of a
//! `#[pyfunction]`; a callback's fast path ([`try_fast`]) gets the arguments borrowed. The
//! `extern "C"` entry points are the only code here that CPython calls directly; they never
//! unwind into it (a panic becomes a Python exception).

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::Borrowed;

/// What a callback does with `(code, offset[, value])`.
pub type Body =
    fn(Python<'_>, &Bound<'_, PyAny>, i64, Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>>;

/// A callback's fast path: `(code, offset)`, borrowed references as CPython passed them (no
/// reference count changes, no null check: CPython passes objects); true when it handled the
/// event, false to run the callback's general body.
pub type FastPath = fn(Python<'_>, *mut ffi::PyObject, *mut ffi::PyObject) -> bool;

/// As [`FastPath`], for a callback of `(code, offset, value)`.
pub type FastPathWithValue =
    fn(Python<'_>, *mut ffi::PyObject, *mut ffi::PyObject, *mut ffi::PyObject) -> bool;

/// Runs `fast` for a callback CPython called with `nargs` arguments at `args`: Some(result of
/// the callback) if it handled the event (None returned, or a panic raised as an exception).
///
/// # Safety
/// As [`dispatch`].
#[inline(always)]
pub unsafe fn try_fast(
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    fast: FastPath,
) -> Option<*mut ffi::PyObject> {
    if nargs < 2 {
        return None;
    }
    // SAFETY: at least two borrowed references at `args` (a vectorcall passes `nargs` valid
    // ones), alive for the call.
    let (code, offset) = unsafe { (*args, *args.add(1)) };
    // SAFETY: as the caller promises.
    unsafe { run_fast(move |py| fast(py, code, offset)) }
}

/// As [`try_fast`], for a callback of `(code, offset, value)`.
///
/// # Safety
/// As [`dispatch`].
#[inline(always)]
pub unsafe fn try_fast_with_value(
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    fast: FastPathWithValue,
) -> Option<*mut ffi::PyObject> {
    if nargs < 3 {
        return None;
    }
    // SAFETY: at least three borrowed references at `args`, alive for the call.
    let (code, offset, value) = unsafe { (*args, *args.add(1), *args.add(2)) };
    // SAFETY: as the caller promises.
    unsafe { run_fast(move |py| fast(py, code, offset, value)) }
}

/// Runs a fast path (the closure holds the arguments themselves: nothing is stored for it).
///
/// # Safety
/// Called from a callback CPython called (it holds the GIL).
#[inline(always)]
unsafe fn run_fast(fast: impl FnOnce(Python<'_>) -> bool) -> Option<*mut ffi::PyObject> {
    // SAFETY: CPython holds the GIL while it calls a callback.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(move || fast(py))) {
        Ok(true) => Some(new_none(py)),
        Ok(false) => None,
        Err(_) => {
            PanicException::new_err("ferrotrace: panic in a sys.monitoring callback").restore(py);
            Some(null_mut())
        }
    }
}

/// A new reference to `None`, as a callback returns it. `None` is immortal since 3.12: as
/// CPython's own `Py_RETURN_NONE` there, no count to raise.
#[inline(always)]
fn new_none(py: Python<'_>) -> *mut ffi::PyObject {
    #[cfg(Py_3_12)]
    {
        let _ = py;
        // SAFETY: a static object, alive as long as the interpreter.
        unsafe { ffi::Py_None() }
    }
    #[cfg(not(Py_3_12))]
    {
        py.None().into_ptr()
    }
}

/// Runs `body` for a callback CPython called with `nargs` arguments at `args`.
///
/// # Safety
/// Called only by CPython as a `METH_FASTCALL` function: the GIL is held and `args` points to
/// `nargs` borrowed references.
pub unsafe fn dispatch(
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    body: Body,
) -> *mut ffi::PyObject {
    // SAFETY: CPython holds the GIL while it calls a callback.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if !(2..=3).contains(&nargs) || args.is_null() {
            return Err(PyTypeError::new_err(
                "ferrotrace: a monitoring callback takes (code, offset[, value])",
            ));
        }
        // SAFETY: `nargs` (2 or 3) borrowed, non-null references at `args`, alive for the
        // call.
        let (code, offset, value) = unsafe {
            (
                Borrowed::from_ptr(py, *args),
                Borrowed::from_ptr(py, *args.add(1)),
                (nargs == 3).then(|| Borrowed::from_ptr(py, *args.add(2))),
            )
        };
        body(py, &code, offset.extract()?, value.as_deref())
    }));
    let error = match outcome {
        Ok(Ok(result)) => return result.into_ptr(),
        Ok(Err(error)) => error,
        Err(_) => PanicException::new_err("ferrotrace: panic in a sys.monitoring callback"),
    };
    error.restore(py);
    null_mut()
}

/// A builtin function object calling `entry` (`METH_FASTCALL`), named `name`. Its method
/// definition lives as long as the process (one per callback, made once).
pub fn function<'py>(
    py: Python<'py>,
    name: &'static CStr,
    entry: ffi::PyCFunctionFast,
) -> PyResult<Bound<'py, PyAny>> {
    let definition = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: entry,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: std::ptr::null(),
    }));
    // SAFETY: the definition is never freed; no self, no module.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(definition, null_mut(), null_mut()),
        )
    }
}
