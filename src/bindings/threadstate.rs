//! Installing a `Py_tracefunc` on a thread state, with `sys.settrace`'s own error behaviour.
//!
//! `sys.settrace` calls CPython's `_PyEval_SetTrace`, which raises when an audit hook vetoes
//! the change; the public `PyEval_SetTrace` reports that error as unraisable instead.
//! - 3.11 exports `_PyEval_SetTrace`: it is looked up once at import and called directly.
//! - 3.13 does not export it. There ferrotrace calls CPython's own `sys.settrace` (one audit
//!   event, errors raised, `sys.monitoring` set up) and then points the thread state's
//!   `c_tracefunc` (a field of the public `struct _ts`) at ferrotrace's trampoline, after
//!   checking that `c_traceobj` beside it holds the function just set (the layout of `_ts`
//!   is checked once at import).
//! - Anywhere else (or if the layout check at import fails): audit first so a veto raises, then
//!   `PyEval_SetTrace`, which audits a second time.

use std::ffi::{c_char, c_int};
use std::ptr;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyModule;

type PrivateSetTrace = unsafe extern "C" fn(
    *mut ffi::PyThreadState,
    Option<ffi::Py_tracefunc>,
    *mut ffi::PyObject,
) -> c_int;

extern "C" {
    fn PySys_Audit(event: *const c_char, format: *const c_char, ...) -> c_int;
}

static PRIVATE_SET_TRACE: OnceLock<Option<PrivateSetTrace>> = OnceLock::new();

/// CPython's own `sys.settrace`, captured at import (3.13 route, see the module comment).
#[cfg(Py_3_13)]
static SYS_SETTRACE: OnceLock<Py<PyAny>> = OnceLock::new();

/// The leading fields of CPython 3.13's `struct _ts` (`Include/cpython/pystate.h`).
#[cfg(Py_3_13)]
#[repr(C)]
struct ThreadStateHead {
    prev: *mut ffi::PyThreadState,
    next: *mut ffi::PyThreadState,
    interp: *mut ffi::PyInterpreterState,
    eval_breaker: usize,
    status: u32,
    whence: c_int,
    state: c_int,
    py_recursion_remaining: c_int,
    py_recursion_limit: c_int,
    c_recursion_remaining: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    what_event: c_int,
    current_frame: *mut std::ffi::c_void,
    c_profilefunc: Option<ffi::Py_tracefunc>,
    c_tracefunc: Option<ffi::Py_tracefunc>,
    c_profileobj: *mut ffi::PyObject,
    c_traceobj: *mut ffi::PyObject,
}

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

/// Resolves what the setters need, once, at import.
pub fn prepare(py: Python<'_>) -> PyResult<()> {
    let _ = private_set_trace();
    #[cfg(Py_3_13)]
    {
        let sys = py.import("sys")?;
        let settrace = sys.getattr("settrace")?;
        if is_sys_builtin(&sys, &settrace)? && thread_state_layout_matches(py, &sys)? {
            let _ = SYS_SETTRACE.set(settrace.unbind());
        }
    }
    let _ = py;
    Ok(())
}

/// Whether `function` is one of the `sys` module's own builtins (not a replacement).
pub fn is_sys_builtin(sys: &Bound<'_, PyModule>, function: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(
        function.get_type().name()?.to_str()? == "builtin_function_or_method"
            && function.getattr("__self__")?.is(sys),
    )
}

/// Checks `ThreadStateHead` against the running interpreter without changing anything: the
/// interpreter and next-thread pointers, and the trace slots against `sys.gettrace()`.
#[cfg(Py_3_13)]
fn thread_state_layout_matches(py: Python<'_>, sys: &Bound<'_, PyModule>) -> PyResult<bool> {
    let current = sys.getattr("gettrace")?.call0()?;
    // SAFETY: the GIL is held, so this thread's state is live and not changing under us.
    unsafe {
        let raw = ffi::PyThreadState_Get();
        let tstate = raw.cast::<ThreadStateHead>();
        let expected_obj = if current.is_none() {
            ptr::null_mut()
        } else {
            current.as_ptr()
        };
        let _ = py;
        Ok((*tstate).interp == ffi::PyThreadState_GetInterpreter(raw)
            && (*tstate).next == ffi::PyThreadState_Next(raw)
            && (*tstate).c_traceobj == expected_obj
            && (*tstate).c_tracefunc.is_some() != expected_obj.is_null())
    }
}

/// 3.13: lets CPython's `sys.settrace` install `obj`, then swaps its trampoline for `func`.
/// Returns Ok(false) when this route is not available, having changed nothing.
#[cfg(Py_3_13)]
fn set_through_sys_settrace(
    py: Python<'_>,
    func: Option<ffi::Py_tracefunc>,
    function: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let Some(sys_settrace) = SYS_SETTRACE.get() else {
        return Ok(false);
    };
    if func.is_none() {
        sys_settrace.bind(py).call1((py.None(),))?;
        return Ok(true);
    }
    sys_settrace.bind(py).call1((function,))?;
    let obj = function.as_ptr();
    // SAFETY: the GIL is held, so this thread's state is live and not changing under us; the
    // layout was checked at import.
    unsafe {
        let tstate = ffi::PyThreadState_Get().cast::<ThreadStateHead>();
        // Otherwise a destructor run by that call set another function (CPython stores the
        // new function before releasing the old one): that nested call stands, as in CPython.
        if (*tstate).c_traceobj == obj && (*tstate).c_tracefunc.is_some() {
            (*tstate).c_tracefunc = func;
        }
    }
    Ok(true)
}

/// Sets (or with `func` None, removes) the calling thread's trace function, exactly as
/// `sys.settrace` does: an audit hook's veto raises.
pub fn set_current_thread(
    py: Python<'_>,
    func: Option<ffi::Py_tracefunc>,
    function: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let obj = if func.is_some() {
        function.as_ptr()
    } else {
        ptr::null_mut()
    };
    #[cfg(Py_3_13)]
    if private_set_trace().is_none() && set_through_sys_settrace(py, func, function)? {
        return Ok(());
    }
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

/// Switches tracing off for the calling thread after a trace function raised, as CPython's
/// `trace_trampoline` does: the raised exception stays set, unless an audit hook vetoes the
/// switch-off, whose exception then replaces it (and tracing stays on).
///
/// # Safety
/// The GIL is held and an exception is set.
pub unsafe fn disable_current_thread_after_error() {
    if let Some(set_trace) = private_set_trace() {
        set_trace(ffi::PyThreadState_Get(), None, ptr::null_mut());
        return;
    }
    #[cfg(Py_3_13)]
    if let Some(sys_settrace) = SYS_SETTRACE.get() {
        let py = Python::assume_attached();
        let raised = ffi::PyErr_GetRaisedException();
        match sys_settrace.bind(py).call1((py.None(),)) {
            Ok(_) => ffi::PyErr_SetRaisedException(raised),
            Err(veto) => {
                ffi::Py_XDECREF(raised);
                veto.restore(py);
            }
        }
        return;
    }
    ffi::PyEval_SetTrace(None, ptr::null_mut());
}

/// Sets the trace function of every thread of this interpreter that exists now, as
/// `sys._settraceallthreads` does (errors are reported as unraisable, thread by thread).
pub fn set_all_threads(
    py: Python<'_>,
    func: Option<ffi::Py_tracefunc>,
    function: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let obj = if func.is_some() {
        function.as_ptr()
    } else {
        ptr::null_mut()
    };
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
