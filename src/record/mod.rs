//! The call recorder's native store: every event of a run, kept in Rust memory per thread,
//! with no Python object in it. Pure Rust, no interpreter: the binding layer interns each code
//! object once into the [`FunctionTable`], pushes plain [`Event`]s into the calling thread's
//! [`ThreadBuffer`], and hands the buffers to a [`Recording`], which the writers of
//! [`crate::output`] turn into a file.
//!
//! # What is kept
//!
//! Everything pushed. There is no ring buffer and no sampling: a run that makes ten million
//! calls records ten million calls, and memory is the only limit. A [`ThreadBuffer`] grows by
//! whole chunks (a small first one, then 1 MiB ones whose pages are faulted in at once), so a
//! push never copies earlier events and only allocates when a chunk fills.
//!
//! # What the stream may look like
//!
//! A thread's events are in the order they happened, but need not be balanced: a run can end
//! with calls still open (`os._exit`, a thread still running, a recording stopped inside a
//! call) and can start with returns whose call came before the recording did. The writers
//! accept any stream and never panic on one; how they close or drop the loose ends is
//! described in [`crate::output`].
//!
//! # Threads
//!
//! Nothing here locks. A [`ThreadBuffer`] belongs to one thread while it records (the binding
//! keeps it in thread-local state, or behind the GIL), and is given to the [`Recording`] with
//! [`Recording::add_thread`] when that thread stops or the run ends. Interning needs
//! `&mut FunctionTable`; it happens once per code object, so a lock around it is cheap.

mod buffer;
mod functions;
pub mod stream;

use std::ops::Deref;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

pub(crate) use buffer::push_to_open;
pub use buffer::{Events, ThreadBuffer, CHUNK_EVENTS, LATER_CHUNK_EVENTS};
pub use functions::{FunctionId, FunctionInfo, FunctionTable};
use stream::{ChunkStream, Piece};

/// What happened, in `sys.settrace`'s terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// A frame starts running: a call, or a generator or coroutine resuming (`call`).
    Call,
    /// A frame stops running normally: a return, or a generator suspending at `yield`
    /// (`return`). The detail is a short repr of the value.
    Return,
    /// A new line is about to run (`line`). Kept in the recording; the current writers skip it.
    Line,
    /// An exception was raised in, or propagated into, the running frame (`exception`). The
    /// detail is a short description such as `ValueError: bad count`.
    Exception,
    /// A frame exits because an exception propagates out of it. `sys.settrace` reports this
    /// as a `return` with None; a backend that can tell (`sys.monitoring`'s `PY_UNWIND`)
    /// records `Unwind`, with the exception as detail, so the writers can show it.
    Unwind,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Call => "call",
            EventKind::Return => "return",
            EventKind::Line => "line",
            EventKind::Exception => "exception",
            EventKind::Unwind => "unwind",
        }
    }

    /// Whether the event ends the running frame (`Return` or `Unwind`).
    pub fn closes_frame(self) -> bool {
        matches!(self, EventKind::Return | EventKind::Unwind)
    }
}

/// One event of one thread as a buffer stores it: 16 bytes. Its detail, if it has one, is
/// kept beside the events (most have none, and every stored byte is a byte the kernel must
/// hand over and the writers read back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Nanoseconds on the recording's clock (one monotonic clock for the whole process).
    pub timestamp_ns: u64,
    pub function: FunctionId,
    /// The line (low [`Event::LINE_BITS`] bits), the kind (3 bits) and whether the buffer holds
    /// a detail for this event (the top bit).
    packed: u32,
}

impl Event {
    /// Lines above `2^28 - 1` are kept as that (no source file is that long).
    pub const LINE_BITS: u32 = 28;
    const LINE_MASK: u32 = (1 << Self::LINE_BITS) - 1;
    const HAS_DETAIL: u32 = 1 << 31;

    pub fn new(kind: EventKind, function: FunctionId, line: u32, timestamp_ns: u64) -> Self {
        Event {
            timestamp_ns,
            function,
            packed: line.min(Self::LINE_MASK) | ((kind as u32) << Self::LINE_BITS),
        }
    }

    /// The frame's current line (`f_lineno`) when the event happened.
    #[inline]
    pub fn line(&self) -> u32 {
        self.packed & Self::LINE_MASK
    }

    #[inline]
    pub fn kind(&self) -> EventKind {
        match (self.packed >> Self::LINE_BITS) & 0b111 {
            0 => EventKind::Call,
            1 => EventKind::Return,
            2 => EventKind::Line,
            3 => EventKind::Exception,
            _ => EventKind::Unwind,
        }
    }

    pub(crate) fn has_detail(&self) -> bool {
        self.packed & Self::HAS_DETAIL != 0
    }

    fn set_has_detail(&mut self, has_detail: bool) {
        if has_detail {
            self.packed |= Self::HAS_DETAIL;
        } else {
            self.packed &= !Self::HAS_DETAIL;
        }
    }

    pub fn with_detail(self, detail: impl Into<Box<str>>) -> Recorded {
        Recorded::from(self).with_detail(detail)
    }
}

/// An event as it is pushed: with its detail, a short repr of a return value or exception
/// (already truncated by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub event: Event,
    pub detail: Option<Box<str>>,
}

impl From<Event> for Recorded {
    #[inline]
    fn from(event: Event) -> Self {
        Recorded {
            event,
            detail: None,
        }
    }
}

impl Recorded {
    pub fn with_detail(mut self, detail: impl Into<Box<str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

/// An event read back from a buffer, with its detail; derefs to the [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    event: Event,
    detail: Option<&'a str>,
}

impl<'a> EventRef<'a> {
    /// `event` with its detail (None if it has none).
    pub(crate) fn new(event: Event, detail: Option<&'a str>) -> Self {
        EventRef { event, detail }
    }

    pub fn detail(&self) -> Option<&'a str> {
        self.detail
    }
}

impl Deref for EventRef<'_> {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// The traced process, as the writers label it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Shown as the process's name, e.g. `python script.py`.
    pub name: String,
    /// When the recording started, on the events' clock.
    pub start_timestamp_ns: u64,
}

/// A whole run: the process, the functions, and every thread's events.
///
/// A streaming recording ([`Recording::streaming`]) sends its functions and full chunks to a
/// writer as it goes (see [`stream`]) and keeps only the events not sent yet.
#[derive(Debug, Default)]
pub struct Recording {
    pub process: ProcessInfo,
    pub functions: FunctionTable,
    threads: Vec<ThreadBuffer>,
    end_timestamp_ns: Option<u64>,
    stream: Option<Arc<ChunkStream>>,
}

impl Recording {
    pub fn new(process: ProcessInfo) -> Self {
        Recording {
            process,
            ..Recording::default()
        }
    }

    /// A recording whose functions and events go to `stream`'s writer as they come.
    pub fn streaming(process: ProcessInfo, stream: Arc<ChunkStream>) -> Self {
        Recording {
            process,
            stream: Some(stream),
            ..Recording::default()
        }
    }

    /// Whether functions and events still go to a writer (not after
    /// [`finish_stream`](Self::finish_stream), nor in a process forked since it opened).
    pub fn is_streaming(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.in_this_process())
    }

    /// Interns a function (see [`FunctionTable::intern`]); a streaming recording sends a new
    /// one to its writer.
    pub fn intern_function(&mut self, info: FunctionInfo) -> FunctionId {
        let known = self.functions.len();
        match &self.stream {
            Some(stream) if stream.in_this_process() => {
                let id = self.functions.intern(info.clone());
                if self.functions.len() > known {
                    stream.send(Piece::Function(info));
                }
                id
            }
            _ => self.functions.intern(info),
        }
    }

    /// Streaming: sends every thread's remaining events, then the end; the recording then
    /// streams no more. False if it was not streaming (or is a process forked since the
    /// stream opened: nothing is sent, the events stay here).
    pub fn finish_stream(&mut self) -> bool {
        let Some(stream) = self.stream.take() else {
            return false;
        };
        let sent = stream.in_this_process();
        for thread in &mut self.threads {
            if sent {
                thread.send_chunks();
            }
            thread.stop_streaming();
        }
        if sent {
            stream.send(Piece::Finish {
                end_ns: self.end_timestamp_ns,
            });
        }
        sent
    }

    /// Streaming: asks the writer how many calls it has seen; it answers on the receiver
    /// once it has encoded every chunk sent before.
    pub fn count_streamed_calls(&self) -> Option<Receiver<usize>> {
        let stream = self.stream.as_ref().filter(|s| s.in_this_process())?;
        let (reply, answer) = mpsc::sync_channel(1);
        stream.send(Piece::CountCalls(reply)).then_some(answer)
    }

    /// Adds a thread's events. A buffer of a thread already present (the same `tid`) is
    /// appended to that thread's events, so a thread may hand its buffer over in pieces; its
    /// name becomes the newer one unless that is empty. Threads keep the order in which they
    /// were first added, and the writers write them in that order.
    pub fn add_thread(&mut self, buffer: ThreadBuffer) {
        match self.threads.iter_mut().find(|t| t.tid() == buffer.tid()) {
            Some(existing) => existing.append(buffer),
            None => self.threads.push(buffer),
        }
    }

    /// The index of the buffer of thread `tid`, created empty (named `name`) if there is none
    /// yet. For a binding that records straight into the recording: it looks the index up
    /// once per thread and uses [`thread_mut`](Self::thread_mut) afterwards.
    pub fn ensure_thread(&mut self, tid: u64, name: &str) -> usize {
        match self.threads.iter().position(|t| t.tid() == tid) {
            Some(index) => index,
            None => {
                let index = self.threads.len();
                let mut buffer = ThreadBuffer::new(tid, name);
                if let Some(stream) = self.stream.as_ref().filter(|s| s.in_this_process()) {
                    buffer.stream_to(stream.clone(), index);
                }
                self.threads.push(buffer);
                index
            }
        }
    }

    pub fn thread_mut(&mut self, index: usize) -> Option<&mut ThreadBuffer> {
        self.threads.get_mut(index)
    }

    pub fn threads(&self) -> &[ThreadBuffer] {
        &self.threads
    }

    /// When the recording stopped. Calls still open at the end are closed at this time (or
    /// at their thread's last event, if that is later); without it, at their thread's last
    /// event.
    pub fn set_end_timestamp_ns(&mut self, timestamp_ns: u64) {
        self.end_timestamp_ns = Some(timestamp_ns);
    }

    pub fn end_timestamp_ns(&self) -> Option<u64> {
        self.end_timestamp_ns
    }

    /// Events of every thread.
    pub fn event_count(&self) -> usize {
        self.threads.iter().map(ThreadBuffer::len).sum()
    }

    /// `Call` events of every thread (of a streaming recording: those not sent yet).
    pub fn call_count(&self) -> usize {
        self.threads
            .iter()
            .flat_map(ThreadBuffer::events)
            .filter(|e| e.kind() == EventKind::Call)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: FunctionId, ts: u64) -> Event {
        Event::new(EventKind::Call, f, 1, ts)
    }

    #[test]
    fn an_event_is_small() {
        assert!(std::mem::size_of::<Event>() <= 16);
    }

    #[test]
    fn threads_are_found_by_tid_and_merged() {
        let mut recording = Recording::new(ProcessInfo::default());
        let f = recording
            .functions
            .intern(FunctionInfo::new("f", "f", "a.py", 1));
        let main = recording.ensure_thread(7, "MainThread");
        assert_eq!(recording.ensure_thread(7, "ignored"), main);
        recording.thread_mut(main).unwrap().push(call(f, 1));

        let mut later = ThreadBuffer::new(7, "renamed");
        later.push(call(f, 2));
        recording.add_thread(later);
        recording.add_thread(ThreadBuffer::new(8, "worker"));
        let mut unnamed = ThreadBuffer::new(8, "");
        unnamed.push(call(f, 3));
        recording.add_thread(unnamed);

        let threads = recording.threads();
        assert_eq!(threads.len(), 2);
        assert_eq!((threads[0].tid(), threads[0].name()), (7, "renamed"));
        assert_eq!((threads[1].tid(), threads[1].name()), (8, "worker"));
        let stamps: Vec<u64> = threads[0].events().map(|e| e.timestamp_ns).collect();
        assert_eq!(stamps, [1, 2]);
        assert_eq!(recording.event_count(), 3);
        assert_eq!(recording.call_count(), 3);
        assert!(recording.thread_mut(2).is_none());
    }

    #[test]
    fn the_end_timestamp_is_optional() {
        let mut recording = Recording::default();
        assert_eq!(recording.end_timestamp_ns(), None);
        recording.set_end_timestamp_ns(99);
        assert_eq!(recording.end_timestamp_ns(), Some(99));
    }

    #[test]
    fn kinds_and_lines_are_packed() {
        use EventKind::*;
        for kind in [Call, Return, Line, Exception, Unwind] {
            for line in [0, 1, 4242, (1 << Event::LINE_BITS) - 1] {
                let e = Event::new(kind, FunctionId(7), line, 9);
                assert_eq!(
                    (e.kind(), e.line(), e.function, e.timestamp_ns),
                    (kind, line, FunctionId(7), 9)
                );
                let mut detailed = e;
                detailed.set_has_detail(true);
                assert_eq!((detailed.kind(), detailed.line()), (kind, line));
                assert!(detailed.has_detail() && !e.has_detail());
            }
        }
        let huge = Event::new(Unwind, FunctionId(0), u32::MAX, 0);
        assert_eq!(
            (huge.kind(), huge.line()),
            (Unwind, (1 << Event::LINE_BITS) - 1)
        );
    }

    #[test]
    fn details_are_optional() {
        let e = Event::new(EventKind::Return, FunctionId(0), 3, 10);
        assert_eq!(Recorded::from(e).detail(), None);
        assert_eq!(e.with_detail("42").detail(), Some("42"));
        // Read back, each event has its own detail or none.
        let mut thread = ThreadBuffer::new(1, "t");
        thread.push(e);
        thread.push(e.with_detail("42"));
        thread.push(e);
        thread.push(e.with_detail("7"));
        let mut later = ThreadBuffer::new(1, "");
        later.push(e.with_detail("after append"));
        later.push(e);
        thread.append(later);
        let details: Vec<Option<&str>> = thread.events().map(|e| e.detail()).collect();
        assert_eq!(
            details,
            [
                None,
                Some("42"),
                None,
                Some("7"),
                Some("after append"),
                None
            ]
        );
        assert!(EventKind::Unwind.closes_frame() && EventKind::Return.closes_frame());
        assert!(!EventKind::Exception.closes_frame());
        assert_eq!(EventKind::Unwind.name(), "unwind");
    }
}
