//! The recording fast path of the `sys.monitoring` backend (3.12+): calls (`PY_START`,
//! `PY_RESUME`) and returns (`PY_RETURN`, `PY_YIELD`) recorded straight from the callback's
//! vectorcall entry when every consumer is a plain recorder.
//!
//! What an event needs is found once per code object and registry generation (see
//! [`Recorders`]) and kept in a code-extra slot of the code object itself
//! (`PyUnstable_Code_SetExtra`), so that an event costs one read of that slot, a check of the
//! generation, and a push into each recorder's thread buffer. For the usual single recorder
//! the slot holds its sink itself: the generation is the only check of the registry (whatever
//! would make the sink not the one found, or not recording on a thread, changes it). A code
//! object frees its slot's contents when it goes (the slot's free function); the contents hold
//! no Python object. The slot is read through a small cache by code object address
//! ([`SlotCache`]), which that free function keeps true. Every other event, and a code object
//! whose slot is empty or stale, takes the backend's general path (`monitoring::deliver`),
//! which refreshes the slot.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicIsize, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::Borrowed;

use crate::filter::Filter;
use crate::hook::consumer::{self, with_consumers, Consumer, Sink};
use crate::hook::record_sink::{now_ns, CallLines, RecordSink};
use crate::protocol::TraceEvent;
use crate::record::{EventKind, FunctionId};

/// What the code-extra slot of a code object holds.
struct Slot {
    /// The code object's address (to forget it in the [`SlotCache`] when it goes).
    code: usize,
    /// The registry generation `recorders` were found in.
    generation: u64,
    recorders: Recorders,
}

/// What the fast path knows of one code object in one registry generation.
#[repr(u8)]
enum Recorders {
    /// Every consumer is a recorder without `depth` or thread-name filter, and the only one
    /// that wants this code has seen it. (First: the one the fast path tests for.)
    Single {
        recorder: SingleRecorder,
        call_lines: CallLines,
    },
    /// Some consumer of this generation is not a plain recorder: the general path.
    General,
    /// As `Single`, with several recorders wanting the code.
    Plain {
        targets: Vec<RecordTarget>,
        call_lines: CallLines,
    },
}

/// The one recorder that wants the code: its sink, the code's function id there, and what it
/// does with each event the fast path takes.
struct SingleRecorder {
    /// The sink, boxed in its consumer. It stays that consumer's, at this address, while the
    /// registry's generation is the one found with it: a consumer leaves the registry (and a
    /// consumer's sink is never replaced while it is registered) only in a new generation.
    sink: NonNull<RecordSink>,
    function: FunctionId,
    /// The only thread it records (a recorder started without `all_threads`): then its steps
    /// are `RecordOnItsThread`, not `Record`.
    thread: Option<u64>,
    on_call: Step,
    on_return: Step,
    /// `Record`: with line 0 and its exception's type name (see
    /// [`RecordSink::records_unwinds_by_type`]).
    on_unwind: Step,
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
#[repr(u8)]
enum Step {
    /// Records it: no detail, and the line is the call's or none.
    Record,
    /// Its filter leaves the event out.
    Skip,
    /// It needs the general path (a repr or an exit line).
    General,
    /// As `Record` if the event is on the recorder's only thread, else as `Skip` (for a
    /// [`SingleRecorder`]: one compare covers the usual `Record` of every thread).
    RecordOnItsThread,
}

/// The code-extra slot holding a `Box<Slot>` (-1: not requested yet, -2: none available).
static EXTRA_INDEX: AtomicIsize = AtomicIsize::new(-1);

/// The slot's free function, called by CPython when a code object with a value in it goes.
unsafe extern "C" fn free_slot(slot: *mut c_void) {
    if !slot.is_null() {
        // SAFETY: only `store` puts values in the slot, each a `Box<Slot>` given up.
        let slot = unsafe { Box::from_raw(slot.cast::<Slot>()) };
        SLOT_CACHE.forget(slot.code);
    }
}

/// The slot's index, requested on first use; None if the interpreter has none left.
fn extra_index(_py: Python<'_>) -> Option<ffi::Py_ssize_t> {
    let index = match EXTRA_INDEX.load(Ordering::Relaxed) {
        -1 => {
            // SAFETY: the GIL is held (the token); requested once per process.
            let index = unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(free_slot) };
            let index = if index < 0 { -2 } else { index };
            EXTRA_INDEX.store(index, Ordering::Relaxed);
            index
        }
        index => index,
    };
    (index >= 0).then_some(index)
}

/// The slots of recently seen code objects, by address, direct-mapped: found there, a slot
/// costs a load and a compare instead of a call of `PyUnstable_Code_GetExtra`. An entry is
/// added only for a live code object whose slot holds a value, and removed when that value is
/// freed (with its code object, [`free_slot`]), so an address found here is the code object's
/// and its slot's value is alive. Only touched with the GIL held (ferrotrace is not built for
/// free-threaded Python).
/// An empty entry has address 0 (its pointer, dangling, is never read).
struct SlotCache([Cell<(usize, NonNull<Slot>)>; SlotCache::ENTRIES]);
// SAFETY: only touched with the GIL held, by one thread at a time.
unsafe impl Sync for SlotCache {}

static SLOT_CACHE: SlotCache =
    SlotCache([const { Cell::new((0, NonNull::dangling())) }; SlotCache::ENTRIES]);

impl SlotCache {
    const BITS: u32 = 12;
    const ENTRIES: usize = 1 << Self::BITS;

    #[inline(always)]
    fn entry(&self, code: usize) -> &Cell<(usize, NonNull<Slot>)> {
        // Fibonacci hashing: the top bits of the address times 2^64 / phi.
        let index = (code as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - Self::BITS);
        &self.0[index as usize]
    }

    /// The slot of the code object at `code`, if cached.
    #[inline(always)]
    fn get(&self, code: usize) -> Option<NonNull<Slot>> {
        let (cached, slot) = self.entry(code).get();
        (cached == code).then_some(slot)
    }

    fn insert(&self, code: usize, slot: NonNull<Slot>) {
        self.entry(code).set((code, slot));
    }

    fn forget(&self, code: usize) {
        let entry = self.entry(code);
        if entry.get().0 == code {
            entry.set((0, NonNull::dangling()));
        }
    }
}

/// What the slot of `code` holds (null if nothing).
fn stored(code: &Bound<'_, PyAny>) -> *mut Slot {
    stored_at(code.as_ptr())
}

/// What the slot of the object at `code` holds (null if nothing, or if it is not a code
/// object).
#[inline(always)]
fn stored_at(code: *mut ffi::PyObject) -> *mut Slot {
    match SLOT_CACHE.get(code as usize) {
        Some(slot) => slot.as_ptr(),
        None => read_slot(code),
    }
}

/// [`stored_at`] for a code object not in the cache (added if its slot holds a value).
#[inline(never)]
fn read_slot(code: *mut ffi::PyObject) -> *mut Slot {
    let index = EXTRA_INDEX.load(Ordering::Relaxed);
    let mut extra: *mut c_void = std::ptr::null_mut();
    if index < 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the GIL is held; CPython checks that `code` is a code object and the index.
    if unsafe { ffi::PyUnstable_Code_GetExtra(code, index, &mut extra) } < 0 {
        // Not a code object (a callback called by hand): its error is not the program's.
        // SAFETY: the GIL is held.
        unsafe { ffi::PyErr_Clear() };
        return std::ptr::null_mut();
    }
    let slot = extra.cast::<Slot>();
    if let Some(slot) = NonNull::new(slot) {
        SLOT_CACHE.insert(code as usize, slot);
    }
    slot
}

/// Puts `recorders`, found in registry generation `generation`, in the slot of `code`
/// (replacing what was there).
fn store(py: Python<'_>, code: &Bound<'_, PyAny>, generation: u64, recorders: Recorders) {
    let Some(index) = extra_index(py) else {
        return;
    };
    let existing = stored(code);
    if !existing.is_null() {
        // SAFETY: a `Box<Slot>` of this slot, alive while the code object is; no reference to
        // it is held (the fast path's ended before the general path runs).
        unsafe {
            (*existing).generation = generation;
            (*existing).recorders = recorders;
        }
        return;
    }
    let raw = Box::into_raw(Box::new(Slot {
        code: code.as_ptr() as usize,
        generation,
        recorders,
    }));
    // SAFETY: the GIL is held; on success the code object owns `raw` (freed by `free_slot`).
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
        && !consumer.failed_on_a_thread()
}

/// What a recorder with `filter` and `sink` does with calls and with returns.
fn steps(filter: &Filter, sink: &RecordSink) -> (Step, Step) {
    let events = filter.events();
    let step = |event: TraceEvent, kind: EventKind| match events.contains(event) {
        false => Step::Skip,
        true if sink.records_plainly(kind) => Step::Record,
        true => Step::General,
    };
    (
        step(TraceEvent::Call, EventKind::Call),
        step(TraceEvent::Return, EventKind::Return),
    )
}

/// Finds what the fast path needs for `code`, wanted by the consumers `wanted_by` (as the
/// backend decided); None while a recorder that wants it has not seen it yet.
fn find_recorders(
    wanted_by: &[u64],
    code: &Bound<'_, PyAny>,
    consumers: &mut [Consumer],
) -> Option<Recorders> {
    if wanted_by.is_empty() || !consumers.iter().all(is_plain_recorder) {
        return Some(Recorders::General);
    }
    if let [id] = wanted_by {
        let Some(Consumer {
            sink: Sink::Record(sink),
            filter,
            thread,
            ..
        }) = consumers.iter_mut().find(|c| c.id == *id)
        else {
            return Some(Recorders::General);
        };
        let thread = *thread;
        let (on_call, on_return) = steps(filter, sink);
        // A `PY_UNWIND` is a `return` to the filter.
        let on_unwind = match filter.events().contains(TraceEvent::Return) {
            false => Step::Skip,
            true if sink.records_unwinds_by_type() => Step::Record,
            true => Step::General,
        };
        let limited = |step| match (step, thread) {
            (Step::Record, Some(_)) => Step::RecordOnItsThread,
            _ => step,
        };
        let recorder = SingleRecorder {
            function: sink.function_of(code)?,
            thread,
            on_call: limited(on_call),
            on_return: limited(on_return),
            on_unwind: limited(on_unwind),
            sink: NonNull::from(&mut **sink),
        };
        return Some(Recorders::Single {
            recorder,
            call_lines: CallLines::default(),
        });
    }
    let mut targets = Vec::with_capacity(wanted_by.len());
    for &id in wanted_by {
        let Some(index) = consumers.iter().position(|c| c.id == id) else {
            return Some(Recorders::General);
        };
        let consumer = &consumers[index];
        let Sink::Record(sink) = &consumer.sink else {
            return Some(Recorders::General);
        };
        let function = sink.function_of(code)?;
        let (on_call, on_return) = steps(&consumer.filter, sink);
        targets.push(RecordTarget {
            index,
            id,
            serial: sink.serial(),
            function,
            thread: consumer.thread,
            on_call,
            on_return,
        });
    }
    Some(Recorders::Plain {
        targets,
        call_lines: CallLines::default(),
    })
}

/// Whether the slot of `code` was filled in this registry generation.
pub fn is_current(code: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a `Box<Slot>` of the slot, alive while the code object is; read only.
    let generation = unsafe { stored(code).as_ref() }.map(|slot| slot.generation);
    generation == Some(consumer::registry_generation())
}

/// Whether the consumers of this generation are known not to be all plain recorders (the
/// slot of `code` says so): then no event of `code` is for a recorder's fast path.
pub fn known_general(code: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a `Box<Slot>` of the slot, alive while the code object is; read only.
    matches!(
        unsafe { stored(code).as_ref() },
        Some(Slot { generation, recorders: Recorders::General, .. })
            if *generation == consumer::registry_generation()
    )
}

/// After the general path handled an event of `code`, wanted by `wanted_by`: fills the slot of
/// `code` for this generation, so that its next calls and returns take the fast path if they
/// can.
pub fn refresh(py: Python<'_>, code: &Bound<'_, PyAny>, wanted_by: &[u64]) {
    let generation = consumer::registry_generation();
    let found = with_consumers(py, |consumers| find_recorders(wanted_by, code, consumers));
    if let Some(recorders) = found {
        store(py, code, generation, recorders);
    }
}

/// The fast path of `PY_START`/`PY_RESUME` (`kind` `Call`) and `PY_RETURN`/`PY_YIELD`
/// (`Return`). False (nothing recorded) when the general path must take the event.
/// `code` and `offset` are the callback's arguments, borrowed.
#[inline(always)]
pub fn record_cached(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    kind: EventKind,
    offset: *mut ffi::PyObject,
) -> bool {
    // SAFETY: a `Box<Slot>` of the slot, alive while the code object is (the event's own);
    // nothing else refers to it while an event is handled (no Python code runs here).
    let Some(slot) = (unsafe { stored_at(code).as_mut() }) else {
        return false;
    };
    if slot.generation != consumer::registry_generation() {
        return false;
    }
    let event = Cached { code, kind, offset };
    match &mut slot.recorders {
        Recorders::Single {
            recorder,
            call_lines,
        } => record_to_one(py, recorder, call_lines, event),
        Recorders::Plain {
            targets,
            call_lines,
        } => record_to_several(py, targets, call_lines, code, kind, offset),
        Recorders::General => false,
    }
}

/// The fast path of `PY_UNWIND` (a legacy `return` of a frame an exception leaves), for the
/// usual single recorder: `code` is the callback's argument (borrowed), `exception_type` the
/// address of its exception's type. False (nothing recorded) when the general path must take
/// the event, as it does for an exception type the recorder has not named yet.
#[inline(always)]
pub fn record_cached_unwind(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    exception_type: usize,
) -> bool {
    // SAFETY: as in `record_cached`.
    let Some(slot) = (unsafe { stored_at(code).as_mut() }) else {
        return false;
    };
    if slot.generation != consumer::registry_generation() {
        return false;
    }
    let Recorders::Single { recorder, .. } = &slot.recorders else {
        return false;
    };
    if recorder.on_unwind != Step::Record {
        if let Some(handled) = other_step(recorder.on_unwind, recorder.thread) {
            return handled;
        }
    }
    let Some(_held) = consumer::hold_registry(py) else {
        return false;
    };
    // SAFETY: as in `record_to_one`.
    let sink = unsafe { &mut *recorder.sink.as_ptr() };
    sink.push_unwind(recorder.function, exception_type)
}

/// An event on the fast path: the callback's arguments (borrowed) and the kind.
#[derive(Clone, Copy)]
struct Cached {
    code: *mut ffi::PyObject,
    /// `Call` or `Return`.
    kind: EventKind,
    /// The instruction offset, as sys.monitoring passed it.
    offset: *mut ffi::PyObject,
}

impl Cached {
    fn step(self, target: &RecordTarget) -> Step {
        match self.kind {
            EventKind::Call => target.on_call,
            _ => target.on_return,
        }
    }

    /// The line the event is recorded with: a call's, cached per start offset (looked up by
    /// `sink` the first time; None if the offset is not an int), or 0 (a return's line is not
    /// kept: `Step::Record`).
    #[inline(always)]
    fn line(
        self,
        py: Python<'_>,
        call_lines: &mut CallLines,
        sink: &RecordSink,
        function: FunctionId,
    ) -> Option<u32> {
        if self.kind != EventKind::Call {
            return Some(0);
        }
        match call_lines.get_first_by_object(self.offset as usize) {
            Some(line) => Some(line),
            None => self.look_up_call_line(py, call_lines, sink, function),
        }
    }

    /// [`Self::line`] of a call whose offset is not the first found by its int object.
    #[inline(never)]
    fn look_up_call_line(
        self,
        py: Python<'_>,
        call_lines: &mut CallLines,
        sink: &RecordSink,
        function: FunctionId,
    ) -> Option<u32> {
        if let Some(line) = call_lines.get_by_object(self.offset as usize) {
            return Some(line);
        }
        // Not an int (a callback called by hand): converting it may run Python code (its
        // `__index__`), which must not run while the registry is held; the general path does.
        // SAFETY: the GIL is held; any object is accepted.
        if unsafe { ffi::PyLong_Check(self.offset) } == 0 {
            return None;
        }
        // SAFETY: the GIL is held; an int converts without running Python code.
        let offset = unsafe { ffi::PyLong_AsLong(self.offset) };
        if offset == -1 && PyErr::occurred(py) {
            // Not an offset after all: the general path reports it.
            drop(PyErr::fetch(py));
            return None;
        }
        Some(match call_lines.get(offset) {
            Some(line) => line,
            None => {
                // SAFETY: the callback's code argument, a borrowed reference alive for the call.
                let code = unsafe { Borrowed::from_ptr(py, self.code) };
                let line = sink.call_line_at(&code, offset, function);
                call_lines.insert(offset, line, self.offset as usize);
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
        Some(consumer) if consumer.id == target.id && !consumer.failed_on_a_thread() => {
            match &mut consumer.sink {
                Sink::Record(sink) if sink.serial() == target.serial => Some(sink),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether a recorder that records only on `only` (if set) records on the calling thread
/// (`thread` caches its ident).
fn on_its_thread(only: Option<u64>, thread: &mut Option<u64>) -> bool {
    only.is_none_or(|only| {
        // SAFETY: always safe to call.
        only == *thread.get_or_insert_with(|| unsafe { ffi::PyThread_get_thread_ident() } as u64)
    })
}

/// [`record_cached`] for the usual single recorder, the slot being of the current generation.
#[inline(always)]
fn record_to_one(
    py: Python<'_>,
    recorder: &SingleRecorder,
    call_lines: &mut CallLines,
    event: Cached,
) -> bool {
    let step = match event.kind {
        EventKind::Call => recorder.on_call,
        _ => recorder.on_return,
    };
    if step != Step::Record {
        if let Some(handled) = other_step(step, recorder.thread) {
            return handled;
        }
    }
    let function = recorder.function;
    let Some(_held) = consumer::hold_registry(py) else {
        return false;
    };
    // SAFETY: the slot is of the current generation, so `sink` is a registered consumer's (see
    // `SingleRecorder::sink`); the registry is held until this returns, so nothing else refers
    // to the sink meanwhile.
    let sink = unsafe { &mut *recorder.sink.as_ptr() };
    let Some(line) = event.line(py, call_lines, sink, function) else {
        return false;
    };
    // Nothing is recorded if the thread is new to the sink: the general path names it.
    sink.push_known(event.kind, function, line)
}

/// For a [`SingleRecorder`]'s step other than `Record`: None if the event is to be recorded
/// all the same (on the recorder's thread), else what [`record_to_one`] returns.
#[cold]
#[inline(never)]
fn other_step(step: Step, thread: Option<u64>) -> Option<bool> {
    match step {
        Step::RecordOnItsThread if on_its_thread(thread, &mut None) => None,
        Step::Record => None,
        Step::RecordOnItsThread | Step::Skip => Some(true),
        Step::General => Some(false),
    }
}

/// [`record_cached`] for several recorders: all of them record the event, or none does.
#[inline(never)]
fn record_to_several(
    py: Python<'_>,
    targets: &[RecordTarget],
    call_lines: &mut CallLines,
    code: *mut ffi::PyObject,
    kind: EventKind,
    offset: *mut ffi::PyObject,
) -> bool {
    // The event's parts apart, not a `Cached`: the caller passes them in registers.
    let event = Cached { code, kind, offset };
    with_consumers(py, |consumers| {
        record_to_targets(py, targets, call_lines, consumers, event)
    })
}

fn record_to_targets(
    py: Python<'_>,
    targets: &[RecordTarget],
    call_lines: &mut CallLines,
    consumers: &mut [Consumer],
    event: Cached,
) -> bool {
    let mut thread = None;
    let mut line = None;
    for target in targets {
        match event.step(target) {
            // A target's thread is checked below (its steps are never `RecordOnItsThread`).
            Step::Record | Step::RecordOnItsThread => {}
            Step::Skip => continue,
            Step::General => return false,
        }
        if !on_its_thread(target.thread, &mut thread) {
            continue;
        }
        let Some(sink) = target_sink(consumers, target) else {
            return false;
        };
        if !sink.knows_current_thread() {
            return false;
        }
        if line.is_none() {
            line = event.line(py, call_lines, sink, target.function);
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
        if event.step(target) == Step::Record && on_its_thread(target.thread, &mut thread) {
            if let Some(sink) = target_sink(consumers, target) {
                sink.push_known_at(event.kind, target.function, line, timestamp_ns);
            }
        }
    }
    true
}
