//! Writing a Perfetto trace while the program runs: a native writer thread (it never touches
//! Python) receives a streaming recording's functions and full chunks
//! ([`crate::record::stream`]) and encodes them as they come, with the same
//! [`SequenceWriter`]s as the writer at exit, so the file is the same packet for packet on each
//! thread's sequence (sequences interleave in the file; each thread is described by the name
//! it had when its first chunk was sent).
//!
//! The file is written under a temporary name beside the target and renamed over it when the
//! recording finishes ([`StreamingWriter::finish`]); on an error, or if the recording is
//! dropped without finishing, the temporary file is removed and the target left as it was.
//!
//! Chrome's JSON does not stream: a complete event needs its call's end, and calls must be
//! written parent first, so a long outer call would hold back everything under it.
//!
//! # Fork
//!
//! The writer thread does not exist while the process forks: a `pthread_atfork` handler
//! suspends every writer first (the thread encodes what was sent, hands its state back and
//! ends), so the child is a copy of a process with only the program's threads and no lock of
//! the writer can be held in it; the child's recording stops streaming (see
//! [`crate::record::stream`]). In the parent the writer starts again when the recording next
//! sends it something ([`ChunkStream::sleep`]), not in a fork handler: CPython 3.12+ counts the
//! process's threads once `os.fork()` has run every handler, and warns about forking a process
//! that has threads; a thread of ours must not make the program see that warning.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, Once, Weak};
use std::thread::JoinHandle;

use super::perfetto::{PacketOutput, SequenceWriter};
use super::TempFile;
use crate::record::stream::{ChunkPool, ChunkStream, Piece};
use crate::record::{FunctionTable, ProcessInfo, LATER_CHUNK_EVENTS};

/// The writer thread of a streaming recording.
#[derive(Debug)]
pub struct StreamingWriter {
    /// Leaked rather than dropped in a forked child.
    shared: ManuallyDrop<Arc<WriterShared>>,
}

/// A writer as its owner and the fork handlers see it.
#[derive(Debug)]
struct WriterShared {
    pid: u32,
    /// To ask the thread to suspend; dropped when the writer finishes, so that the thread
    /// sees the recording's end if the recording was dropped without finishing.
    sender: Mutex<Option<Sender<Piece>>>,
    slot: Mutex<Slot>,
    /// To say that the writer is asleep after a suspension.
    stream: Weak<ChunkStream>,
    /// The temporary file, removed if the process exits before the writer has finished.
    temp_path: PathBuf,
}

#[derive(Debug)]
enum Slot {
    Running(JoinHandle<Ended>),
    /// Between a fork's two handlers.
    Suspended(Box<WriterState>),
    Ended(io::Result<usize>),
}

/// How a writer thread ended.
#[derive(Debug)]
enum Ended {
    Finished(io::Result<usize>),
    Suspended(Box<WriterState>),
}

/// Everything a writer thread works with, handed back when it suspends.
#[derive(Debug)]
struct WriterState {
    pieces: Receiver<Piece>,
    pool: ChunkPool,
    temp: TempFile,
    encoder: StreamEncoder<File>,
}

/// Starts writing a Perfetto trace of `process` to `path`: creates the temporary file (an
/// error now if it cannot be) and the writer thread. The recording streams into the returned
/// [`ChunkStream`] (see [`crate::record::Recording::streaming`]).
pub fn start_perfetto(
    path: &Path,
    process: ProcessInfo,
) -> io::Result<(Arc<ChunkStream>, StreamingWriter)> {
    let mut temp = TempFile::create(path)?;
    let file = temp.file().try_clone()?;
    let temp_path = temp.temp_path().to_path_buf();
    let (stream, pieces, pool) = ChunkStream::open();
    let state = Box::new(WriterState {
        pieces,
        pool,
        temp,
        encoder: StreamEncoder::new(file, process),
    });
    let shared = Arc::new(WriterShared {
        pid: std::process::id(),
        sender: Mutex::new(Some(stream.sender())),
        slot: Mutex::new(Slot::Running(spawn(state)?)),
        stream: Arc::downgrade(&stream),
        temp_path,
    });
    let woken = Arc::downgrade(&shared);
    stream.on_wake(Box::new(move || {
        if let Some(writer) = woken.upgrade() {
            writer.resume();
        }
    }));
    register_for_fork(&shared);
    let writer = StreamingWriter {
        shared: ManuallyDrop::new(shared),
    };
    Ok((stream, writer))
}

fn spawn(state: Box<WriterState>) -> io::Result<JoinHandle<Ended>> {
    std::thread::Builder::new()
        .name("ferrotrace-writer".into())
        .spawn(move || run(state))
}

/// The writer thread's body.
fn run(mut state: Box<WriterState>) -> Ended {
    match state.encoder.run(&state.pieces, &state.pool) {
        Ok(Stop::Suspended) => Ended::Suspended(state),
        Ok(Stop::Finished(calls)) => Ended::Finished(state.temp.commit().map(|()| calls)),
        // Dropping the state removes the temporary file.
        Err(err) => Ended::Finished(Err(err)),
    }
}

fn joined(handle: JoinHandle<Ended>) -> Slot {
    match handle.join() {
        Ok(Ended::Suspended(state)) => Slot::Suspended(state),
        Ok(Ended::Finished(result)) => Slot::Ended(result),
        Err(_) => Slot::Ended(Err(io::Error::other("the trace writer thread failed"))),
    }
}

impl StreamingWriter {
    /// Waits for the writer, which ends once the recording has sent its end
    /// ([`crate::record::Recording::finish_stream`]): the calls written, or why the file could
    /// not be written (then it was not created). Blocks: call it without holding the GIL.
    pub fn finish(self) -> io::Result<usize> {
        let shared = &self.shared;
        if let Ok(mut sender) = shared.sender.lock() {
            sender.take();
        }
        let Ok(mut slot) = shared.slot.lock() else {
            return Err(io::Error::other("the trace writer thread failed"));
        };
        let ended = std::mem::replace(&mut *slot, Slot::Ended(Ok(0)));
        let ended = match ended {
            Slot::Running(handle) => joined(handle),
            // Not resumed after a fork (its thread could not start): finish here.
            Slot::Suspended(state) => match run(state) {
                Ended::Finished(result) => Slot::Ended(result),
                Ended::Suspended(_) => Slot::Ended(Err(io::Error::other(
                    "the trace writer was suspended at its end",
                ))),
            },
            ended @ Slot::Ended(_) => ended,
        };
        match ended {
            Slot::Ended(result) => result,
            _ => Err(io::Error::other(
                "the trace writer was suspended at its end",
            )),
        }
    }
}

impl Drop for StreamingWriter {
    fn drop(&mut self) {
        if std::process::id() == self.shared.pid {
            // Not finished: nobody will wait for the file, and the process may exit before
            // the thread sees the recording's end and removes it.
            self.shared.remove_unfinished_file();
            // SAFETY: dropped once, here. A running thread is detached: it ends on its own
            // when the recording's stream goes.
            unsafe { ManuallyDrop::drop(&mut self.shared) };
        }
    }
}

impl WriterShared {
    /// Removes the temporary file unless the writer has ended (then it was renamed, or
    /// removed on an error). Leaves it while the writer is being finished.
    fn remove_unfinished_file(&self) {
        let unfinished = self
            .slot
            .try_lock()
            .is_ok_and(|slot| !matches!(*slot, Slot::Ended(_)));
        if unfinished {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }

    /// Before a fork: the thread encodes what was sent, hands its state back and ends.
    fn suspend(&self) {
        let Ok(mut slot) = self.slot.lock() else {
            return;
        };
        if !matches!(*slot, Slot::Running(_)) {
            return;
        }
        let asked = match self.sender.lock() {
            Ok(sender) => sender
                .as_ref()
                .is_some_and(|s| s.send(Piece::Suspend).is_ok()),
            Err(_) => false,
        };
        if !asked {
            return; // the thread has ended, or is ending: nothing runs for long
        }
        if let Slot::Running(handle) = std::mem::replace(&mut *slot, Slot::Ended(Ok(0))) {
            *slot = joined(handle);
        }
        if let (Slot::Suspended(_), Some(stream)) = (&*slot, self.stream.upgrade()) {
            stream.sleep();
        }
    }

    /// When the recording next sends something after a fork: the thread starts again where
    /// it stopped (only in the process that started it).
    fn resume(&self) {
        if std::process::id() != self.pid {
            return;
        }
        let Ok(mut slot) = self.slot.lock() else {
            return;
        };
        if let Slot::Suspended(_) = *slot {
            if let Slot::Suspended(state) = std::mem::replace(&mut *slot, Slot::Ended(Ok(0))) {
                // Without a thread the writer finishes on the caller's at the end.
                *slot = match spawn(state) {
                    Ok(handle) => Slot::Running(handle),
                    Err(err) => Slot::Ended(Err(err)),
                };
            }
        }
    }
}

/// The writers of this process, for the fork handlers.
static WRITERS: Mutex<Vec<Weak<WriterShared>>> = Mutex::new(Vec::new());

fn register_for_fork(shared: &Arc<WriterShared>) {
    static HANDLERS: Once = Once::new();
    HANDLERS.call_once(|| {
        // SAFETY: the handlers are plain functions that never unwind.
        unsafe {
            libc::pthread_atfork(Some(before_fork), None, None);
            libc::atexit(at_exit);
        }
    });
    if let Ok(mut writers) = WRITERS.lock() {
        writers.retain(|w| w.strong_count() > 0);
        writers.push(Arc::downgrade(shared));
    }
}

/// The live writers started by this process.
fn each_writer(f: fn(&WriterShared)) {
    let pid = std::process::id();
    let writers: Vec<Arc<WriterShared>> = match WRITERS.lock() {
        Ok(writers) => writers.iter().filter_map(Weak::upgrade).collect(),
        Err(_) => return,
    };
    for writer in writers.iter().filter(|w| w.pid == pid) {
        f(writer);
    }
}

/// When the process exits with a writer that has not finished (a recording never stopped):
/// its temporary file goes, as it would on an error.
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| each_writer(WriterShared::remove_unfinished_file));
}

extern "C" fn before_fork() {
    let _ = std::panic::catch_unwind(|| each_writer(WriterShared::suspend));
}

/// Why [`StreamEncoder::run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The recording's end: the trace is complete, with this many calls.
    Finished(usize),
    /// Asked to suspend; `run` goes on where it stopped.
    Suspended,
}

/// The writer's encoding state: the trace so far, the functions, each thread's sequence.
#[derive(Debug)]
pub struct StreamEncoder<W: Write> {
    output: PacketOutput<W>,
    process: ProcessInfo,
    functions: FunctionTable,
    sequences: Vec<Option<SequenceWriter>>,
}

impl<W: Write> StreamEncoder<W> {
    pub fn new(out: W, process: ProcessInfo) -> Self {
        StreamEncoder {
            output: PacketOutput::start(out, &process),
            process,
            functions: FunctionTable::new(),
            sequences: Vec::new(),
        }
    }

    fn calls(&self) -> usize {
        self.sequences
            .iter()
            .flatten()
            .map(SequenceWriter::calls)
            .sum()
    }

    /// Encodes the pieces as they come until the recording's end or a suspension. Used chunks
    /// go back to `pool`.
    pub fn run(&mut self, pieces: &Receiver<Piece>, pool: &ChunkPool) -> io::Result<Stop> {
        loop {
            let Ok(piece) = pieces.recv() else {
                return Err(io::Error::other(
                    "the recording ended before its trace was finished",
                ));
            };
            match piece {
                Piece::Function(info) => {
                    self.functions.intern(info);
                }
                Piece::Chunk(chunk) => {
                    if self.sequences.len() <= chunk.thread {
                        self.sequences.resize_with(chunk.thread + 1, || None);
                    }
                    let output = &mut self.output;
                    let sequence = self.sequences[chunk.thread].get_or_insert_with(|| {
                        let first_ts = chunk.events.first().map_or(0, |e| e.timestamp_ns);
                        let thread = (chunk.tid, chunk.name.as_str());
                        SequenceWriter::start(output, chunk.thread, &self.process, thread, first_ts)
                    });
                    let mut details = chunk.details.iter();
                    sequence.events(output, &self.functions, &chunk.events, &mut details)?;
                    if chunk.events.capacity() >= LATER_CHUNK_EVENTS {
                        pool.recycle(chunk.events);
                    }
                }
                Piece::CountCalls(reply) => {
                    // The asker may have given up waiting.
                    let _ = reply.send(self.calls());
                }
                Piece::Suspend => return Ok(Stop::Suspended),
                Piece::Finish { end_ns } => {
                    for sequence in self.sequences.iter_mut().flatten() {
                        sequence.finish(&mut self.output, &self.functions, end_ns)?;
                    }
                    self.output.flush()?;
                    return Ok(Stop::Finished(self.calls()));
                }
            }
        }
    }
}

/// Encodes the pieces into `out` until the recording's end; the calls written.
pub fn encode_stream<W: Write>(
    pieces: &Receiver<Piece>,
    pool: &ChunkPool,
    out: W,
    process: &ProcessInfo,
) -> io::Result<usize> {
    let mut encoder = StreamEncoder::new(out, process.clone());
    loop {
        if let Stop::Finished(calls) = encoder.run(pieces, pool)? {
            return Ok(calls);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    use super::*;
    use crate::output::testing::{decode, small_recording, Message, Value};
    use crate::output::Format;
    use crate::record::stream::Chunk;
    use crate::record::{
        Event, EventKind, FunctionId, FunctionInfo, Recorded, Recording, ThreadBuffer, CHUNK_EVENTS,
    };

    /// Each sequence's packets, in file order, as bytes.
    fn per_sequence(trace: &[u8]) -> BTreeMap<u64, Vec<Vec<u8>>> {
        let mut sequences: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for (number, value) in decode(trace).unwrap() {
            assert_eq!(number, 1);
            let Value::Bytes(packet) = value else {
                panic!("a packet is a message")
            };
            let sequence = Message::parse(&packet).uint(10).expect("a sequence id");
            sequences.entry(sequence).or_default().push(packet);
        }
        sequences
    }

    /// Asserts that two traces have the same packets on each sequence, naming the first
    /// difference (the traces are too long to print).
    fn assert_same_sequences(streamed: &[u8], expected: &[u8], context: &str) {
        let (streamed, expected) = (per_sequence(streamed), per_sequence(expected));
        let ids = |s: &BTreeMap<u64, Vec<Vec<u8>>>| s.keys().copied().collect::<Vec<_>>();
        assert_eq!(ids(&streamed), ids(&expected), "{context}: sequences");
        for (id, packets) in &expected {
            let got = &streamed[id];
            let first_difference = got.iter().zip(packets).position(|(a, b)| a != b);
            assert_eq!(
                (got.len(), first_difference),
                (packets.len(), None),
                "{context}: sequence {id}"
            );
        }
    }

    fn at_exit(recording: &Recording) -> Vec<u8> {
        let mut out = Vec::new();
        Format::Perfetto.write(recording, &mut out).unwrap();
        out
    }

    /// Three threads of nested calls, exceptions in and out of frames, details, a stray
    /// return, and calls left open, `n` calls each.
    fn busy_recording(n: u64) -> Recording {
        use EventKind::*;
        let mut recording = Recording::new(ProcessInfo {
            pid: 77,
            name: "python busy.py".into(),
            start_timestamp_ns: 0,
        });
        let f: Vec<FunctionId> = (0..5)
            .map(|i| {
                let info = FunctionInfo::new(format!("f{i}"), format!("C.f{i}"), "b.py", 10 * i);
                recording.functions.intern(info)
            })
            .collect();
        for (t, name) in ["MainThread", "worker", "idle"].into_iter().enumerate() {
            let mut thread = ThreadBuffer::new(100 + t as u64, name);
            if t == 2 {
                recording.add_thread(thread);
                continue;
            }
            let e = |kind, f: FunctionId, line, ts| Recorded::from(Event::new(kind, f, line, ts));
            thread.push(e(Return, f[0], 1, 1).with_detail("stray"));
            thread.push(e(Call, f[0], 0, 2));
            for i in 0..n {
                let ts = 10 * i + 3;
                let g = f[1 + (i % 4) as usize];
                thread.push(e(Call, g, 10 * (1 + (i % 4) as u32), ts));
                match i % 5 {
                    0 => thread.push(e(Return, g, 0, ts + 1)),
                    1 => {
                        thread.push(e(Exception, g, 0, ts + 1).with_detail("KeyError: 'k'"));
                        thread.push(e(Unwind, g, 0, ts + 2));
                    }
                    2 => thread.push(e(Return, g, 0, ts + 3).with_detail(format!("{i}"))),
                    3 => thread.push(e(Exception, g, 0, ts + 1)),
                    _ => thread.push(e(Return, g, 0, ts + 5)),
                }
                if i % 7 == 0 {
                    thread.push(e(Exception, f[0], 0, ts + 6).with_detail("OSError: x"));
                }
            }
            recording.add_thread(thread);
        }
        recording.set_end_timestamp_ns(10 * n + 100);
        recording
    }

    /// Feeds `recording` to the writer as a streaming recording would: every function first,
    /// then the threads' events in pieces of `piece` events, round robin.
    fn stream_in_pieces(recording: &Recording, piece: usize) -> (Vec<u8>, usize) {
        let (sender, receiver) = mpsc::channel();
        for (_, info) in recording.functions.iter() {
            sender.send(Piece::Function(info.clone())).unwrap();
        }
        let mut threads: Vec<_> = recording
            .threads()
            .iter()
            .map(|t| t.events().collect::<Vec<_>>())
            .collect();
        let mut first = true;
        while first || threads.iter().any(|events| !events.is_empty()) {
            for (index, events) in threads.iter_mut().enumerate() {
                if events.is_empty() && !first {
                    continue;
                }
                let rest = events.split_off(piece.min(events.len()));
                let thread = &recording.threads()[index];
                let chunk = Chunk {
                    thread: index,
                    tid: thread.tid(),
                    name: thread.name().to_owned(),
                    events: events.iter().map(|e| **e).collect(),
                    details: events
                        .iter()
                        .filter_map(|e| e.detail())
                        .map(Box::from)
                        .collect(),
                };
                sender.send(Piece::Chunk(chunk)).unwrap();
                *events = rest;
            }
            first = false;
        }
        let end_ns = recording.end_timestamp_ns();
        sender.send(Piece::Finish { end_ns }).unwrap();
        let mut out = Vec::new();
        let calls = encode_stream(
            &receiver,
            &ChunkPool::default(),
            &mut out,
            &recording.process,
        )
        .unwrap();
        (out, calls)
    }

    /// Records `recording`'s functions and events again into `into`; `between` runs after the
    /// functions, before the events.
    fn record_again(into: &mut Recording, recording: &Recording, between: impl FnOnce(&Recording)) {
        for (_, info) in recording.functions.iter() {
            into.intern_function(info.clone());
        }
        between(into);
        for thread in recording.threads() {
            let index = into.ensure_thread(thread.tid(), thread.name());
            for event in thread.events() {
                let recorded = match event.detail() {
                    Some(detail) => event.with_detail(detail),
                    None => Recorded::from(*event),
                };
                into.thread_mut(index).unwrap().push(recorded);
            }
        }
        if let Some(end) = recording.end_timestamp_ns() {
            into.set_end_timestamp_ns(end);
        }
    }

    #[test]
    fn streamed_pieces_make_the_same_sequences_as_the_writer_at_exit() {
        for recording in [small_recording(), busy_recording(300)] {
            let expected = at_exit(&recording);
            for piece in [1, 2, 3, 5, 64, 10_000] {
                let (streamed, calls) = stream_in_pieces(&recording, piece);
                assert_same_sequences(&streamed, &expected, &format!("pieces of {piece}"));
                assert_eq!(calls, recording.call_count());
            }
        }
    }

    /// A streaming recording through real thread buffers (full chunks sent on the cold path,
    /// recycled chunks reused), functions interned as the threads go.
    #[test]
    fn a_streaming_recording_writes_what_the_writer_at_exit_writes() {
        let (stream, pieces, pool) = ChunkStream::open();
        let process = ProcessInfo {
            pid: 9,
            name: "python big.py".into(),
            start_timestamp_ns: 0,
        };
        let writer = std::thread::spawn({
            let process = process.clone();
            move || {
                let mut out = Vec::new();
                encode_stream(&pieces, &pool, &mut out, &process).map(|calls| (out, calls))
            }
        });
        let mut streaming = Recording::streaming(process.clone(), stream);
        let mut kept = Recording::new(process);
        let total = CHUNK_EVENTS + 4 * LATER_CHUNK_EVENTS + 17;
        for recording in [&mut streaming, &mut kept] {
            let threads = [
                recording.ensure_thread(1, "MainThread"),
                recording.ensure_thread(2, "worker"),
            ];
            let mut functions = Vec::new();
            for i in 0..total {
                if i % 1000 == 0 {
                    let info = FunctionInfo::new("f", format!("f{}", i / 1000), "big.py", 1);
                    functions.push(recording.intern_function(info));
                }
                let thread = threads[i % 3 / 2];
                let function = functions[i % functions.len()];
                let kind = if i % 4 < 2 {
                    EventKind::Call
                } else {
                    EventKind::Return
                };
                let event = Recorded::from(Event::new(kind, function, 1, i as u64));
                let event = if i % 11 == 0 {
                    event.with_detail(format!("{i}"))
                } else {
                    event
                };
                if let Some(buffer) = recording.thread_mut(thread) {
                    buffer.push(event);
                }
            }
            recording.set_end_timestamp_ns(total as u64 + 5);
        }
        assert!(streaming.is_streaming());
        assert_eq!(streaming.event_count(), total);
        let asked = streaming.count_streamed_calls().unwrap();
        assert!(streaming.finish_stream());
        assert!(!streaming.is_streaming() && !streaming.finish_stream());
        assert!(asked.recv().unwrap() > 0);
        let (out, calls) = writer.join().unwrap().unwrap();
        assert_eq!(calls, kept.call_count());
        assert_eq!(streaming.call_count(), 0, "nothing is left in memory");
        assert_eq!(streaming.event_count(), total);
        assert_same_sequences(&out, &at_exit(&kept), "real buffers");
    }

    #[test]
    fn the_file_appears_whole_at_the_end_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("ferrotrace-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.pftrace");
        let recording = busy_recording(50);

        let (stream, writer) = start_perfetto(&path, recording.process.clone()).unwrap();
        let mut streaming = Recording::streaming(recording.process.clone(), stream);
        record_again(&mut streaming, &recording, |_| {});
        assert!(!path.exists(), "written under a temporary name first");
        assert!(streaming.finish_stream());
        assert_eq!(writer.finish().unwrap(), recording.call_count());
        let written = std::fs::read(&path).unwrap();
        assert_same_sequences(&written, &at_exit(&recording), "file");

        // A recording dropped before its end: the target is left as it was, nothing else.
        let (stream, writer) = start_perfetto(&path, recording.process.clone()).unwrap();
        drop(Recording::streaming(recording.process.clone(), stream));
        assert!(writer.finish().is_err());
        assert_eq!(std::fs::read(&path).unwrap(), written);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);

        // A directory that does not exist: an error at once.
        assert!(start_perfetto(&dir.join("missing/t.pftrace"), ProcessInfo::default()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writer_suspended_for_a_fork_wakes_when_the_recording_sends_again() {
        let dir = std::env::temp_dir().join(format!("ferrotrace-fork-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.pftrace");
        let recording = busy_recording(20);
        let (stream, writer) = start_perfetto(&path, recording.process.clone()).unwrap();
        let mut streaming = Recording::streaming(recording.process.clone(), stream.clone());
        record_again(&mut streaming, &recording, |_| {
            before_fork();
            assert!(stream.asleep.load(std::sync::atomic::Ordering::Acquire));
        });
        assert!(streaming.finish_stream());
        assert!(!stream.asleep.load(std::sync::atomic::Ordering::Acquire));
        assert_eq!(writer.finish().unwrap(), recording.call_count());
        let written = std::fs::read(&path).unwrap();
        assert_same_sequences(&written, &at_exit(&recording), "after a suspension");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_error_ends_the_writer_with_it() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (sender, receiver) = mpsc::channel();
        sender.send(Piece::Finish { end_ns: None }).unwrap();
        let error = encode_stream(
            &receiver,
            &ChunkPool::default(),
            Full,
            &ProcessInfo::default(),
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    }
}
