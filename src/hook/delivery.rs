//! Delivering one legacy event (`call`, `line`, `return`, `exception`, `opcode`) of one frame
//! to the consumers that trace it, whichever backend produced the event, through each one's
//! sink: a callback with `sys.settrace`'s rules and its own per-frame local trace function
//! (never `frame.f_trace`, which belongs to `sys.settrace`); a record sink natively.

use std::ffi::c_int;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::bindings::frame;
use crate::hook::consumer::{with_consumer, Consumer, Sink};
use crate::hook::legacy::event_name;
use crate::hook::record_sink::{Missing, Occurrence};
use crate::protocol::{local_update, LocalUpdate, TraceEvent};

/// The frame an event belongs to.
pub struct EventFrame<'a, 'py> {
    pub frame: &'a Bound<'py, PyAny>,
    /// Whether the backend keeps `f_lineno` around each call, as `Python/legacy_tracing.c`
    /// does (`sys.monitoring`); false when CPython's eval loop does it already (3.11).
    pub sets_lineno: bool,
    /// The line to report (with `sets_lineno`), for line events.
    pub line: Option<c_int>,
    /// The event as a record sink keeps it; None for events it does not record (`opcode`).
    pub occurrence: Option<Occurrence<'a, 'py>>,
}

fn current_thread_ident() -> u64 {
    // SAFETY: always safe to call.
    unsafe { pyo3::ffi::PyThread_get_thread_ident() as u64 }
}

/// What a consumer's sink does with one event, decided inside the registry's borrow. (Python
/// objects are held as `Bound`, whose release is immediate even where PyO3 does not know that
/// the GIL is held, as in a C trace hook.)
enum Action<'py> {
    Skip,
    /// Call this Python function with `(frame, event, arg)`; its result updates the
    /// consumer's local function for the frame.
    Call(Bound<'py, PyAny>),
    /// The record sink recorded it.
    Recorded,
    /// The record sink needs Python to describe the event (see `record_sink`).
    Record(Missing),
}

/// How `consumer` takes `event` of the frame `key`.
fn action<'py>(
    py: Python<'py>,
    consumer: &mut Consumer,
    event: TraceEvent,
    key: usize,
    thread: u64,
    occurrence: Option<&Occurrence<'_, '_>>,
) -> Action<'py> {
    let events = consumer.filter.events();
    if !consumer.traces_thread(thread) || !events.contains(event) {
        return Action::Skip;
    }
    match &mut consumer.sink {
        Sink::Record(sink) => match occurrence.map(|occurrence| sink.try_record(occurrence)) {
            None => Action::Skip,
            Some(Ok(())) => Action::Recorded,
            Some(Err(missing)) => Action::Record(missing),
        },
        Sink::Callback(callback) => match event {
            TraceEvent::Call => Action::Call(callback.bind(py).clone()),
            // Without `call` events the callback is every scope's local function.
            _ => match consumer.locals.get(&key) {
                Some(local) => Action::Call(local.bind(py).clone()),
                None if !events.contains(TraceEvent::Call) => {
                    Action::Call(callback.bind(py).clone())
                }
                None => Action::Skip,
            },
        },
    }
}

/// Records an event the record sink of consumer `id` could not record without Python: the
/// missing pieces are gathered outside the registry's borrow.
pub fn record_with_python(
    py: Python<'_>,
    id: u64,
    missing: Missing,
    occurrence: &Occurrence<'_, '_>,
) {
    let gathered = missing.gather(py, occurrence);
    let released = with_consumer(py, id, |consumer| match &mut consumer.sink {
        Sink::Record(sink) => {
            sink.record(occurrence, gathered);
            None
        }
        Sink::Callback(_) => Some(gathered),
    });
    // What the sink did not take (the consumer went away meanwhile) is released here.
    drop(released);
}

/// Hands `event` to the record sinks among the consumers `ids`, with no frame object: the
/// 3.11 route records calls and returns in the frame-evaluation function (see
/// `frame_record`). Returns the sinks that need Python to record it (for
/// [`record_with_python`]); callback consumers among `ids` get nothing.
pub fn record(
    py: Python<'_>,
    ids: &[u64],
    event: TraceEvent,
    occurrence: &Occurrence<'_, '_>,
) -> Vec<(u64, Missing)> {
    let thread = current_thread_ident();
    let mut needs_python = Vec::new();
    for &id in ids {
        let step = with_consumer(py, id, |consumer| match consumer.sink {
            Sink::Record(_) => action(py, consumer, event, 0, thread, Some(occurrence)),
            Sink::Callback(_) => Action::Skip,
        });
        if let Some(Action::Record(missing)) = step {
            needs_python.push((id, missing));
        }
    }
    needs_python
}

/// Delivers `event` of `site.frame` to the consumers `ids`, in that order. The first error
/// of a callback stops the delivery and is returned (it propagates into the traced code, as
/// under `sys.settrace`); that consumer is switched off on this thread.
pub fn deliver(
    py: Python<'_>,
    ids: &[u64],
    site: &EventFrame<'_, '_>,
    event: TraceEvent,
    arg: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let raw_frame: *mut pyo3::ffi::PyFrameObject = site.frame.as_ptr().cast();
    let key = raw_frame as usize;
    let thread = current_thread_ident();
    let name = event_name(py, event);
    let occurrence = site.occurrence.as_ref();
    for &id in ids {
        // What to do, decided without holding the registry across a Python call.
        let step = with_consumer(py, id, |consumer| {
            action(py, consumer, event, key, thread, occurrence)
        });
        let receiver = match step {
            None | Some(Action::Skip | Action::Recorded) => continue,
            Some(Action::Record(missing)) => {
                if let Some(occurrence) = occurrence {
                    record_with_python(py, id, missing, occurrence);
                }
                continue;
            }
            Some(Action::Call(receiver)) => receiver,
        };
        let result = call_receiver(py, &receiver, site, raw_frame, event, &name, arg);
        let update = local_update(result.is_err(), matches!(&result, Ok(r) if r.is_none()));
        let released = with_consumer(py, id, |consumer| match (update, &result) {
            (LocalUpdate::Replace, Ok(function)) => match consumer.locals.get(&key) {
                // The usual tracer returns the function already in place.
                Some(local) if local.is(function) => None,
                _ => consumer.locals.insert(key, function.clone().unbind()),
            },
            (LocalUpdate::DisableAndClear, _) => {
                consumer.fail_thread(thread);
                consumer.locals.remove(&key)
            }
            _ => None,
        })
        .flatten();
        // The replaced local function's destructor runs here, outside the registry.
        drop(released.map(|function| function.into_bound(py)));
        result?;
    }
    Ok(())
}

/// Calls a trace function as CPython's legacy tracing does: the line number set around the
/// call when the backend manages it, and before 3.13 the `f_locals` snapshot refreshed before
/// and written back after, if the frame has one (so `frame.f_locals[...] = v` sticks).
fn call_receiver<'py>(
    py: Python<'py>,
    receiver: &Bound<'py, PyAny>,
    site: &EventFrame<'_, 'py>,
    raw_frame: *mut pyo3::ffi::PyFrameObject,
    event: TraceEvent,
    name: &Bound<'py, PyString>,
    arg: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if let (true, Some(line)) = (site.sets_lineno, site.line) {
        // SAFETY: a live frame (we hold it); CPython's own line events set f_lineno this way.
        unsafe { frame::set_f_lineno(raw_frame, line) };
    }
    // SAFETY (all `frame::` calls below): a live frame, and the GIL is held.
    #[cfg(not(Py_3_13))]
    if unsafe { frame::fast_as_locals(raw_frame) }
        && unsafe { pyo3::ffi::PyFrame_FastToLocalsWithError(raw_frame) } < 0
    {
        return Err(PyErr::fetch(py));
    }
    // A debugger's core (the 3.11 route) decides without a Python call.
    // SAFETY: a live frame, the GIL held.
    let result =
        match unsafe { crate::api::debugger::call_if_core(receiver, site.frame, event, arg) } {
            Some(result) => result.map(|r| r.into_bound(py)),
            None => receiver.call1((site.frame, name, arg)),
        };
    // PyFrame_LocalsToFast does nothing without a snapshot, which the call may have made.
    #[cfg(not(Py_3_13))]
    if unsafe { frame::fast_as_locals(raw_frame) } {
        unsafe { pyo3::ffi::PyFrame_LocalsToFast(raw_frame, 1) };
    }
    if site.sets_lineno {
        // Legacy tracing resets it after every call.
        unsafe { frame::set_f_lineno(raw_frame, 0) };
    }
    result
}

/// Forgets a frame that has finished (not one that is suspended): every consumer's local
/// function for it, and its `depth` scope.
pub fn forget_frame(py: Python<'_>, key: usize) {
    let dropped: Vec<Py<PyAny>> = crate::hook::consumer::with_consumers(py, |consumers| {
        consumers
            .iter_mut()
            .filter_map(|c| {
                c.in_scope.remove(&key);
                c.locals.remove(&key)
            })
            .collect()
    });
    drop(
        dropped
            .into_iter()
            .map(|f| f.into_bound(py))
            .collect::<Vec<_>>(),
    );
}
