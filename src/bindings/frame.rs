//! Access to `frame.f_trace` (and, on 3.11, `f_fast_as_locals`) at C speed.
//!
//! CPython has no public accessor for these fields, and the trace trampoline reads `f_trace`
//! on every local event. The leading fields of `struct _frame` are the same on 3.11 and 3.13
//! (`Include/internal/pycore_frame.h`); `verify_layout` checks this against the running
//! interpreter when the module is imported, so a mismatch is an ImportError, never a crash.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::CoreError;

#[cfg(Py_GIL_DISABLED)]
compile_error!("ferrotrace does not support free-threaded CPython builds yet");

/// The leading fields of CPython's `struct _frame` (3.11 to 3.13).
#[repr(C)]
struct FrameHead {
    ob_base: ffi::PyObject,
    f_back: *mut ffi::PyFrameObject,
    f_frame: *mut c_void,
    f_trace: *mut ffi::PyObject,
    f_lineno: c_int,
    f_trace_lines: c_char,
    f_trace_opcodes: c_char,
    #[cfg(not(Py_3_13))]
    f_fast_as_locals: c_char,
}

#[inline(always)]
unsafe fn head(frame: *mut ffi::PyFrameObject) -> *mut FrameHead {
    frame.cast()
}

/// The frame's local trace function (borrowed), or null.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[inline(always)]
pub unsafe fn f_trace(frame: *mut ffi::PyFrameObject) -> *mut ffi::PyObject {
    (*head(frame)).f_trace
}

/// Makes `new` (a strong reference, given away) the frame's local trace function.
///
/// # Safety
/// `frame` is a live frame object, `new` a strong reference, and the GIL is held.
#[inline(always)]
pub unsafe fn replace_f_trace(frame: *mut ffi::PyFrameObject, new: *mut ffi::PyObject) {
    let slot = ptr::addr_of_mut!((*head(frame)).f_trace);
    let old = *slot;
    *slot = new;
    // Decref last: the old function's destructor may run arbitrary code.
    ffi::Py_XDECREF(old);
}

/// Unsets the frame's local trace function.
///
/// # Safety
/// As for [`replace_f_trace`].
#[inline(always)]
pub unsafe fn clear_f_trace(frame: *mut ffi::PyFrameObject) {
    replace_f_trace(frame, ptr::null_mut());
}

/// Sets the cached line number (0: compute it from the instruction), as CPython's legacy
/// tracing does around each line event.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[inline(always)]
pub unsafe fn set_f_lineno(frame: *mut ffi::PyFrameObject, line: c_int) {
    (*head(frame)).f_lineno = line;
}

/// The frame's interpreter frame (`f_frame`), for the 3.11 eval-frame route.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[inline(always)]
pub unsafe fn interpreter_frame(frame: *mut ffi::PyFrameObject) -> *mut c_void {
    (*head(frame)).f_frame
}

/// `frame.f_trace_lines`.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[inline(always)]
pub unsafe fn trace_lines(frame: *mut ffi::PyFrameObject) -> bool {
    (*head(frame)).f_trace_lines != 0
}

/// `frame.f_trace_opcodes`.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[inline(always)]
pub unsafe fn trace_opcodes(frame: *mut ffi::PyFrameObject) -> bool {
    (*head(frame)).f_trace_opcodes != 0
}

/// Whether `frame.f_locals` holds a snapshot of the fast locals that a trace function may edit.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[cfg(not(Py_3_13))]
#[inline(always)]
pub unsafe fn fast_as_locals(frame: *mut ffi::PyFrameObject) -> bool {
    (*head(frame)).f_fast_as_locals != 0
}

/// Checks the field offsets above against the running interpreter, through the frame's
/// Python attributes, on the frame of whoever imports the module.
pub fn verify_layout(py: Python<'_>) -> Result<(), CoreError> {
    check_layout(py).map_err(|e| CoreError::FrameLayout(e.to_string()))?
}

fn check_layout(py: Python<'_>) -> PyResult<Result<(), CoreError>> {
    let frame = py.import("sys")?.getattr("_getframe")?.call0()?;
    if !frame.get_type().name()?.to_str()?.eq("frame") {
        return Ok(Err(CoreError::FrameLayout(
            "sys._getframe() is not a frame".into(),
        )));
    }
    let raw: *mut ffi::PyFrameObject = frame.as_ptr().cast();
    let saved_trace = frame.getattr("f_trace")?;
    let saved_lines = frame.getattr("f_trace_lines")?;
    let sentinel = PyString::new(py, "ferrotrace layout probe");

    let outcome = (|| -> PyResult<Result<(), CoreError>> {
        frame.setattr("f_trace", &sentinel)?;
        // SAFETY: `raw` is a live frame (we hold `frame`) and the GIL is held.
        if unsafe { f_trace(raw) } != sentinel.as_ptr() {
            return Ok(Err(CoreError::FrameLayout("f_trace offset".into())));
        }
        frame.setattr("f_trace_lines", false)?;
        // SAFETY: as above.
        if unsafe { (*head(raw)).f_trace_lines } != 0 {
            return Ok(Err(CoreError::FrameLayout("f_trace_lines offset".into())));
        }
        frame.setattr("f_trace_lines", true)?;
        // SAFETY: as above.
        if unsafe { (*head(raw)).f_trace_lines } != 1 {
            return Ok(Err(CoreError::FrameLayout("f_trace_lines offset".into())));
        }
        Ok(Ok(()))
    })();

    frame.setattr("f_trace_lines", saved_lines)?;
    frame.setattr("f_trace", saved_trace)?;
    outcome
}
