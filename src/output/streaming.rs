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

use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::perfetto::{PacketOutput, SequenceWriter};
use super::TempFile;
use crate::record::stream::{ChunkPool, ChunkStream, Piece};
use crate::record::{FunctionTable, ProcessInfo, LATER_CHUNK_EVENTS};

/// The writer thread of a streaming recording.
#[derive(Debug)]
pub struct StreamingWriter {
    pid: u32,
    /// Leaked rather than dropped in a forked child, where the thread does not exist.
    thread: ManuallyDrop<JoinHandle<io::Result<usize>>>,
}

/// Starts writing a Perfetto trace of `process` to `path`: creates the temporary file (an
/// error now if it cannot be) and the writer thread. The recording streams into the returned
/// [`ChunkStream`] (see [`crate::record::Recording::streaming`]).
pub fn start_perfetto(
    path: &Path,
    process: ProcessInfo,
) -> io::Result<(Arc<ChunkStream>, StreamingWriter)> {
    let mut temp = TempFile::create(path)?;
    let (stream, pieces, pool) = ChunkStream::open();
    let thread = std::thread::Builder::new()
        .name("ferrotrace-writer".into())
        .spawn(move || {
            let calls = encode_stream(&pieces, &pool, temp.file(), &process)?;
            temp.commit()?;
            Ok(calls)
        })?;
    let writer = StreamingWriter {
        pid: std::process::id(),
        thread: ManuallyDrop::new(thread),
    };
    Ok((stream, writer))
}

impl StreamingWriter {
    /// Waits for the writer, which ends once the recording has sent its end
    /// ([`crate::record::Recording::finish_stream`]): the calls written, or why the file could
    /// not be written (then it was not created). Blocks: call it without holding the GIL.
    pub fn finish(mut self) -> io::Result<usize> {
        // SAFETY: taken once; `self` is forgotten so that Drop does not see it again.
        let thread = unsafe { ManuallyDrop::take(&mut self.thread) };
        std::mem::forget(self);
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the trace writer thread failed")),
        }
    }
}

impl Drop for StreamingWriter {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            // Detaches the thread: it ends on its own when the recording's stream goes.
            // SAFETY: dropped once, here.
            unsafe { ManuallyDrop::drop(&mut self.thread) };
        }
    }
}

/// Encodes the pieces into `out` until the recording's end; the calls written. Pure: the
/// thread's body, and what the tests feed directly.
pub fn encode_stream<W: Write>(
    pieces: &Receiver<Piece>,
    pool: &ChunkPool,
    out: W,
    process: &ProcessInfo,
) -> io::Result<usize> {
    let mut output = PacketOutput::start(out, process);
    let mut functions = FunctionTable::new();
    let mut sequences: Vec<Option<SequenceWriter>> = Vec::new();
    let calls = |sequences: &[Option<SequenceWriter>]| {
        sequences
            .iter()
            .flatten()
            .map(SequenceWriter::calls)
            .sum::<usize>()
    };
    loop {
        let Ok(piece) = pieces.recv() else {
            return Err(io::Error::other(
                "the recording ended before its trace was finished",
            ));
        };
        match piece {
            Piece::Function(info) => {
                functions.intern(info);
            }
            Piece::Chunk(chunk) => {
                if sequences.len() <= chunk.thread {
                    sequences.resize_with(chunk.thread + 1, || None);
                }
                let sequence = sequences[chunk.thread].get_or_insert_with(|| {
                    let first_ts = chunk.events.first().map_or(0, |e| e.timestamp_ns);
                    let thread = (chunk.tid, chunk.name.as_str());
                    SequenceWriter::start(&mut output, chunk.thread, process, thread, first_ts)
                });
                sequence.events(&mut output, &functions, chunk.events())?;
                if chunk.events.capacity() >= LATER_CHUNK_EVENTS {
                    pool.recycle(chunk.events);
                }
            }
            Piece::CountCalls(reply) => {
                // The asker may have given up waiting.
                let _ = reply.send(calls(&sequences));
            }
            Piece::Finish { end_ns } => {
                for sequence in sequences.iter_mut().flatten() {
                    sequence.finish(&mut output, &functions, end_ns)?;
                }
                output.finish()?;
                return Ok(calls(&sequences));
            }
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
        for (_, info) in recording.functions.iter() {
            streaming.intern_function(info.clone());
        }
        for thread in recording.threads() {
            let index = streaming.ensure_thread(thread.tid(), thread.name());
            for event in thread.events() {
                let recorded = match event.detail() {
                    Some(detail) => event.with_detail(detail),
                    None => Recorded::from(*event),
                };
                streaming.thread_mut(index).unwrap().push(recorded);
            }
        }
        streaming.set_end_timestamp_ns(recording.end_timestamp_ns().unwrap());
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
