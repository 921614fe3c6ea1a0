//! The recording fast path of the `sys.monitoring` backend (3.12+): calls (`PY_START`,
//! `PY_RESUME`) and returns (`PY_RETURN`, `PY_YIELD`) recorded straight from the callback's
//! `METH_FASTCALL` entry when every consumer is a plain recorder.
//!
//! What an event needs is found once per code object and registry generation (see
//! [`Recorders`]) and kept in a code-extra slot of the code object itself
//! (`PyUnstable_Code_SetExtra`), so that an event costs one read of that slot, a check of the
//! generation, and a push into each recorder's thread buffer. A code object frees its slot's
//! contents when it goes (the slot's free function); the contents hold no Python object. Every
//! other event, and a code object whose slot is empty or stale, takes the backend's general
//! path (`monitoring::deliver`), which refreshes the slot.

use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::hook::consumer::{self, with_consumers, Consumer, Sink};
use crate::hook::record_sink::{now_ns, CallLines, RecordSink};
use crate::protocol::TraceEvent;
use crate::record::{EventKind, FunctionId};

/// What the fast path knows of one code object in one registry generation.
enum Recorders {
    /// Some consumer of this generation is not a plain recorder: the general path.
    General { generation: u64 },
    /// Every consumer is a recorder without `depth` or thread-name filter, and each one that
    /// wants this code has seen it.
    Plain {
        generation: u64,
        targets: Vec<RecordTarget>,
        call_lines: CallLines,
    },
}

/// A recorder that wants the code: where it is in the registry, the code's function id in its
/// sink, and what it does with each event the fast path takes.
struct RecordTarget {
    index: usize,
    id: u64,
    /// The sink's serial when `function` was read (the ids change with it).
    serial: u64,
    function: FunctionId,
    /// The only thread it records (a recorder started without `all_threads`).
    thread: Option<u64>,
    on_call: Step,
    on_return: Step,
}

/// What a recorder does with an event on the fast path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Records it: no detail, and the line is the call's or none.
    Record,
    /// Its filter leaves the event out.
    Skip,
    /// It needs the general path (a repr or an exit line).
    General,
}

/// The code-extra slot holding a `Box<Recorders>` (-1: not requested yet, -2: none available).
static EXTRA_INDEX: AtomicIsize = AtomicIsize::new(-1);

/// The slot's free function, called by CPython when a code object with a value in it goes.
unsafe extern "C" fn free_recorders(recorders: *mut c_void) {
    if !recorders.is_null() {
        // SAFETY: only `store` puts values in the slot, each a `Box<Recorders>` given up.
        drop(unsafe { Box::from_raw(recorders.cast::<Recorders>()) });
    }
}

/// The slot's index, requested on first use; None if the interpreter has none left.
fn extra_index(_py: Python<'_>) -> Option<ffi::Py_ssize_t> {
    let index = match EXTRA_INDEX.load(Ordering::Relaxed) {
        -1 => {
            // SAFETY: the GIL is held (the token); requested once per process.
            let index = unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(free_recorders) };
            let index = if index < 0 { -2 } else { index };
            EXTRA_INDEX.store(index, Ordering::Relaxed);
            index
        }
        index => index,
    };
    (index >= 0).then_some(index)
}

/// What the slot of `code` holds (null if nothing).
#[inline(always)]
fn stored(code: &Bound<'_, PyAny>) -> *mut Recorders {
    let index = EXTRA_INDEX.load(Ordering::Relaxed);
    let mut extra: *mut c_void = std::ptr::null_mut();
    if index < 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the GIL is held; CPython checks that `code` is a code object and the index.
    if unsafe { ffi::PyUnstable_Code_GetExtra(code.as_ptr(), index, &mut extra) } < 0 {
        // Not a code object (a callback called by hand): its error is not the program's.
        // SAFETY: the GIL is held.
        unsafe { ffi::PyErr_Clear() };
        return std::ptr::null_mut();
    }
    extra.cast()
}

/// Puts `recorders` in the slot of `code` (replacing what was there).
fn store(py: Python<'_>, code: &Bound<'_, PyAny>, recorders: Recorders) {
    let Some(index) = extra_index(py) else {
        return;
    };
    let existing = stored(code);
    if !existing.is_null() {
        // SAFETY: a `Box<Recorders>` of this slot, alive while the code object is; no
        // reference to it is held (the fast path's ended before the general path runs).
        unsafe { *existing = recorders };
        return;
    }
    let raw = Box::into_raw(Box::new(recorders));
    // SAFETY: the GIL is held; on success the code object owns `raw` (freed by
    // `free_recorders`).
    if unsafe { ffi::PyUnstable_Code_SetExtra(code.as_ptr(), index, raw.cast()) } < 0 {
        drop(PyErr::take(py));
        // SAFETY: not given to the code object.
        drop(unsafe { Box::from_raw(raw) });
    }
}

/// Whether `consumer` can take its events through [`record_cached`]: a recorder without
/// `depth` or thread-name filter (a `depth` scopes frames per call; a thread name is looked up
/// per thread) that has not been switched off on a thread.
fn is_plain_recorder(consumer: &Consumer) -> bool {
    matches!(consumer.sink, Sink::Record(_))
        && consumer.filter.depth() == 0
        && consumer.filter.spec().threads.is_empty()
        && consumer.failed_threads.is_empty()
}

/// Finds what the fast path needs for `code`, wanted by the consumers `wanted_by` (as the
/// backend decided); None while a recorder that wants it has not seen it yet.
fn find_recorders(
    wanted_by: &[u64],
    code: &Bound<'_, PyAny>,
    consumers: &[Consumer],
) -> Option<Recorders> {
    let generation = consumer::registry_generation();
    if wanted_by.is_empty() || !consumers.iter().all(is_plain_recorder) {
        return Some(Recorders::General { generation });
    }
    let mut targets = Vec::with_capacity(wanted_by.len());
    for &id in wanted_by {
        let Some(index) = consumers.iter().position(|c| c.id == id) else {
            return Some(Recorders::General { generation });
        };
        let consumer = &consumers[index];
        let Sink::Record(sink) = &consumer.sink else {
            return Some(Recorders::General { generation });
        };
        let function = sink.function_of(code)?;
        let events = consumer.filter.events();
        let step = |event: TraceEvent, kind: EventKind| match events.contains(event) {
            false => Step::Skip,
            true if sink.records_plainly(kind) => Step::Record,
            true => Step::General,
        };
        targets.push(RecordTarget {
            index,
            id,
            serial: sink.serial(),
            function,
            thread: consumer.thread,
            on_call: step(TraceEvent::Call, EventKind::Call),
            on_return: step(TraceEvent::Return, EventKind::Return),
        });
    }
    Some(Recorders::Plain {
        generation,
        targets,
        call_lines: CallLines::default(),
    })
}

/// Whether the slot of `code` was filled in this registry generation.
pub fn is_current(code: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a `Box<Recorders>` of the slot, alive while the code object is; read only.
    let generation = unsafe { stored(code).as_ref() }.map(|recorders| match recorders {
        Recorders::General { generation } | Recorders::Plain { generation, .. } => *generation,
    });
    generation == Some(consumer::registry_generation())
}

/// Whether the consumers of this generation are known not to be all plain recorders (the
/// slot of `code` says so): then no event of `code` is for a recorder's fast path.
pub fn known_general(code: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a `Box<Recorders>` of the slot, alive while the code object is; read only.
    matches!(
        unsafe { stored(code).as_ref() },
        Some(Recorders::General { generation }) if *generation == consumer::registry_generation()
    )
}

/// After the general path handled an event of `code`, wanted by `wanted_by`: fills the slot of
/// `code` for this generation, so that its next calls and returns take the fast path if they
/// can.
pub fn refresh(py: Python<'_>, code: &Bound<'_, PyAny>, wanted_by: &[u64]) {
    let found = with_consumers(py, |consumers| find_recorders(wanted_by, code, consumers));
    if let Some(recorders) = found {
        store(py, code, recorders);
    }
}

/// The fast path of `PY_START`/`PY_RESUME` (`kind` `Call`) and `PY_RETURN`/`PY_YIELD`
/// (`Return`). False (nothing recorded) when the general path must take the event.
#[inline(always)]
pub fn record_cached(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    kind: EventKind,
    offset: &Bound<'_, PyAny>,
) -> bool {
    let recorders = stored(code);
    // SAFETY: a `Box<Recorders>` of the slot, alive while the code object is (the event's
    // own); nothing else refers to it while an event is handled (no Python code runs here).
    let Some(Recorders::Plain {
        generation,
        targets,
        call_lines,
    }) = (unsafe { recorders.as_mut() })
    else {
        return false;
    };
    if *generation != consumer::registry_generation() {
        return false;
    }
    let event = Cached { code, kind, offset };
    // `move`: the closure holds the event itself, not a reference to it (fewer stores per event).
    with_consumers(py, move |consumers| match targets.as_slice() {
        [one] => record_to_one(py, one, call_lines, consumers, &event),
        several => record_to_several(py, several, call_lines, consumers, &event),
    })
}

/// An event on the fast path.
struct Cached<'a, 'py> {
    code: &'a Bound<'py, PyAny>,
    /// `Call` or `Return`.
    kind: EventKind,
    /// The instruction offset, as sys.monitoring passed it.
    offset: &'a Bound<'py, PyAny>,
}

impl Cached<'_, '_> {
    fn step(&self, target: &RecordTarget) -> Step {
        match self.kind {
            EventKind::Call => target.on_call,
            _ => target.on_return,
        }
    }

    /// The line of a call, cached per start offset (looked up by `sink` the first time). None
    /// if the offset is not an int.
    #[inline(always)]
    fn call_line(
        &self,
        py: Python<'_>,
        call_lines: &mut CallLines,
        sink: &RecordSink,
        function: FunctionId,
    ) -> Option<u32> {
        let object = self.offset.as_ptr();
        if let Some(line) = call_lines.get_by_object(object as usize) {
            return Some(line);
        }
        // SAFETY: the GIL is held; any object is accepted.
        let offset = unsafe { ffi::PyLong_AsLong(object) };
        if offset == -1 && PyErr::occurred(py) {
            // Not an offset after all: the general path reports it.
            drop(PyErr::fetch(py));
            return None;
        }
        Some(match call_lines.get(offset) {
            Some(line) => line,
            None => {
                let line = sink.call_line_at(self.code, offset, function);
                call_lines.insert(offset, line, object as usize);
                line
            }
        })
    }
}

/// The recorder `target` if it is still the one found, with the same function ids.
#[inline]
fn target_sink<'c>(
    consumers: &'c mut [Consumer],
    target: &RecordTarget,
) -> Option<&'c mut RecordSink> {
    match consumers.get_mut(target.index) {
        Some(Consumer {
            id,
            sink: Sink::Record(sink),
            failed_threads,
            ..
        }) if *id == target.id && sink.serial() == target.serial && failed_threads.is_empty() => {
            Some(sink)
        }
        _ => None,
    }
}

/// Whether `target` records on the calling thread (`thread` caches its ident).
fn on_its_thread(target: &RecordTarget, thread: &mut Option<u64>) -> bool {
    target.thread.is_none_or(|only| {
        // SAFETY: always safe to call.
        only == *thread.get_or_insert_with(|| unsafe { ffi::PyThread_get_thread_ident() } as u64)
    })
}

/// [`record_cached`] for the usual single recorder.
#[inline]
fn record_to_one(
    py: Python<'_>,
    target: &RecordTarget,
    call_lines: &mut CallLines,
    consumers: &mut [Consumer],
    event: &Cached<'_, '_>,
) -> bool {
    match event.step(target) {
        Step::Record => {}
        Step::Skip => return true,
        Step::General => return false,
    }
    if !on_its_thread(target, &mut None) {
        return true;
    }
    let Some(sink) = target_sink(consumers, target) else {
        return false;
    };
    // A return's line is not kept (`Step::Record`).
    let line = match event.kind {
        EventKind::Call => match event.call_line(py, call_lines, sink, target.function) {
            Some(line) => line,
            None => return false,
        },
        _ => 0,
    };
    // Nothing is recorded if the thread is new to the sink: the general path names it.
    sink.push_known(event.kind, target.function, line)
}

/// [`record_cached`] for several recorders: all of them record the event, or none does.
#[inline(never)]
fn record_to_several(
    py: Python<'_>,
    targets: &[RecordTarget],
    call_lines: &mut CallLines,
    consumers: &mut [Consumer],
    event: &Cached<'_, '_>,
) -> bool {
    let mut thread = None;
    let mut line = None;
    for target in targets {
        match event.step(target) {
            Step::Record => {}
            Step::Skip => continue,
            Step::General => return false,
        }
        if !on_its_thread(target, &mut thread) {
            continue;
        }
        let Some(sink) = target_sink(consumers, target) else {
            return false;
        };
        if !sink.knows_current_thread() {
            return false;
        }
        if line.is_none() {
            line = match event.kind {
                EventKind::Call => event.call_line(py, call_lines, sink, target.function),
                _ => Some(0),
            };
            if line.is_none() {
                return false;
            }
        }
    }
    let Some(line) = line else {
        // No recorder takes the event.
        return true;
    };
    let timestamp_ns = now_ns();
    for target in targets {
        if event.step(target) == Step::Record && on_its_thread(target, &mut thread) {
            if let Some(sink) = target_sink(consumers, target) {
                sink.push_known_at(event.kind, target.function, line, timestamp_ns);
            }
        }
    }
    true
}
