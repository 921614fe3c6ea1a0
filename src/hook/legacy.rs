//! The native trace trampoline: CPython calls it for every trace event of a thread whose
//! trace function was set by ferrotrace, and it calls the user's Python function with
//! `sys.settrace`'s exact rules (see `crate::protocol`).
//!
//! The registered object (`obj`) is the user's function itself, so `sys.gettrace()` and
//! `ferrotrace.gettrace()` return it unwrapped.

use std::ffi::{c_int, CStr};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::api::debugger::{self, Intercept};
use crate::bindings::{frame, threadstate};
use crate::protocol::{self, LocalUpdate, Receiver, TraceEvent, ALL_EVENTS};

/// The interned event names, in `PyTrace_*` order (the same objects as `'call'` literals).
/// Stored as raw pointers to strong references that are never released, so the hot path reads
/// them with one relaxed load and no indirection.
static EVENT_NAMES: [AtomicPtr<ffi::PyObject>; 8] = [const { AtomicPtr::new(ptr::null_mut()) }; 8];

/// Events the trampoline delivered to a trace function. Only written with the GIL held, so a plain load and
/// store (no atomic read-modify-write on the hot path) cannot lose counts.
static DISPATCHED: AtomicU64 = AtomicU64::new(0);

/// How many events the trampoline has delivered to a trace function in this process.
pub fn dispatch_count() -> u64 {
    DISPATCHED.load(Ordering::Relaxed)
}

/// The interned name of `event` (the same object as a `'call'` literal).
pub fn event_name<'py>(py: Python<'py>, event: TraceEvent) -> Bound<'py, PyString> {
    let name = EVENT_NAMES
        .get(event as usize)
        .map_or(ptr::null_mut(), |slot| slot.load(Ordering::Relaxed));
    if name.is_null() {
        return PyString::intern(py, event.name());
    }
    // SAFETY: a strong reference kept for the life of the process (see `prepare`).
    unsafe { Bound::from_borrowed_ptr(py, name).cast_into_unchecked() }
}

/// Prepares what the trampoline reads on every event. Called once, at import.
pub fn prepare(py: Python<'_>) -> PyResult<()> {
    for (slot, event) in EVENT_NAMES.iter().zip(ALL_EVENTS) {
        if slot.load(Ordering::Relaxed).is_null() {
            // Kept for the life of the process, like CPython's own event-name strings.
            let name = PyString::intern(py, event.name()).unbind().into_ptr();
            slot.store(name, Ordering::Relaxed);
        }
    }
    threadstate::prepare(py)
}

/// Sets `func` as the calling thread's trace function (None removes it).
pub fn set_trace(py: Python<'_>, func: &Bound<'_, PyAny>) -> PyResult<()> {
    let hook = if func.is_none() {
        None
    } else {
        Some(trace_trampoline as ffi::Py_tracefunc)
    };
    threadstate::set_current_thread(py, hook, func)?;
    // Called from a frame a Tracer traces (3.11): the Tracer keeps tracing it, beside `func`.
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    super::evalframe::adopt_trace_hook();
    Ok(())
}

/// Sets `func` as the trace function of every thread that exists now.
pub fn set_trace_all_threads(py: Python<'_>, func: &Bound<'_, PyAny>) -> PyResult<()> {
    let hook = if func.is_none() {
        None
    } else {
        Some(trace_trampoline as ffi::Py_tracefunc)
    };
    threadstate::set_all_threads(py, hook, func)?;
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    super::evalframe::adopt_trace_hook();
    Ok(())
}

/// The `Py_tracefunc` ferrotrace registers. Never unwinds into CPython.
///
/// # Safety
/// Called by CPython only, with the GIL held, a live frame and `obj` as registered.
pub unsafe extern "C" fn trace_trampoline(
    obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    never_unwind(
        // SAFETY: the caller's guarantees are passed on unchanged.
        || unsafe { dispatch(obj, frame, what, arg) },
        // A bug in ferrotrace: stop tracing this thread and raise rather than abort.
        // SAFETY: the GIL is held.
        || unsafe { threadstate::disable_current_thread_after_error() },
        c"ferrotrace: internal error in the trace trampoline; tracing was turned off",
    )
}

/// Runs the body of a `Py_tracefunc` so that nothing unwinds into CPython: a panic (a bug in
/// ferrotrace) runs `on_panic`, raises `SystemError(message)` and returns -1.
///
/// # Safety
/// The GIL is held.
pub unsafe fn never_unwind(
    body: impl FnOnce() -> c_int,
    on_panic: impl FnOnce(),
    message: &CStr,
) -> c_int {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(_) => {
            let _ = panic::catch_unwind(AssertUnwindSafe(on_panic));
            // SAFETY: the GIL is held.
            unsafe { ffi::PyErr_SetString(ffi::PyExc_SystemError, message.as_ptr()) };
            -1
        }
    }
}

unsafe fn dispatch(
    obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    let Some(event) = TraceEvent::from_what(what) else {
        return 0;
    };
    let callback = match event.receiver() {
        Receiver::Global => obj,
        Receiver::Local => frame::f_trace(frame),
    };
    if callback.is_null() {
        return 0;
    }
    // The debugger's core decides natively and names what to call, if anything.
    let py = Python::assume_attached();
    let debugger_dispatch = match debugger::intercept(py, callback, frame, event) {
        None => None,
        Some(Ok(Intercept::Deliver(dispatch))) => Some(dispatch),
        Some(Ok(Intercept::KeepTracing)) => {
            if frame::f_trace(frame) != callback {
                ffi::Py_INCREF(callback);
                frame::replace_f_trace(frame, callback);
            }
            return 0;
        }
        Some(Ok(Intercept::NoLocalTracing)) => return 0,
        Some(Err(err)) => {
            // As if the trace function had raised it.
            err.restore(py);
            threadstate::disable_current_thread_after_error();
            frame::clear_f_trace(frame);
            return -1;
        }
    };
    let callback = debugger_dispatch.as_ref().map_or(callback, |d| d.as_ptr());
    DISPATCHED.store(
        DISPATCHED.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );

    let result = call_trace_function(callback, frame, what, arg);
    match protocol::local_update(result.is_null(), result == ffi::Py_None()) {
        LocalUpdate::DisableAndClear => {
            threadstate::disable_current_thread_after_error();
            frame::clear_f_trace(frame);
            -1
        }
        LocalUpdate::Keep => {
            ffi::Py_DECREF(result);
            0
        }
        LocalUpdate::Replace => {
            frame::replace_f_trace(frame, result);
            0
        }
    }
}

/// Calls `callback(frame, event, arg)`; returns a new reference, or null with an exception.
#[inline(always)]
unsafe fn call_trace_function(
    callback: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let name = EVENT_NAMES
        .get(what as usize)
        .map_or(ptr::null_mut(), |slot| slot.load(Ordering::Relaxed));
    if name.is_null() {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"ferrotrace: trace event before the module was initialised".as_ptr(),
        );
        return ptr::null_mut();
    }
    let arg = if arg.is_null() { ffi::Py_None() } else { arg };
    // Slot 0 is scratch space the callee may use (PY_VECTORCALL_ARGUMENTS_OFFSET), which
    // spares a bound-method tracer such as bdb's `trace_dispatch` an argument copy.
    let stack = [ptr::null_mut(), frame.cast::<ffi::PyObject>(), name, arg];

    // 3.11 keeps `f_locals` as a snapshot: refresh it if a previous event made one, and write
    // edits back after the call, so `frame.f_locals[...] = v` in a tracer sticks (pdb's `!x = 1`).
    // (Early 3.11 releases also added the frame to the traceback of a tracer's error; 3.11.7,
    // like 3.13, does not, and the eval loop adds it once.)
    #[cfg(not(Py_3_13))]
    if frame::fast_as_locals(frame) && ffi::PyFrame_FastToLocalsWithError(frame) < 0 {
        return ptr::null_mut();
    }

    let result = vectorcall(callback, &stack);

    // PyFrame_LocalsToFast does nothing unless a snapshot exists: test that here and spare
    // every other event the call.
    #[cfg(not(Py_3_13))]
    if frame::fast_as_locals(frame) {
        ffi::PyFrame_LocalsToFast(frame, 1);
    }
    result
}

/// Calls `callable` with `stack[1..]` as positional arguments (`stack[0]` is scratch space).
#[inline(always)]
unsafe fn vectorcall(
    callable: *mut ffi::PyObject,
    stack: &[*mut ffi::PyObject; 4],
) -> *mut ffi::PyObject {
    let args = stack.as_ptr().add(1);
    let nargsf = 3 | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET;
    // A Python function (the usual tracer) is called through its own vectorcall slot, as
    // CPython's trampoline does from inside libpython; its result is always consistent with
    // the error indicator, so CPython's result check has nothing to catch. Anything else goes
    // through the public call, checks included.
    let function_type = ptr::addr_of_mut!(ffi::PyFunction_Type);
    if ffi::Py_TYPE(callable) == function_type {
        let offset = (*function_type).tp_vectorcall_offset;
        if offset > 0 {
            let slot = callable
                .cast::<u8>()
                .offset(offset)
                .cast::<Option<ffi::vectorcallfunc>>();
            if let Some(function_vectorcall) = *slot {
                return function_vectorcall(callable, args, nargsf, ptr::null_mut());
            }
        }
    }
    ffi::PyObject_Vectorcall(callable, args, nargsf, ptr::null_mut())
}
