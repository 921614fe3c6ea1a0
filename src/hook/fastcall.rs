//! `sys.monitoring` callbacks as plain `METH_FASTCALL` C functions, for the events every traced
//! call pays (`PY_START`, `PY_RESUME`, `PY_RETURN`, `PY_YIELD`): CPython calls them with its
//! argument vector, without the keyword-aware argument parsing of a `#[pyfunction]`. The
//! `extern "C"` entry points are the only code here that CPython calls directly; they never
//! unwind into it (a panic becomes a Python exception).

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;

/// What a callback does with `(code, offset[, value])`.
pub type Body =
    fn(Python<'_>, &Bound<'_, PyAny>, i64, Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>>;

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
        // SAFETY: `nargs` (2 or 3) borrowed references at `args`, alive for the call.
        let (code, offset, value) = unsafe {
            (
                Bound::from_borrowed_ptr(py, *args),
                Bound::from_borrowed_ptr(py, *args.add(1)),
                (nargs == 3).then(|| Bound::from_borrowed_ptr(py, *args.add(2))),
            )
        };
        body(py, &code, offset.extract()?, value.as_ref())
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
