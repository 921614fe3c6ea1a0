//! The record sink: a consumer whose events go into the native [`Recording`] (per-thread
//! [`ThreadBuffer`](crate::record::ThreadBuffer)s), with no Python call and no Python object
//! kept per event. Backend-neutral: a backend (`monitoring` on 3.12+, the eval-frame route on
//! 3.11) hands it one [`Occurrence`] per legacy event, in two steps because the backend's
//! engine is borrowed while the sink is:
//!
//! 1. inside the borrow, [`RecordSink::try_record`] records the event when nothing about it
//!    needs Python (the code object and the thread are known, no repr is wanted): the hot path;
//! 2. otherwise it returns the [`Missing`] pieces; the backend gathers them *outside* the borrow
//!    with [`Missing::gather`] (which may run Python code: `repr`, `Thread.name`) and records
//!    with [`RecordSink::record`].
//!
//! Timestamps are nanoseconds of one monotonic clock (`CLOCK_MONOTONIC`) since the first
//! recorder of the process started ([`crate::hook::clock`]).

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::hook::addr_hash::AddrMap;
pub use crate::hook::clock::now_ns;
use crate::hook::clock::{self, BufferSlot};
use crate::output::streaming::{self, StreamingWriter};
use crate::protocol::TraceEvent;
use crate::record::{
    push_to_open, Event, EventKind, FunctionId, FunctionInfo, FunctionTable, ProcessInfo, Recorded,
    Recording,
};

/// Longest repr kept for a return value or an exception, in characters.
pub const DETAIL_MAX_CHARS: usize = 120;

static NEXT_SINK_SERIAL: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This OS thread's id (`gettid`), 0 until first asked (and again in a forked child).
    static NATIVE_TID: Cell<u64> = const { Cell::new(0) };
}

/// In a child just forked, the thread that forked (the child's only thread) has a new native
/// id: its cached id and buffer slot are forgotten, so that its events from then on go to a
/// buffer of its own, labelled with the child's id, not to the parent thread's.
extern "C" fn forget_thread_in_forked_child() {
    let _ = NATIVE_TID.try_with(|cell| cell.set(0));
    clock::forget_buffer_slot();
}

/// Registers [`forget_thread_in_forked_child`], once per process (before the first sink).
fn register_fork_child_handler() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: a plain function that never unwinds and only sets its thread's own cells.
        unsafe { libc::pthread_atfork(None, None, Some(forget_thread_in_forked_child)) };
    });
}

fn native_tid() -> u64 {
    NATIVE_TID.with(|cell| {
        let cached = cell.get();
        if cached != 0 {
            return cached;
        }
        // SAFETY: gettid has no preconditions.
        let tid = u64::try_from(unsafe { libc::gettid() }).unwrap_or(0);
        cell.set(tid);
        tid
    })
}

/// Where an event's line comes from; the sink looks it up only if it keeps it.
#[derive(Clone, Copy, Debug)]
pub enum LineSource {
    /// Already known (a `line` event).
    Known(u32),
    /// The instruction at this byte offset of the running code (what `sys.monitoring` passes);
    /// an offset without a line of its own (inside an instruction's cache) asks the frame.
    Offset(i64),
    /// The current line of this live frame, as `frame.f_lineno` shows it to a trace function.
    Frame(*mut ffi::PyFrameObject),
    /// The instruction at this byte offset of the code, by the code's line table alone (0 for
    /// an instruction without a line): where a 3.11 frame starts, resumes or exits, seen from
    /// the frame-evaluation function, where the frame is not the running one.
    Instruction(i64),
}

/// One legacy event as a backend sees it.
pub struct Occurrence<'a, 'py> {
    pub kind: EventKind,
    /// The code object running; its address identifies it while the sink holds it.
    pub code: &'a Bound<'py, PyAny>,
    pub line: LineSource,
    /// For `Return`: the value; for `Exception` and `Unwind`: the exception instance.
    pub value: Option<&'a Bound<'py, PyAny>>,
    pub timestamp_ns: u64,
}

impl Occurrence<'_, '_> {
    fn code_key(&self) -> usize {
        self.code.as_ptr() as usize
    }

    /// The event's line; 0 if there is none. Calls no Python code (a frame object may be
    /// created for [`LineSource::Offset`]'s fallback, which runs none).
    fn resolve_line(&self) -> u32 {
        let raw = match self.line {
            LineSource::Known(line) => return line,
            // SAFETY: `code` is a live code object and the GIL is held (backends call the sink
            // from their event callbacks).
            LineSource::Offset(offset) => unsafe {
                let offset = std::ffi::c_int::try_from(offset).unwrap_or(-1);
                match ffi::PyCode_Addr2Line(self.code.as_ptr().cast(), offset) {
                    line if line > 0 => line,
                    _ => {
                        let frame = ffi::PyEval_GetFrame();
                        if frame.is_null() {
                            0
                        } else {
                            ffi::PyFrame_GetLineNumber(frame)
                        }
                    }
                }
            },
            // SAFETY: the backend passes the live frame the event is about.
            LineSource::Frame(frame) => unsafe { ffi::PyFrame_GetLineNumber(frame) },
            // SAFETY: `code` is a live code object and the GIL is held.
            LineSource::Instruction(offset) => unsafe {
                let offset = std::ffi::c_int::try_from(offset).unwrap_or(-1);
                ffi::PyCode_Addr2Line(self.code.as_ptr().cast(), offset)
            },
        };
        u32::try_from(raw).unwrap_or(0)
    }
}

/// The record sink's event kind for a legacy event (`unwinding`: a `return` because an
/// exception leaves the frame); None for `opcode`, which is not recorded.
pub fn record_kind(event: TraceEvent, unwinding: bool) -> Option<EventKind> {
    Some(match event {
        TraceEvent::Call => EventKind::Call,
        TraceEvent::Return if unwinding => EventKind::Unwind,
        TraceEvent::Return => EventKind::Return,
        TraceEvent::Line => EventKind::Line,
        TraceEvent::Exception => EventKind::Exception,
        _ => return None,
    })
}

/// What [`RecordSink::try_record`] could not do without Python.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    function: bool,
    detail: bool,
    /// Describe the detail by `repr`/`str` (else an exception by its type's name only).
    reprs: bool,
    thread: bool,
}

/// The pieces [`Missing::gather`] collected.
pub struct Gathered {
    function: Option<(Py<PyAny>, FunctionInfo)>,
    detail: Option<Box<str>>,
    /// Without `reprs`, an exception's detail is its type's name: kept per type object.
    exception_type: Option<Py<PyAny>>,
    thread_name: Option<String>,
}

impl Missing {
    /// Collects what is missing. Runs Python code (`repr`, `str`, `Thread.name`), so it must
    /// be called with no engine borrowed; never fails: what cannot be described is shown as
    /// such, and the Python error is discarded (the traced program must not see it).
    pub fn gather(self, py: Python<'_>, occurrence: &Occurrence<'_, '_>) -> Gathered {
        Gathered {
            function: self.function.then(|| {
                (
                    occurrence.code.clone().unbind(),
                    describe_code(occurrence.code),
                )
            }),
            detail: if self.detail {
                occurrence
                    .value
                    .map(|value| describe_value(occurrence.kind, value, self.reprs))
            } else {
                None
            },
            exception_type: match occurrence.value {
                Some(value) if self.detail && !self.reprs && is_exception(occurrence.kind) => {
                    Some(value.get_type().into_any().unbind())
                }
                _ => None,
            },
            thread_name: self.thread.then(|| current_thread_name(py)),
        }
    }
}

fn is_exception(kind: EventKind) -> bool {
    matches!(kind, EventKind::Exception | EventKind::Unwind)
}

/// The lines of a code object's call events by start offset: a function starts at the same
/// offset every time, and a generator resumes at one of a few, so each line is looked up once.
/// An offset may also be found by the address of the int object that `sys.monitoring` passed
/// for it, if that is one of CPython's small ints (immortal and shared since 3.12, so the
/// address stays that value's).
#[derive(Default)]
pub struct CallLines {
    entries: Vec<CallLine>,
    /// The entry last found by its int object (a function's only start offset, a generator's
    /// usual resumption), kept apart: one compare finds it. 0: none.
    first_object: usize,
    first_line: u32,
}

struct CallLine {
    offset: i64,
    line: u32,
    /// The address of the small int for `offset`, or 0.
    object: usize,
}

impl CallLines {
    /// Offsets kept per code object; a code object resuming at more offsets looks the others
    /// up each time.
    const MAX: usize = 16;
    /// The largest of CPython's small ints.
    const LARGEST_SMALL_INT: i64 = 256;

    #[inline]
    pub fn get(&self, offset: i64) -> Option<u32> {
        self.entries
            .iter()
            .find_map(|entry| (entry.offset == offset).then_some(entry.line))
    }

    /// The line of the offset whose int object is at `object` (an offset seen before as a
    /// small int; `object` is not 0), if it is the one last found so: most code objects start
    /// at one offset, and a generator mostly resumes at one.
    #[inline(always)]
    pub fn get_first_by_object(&self, object: usize) -> Option<u32> {
        (object == self.first_object).then_some(self.first_line)
    }

    /// The line of the offset whose int object is at `object` (an offset seen before as a
    /// small int; `object` is not 0); found, it is the one [`Self::get_first_by_object`] finds
    /// next.
    pub fn get_by_object(&mut self, object: usize) -> Option<u32> {
        let line = self
            .entries
            .iter()
            .find_map(|entry| (entry.object == object).then_some(entry.line))?;
        self.first_object = object;
        self.first_line = line;
        Some(line)
    }

    /// Keeps `line` for `offset`; `object`: the address of the int object passed for it, if
    /// known (0 if not).
    pub fn insert(&mut self, offset: i64, line: u32, object: usize) {
        if self.entries.len() < Self::MAX {
            let small = (0..=Self::LARGEST_SMALL_INT).contains(&offset) && cfg!(Py_3_12);
            let object = if small { object } else { 0 };
            if object != 0 && self.first_object == 0 {
                self.first_object = object;
                self.first_line = line;
            }
            self.entries.push(CallLine {
                offset,
                line,
                object,
            });
        }
    }
}

/// A code object the sink has seen.
struct KnownCode {
    /// Held, not read: keeps the address from being reused while the sink refers to it.
    _code: Py<PyAny>,
    function: FunctionId,
    call_lines: CallLines,
}

/// A consumer's recording while it records.
pub struct RecordSink {
    serial: u64,
    recording: Recording,
    /// Whether return values and exceptions are described by their `repr`/`str` (which runs
    /// Python code per event); without it an exception is described by its type's name and a
    /// returned value not at all.
    reprs: bool,
    /// Whether a frame's exit (`return`, `unwind`) and an `exception` record their line (the
    /// text format shows it; the trace files do not, and looking it up costs most at the end
    /// of long functions). Without it they record line 0.
    exit_lines: bool,
    /// What the sink knows of each code object, by address; the code objects are kept alive
    /// so that no other code object can take an address while the sink refers to it.
    functions: AddrMap<usize, KnownCode>,
    /// Buffer index by native thread id.
    threads: AddrMap<u64, usize>,
    /// Exception types by address, with their names (the detail of an exception without
    /// `reprs`); the types are kept alive like the code objects. A `__qualname__` assigned
    /// after a type's first exception was recorded is not seen.
    exception_types: AddrMap<usize, (Py<PyAny>, Box<str>)>,
}

impl RecordSink {
    pub fn new(process: ProcessInfo, reprs: bool, exit_lines: bool) -> Self {
        register_fork_child_handler();
        RecordSink {
            serial: NEXT_SINK_SERIAL.fetch_add(1, Ordering::Relaxed),
            recording: Recording::new(process),
            reprs,
            exit_lines,
            functions: AddrMap::default(),
            threads: AddrMap::default(),
            exception_types: AddrMap::default(),
        }
    }

    /// A sink whose recording streams to a Perfetto trace at `path`, written by a writer
    /// thread while the program runs (see [`crate::output::streaming`]); an error now if the
    /// file cannot be created.
    pub fn streaming(
        process: ProcessInfo,
        reprs: bool,
        exit_lines: bool,
        path: &Path,
    ) -> io::Result<(Self, StreamingWriter)> {
        let (stream, writer) = streaming::start_perfetto(path, process.clone())?;
        let mut sink = RecordSink::new(process, reprs, exit_lines);
        sink.recording = Recording::streaming(sink.recording.process.clone(), stream);
        Ok((sink, writer))
    }

    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    /// Streaming: sends what is left and the end to the writer (then wait for it with
    /// [`StreamingWriter::finish`]); false if the recording was not streaming, or in a process
    /// forked since it started (the events recorded there stay in memory).
    pub fn finish_stream(&mut self) -> bool {
        self.recording.finish_stream()
    }

    /// Marks the end of a recording period (calls still open are closed there when written).
    pub fn mark_end(&mut self) {
        self.recording.set_end_timestamp_ns(now_ns());
    }

    /// Records the event if nothing about it needs Python; otherwise records nothing and
    /// says what is missing.
    #[inline]
    pub fn try_record(&mut self, occurrence: &Occurrence<'_, '_>) -> Result<(), Missing> {
        let buffer = self.current_buffer();
        let detail = self.wants_detail(occurrence);
        let known_detail = if detail {
            self.exception_type_name(occurrence)
        } else {
            None
        };
        // One lookup of the code per event: its function and its call line come from it.
        match (self.functions.get_mut(&occurrence.code_key()), buffer) {
            (Some(known), Some(buffer)) if !detail || known_detail.is_some() => {
                let function = known.function;
                let table = &self.recording.functions;
                let line = line_of(self.exit_lines, table, occurrence, function, Some(known));
                push(
                    &mut self.recording,
                    buffer,
                    occurrence,
                    function,
                    line,
                    known_detail,
                );
                Ok(())
            }
            (known, buffer) => Err(Missing {
                function: known.is_none(),
                detail,
                reprs: self.reprs,
                thread: buffer.is_none(),
            }),
        }
    }

    /// An exception's detail without `reprs`, if its type was seen before.
    fn exception_type_name(&self, occurrence: &Occurrence<'_, '_>) -> Option<Box<str>> {
        match occurrence.value {
            Some(value) if !self.reprs && is_exception(occurrence.kind) => {
                let key = value.get_type_ptr() as usize;
                self.exception_types.get(&key).map(|(_, name)| name.clone())
            }
            _ => None,
        }
    }

    /// The recording fast path of a backend that caches, per code object, what the sink
    /// gave it: the sink's serial (which changes when its function ids do) ...
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// ... and the code object's function id, once the sink has seen it.
    pub fn function_of(&self, code: &Bound<'_, PyAny>) -> Option<FunctionId> {
        self.functions
            .get(&(code.as_ptr() as usize))
            .map(|known| known.function)
    }

    /// Whether an event of `kind` is recorded without a detail and, unless it is a call or a
    /// line, with line 0: then [`Self::push_known`] can record it.
    pub fn records_plainly(&self, kind: EventKind) -> bool {
        match kind {
            EventKind::Call | EventKind::Line => true,
            EventKind::Return => !self.reprs && !self.exit_lines,
            EventKind::Exception | EventKind::Unwind => false,
        }
    }

    /// Whether an unwind is recorded with line 0 and its exception's type name as detail
    /// (no `reprs`, no `exit_lines`): then [`Self::push_unwind`] can record it.
    pub fn records_unwinds_by_type(&self) -> bool {
        !self.reprs && !self.exit_lines
    }

    /// Records an unwind (as [`Self::records_unwinds_by_type`]) of a function the sink knows,
    /// by an exception whose type is at `exception_type`, stamped now; false (nothing recorded)
    /// if that type or the calling thread is new to the sink (naming either needs Python).
    pub fn push_unwind(&mut self, function: FunctionId, exception_type: usize) -> bool {
        let Some((_, name)) = self.exception_types.get(&exception_type) else {
            return false;
        };
        let detail = name.clone();
        let thread = clock::this_thread();
        let timestamp_ns = thread.now_ns();
        let Some(buffer) = self.buffer_in(thread.slot()) else {
            return false;
        };
        if let Some(thread) = self.recording.thread_mut(buffer) {
            thread.push(Recorded {
                event: Event::new(EventKind::Unwind, function, 0, timestamp_ns),
                detail: Some(detail),
            });
        }
        true
    }

    /// The line of a call event at `offset` of `code`, looked up (see [`CallLines`]).
    pub fn call_line_at(&self, code: &Bound<'_, PyAny>, offset: i64, function: FunctionId) -> u32 {
        let occurrence = Occurrence {
            kind: EventKind::Call,
            code,
            line: LineSource::Offset(offset),
            value: None,
            timestamp_ns: 0,
        };
        call_line(&occurrence, &self.recording.functions, function)
    }

    /// Whether the calling thread has a buffer (else [`Self::push_known`] records nothing).
    pub fn knows_current_thread(&mut self) -> bool {
        self.current_buffer().is_some()
    }

    /// Records an event that [`Self::records_plainly`], of a function the sink knows, on the
    /// line given, stamped now; false (nothing recorded) if the calling thread has no buffer
    /// yet. The thread's slot says where its open chunk is: a push is a store into it.
    #[inline(always)]
    pub fn push_known(&mut self, kind: EventKind, function: FunctionId, line: u32) -> bool {
        let thread = clock::this_thread();
        let event = Event::new(kind, function, line, thread.now_ns());
        let slot = thread.slot();
        let current = slot.get();
        // SAFETY: a slot with this sink's serial (unique per sink) holds the open chunk of this
        // thread's buffer in this sink's recording, which lives as long as the recording
        // (buffers are never removed from it, and the chunk's box is never replaced);
        // `&mut self` means nothing else refers to it now.
        if current.serial == self.serial && unsafe { push_to_open(current.open, event) } {
            return true;
        }
        self.push_to_buffer(slot, event.timestamp_ns, kind, function, line)
    }

    /// [`Self::push_known`] when the slot is another sink's or the open chunk is full (the
    /// event in parts: passed in registers).
    #[cold]
    #[inline(never)]
    fn push_to_buffer(
        &mut self,
        slot: &Cell<BufferSlot>,
        timestamp_ns: u64,
        kind: EventKind,
        function: FunctionId,
        line: u32,
    ) -> bool {
        let Some(buffer) = self.buffer_in(slot) else {
            return false;
        };
        self.push_plain(buffer, Event::new(kind, function, line, timestamp_ns));
        true
    }

    /// As [`Self::push_known`], with the timestamp given.
    pub fn push_known_at(
        &mut self,
        kind: EventKind,
        function: FunctionId,
        line: u32,
        timestamp_ns: u64,
    ) -> bool {
        let Some(buffer) = self.current_buffer() else {
            return false;
        };
        self.push_plain(buffer, Event::new(kind, function, line, timestamp_ns));
        true
    }

    #[inline(always)]
    fn push_plain(&mut self, buffer: usize, event: Event) {
        if let Some(thread) = self.recording.thread_mut(buffer) {
            thread.push(Recorded {
                event,
                detail: None,
            });
        }
    }

    /// Records the event with the pieces gathered outside the engine's borrow.
    pub fn record(&mut self, occurrence: &Occurrence<'_, '_>, gathered: Gathered) {
        let key = occurrence.code_key();
        let function = match (self.functions.get(&key), gathered.function) {
            (Some(known), _) => known.function,
            (None, Some((code, info))) => {
                let id = self.recording.intern_function(info);
                let known = KnownCode {
                    _code: code,
                    function: id,
                    call_lines: CallLines::default(),
                };
                self.functions.insert(key, known);
                id
            }
            (None, None) => FunctionId::OVERFLOW,
        };
        let buffer = match self.current_buffer() {
            Some(buffer) => buffer,
            None => self.add_current_thread(gathered.thread_name.as_deref().unwrap_or("")),
        };
        if let (Some(exception_type), Some(name)) = (gathered.exception_type, &gathered.detail) {
            let key = exception_type.as_ptr() as usize;
            self.exception_types
                .entry(key)
                .or_insert_with(|| (exception_type, name.clone()));
        }
        let table = &self.recording.functions;
        let known = self.functions.get_mut(&key);
        let line = line_of(self.exit_lines, table, occurrence, function, known);
        push(
            &mut self.recording,
            buffer,
            occurrence,
            function,
            line,
            gathered.detail,
        );
    }

    fn wants_detail(&self, occurrence: &Occurrence<'_, '_>) -> bool {
        match occurrence.kind {
            EventKind::Return => self.reprs && occurrence.value.is_some(),
            EventKind::Exception | EventKind::Unwind => occurrence.value.is_some(),
            EventKind::Call | EventKind::Line => false,
        }
    }

    #[inline]
    fn current_buffer(&mut self) -> Option<usize> {
        clock::with_buffer_slot(|slot| self.buffer_in(slot))
    }

    /// The calling thread's buffer, from its slot (the buffer it recorded into last, if that
    /// was in this sink) or looked up.
    #[inline(always)]
    fn buffer_in(&mut self, slot: &Cell<BufferSlot>) -> Option<usize> {
        let current = slot.get();
        if current.serial == self.serial {
            return Some(current.index);
        }
        let index = *self.threads.get(&native_tid())?;
        self.set_slot(slot, index);
        Some(index)
    }

    /// Makes `slot` say that the calling thread records into buffer `index` of this sink.
    fn set_slot(&mut self, slot: &Cell<BufferSlot>, index: usize) {
        if let Some(buffer) = self.recording.thread_mut(index) {
            slot.set(BufferSlot {
                serial: self.serial,
                index,
                open: buffer.open_chunk(),
            });
        }
    }

    fn add_current_thread(&mut self, name: &str) -> usize {
        let tid = native_tid();
        let index = self.recording.ensure_thread(tid, name);
        self.threads.insert(tid, index);
        clock::with_buffer_slot(|slot| self.set_slot(slot, index));
        index
    }
}

/// The event's line as the sink keeps it; a call's is looked up once per code object and
/// start offset (`known` caches it).
fn line_of(
    exit_lines: bool,
    table: &FunctionTable,
    occurrence: &Occurrence<'_, '_>,
    function: FunctionId,
    known: Option<&mut KnownCode>,
) -> u32 {
    match occurrence.kind {
        EventKind::Return | EventKind::Unwind | EventKind::Exception if !exit_lines => 0,
        EventKind::Call => match (occurrence.line, known) {
            (LineSource::Offset(offset) | LineSource::Instruction(offset), Some(known)) => {
                match known.call_lines.get(offset) {
                    Some(line) => line,
                    None => {
                        let line = call_line(occurrence, table, function);
                        known.call_lines.insert(offset, line, 0);
                        line
                    }
                }
            }
            _ => call_line(occurrence, table, function),
        },
        _ => occurrence.resolve_line(),
    }
}

#[inline]
fn push(
    recording: &mut Recording,
    buffer: usize,
    occurrence: &Occurrence<'_, '_>,
    function: FunctionId,
    line: u32,
    detail: Option<Box<str>>,
) {
    if let Some(thread) = recording.thread_mut(buffer) {
        thread.push(Recorded {
            event: Event::new(occurrence.kind, function, line, occurrence.timestamp_ns),
            detail,
        });
    }
}

/// The line a call event starts at, looked up.
fn call_line(occurrence: &Occurrence<'_, '_>, table: &FunctionTable, function: FunctionId) -> u32 {
    match occurrence.resolve_line() {
        // A module's first instruction has no line: its first line.
        0 => table.get(function).map_or(0, |info| info.first_line),
        line => line,
    }
}

/// A code object's name, qualified name, file and first line (what the writers show).
fn describe_code(code: &Bound<'_, PyAny>) -> FunctionInfo {
    let text = |attr: &str| -> String {
        code.getattr(attr)
            .and_then(|value| value.extract::<String>())
            .unwrap_or_default()
    };
    let first_line = code
        .getattr("co_firstlineno")
        .and_then(|value| value.extract::<u32>())
        .unwrap_or(0);
    FunctionInfo::new(
        text("co_name"),
        text("co_qualname"),
        text("co_filename"),
        first_line,
    )
}

/// A returned value's `repr`, or an exception as `Type: message` (the type alone for an
/// exception without a message, or without `reprs`), truncated to [`DETAIL_MAX_CHARS`].
fn describe_value(kind: EventKind, value: &Bound<'_, PyAny>, reprs: bool) -> Box<str> {
    let text = match kind {
        EventKind::Exception | EventKind::Unwind => {
            let type_name = value
                .get_type()
                .qualname()
                .map(|name| name.to_string())
                .unwrap_or_else(|_| "<exception>".to_owned());
            match value.str() {
                _ if !reprs => type_name,
                Ok(message) if !message.to_string_lossy().is_empty() => {
                    format!("{type_name}: {}", message.to_string_lossy())
                }
                _ => type_name,
            }
        }
        _ => match value.repr() {
            Ok(repr) => repr.to_string_lossy().into_owned(),
            Err(_) => format!("<{} object; repr failed>", type_name_of(value)),
        },
    };
    truncate(&text, DETAIL_MAX_CHARS).into()
}

fn type_name_of(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .qualname()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// At most `max_chars` characters of `text` (on one line), with `...` if it was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(max_chars.saturating_sub(3)) {
        Some((cut, _)) if one_line.chars().count() > max_chars => {
            format!("{}...", &one_line[..cut])
        }
        _ => one_line,
    }
}

/// The calling thread's `threading` name. Without `threading` imported (the recorder does not
/// import it: that costs every traced run's start-up) no thread has been named, and the main
/// thread is the one whose thread id is the process id: `MainThread`, as `threading` calls it.
fn current_thread_name(py: Python<'_>) -> String {
    let name = || -> PyResult<String> {
        let Some(threading) = crate::hook::decision::loaded_module(py, "threading") else {
            let main = native_tid() == u64::from(std::process::id());
            return Ok(if main { "MainThread" } else { "" }.to_owned());
        };
        threading
            .call_method0("current_thread")?
            .getattr("name")?
            .extract()
    };
    name().unwrap_or_default()
}

/// The process as a recording labels it: its pid and `python` followed by its arguments.
pub fn current_process(py: Python<'_>) -> ProcessInfo {
    let argv: Vec<String> = py
        .import("sys")
        .and_then(|sys| sys.getattr("argv"))
        .and_then(|argv| argv.extract())
        .unwrap_or_default();
    let mut name = String::from("python");
    for arg in argv.iter().take(8) {
        name.push(' ');
        name.push_str(arg);
    }
    ProcessInfo {
        pid: std::process::id(),
        name,
        start_timestamp_ns: now_ns(),
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn long_details_are_cut_on_one_line() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("0123456789", 10), "0123456789");
        assert_eq!(truncate("0123456789abc", 10), "0123456...");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("ééééééééééé", 5), "éé...");
    }
}
