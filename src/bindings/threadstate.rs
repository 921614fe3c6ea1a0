//! Installing a `Py_tracefunc` on a thread state, with `sys.settrace`'s own error behaviour.
//!
//! `sys.settrace` calls CPython's `_PyEval_SetTrace`, which raises when an audit hook vetoes
//! the change; the public `PyEval_SetTrace` reports that error as unraisable instead. The
//! private function is exported by 3.11 and (as a plain symbol) by later builds, so it is
//! looked up once at import; where it is absent the public route is used, with the audit
//! done first so that a veto still raises.

use std::ffi::{c_char, c_int};
use std::ptr;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

type PrivateSetTrace = unsafe extern "C" fn(
    *mut ffi::PyThreadState,
    Option<ffi::Py_tracefunc>,
    *mut ffi::PyObject,
) -> c_int;

extern "C" {
    fn PySys_Audit(event: *const c_char, format: *const c_char, ...) -> c_int;
}

static PRIVATE_SET_TRACE: OnceLock<Option<PrivateSetTrace>> = OnceLock::new();

fn private_set_trace() -> Option<PrivateSetTrace> {
    *PRIVATE_SET_TRACE.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT only reads the loaded symbol tables.
        let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyEval_SetTrace".as_ptr()) };
        if symbol.is_null() {
            None
        } else {
            // SAFETY: the symbol is CPython's `_PyEval_SetTrace`, whose signature this is on
            // every version from 3.11 on.
            Some(unsafe { std::mem::transmute::<*mut libc::c_void, PrivateSetTrace>(symbol) })
        }
    })
}

/// Resolves the private setter now, so the first trace event does not pay for `dlsym`.
pub fn prepare() {
    let _ = private_set_trace();
}

/// Sets (or with `func` None, removes) the calling thread's trace function, exactly as
/// `sys.settrace` does: an audit hook's veto raises.
pub fn set_current_thread(
    py: Python<'_>,
    func: Option<ffi::Py_tracefunc>,
    obj: *mut ffi::PyObject,
) -> PyResult<()> {
    let obj = if func.is_some() { obj } else { ptr::null_mut() };
    // SAFETY: the GIL is held; `obj` is a live object or null.
    unsafe {
        match private_set_trace() {
            Some(set_trace) => {
                if set_trace(ffi::PyThreadState_Get(), func, obj) < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            None => {
                if PySys_Audit(c"sys.settrace".as_ptr(), ptr::null()) < 0 {
                    return Err(PyErr::fetch(py));
                }
                ffi::PyEval_SetTrace(func, obj);
            }
        }
    }
    Ok(())
}

/// Switches tracing off for the calling thread after a trace function raised, keeping the
/// raised exception set, as CPython's `trace_trampoline` does.
///
/// # Safety
/// The GIL is held.
pub unsafe fn disable_current_thread_after_error() {
    match private_set_trace() {
        Some(set_trace) => {
            set_trace(ffi::PyThreadState_Get(), None, ptr::null_mut());
        }
        None => ffi::PyEval_SetTrace(None, ptr::null_mut()),
    }
}

/// Sets the trace function of every thread of this interpreter that exists now, as
/// `sys._settraceallthreads` does (errors are reported as unraisable, thread by thread).
pub fn set_all_threads(
    py: Python<'_>,
    func: Option<ffi::Py_tracefunc>,
    obj: *mut ffi::PyObject,
) -> PyResult<()> {
    let obj = if func.is_some() { obj } else { ptr::null_mut() };
    #[cfg(Py_3_12)]
    {
        let _ = py;
        // SAFETY: the GIL is held; CPython walks its thread list under its own lock.
        unsafe { ffi::PyEval_SetTraceAllThreads(func, obj) };
        Ok(())
    }
    #[cfg(not(Py_3_12))]
    {
        // 3.11 has no all-threads call: walk the interpreter's thread states while holding
        // the GIL, as 3.12's PyEval_SetTraceAllThreads does. Threads that are running Python
        // code all wait on the GIL we hold, so none of them is mid-event.
        let Some(set_trace) = private_set_trace() else {
            return Err(pyo3::exceptions::PyNotImplementedError::new_err(
                "this interpreter does not export _PyEval_SetTrace, which tracing other \
                 threads needs on Python 3.11",
            ));
        };
        // SAFETY: the GIL is held, so thread states are neither created nor freed
        // under us by Python threads.
        unsafe {
            let mut tstate = ffi::PyInterpreterState_ThreadHead(ffi::PyInterpreterState_Get());
            while !tstate.is_null() {
                if set_trace(tstate, func, obj) < 0 {
                    ffi::PyErr_WriteUnraisable(ptr::null_mut());
                }
                tstate = ffi::PyThreadState_Next(tstate);
            }
        }
        let _ = py;
        Ok(())
    }
}
