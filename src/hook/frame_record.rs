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
use crate::hook::consumer::{with_consumer, Consumer, Sink};
use crate::hook::delivery;
use crate::hook::evalframe::with_error_aside;
use crate::hook::record_sink::{now_ns, LineSource, Occurrence};
use crate::protocol::TraceEvent;
use crate::record::{EventKind, FunctionId};

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

/// What a frame of one code object, wanted by one record sink, needs to be recorded with no
/// lookup: the sink's function id for the code and the line of its usual call, cached by the
/// backend per code object once the sink knows them (see [`plain_record_of`]).
#[derive(Clone, Copy, Debug)]
pub struct PlainRecord {
    consumer: u64,
    /// The sink's serial when cached: another one means other function ids.
    serial: u64,
    function: FunctionId,
    /// The byte offset of the call's instruction and its line.
    call_offset: i64,
    call_line: u32,
    /// Whether the consumer wants calls, and returns.
    calls: bool,
    returns: bool,
    /// Whether the sink records a return with no detail and line 0.
    plain_returns: bool,
}

impl PlainRecord {
    /// Records the call at `offset` (if the consumer wants calls) if it is the cached one;
    /// false (nothing recorded) if not, or if the sink changed or does not know the calling
    /// thread yet.
    pub fn record_call(&self, py: Python<'_>, offset: i64) -> bool {
        self.is_call_at(offset) && (!self.calls || self.push(py, EventKind::Call, self.call_line))
    }

    /// Whether the cached call is the one at `offset`.
    pub fn is_call_at(&self, offset: i64) -> bool {
        offset == self.call_offset
    }

    /// Records a return (not an unwind), if the consumer wants returns, if the sink records
    /// them plainly; false (nothing recorded) if not.
    pub fn record_return(&self, py: Python<'_>) -> bool {
        !self.returns || self.plain_returns && self.push(py, EventKind::Return, 0)
    }

    fn push(&self, py: Python<'_>, kind: EventKind, line: u32) -> bool {
        with_consumer(py, self.consumer, |consumer| match &mut consumer.sink {
            Sink::Record(sink) if sink.serial() == self.serial => {
                sink.push_known(kind, self.function, line)
            }
            _ => false,
        })
        .unwrap_or(false)
    }
}

/// The [`PlainRecord`] of the code of `frame` for the single record sink `consumers`, once
/// that sink knows the code (after its first call was recorded), for the call at byte offset
/// `offset`; None if there are several consumers, or the call's line is not one of its own
/// (a module's first instruction, whose call the sink records at the module's first line).
///
/// # Safety
/// As for [`entry`].
pub unsafe fn plain_record_of(
    py: Python<'_>,
    consumers: &[u64],
    frame: *const InterpreterFrame,
    offset: i64,
) -> Option<PlainRecord> {
    let &[consumer] = consumers else {
        return None;
    };
    let code = Bound::from_borrowed_ptr(py, interpreter::code(frame));
    let line = ffi::PyCode_Addr2Line(code.as_ptr().cast(), c_int::try_from(offset).ok()?);
    let call_line = u32::try_from(line).ok().filter(|&line| line > 0)?;
    with_consumer(py, consumer, |c| match &c.sink {
        Sink::Record(sink) => Some(PlainRecord {
            consumer,
            serial: sink.serial(),
            function: sink.function_of(&code)?,
            call_offset: offset,
            call_line,
            calls: c.filter.events().contains(TraceEvent::Call),
            returns: c.filter.events().contains(TraceEvent::Return),
            plain_returns: sink.records_plainly(EventKind::Return),
        }),
        Sink::Callback(_) => None,
    })
    .flatten()
}
