//! 3.11: calls and returns recorded by the frame-evaluation function itself.
//!
//! A frame whose consumers are all record sinks of `call` and `return` events (what
//! `ferrotrace trace --format perfetto` runs) needs nothing from the eval loop's tracing mode:
//! [`super::evalframe`] records its `call` before evaluating it and its `return` (or
//! `unwind`) after, and leaves the trace hook off, so the frame runs at full speed instead of
//! calling the hook for every line. What is recorded is what 3.11's eval loop would report
//! to a trace function (`Python/ceval.c`):
//!
//! - `call` at the frame's `RESUME` (its start, or where a generator or coroutine resumes
//!   after a `yield`/`await`), or, for `throw()`, at the instruction the generator is
//!   suspended at; none for the first run of a generator function's code, which only makes
//!   the generator (`RETURN_GENERATOR` comes before the first `RESUME`), and none (nor a
//!   return) for a frame that fails at once with `RecursionError`;
//! - `return` with the value the evaluation returns (at a `yield` too), or, when it returns
//!   NULL, an unwind with the exception in the error indicator, at the last instruction.
//!
//! One difference remains: what the eval loop does between the frame's start and its `RESUME`
//! (a signal handler run at the `RESUME`'s check) comes after the recorded call, not before.

use std::ffi::c_int;
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::bindings::interpreter::{self, InterpreterFrame};
use crate::hook::consumer::{Consumer, Sink};
use crate::hook::delivery;
use crate::hook::evalframe::with_error_aside;
use crate::hook::record_sink::{now_ns, LineSource, Occurrence};
use crate::protocol::TraceEvent;
use crate::record::EventKind;

/// Whether the consumer can be served at frame entry and exit alone: a record sink that
/// wants no event but `call` and `return`.
pub fn served_at_entry_and_exit(consumer: &Consumer) -> bool {
    matches!(consumer.sink, Sink::Record(_))
        && consumer
            .filter
            .events()
            .iter()
            .all(|event| matches!(event, TraceEvent::Call | TraceEvent::Return))
}

/// What the eval loop will report for a frame about to be evaluated.
pub enum Entry {
    /// A `call` at the instruction at this byte offset, and a `return` when it ends.
    Call(i64),
    /// No event at all.
    Silent,
    /// Not a case this module knows: the frame is traced through the trace hook instead.
    Unknown,
}

/// What the eval loop will report for `frame`, evaluated with `throwflag`.
///
/// # Safety
/// `tstate` is the calling thread's state, `frame` the live frame the eval-frame function
/// received, and the GIL is held.
pub unsafe fn entry(
    tstate: *mut ffi::PyThreadState,
    frame: *const InterpreterFrame,
    throwflag: c_int,
) -> Entry {
    if !interpreter::code_layout_verified() {
        return Entry::Unknown;
    }
    let code = interpreter::code(frame);
    let generator_owned = interpreter::owned_by_generator(frame);
    if throwflag == 0 && !generator_owned && interpreter::is_generator_code(code) {
        // A generator function's call: `RETURN_GENERATOR`, no event.
        return Entry::Silent;
    }
    if interpreter::entry_overflows_recursion(tstate) {
        return Entry::Silent;
    }
    let last = interpreter::last_instruction(frame);
    if throwflag != 0 {
        // `TRACE_FUNCTION_THROW_ENTRY`: the instruction the generator is suspended at.
        return Entry::Call(last as i64 * 2);
    }
    let resume = (last + 1).max(interpreter::first_traceable(code));
    if !generator_owned && last >= 0 || !interpreter::is_resume(code, resume) {
        return Entry::Unknown;
    }
    Entry::Call(resume as i64 * 2)
}

/// Records the `call` of `frame` (at the instruction at byte offset `offset`) into the record
/// sinks `consumers`.
///
/// # Safety
/// As for [`entry`].
pub unsafe fn record_call(
    py: Python<'_>,
    consumers: &[u64],
    frame: *const InterpreterFrame,
    offset: i64,
) {
    let code = Bound::from_borrowed_ptr(py, interpreter::code(frame));
    let occurrence = Occurrence {
        kind: EventKind::Call,
        code: &code,
        line: LineSource::Instruction(offset),
        value: None,
        timestamp_ns: now_ns(),
    };
    record(py, consumers, TraceEvent::Call, &occurrence);
}

/// Records how `frame` left: `return` with `result`, or, when `result` is NULL, an unwind with
/// the exception in the error indicator (normalized, as the eval loop's `exception` event
/// would have done, and put back).
///
/// # Safety
/// As for [`entry`], right after the frame's evaluation returned `result`.
pub unsafe fn record_exit(
    py: Python<'_>,
    consumers: &[u64],
    frame: *const InterpreterFrame,
    result: *mut ffi::PyObject,
) {
    let timestamp_ns = now_ns();
    let code = Bound::from_borrowed_ptr(py, interpreter::code(frame));
    let line = LineSource::Instruction(interpreter::last_instruction(frame) as i64 * 2);
    let (kind, value) = if result.is_null() {
        (EventKind::Unwind, current_exception(py))
    } else {
        (
            EventKind::Return,
            Some(Bound::from_borrowed_ptr(py, result)),
        )
    };
    let occurrence = Occurrence {
        kind,
        code: &code,
        line,
        value: value.as_ref(),
        timestamp_ns,
    };
    record(py, consumers, TraceEvent::Return, &occurrence);
}

/// Records `occurrence` natively where it can; what needs Python (a code object or thread
/// seen for the first time, a repr) is described as in a trace function: with the thread in
/// tracing mode (so the Python code run is not itself traced or recorded) and the error
/// indicator, which may hold the exception leaving the frame, set aside.
unsafe fn record(
    py: Python<'_>,
    consumers: &[u64],
    event: TraceEvent,
    occurrence: &Occurrence<'_, '_>,
) {
    let missing = delivery::record(py, consumers, event, occurrence);
    if missing.is_empty() {
        return;
    }
    let tstate = ffi::PyThreadState_Get();
    ffi::PyThreadState_EnterTracing(tstate);
    with_error_aside(|| {
        for (id, missing) in missing {
            delivery::record_with_python(py, id, missing, occurrence);
        }
    });
    ffi::PyThreadState_LeaveTracing(tstate);
}

/// The exception being raised, normalized in place; None if there is none.
unsafe fn current_exception(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    let (mut kind, mut value, mut traceback) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
    if kind.is_null() {
        return None;
    }
    if value.is_null() || ffi::PyExceptionInstance_Check(value) == 0 {
        ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut traceback);
    }
    let exception = (!value.is_null()).then(|| Bound::from_borrowed_ptr(py, value));
    ffi::PyErr_Restore(kind, value, traceback);
    exception
}
