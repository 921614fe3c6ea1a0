//! Perfetto's protobuf trace format (`.pftrace`), as the Perfetto SDK's track events write
//! it; field numbers from `protos/perfetto/trace/` in the Perfetto repository, named beside
//! each use.
//!
//! The file is a `Trace`: a sequence of `TracePacket`s, written as the Perfetto SDK's track
//! events are, in the compact form its incremental state allows.
//! 1. The process track: a `TrackDescriptor` with a `ProcessDescriptor` (pid, name).
//! 2. Per thread, in recording order, one packet sequence (its own
//!    `trusted_packet_sequence_id`, as each thread of an SDK-instrumented program has):
//!    - first a `TrackDescriptor` for the thread's track (parent: the process track) with a
//!      `ThreadDescriptor` (pid, tid, name). It clears the sequence's incremental state
//!      (`SEQ_INCREMENTAL_STATE_CLEARED`), interns the category `python` and the debug
//!      annotation names, and sets the sequence's `TracePacketDefaults`: the thread's track
//!      for every track event (which then names no track) and the sequence's incremental
//!      clock for every timestamp;
//!    - then a `ClockSnapshot` that defines that clock (id 64, sequence-scoped, incremental:
//!      each packet's timestamp is the nanoseconds since the previous one's) against the
//!      default trace clock (`BOOTTIME`, on which the recording's timestamps are written);
//!    - then one `TrackEvent` packet per slice begin and end (`TYPE_SLICE_BEGIN`,
//!      `TYPE_SLICE_END`), flagged `SEQ_NEEDS_INCREMENTAL_STATE`. A function's name
//!      (`EventName`) and source location (`SourceLocation`: file, qualified name, first line)
//!      are interned on the sequence the first time the thread calls it, with iid = function
//!      id + 1.
//!
//! What Perfetto's UI shows for a slice: its name, the category, the args
//! `source.file_name`, `source.function_name`, `source.line_number` (from the interned
//! source location), and the debug annotations `debug.line` (only when the call started
//! elsewhere than the function's first line: a resumed generator), `debug.return`,
//! `debug.exception`, and `debug.unfinished` for a call still open at the end (see
//! [`crate::output`]). The annotations that describe the end are written on the `SLICE_END`
//! packet; the trace processor merges a slice's begin and end arguments.
//!
//! Packets are encoded straight into one output buffer, written out whenever it holds
//! [`FLUSH_BYTES`]: the file is streamed, never held whole in memory.
//!
//! Track uuids: the process track is `pid << 32 | 1`, thread `n` (from 0) is that plus
//! `n + 1`.

use std::io::{self, Write};

use super::protobuf::{Encoder, RawTail, WIRE_LEN};
use super::spans::{End, SpanState, Step};
use super::{describe, TraceWriter};
use crate::record::{
    Event, EventKind, EventRef, FunctionId, FunctionTable, ProcessInfo, Recording,
};

/// Writes [`Format::Perfetto`](super::Format::Perfetto).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerfettoWriter;

/// Field numbers, message by message (proto field name in the comment).
mod field {
    /// `Trace` (trace.proto)
    pub const TRACE_PACKET: u32 = 1; // repeated TracePacket packet

    /// `TracePacket` (trace_packet.proto)
    pub mod packet {
        pub const CLOCK_SNAPSHOT: u32 = 6; // ClockSnapshot clock_snapshot
        pub const TIMESTAMP: u32 = 8; // optional uint64 timestamp
        pub const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10; // uint32 trusted_packet_sequence_id
        pub const TRACK_EVENT: u32 = 11; // TrackEvent track_event
        pub const INTERNED_DATA: u32 = 12; // optional InternedData interned_data
        pub const SEQUENCE_FLAGS: u32 = 13; // optional uint32 sequence_flags
        pub const TRACE_PACKET_DEFAULTS: u32 = 59; // optional TracePacketDefaults ...
        pub const TRACK_DESCRIPTOR: u32 = 60; // TrackDescriptor track_descriptor
    }

    /// `TracePacketDefaults` (trace_packet_defaults.proto)
    pub mod trace_packet_defaults {
        pub const TRACK_EVENT_DEFAULTS: u32 = 11; // optional TrackEventDefaults ...
        pub const TIMESTAMP_CLOCK_ID: u32 = 58; // optional uint32 timestamp_clock_id
    }

    /// `TrackEventDefaults` (track_event/track_event.proto)
    pub mod track_event_defaults {
        pub const TRACK_UUID: u32 = 11; // optional uint64 track_uuid
    }

    /// `ClockSnapshot` and its `Clock` (clock_snapshot.proto)
    pub mod clock_snapshot {
        pub const CLOCKS: u32 = 1; // repeated Clock clocks
        pub const CLOCK_ID: u32 = 1; // Clock: optional uint32 clock_id
        pub const TIMESTAMP: u32 = 2; // Clock: optional uint64 timestamp
        pub const IS_INCREMENTAL: u32 = 3; // Clock: optional bool is_incremental
    }

    /// `TrackDescriptor` (track_event/track_descriptor.proto)
    pub mod track_descriptor {
        pub const UUID: u32 = 1; // optional uint64 uuid
        pub const PROCESS: u32 = 3; // optional ProcessDescriptor process
        pub const THREAD: u32 = 4; // optional ThreadDescriptor thread
        pub const PARENT_UUID: u32 = 5; // optional uint64 parent_uuid
    }

    /// `ProcessDescriptor` (track_event/process_descriptor.proto)
    pub mod process_descriptor {
        pub const PID: u32 = 1; // optional int32 pid
        pub const PROCESS_NAME: u32 = 6; // optional string process_name
    }

    /// `ThreadDescriptor` (track_event/thread_descriptor.proto)
    pub mod thread_descriptor {
        pub const PID: u32 = 1; // optional int32 pid
        pub const TID: u32 = 2; // optional int32 tid
        pub const THREAD_NAME: u32 = 5; // optional string thread_name
    }

    /// `TrackEvent` (track_event/track_event.proto)
    pub mod track_event {
        pub const CATEGORY_IIDS: u32 = 3; // repeated uint64 category_iids
        pub const DEBUG_ANNOTATIONS: u32 = 4; // repeated DebugAnnotation debug_annotations
        pub const TYPE: u32 = 9; // optional Type type
        pub const NAME_IID: u32 = 10; // uint64 name_iid (oneof name_field)
        pub const SOURCE_LOCATION_IID: u32 = 34; // uint64 source_location_iid
    }

    /// `InternedData` (interned_data/interned_data.proto)
    pub mod interned_data {
        pub const EVENT_CATEGORIES: u32 = 1; // repeated EventCategory event_categories
        pub const EVENT_NAMES: u32 = 2; // repeated EventName event_names
        pub const DEBUG_ANNOTATION_NAMES: u32 = 3; // repeated DebugAnnotationName ...
        pub const SOURCE_LOCATIONS: u32 = 4; // repeated SourceLocation source_locations
    }

    /// `EventCategory`, `EventName` (track_event.proto) and `DebugAnnotationName`
    /// (debug_annotation.proto): the same two fields.
    pub mod interned_name {
        pub const IID: u32 = 1; // optional uint64 iid
        pub const NAME: u32 = 2; // optional string name
    }

    /// `SourceLocation` (track_event/source_location.proto)
    pub mod source_location {
        pub const IID: u32 = 1; // optional uint64 iid
        pub const FILE_NAME: u32 = 2; // optional string file_name
        pub const FUNCTION_NAME: u32 = 3; // optional string function_name
        pub const LINE_NUMBER: u32 = 4; // optional uint32 line_number
    }

    /// `DebugAnnotation` (track_event/debug_annotation.proto)
    pub mod debug_annotation {
        pub const NAME_IID: u32 = 1; // uint64 name_iid (oneof name_field)
        pub const BOOL_VALUE: u32 = 2; // bool bool_value (oneof value)
        pub const INT_VALUE: u32 = 4; // int64 int_value (oneof value)
        pub const STRING_VALUE: u32 = 6; // string string_value (oneof value)
    }
}

/// `TrackEvent.Type`
const TYPE_SLICE_BEGIN: u64 = 1;
const TYPE_SLICE_END: u64 = 2;
/// `TracePacket.SequenceFlags`
const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
/// `BuiltinClock.BUILTIN_CLOCK_BOOTTIME`: the default trace clock.
const CLOCK_BOOTTIME: u64 = 6;
/// The first sequence-scoped clock id (64 to 127): each thread's incremental clock.
const CLOCK_INCREMENTAL: u64 = 64;
/// The output buffer is written out when it holds this many bytes.
const FLUSH_BYTES: usize = 1 << 18;

/// Interned on every thread's sequence by its first packet.
const CATEGORY_IID: u64 = 1;
const CATEGORY: &str = "python";
const ANNOTATION_LINE: u64 = 1;
const ANNOTATION_RETURN: u64 = 2;
const ANNOTATION_EXCEPTION: u64 = 3;
const ANNOTATION_UNFINISHED: u64 = 4;
const ANNOTATION_NAMES: [(u64, &str); 4] = [
    (ANNOTATION_LINE, "line"),
    (ANNOTATION_RETURN, "return"),
    (ANNOTATION_EXCEPTION, "exception"),
    (ANNOTATION_UNFINISHED, "unfinished"),
];

/// The packet sequence of the process track; thread `n`'s is `n + 2`.
const PROCESS_SEQUENCE: u32 = 1;

fn process_uuid(pid: u32) -> u64 {
    (u64::from(pid) << 32) | 1
}

/// An id as an `int32` field holds it: ids above `i32::MAX` are folded into range.
fn int32_id(id: u64) -> i64 {
    const LIMIT: u64 = i32::MAX as u64;
    if id <= LIMIT {
        id as i64
    } else {
        (id % LIMIT) as i64
    }
}

impl TraceWriter for PerfettoWriter {
    fn write(&self, recording: &Recording, out: &mut dyn Write) -> io::Result<()> {
        let mut output = PacketOutput::start(out, &recording.process);
        let functions = &recording.functions;
        for (index, thread) in recording.threads().iter().enumerate() {
            let first_ts = thread.events().next().map_or(0, |e| e.timestamp_ns);
            let mut sequence = SequenceWriter::start(
                &mut output,
                index,
                &recording.process,
                (thread.tid(), thread.name()),
                first_ts,
            );
            let mut details = thread.details().iter();
            for events in thread.event_slices() {
                sequence.events(&mut output, functions, events, &mut details)?;
            }
            sequence.finish(&mut output, functions, recording.end_timestamp_ns())?;
        }
        output.finish()
    }
}

/// A Perfetto trace being written: packets are encoded into one buffer, written out whenever
/// it holds [`FLUSH_BYTES`]. Opened with the process's track; the threads' sequences
/// ([`SequenceWriter`]) then add their packets in any interleaving.
#[derive(Debug)]
pub struct PacketOutput<W: Write> {
    buffer: Encoder,
    out: W,
}

impl<W: Write> PacketOutput<W> {
    /// A trace into `out`, starting with the process's track descriptor.
    pub fn start(out: W, process: &ProcessInfo) -> Self {
        // Flushed when full after a step or a batch of plain steps: it never grows.
        let mut buffer = Encoder::with_capacity(FLUSH_BYTES + 2 * PLAIN_BATCH * PLAIN_ROOM);
        let pid = int32_id(u64::from(process.pid));
        buffer.message(field::TRACE_PACKET, |packet| {
            packet.uint(
                field::packet::TRUSTED_PACKET_SEQUENCE_ID,
                PROCESS_SEQUENCE.into(),
            );
            packet.uint(field::packet::SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED);
            packet.message(field::packet::TRACK_DESCRIPTOR, |track| {
                use field::{process_descriptor as pd, track_descriptor as td};
                track.uint(td::UUID, process_uuid(process.pid));
                track.message(td::PROCESS, |p| {
                    p.int(pd::PID, pid);
                    if !process.name.is_empty() {
                        p.string(pd::PROCESS_NAME, &process.name);
                    }
                });
            });
        });
        PacketOutput { buffer, out }
    }

    #[inline]
    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buffer.bytes().len() >= FLUSH_BYTES {
            self.write_out()
        } else {
            Ok(())
        }
    }

    #[cold]
    fn write_out(&mut self) -> io::Result<()> {
        self.out.write_all(self.buffer.bytes())?;
        self.buffer.clear();
        Ok(())
    }

    /// Writes out what is buffered and flushes `out`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.out.flush()
    }

    /// Writes out what is left and flushes `out`.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()
    }
}

/// One thread's packet sequence: its ids, what it has interned, its incremental clock and its
/// open calls. It owns all of it, so the thread's events can be given in pieces.
#[derive(Debug)]
pub struct SequenceWriter {
    sequence: u32,
    track: u64,
    /// By function id, the first line of each function whose name and source location this
    /// sequence has interned ([`NOT_INTERNED`] for the others; a first line is kept below it).
    first_lines: Vec<u32>,
    /// The bytes of a plain track event packet after its timestamp up to the event's fields:
    /// the sequence id and flags fields and the track event's key (little-endian, the first
    /// byte lowest), and how many they are.
    packet_middle: (u64, usize),
    /// Whether the name shared by ids the table did not give is interned.
    interned_unknown: bool,
    /// The timestamp of the sequence's last packet: the next one is written as the
    /// nanoseconds since it.
    last_ts: u64,
    spans: SpanState,
    calls: usize,
}

/// The iid of the name and source location of every id the function table did not give.
const UNKNOWN_IID: u64 = 1 << 32;
/// In [`SequenceWriter::first_lines`]: not interned. No call's line is this (lines are kept
/// below `2^28`), so a plain call never matches it.
const NOT_INTERNED: u32 = u32::MAX;
/// Events per batch of [`SequenceWriter::plain_events`].
const PLAIN_BATCH: usize = 512;
/// Room for a plain step's packet: at most 2 + (1 + 10) + 8 + 2 + (4 + 1 + 5 + 2 + 5) + 10
/// (key and length, timestamp, the middle, track event key and length, a begin's fields,
/// a `line` annotation) = 55 bytes, below 128 so that both lengths take one byte. The
/// middle is written as 8 bytes whatever its length.
const PLAIN_ROOM: usize = 64;

impl SequenceWriter {
    /// The sequence of the recording's thread number `index` (`thread`: its id and name):
    /// writes its track, defaults, interned names and clock (0 at `first_ts`, the timestamp of
    /// its first event).
    pub fn start<W: Write>(
        output: &mut PacketOutput<W>,
        index: usize,
        process: &ProcessInfo,
        thread: (u64, &str),
        first_ts: u64,
    ) -> Self {
        let parent = process_uuid(process.pid);
        let writer = SequenceWriter {
            sequence: (index as u32).wrapping_add(PROCESS_SEQUENCE + 1),
            track: parent.wrapping_add(index as u64 + 1),
            first_lines: Vec::new(),
            packet_middle: Self::packet_middle((index as u32).wrapping_add(PROCESS_SEQUENCE + 1)),
            interned_unknown: false,
            last_ts: first_ts,
            spans: SpanState::default(),
            calls: 0,
        };
        writer.descriptor(
            &mut output.buffer,
            int32_id(u64::from(process.pid)),
            parent,
            thread,
        );
        writer
    }

    /// The calls (`Call` events) given so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Adds the thread's next events; `details` holds those of the events that have one, in
    /// order (and may hold more, for later events).
    ///
    /// Most steps are plain (a call of a function already interned, a return without a
    /// value or exception) and are encoded in batches ([`Self::plain_events`]); the others
    /// one at a time.
    pub fn events<'a, W: Write>(
        &mut self,
        output: &mut PacketOutput<W>,
        functions: &FunctionTable,
        mut events: &'a [Event],
        details: &mut std::slice::Iter<'a, Box<str>>,
    ) -> io::Result<()> {
        while !events.is_empty() {
            let batch = &events[..events.len().min(PLAIN_BATCH)];
            let done = self.plain_events(&mut output.buffer, batch);
            events = &events[done..];
            if done < batch.len() {
                if let Some((event, rest)) = events.split_first() {
                    events = rest;
                    let detail = if event.has_detail() {
                        details.next().map(|detail| &**detail)
                    } else {
                        None
                    };
                    if let Some(step) = self.spans.step(EventRef::new(*event, detail)) {
                        self.write_step(&mut output.buffer, functions, &step);
                    }
                }
            }
            output.flush_if_full()?;
        }
        Ok(())
    }

    /// After the thread's last event: closes the calls still open (see
    /// [`SpanState::close_open`]).
    pub fn finish<W: Write>(
        &mut self,
        output: &mut PacketOutput<W>,
        functions: &FunctionTable,
        recording_end_ns: Option<u64>,
    ) -> io::Result<()> {
        while let Some(step) = self.spans.close_open(recording_end_ns) {
            self.write_step(&mut output.buffer, functions, &step);
            output.flush_if_full()?;
        }
        Ok(())
    }

    fn write_step(&mut self, buffer: &mut Encoder, functions: &FunctionTable, step: &Step<'_>) {
        match step {
            Step::Begin { call, ts } => {
                self.calls += 1;
                self.begin(buffer, functions, call, *ts);
            }
            Step::End(end) => self.end(buffer, end),
        }
    }

    /// The iid of a function's `EventName` and `SourceLocation` (its id + 1, or
    /// [`UNKNOWN_IID`]), and whether this is its first use on the sequence.
    fn intern(&mut self, functions: &FunctionTable, function: FunctionId) -> (u64, bool) {
        let index = function.0 as usize;
        if index >= functions.len() {
            return (
                UNKNOWN_IID,
                !std::mem::replace(&mut self.interned_unknown, true),
            );
        }
        if index >= self.first_lines.len() {
            self.first_lines.resize(functions.len(), NOT_INTERNED);
        }
        let first_use = self.first_lines[index] == NOT_INTERNED;
        if first_use {
            let first_line = functions.get(function).map_or(0, |f| f.first_line);
            self.first_lines[index] = first_line.min(NOT_INTERNED - 1);
        }
        (index as u64 + 1, first_use)
    }

    /// The thread's track, the sequence's defaults and interned names, and its clock (0 at
    /// `last_ts`).
    fn descriptor(&self, buffer: &mut Encoder, pid: i64, parent: u64, thread: (u64, &str)) {
        let (sequence, track, base_ts) = (self.sequence, self.track, self.last_ts);
        let (tid, name) = thread;
        buffer.message(field::TRACE_PACKET, |p| {
            p.uint(field::packet::TRUSTED_PACKET_SEQUENCE_ID, sequence.into());
            p.uint(field::packet::SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED);
            p.message(field::packet::TRACE_PACKET_DEFAULTS, |d| {
                use field::{trace_packet_defaults as tpd, track_event_defaults as ted};
                d.message(tpd::TRACK_EVENT_DEFAULTS, |e| {
                    e.uint(ted::TRACK_UUID, track)
                });
                d.uint(tpd::TIMESTAMP_CLOCK_ID, CLOCK_INCREMENTAL);
            });
            p.message(field::packet::TRACK_DESCRIPTOR, |t| {
                use field::{thread_descriptor as thd, track_descriptor as td};
                t.uint(td::UUID, track);
                t.uint(td::PARENT_UUID, parent);
                t.message(td::THREAD, |th| {
                    th.int(thd::PID, pid);
                    th.int(thd::TID, int32_id(tid));
                    if !name.is_empty() {
                        th.string(thd::THREAD_NAME, name);
                    }
                });
            });
            p.message(field::packet::INTERNED_DATA, |data| {
                use field::{interned_data as id, interned_name as name};
                data.message(id::EVENT_CATEGORIES, |c| {
                    c.uint(name::IID, CATEGORY_IID);
                    c.string(name::NAME, CATEGORY);
                });
                for (iid, text) in ANNOTATION_NAMES {
                    data.message(id::DEBUG_ANNOTATION_NAMES, |n| {
                        n.uint(name::IID, iid);
                        n.string(name::NAME, text);
                    });
                }
            });
        });
        buffer.message(field::TRACE_PACKET, |p| {
            p.uint(field::packet::TRUSTED_PACKET_SEQUENCE_ID, sequence.into());
            p.message(field::packet::CLOCK_SNAPSHOT, |snapshot| {
                use field::clock_snapshot as cs;
                snapshot.message(cs::CLOCKS, |clock| {
                    clock.uint(cs::CLOCK_ID, CLOCK_BOOTTIME);
                    clock.uint(cs::TIMESTAMP, base_ts);
                });
                // The incremental clock starts at 0 at `base_ts`: the first packet's delta is
                // then its time since `base_ts` however a reader seeds the clock's running
                // value (from the snapshot or from 0).
                snapshot.message(cs::CLOCKS, |clock| {
                    clock.uint(cs::CLOCK_ID, CLOCK_INCREMENTAL);
                    clock.uint(cs::TIMESTAMP, 0);
                    clock.bool(cs::IS_INCREMENTAL, true);
                });
            });
        });
    }

    /// The packet fields every track event of this sequence starts with; `ts` as the time
    /// since the previous packet (steps never go back in time).
    fn packet_header(p: &mut Encoder, delta_ns: u64, sequence: u32) {
        p.uint(field::packet::TIMESTAMP, delta_ns);
        p.uint(field::packet::TRUSTED_PACKET_SEQUENCE_ID, sequence.into());
        p.uint(field::packet::SEQUENCE_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE);
    }

    fn delta(&mut self, ts: u64) -> u64 {
        delta_since(&mut self.last_ts, ts)
    }

    fn begin(
        &mut self,
        buffer: &mut Encoder,
        functions: &FunctionTable,
        call: &EventRef<'_>,
        ts: u64,
    ) {
        use field::{debug_annotation as da, track_event as te};
        let (iid, first_use) = self.intern(functions, call.function);
        let first_line = functions.get(call.function).map_or(0, |f| f.first_line);
        let (delta, sequence) = (self.delta(ts), self.sequence);
        buffer.message(field::TRACE_PACKET, |p| {
            Self::packet_header(p, delta, sequence);
            if first_use {
                let (name, file) = describe(functions, call.function);
                p.message(field::packet::INTERNED_DATA, |data| {
                    use field::{interned_data as id, interned_name as n, source_location as sl};
                    data.message(id::EVENT_NAMES, |e| {
                        e.uint(n::IID, iid);
                        e.string(n::NAME, name);
                    });
                    data.message(id::SOURCE_LOCATIONS, |s| {
                        s.uint(sl::IID, iid);
                        s.string(sl::FILE_NAME, file);
                        s.string(sl::FUNCTION_NAME, name);
                        s.uint(sl::LINE_NUMBER, first_line.into());
                    });
                });
            }
            p.message(field::packet::TRACK_EVENT, |e| {
                e.uint(te::TYPE, TYPE_SLICE_BEGIN);
                e.uint(te::CATEGORY_IIDS, CATEGORY_IID);
                e.uint(te::NAME_IID, iid);
                e.uint(te::SOURCE_LOCATION_IID, iid);
                if call.line() != first_line {
                    e.message(te::DEBUG_ANNOTATIONS, |a| {
                        a.uint(da::NAME_IID, ANNOTATION_LINE);
                        a.int(da::INT_VALUE, call.line().into());
                    });
                }
            });
        });
    }

    fn end(&mut self, buffer: &mut Encoder, end: &End<'_>) {
        use field::{debug_annotation as da, track_event as te};
        let (delta, sequence) = (self.delta(end.ts), self.sequence);
        let (return_value, exception) = (end.return_value(), end.exception());
        buffer.message(field::TRACE_PACKET, |p| {
            Self::packet_header(p, delta, sequence);
            p.message(field::packet::TRACK_EVENT, |e| {
                e.uint(te::TYPE, TYPE_SLICE_END);
                let strings = [
                    (ANNOTATION_RETURN, return_value),
                    (ANNOTATION_EXCEPTION, exception),
                ];
                for (name, value) in strings {
                    if let Some(value) = value {
                        e.message(te::DEBUG_ANNOTATIONS, |a| {
                            a.uint(da::NAME_IID, name);
                            a.string(da::STRING_VALUE, value);
                        });
                    }
                }
                if end.unfinished() {
                    e.message(te::DEBUG_ANNOTATIONS, |a| {
                        a.uint(da::NAME_IID, ANNOTATION_UNFINISHED);
                        a.bool(da::BOOL_VALUE, true);
                    });
                }
            });
        });
    }
}

/// A field's key (field number and wire type) as a varint of one byte.
const fn key(field: u32, wire_type: u8) -> u8 {
    let key = (field << 3) | wire_type as u32;
    assert!(key < 0x80);
    key as u8
}

/// A field's key as a varint of two bytes, as [`word`] gives them.
const fn key2(field: u32, wire_type: u8) -> (u64, usize) {
    let key = (field << 3) | wire_type as u32;
    assert!(key >= 0x80 && key < 0x4000);
    word(&[(key & 0x7f) as u8 | 0x80, (key >> 7) as u8])
}

/// Up to 8 bytes as [`RawTail::word`] takes them: in a word, the first lowest, and how many.
const fn word(bytes: &[u8]) -> (u64, usize) {
    assert!(bytes.len() <= 8);
    let mut word = 0;
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        word = (word << 8) | bytes[i] as u64;
    }
    (word, bytes.len())
}

/// The keys and values a plain step's packet is made of: the same fields, in the same order,
/// as [`SequenceWriter::begin`] and [`SequenceWriter::end`] give a plain step.
mod plain {
    use super::field::{debug_annotation as da, packet, track_event as te};
    use super::{key, key2, word, WIRE_LEN};
    use crate::output::protobuf::WIRE_VARINT;

    pub const PACKET: u8 = key(super::field::TRACE_PACKET, WIRE_LEN);
    pub const TIMESTAMP: u8 = key(packet::TIMESTAMP, WIRE_VARINT);
    pub const SEQUENCE_ID: u8 = key(packet::TRUSTED_PACKET_SEQUENCE_ID, WIRE_VARINT);
    pub const SEQUENCE_FLAGS: u8 = key(packet::SEQUENCE_FLAGS, WIRE_VARINT);
    pub const TRACK_EVENT: u8 = key(packet::TRACK_EVENT, WIRE_LEN);
    /// A begin's fields up to its name's iid: type, category, the name's key.
    pub const BEGIN_START: (u64, usize) = word(&[
        key(te::TYPE, WIRE_VARINT),
        super::TYPE_SLICE_BEGIN as u8,
        key(te::CATEGORY_IIDS, WIRE_VARINT),
        super::CATEGORY_IID as u8,
        key(te::NAME_IID, WIRE_VARINT),
    ]);
    pub const SOURCE_LOCATION: (u64, usize) = key2(te::SOURCE_LOCATION_IID, WIRE_VARINT);
    pub const ANNOTATION: u8 = key(te::DEBUG_ANNOTATIONS, WIRE_LEN);
    /// A `line` annotation's fields up to its value: its name's iid, the value's key.
    pub const LINE_START: (u64, usize) = word(&[
        key(da::NAME_IID, WIRE_VARINT),
        super::ANNOTATION_LINE as u8,
        key(da::INT_VALUE, WIRE_VARINT),
    ]);
    /// An end's track event, key to end: its length and its one field, the type.
    pub const END_EVENT: (u64, usize) = word(&[
        TRACK_EVENT,
        2,
        key(te::TYPE, WIRE_VARINT),
        super::TYPE_SLICE_END as u8,
    ]);
}

impl SequenceWriter {
    /// See [`SequenceWriter::packet_middle`].
    fn packet_middle(sequence: u32) -> (u64, usize) {
        let mut bytes = [0u8; 8];
        bytes[0] = plain::SEQUENCE_ID;
        let (id, id_len) = super::protobuf::varint_array(sequence.into());
        bytes[1..1 + id_len].copy_from_slice(&id[..id_len]);
        bytes[1 + id_len] = plain::SEQUENCE_FLAGS;
        bytes[2 + id_len] = SEQ_NEEDS_INCREMENTAL_STATE as u8;
        word(&bytes[..3 + id_len])
    }

    /// Encodes the steps of `events` from the first one while each is plain: a `Call` of a
    /// function this sequence has interned, a `Return` of a call that saw no exception, or no
    /// step (a `Line`). How many events it took; the next one, if any, needs
    /// [`SpanState::step`] and [`Self::write_step`].
    fn plain_events(&mut self, buffer: &mut Encoder, events: &[Event]) -> usize {
        let middle = self.packet_middle;
        let first_lines = &self.first_lines[..];
        // In locals while the loop runs: the bytes written could alias fields of `self`.
        let mut spans = self.spans.plain();
        let mut written_ts = self.last_ts;
        let mut calls = 0;
        let taken = buffer.append_raw(events.len() * PLAIN_ROOM, |out| {
            for (taken, event) in events.iter().enumerate() {
                if event.has_detail() {
                    return taken;
                }
                match event.kind() {
                    EventKind::Call => {
                        let index = event.function.0 as usize;
                        let first_line = match first_lines.get(index) {
                            Some(&line) if line != NOT_INTERNED => line,
                            _ => return taken,
                        };
                        let ts = spans.advance_clock(event.timestamp_ns);
                        spans.open_call();
                        calls += 1;
                        let delta = delta_since(&mut written_ts, ts);
                        let line = (event.line() != first_line).then_some(event.line());
                        // SAFETY: each event takes at most PLAIN_ROOM bytes of the room.
                        unsafe { plain_begin(out, delta, middle, index as u64 + 1, line) };
                    }
                    EventKind::Return => {
                        if !spans.close_plain_call() {
                            return taken;
                        }
                        let ts = spans.advance_clock(event.timestamp_ns);
                        let delta = delta_since(&mut written_ts, ts);
                        // SAFETY: each event takes at most PLAIN_ROOM bytes of the room.
                        unsafe { plain_end(out, delta, middle) };
                    }
                    EventKind::Line => {
                        spans.advance_clock(event.timestamp_ns);
                    }
                    EventKind::Exception | EventKind::Unwind => return taken,
                }
            }
            events.len()
        });
        self.spans.resume(spans);
        self.last_ts = written_ts;
        self.calls += calls;
        taken
    }
}

/// The nanoseconds from `*last_ts`, the timestamp of the sequence's last packet, to a
/// packet at `ts` (which then becomes the last one, unless it is earlier).
#[inline(always)]
fn delta_since(last_ts: &mut u64, ts: u64) -> u64 {
    let delta = ts.saturating_sub(*last_ts);
    *last_ts = (*last_ts).max(ts);
    delta
}

/// A plain step's packet: its fields up to the track event's key, then `event` writes the
/// track event's length and fields.
///
/// # Safety
/// [`PLAIN_ROOM`] bytes are left in `out`, and `event` writes at most 34 (then no word goes
/// past 62 bytes; see [`PLAIN_ROOM`]).
#[inline(always)]
unsafe fn plain_packet(
    out: &mut RawTail,
    delta: u64,
    middle: (u64, usize),
    event: impl FnOnce(&mut RawTail),
) {
    // SAFETY: as the caller promises.
    unsafe {
        out.byte(plain::PACKET);
        let packet_len = out.keep_byte();
        out.byte(plain::TIMESTAMP);
        out.varint(delta);
        out.word(middle);
        event(out);
        out.fill_length(packet_len);
    }
}

/// A plain begin's packet, with a `line` annotation if `line` is given.
///
/// # Safety
/// [`PLAIN_ROOM`] bytes are left in `out`.
#[inline(always)]
unsafe fn plain_begin(
    out: &mut RawTail,
    delta: u64,
    middle: (u64, usize),
    iid: u64,
    line: Option<u32>,
) {
    // SAFETY: the event takes at most 2 + 17 + 10 bytes.
    unsafe {
        plain_packet(out, delta, middle, |out| {
            out.byte(plain::TRACK_EVENT);
            let event_len = out.keep_byte();
            out.word(plain::BEGIN_START);
            out.varint(iid);
            out.word(plain::SOURCE_LOCATION);
            out.varint(iid);
            if let Some(line) = line {
                out.byte(plain::ANNOTATION);
                let annotation_len = out.keep_byte();
                out.word(plain::LINE_START);
                out.varint(line.into());
                out.fill_length(annotation_len);
            }
            out.fill_length(event_len);
        });
    }
}

/// A plain end's packet.
///
/// # Safety
/// [`PLAIN_ROOM`] bytes are left in `out`.
#[inline(always)]
unsafe fn plain_end(out: &mut RawTail, delta: u64, middle: (u64, usize)) {
    // SAFETY: the event takes 4 bytes (8 written).
    unsafe { plain_packet(out, delta, middle, |out| out.word(plain::END_EVENT)) }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::output::testing::{check_golden, small_recording, Message, Value};
    use crate::record::{Event, EventKind, FunctionInfo, ProcessInfo, Recorded, ThreadBuffer};

    fn write(recording: &Recording) -> Vec<u8> {
        let mut out = Vec::new();
        PerfettoWriter.write(recording, &mut out).unwrap();
        out
    }

    /// A slice read back from the trace, with its begin and end args merged.
    #[derive(Debug, Default)]
    struct Slice {
        track: u64,
        name: String,
        start: u64,
        end: u64,
        depth: usize,
        source: (String, String, u64),
        args: BTreeMap<String, String>,
    }

    #[derive(Debug, Default)]
    struct Decoded {
        packets: usize,
        /// uuid -> TrackDescriptor
        tracks: HashMap<u64, Message>,
        track_order: Vec<u64>,
        slices: Vec<Slice>,
        /// (sequence, event name) for each EventName interned.
        interned_names: Vec<(u64, String)>,
    }

    #[derive(Default)]
    struct Sequence {
        cleared: bool,
        /// `TrackEventDefaults.track_uuid`
        default_track: Option<u64>,
        /// `TracePacketDefaults.timestamp_clock_id`
        default_clock: Option<u64>,
        /// The incremental clock's value, and what to add to it for BOOTTIME.
        clock: Option<(u64, u64)>,
        categories: HashMap<u64, String>,
        names: HashMap<u64, String>,
        annotation_names: HashMap<u64, String>,
        sources: HashMap<u64, (String, String, u64)>,
    }

    fn intern(table: &mut HashMap<u64, String>, entries: Vec<Message>) {
        for entry in entries {
            let iid = entry.uint(1).expect("an iid");
            assert_ne!(iid, 0, "iid 0 is invalid");
            let name = entry.string(2).expect("a name");
            let previous = table.insert(iid, name.clone());
            assert!(
                previous.is_none() || previous == Some(name),
                "iid {iid} redefined"
            );
        }
    }

    fn annotation(table: &HashMap<u64, String>, a: &Message) -> (String, String) {
        let name = table[&a.uint(1).expect("an interned name")].clone();
        let value = if let Some(s) = a.string(6) {
            s
        } else if let Some(i) = a.uint(4) {
            (i as i64).to_string()
        } else {
            assert_eq!(a.uint(2), Some(1), "a bool annotation");
            "true".to_owned()
        };
        (name, value)
    }

    /// Reads a trace back as Perfetto's trace processor would, checking on the way that every
    /// interned id resolves on its sequence, every track is described before it is used,
    /// and every SLICE_END closes a SLICE_BEGIN of the same track.
    fn read_back(bytes: &[u8]) -> Decoded {
        let trace = Message::parse(bytes);
        assert!(trace.0.iter().all(|(n, _)| *n == field::TRACE_PACKET));
        let mut decoded = Decoded::default();
        let mut sequences: HashMap<u64, Sequence> = HashMap::new();
        let mut open: HashMap<u64, Vec<Slice>> = HashMap::new();
        let mut last_ts: HashMap<u64, u64> = HashMap::new();
        for packet in trace.messages(field::TRACE_PACKET) {
            decoded.packets += 1;
            for (number, _) in &packet.0 {
                assert!(
                    [6, 8, 10, 11, 12, 13, 59, 60].contains(number),
                    "field {number}"
                );
            }
            let sequence_id = packet.uint(10).expect("a sequence id");
            assert_ne!(sequence_id, 0);
            let flags = packet.uint(13).unwrap_or(0);
            let sequence = sequences.entry(sequence_id).or_default();
            if flags & SEQ_INCREMENTAL_STATE_CLEARED != 0 {
                *sequence = Sequence {
                    cleared: true,
                    ..Sequence::default()
                };
            }
            if let Some(defaults) = packet.message(59) {
                assert!(
                    flags & SEQ_INCREMENTAL_STATE_CLEARED != 0,
                    "defaults set late"
                );
                sequence.default_clock = defaults.uint(58);
                sequence.default_track = defaults.message(11).and_then(|d| d.uint(11));
            }
            if let Some(snapshot) = packet.message(6) {
                let clocks: HashMap<u64, Message> = snapshot
                    .messages(1)
                    .into_iter()
                    .map(|c| (c.uint(1).expect("a clock id"), c))
                    .collect();
                let incremental = &clocks[&CLOCK_INCREMENTAL];
                assert_eq!(incremental.uint(3), Some(1), "an incremental clock");
                let value = incremental.uint(2).expect("its value");
                let boottime = clocks[&CLOCK_BOOTTIME].uint(2).expect("BOOTTIME's value");
                sequence.clock = Some((value, boottime.wrapping_sub(value)));
            }
            if let Some(data) = packet.message(12) {
                assert!(
                    sequence.cleared,
                    "interned data before the state was cleared"
                );
                intern(&mut sequence.categories, data.messages(1));
                for name in data.messages(2) {
                    decoded
                        .interned_names
                        .push((sequence_id, name.string(2).unwrap()));
                }
                intern(&mut sequence.names, data.messages(2));
                intern(&mut sequence.annotation_names, data.messages(3));
                for source in data.messages(4) {
                    let iid = source.uint(1).unwrap();
                    let location = (
                        source.string(2).unwrap(),
                        source.string(3).unwrap(),
                        source.uint(4).unwrap(),
                    );
                    assert!(sequence.sources.insert(iid, location).is_none());
                }
            }
            if let Some(track) = packet.message(60) {
                let uuid = track.uint(1).expect("a uuid");
                assert_ne!(uuid, 0);
                if let Some(parent) = track.uint(5) {
                    assert!(decoded.tracks.contains_key(&parent), "unknown parent");
                }
                assert!(decoded.tracks.insert(uuid, track).is_none(), "uuid reused");
                decoded.track_order.push(uuid);
            }
            let Some(event) = packet.message(11) else {
                assert!(!packet.has(8), "a timestamp without an event");
                continue;
            };
            assert!(flags & SEQ_NEEDS_INCREMENTAL_STATE != 0 && sequence.cleared);
            let raw_ts = packet.uint(8).expect("a timestamp");
            let ts = match packet.uint(58).or(sequence.default_clock) {
                None | Some(CLOCK_BOOTTIME) => raw_ts,
                Some(CLOCK_INCREMENTAL) => {
                    let (value, offset) = sequence.clock.as_mut().expect("a clock snapshot");
                    *value += raw_ts;
                    *value + *offset
                }
                Some(other) => panic!("unknown clock {other}"),
            };
            let track = event.uint(11).or(sequence.default_track).expect("a track");
            assert!(decoded.tracks.contains_key(&track), "undescribed track");
            let previous = last_ts.insert(track, ts).unwrap_or(0);
            assert!(previous <= ts, "time goes backwards on track {track}");
            let stack = open.entry(track).or_default();
            let annotations = event
                .messages(4)
                .iter()
                .map(|a| annotation(&sequence.annotation_names, a))
                .collect::<Vec<_>>();
            match event.uint(9) {
                Some(TYPE_SLICE_BEGIN) => {
                    let categories: Vec<&Value> = event.all(3).collect();
                    assert_eq!(categories, [&Value::Varint(CATEGORY_IID)]);
                    assert_eq!(sequence.categories[&CATEGORY_IID], "python");
                    let iid = event.uint(10).expect("a name iid");
                    let name = sequence.names.get(&iid).expect("an interned name").clone();
                    let source = sequence.sources[&event.uint(34).unwrap()].clone();
                    let mut args: BTreeMap<String, String> = annotations.into_iter().collect();
                    // Without `line`, the call started at the function's first line.
                    args.entry("line".to_owned())
                        .or_insert_with(|| source.2.to_string());
                    stack.push(Slice {
                        track,
                        name,
                        start: ts,
                        depth: stack.len(),
                        source,
                        args,
                        ..Slice::default()
                    });
                }
                Some(TYPE_SLICE_END) => {
                    assert!(!event.has(10), "an end repeats no name");
                    let mut slice = stack.pop().expect("an end without a begin");
                    slice.end = ts;
                    slice.args.extend(annotations);
                    decoded.slices.push(slice);
                }
                other => panic!("unexpected type {other:?}"),
            }
        }
        assert!(open.values().all(Vec::is_empty), "slices left open");
        decoded.slices.sort_by_key(|s| (s.track, s.start, s.depth));
        decoded
    }

    #[test]
    fn descriptors_describe_the_process_and_its_threads() {
        let recording = small_recording();
        let decoded = read_back(&write(&recording));
        let calls = recording.call_count();
        // The process, then per thread its descriptor, its clock and two packets per call.
        assert_eq!(decoded.packets, 1 + 2 * 2 + 2 * calls);
        let process = &decoded.tracks[&decoded.track_order[0]];
        let p = process.message(3).expect("a process descriptor");
        assert_eq!(p.uint(1), Some(4242));
        assert_eq!(p.string(6).as_deref(), Some("python demo.py"));
        assert_eq!(decoded.track_order[0], (4242 << 32) | 1);
        let threads: Vec<(u64, Option<String>)> = decoded.track_order[1..]
            .iter()
            .map(|uuid| {
                let track = &decoded.tracks[uuid];
                assert_eq!(track.uint(5), Some(decoded.track_order[0]));
                let t = track.message(4).expect("a thread descriptor");
                assert_eq!(t.uint(1), Some(4242));
                (t.uint(2).unwrap(), t.string(5))
            })
            .collect();
        assert_eq!(
            threads,
            [
                (1001, Some("MainThread".to_owned())),
                (1002, Some("worker-1 ✓".to_owned()))
            ]
        );
    }

    #[test]
    fn every_call_is_a_slice_with_its_args() {
        let recording = small_recording();
        let decoded = read_back(&write(&recording));
        let main_track = decoded.track_order[1];
        let rows: Vec<(bool, &str, u64, u64, usize)> = decoded
            .slices
            .iter()
            .map(|s| (s.track == main_track, &*s.name, s.start, s.end, s.depth))
            .collect();
        assert_eq!(
            rows,
            [
                (true, "main", 1_000_000, 1_010_000, 0),
                (true, "Cart.total", 1_000_500, 1_002_000, 1),
                (true, "parse", 1_002_000, 1_003_000, 1),
                (true, "restock", 1_004_000, 1_004_250, 1),
                (true, "restock", 1_005_000, 1_005_001, 1),
                (true, "<lambda>", 1_006_000, 1_006_000, 1),
                (false, "Worker.<locals>.work", 1_001_500, 1_012_000, 0),
                (false, "Cart.total", 1_002_500, 1_003_500, 1),
            ]
        );
        let args = |i: usize| {
            decoded.slices[i]
                .args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        let error = "ValueError: bad count\n\t\"x\"";
        assert_eq!(
            args(0),
            [
                format!("exception={error}"),
                "line=10".into(),
                "return={'apples': 6}".into()
            ]
        );
        assert_eq!(args(2), [format!("exception={error}"), "line=30".into()]);
        assert_eq!(args(4), ["line=41", "return=None"]);
        assert_eq!(args(6), ["line=50", "unfinished=true"]);
        let source = &decoded.slices[6].source;
        assert_eq!(
            (&*source.0, &*source.1, source.2),
            ("/app/tools/ünï \"quoted\"\\.py", "Worker.<locals>.work", 50)
        );
    }

    #[test]
    fn names_are_interned_once_per_sequence() {
        let decoded = read_back(&write(&small_recording()));
        let mut names = decoded.interned_names.clone();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a name interned twice on a sequence");
        // Cart.total runs on both threads: interned on both sequences.
        let total: Vec<u64> = names
            .iter()
            .filter(|(_, n)| n == "Cart.total")
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(total, [2, 3]);
        assert_eq!(count, 7);
    }

    #[test]
    fn unbalanced_and_empty_streams_give_valid_traces() {
        let empty = read_back(&write(&Recording::default()));
        assert_eq!((empty.packets, empty.slices.len()), (1, 0));

        let mut recording = Recording::new(ProcessInfo {
            pid: u32::MAX,
            name: String::new(),
            start_timestamp_ns: 0,
        });
        let f = recording
            .functions
            .intern(FunctionInfo::new("f", "f", "f.py", 1));
        let mut thread = ThreadBuffer::new(u64::MAX, "");
        use EventKind::*;
        for (kind, function, ts) in [
            (Return, f, 50),
            (Call, f, 30),
            (Call, FunctionId(12), 20),
            (Call, FunctionId::OVERFLOW, 25),
            (Return, f, 60),
            (Exception, f, 61),
        ] {
            thread.push(Event::new(kind, function, 1, ts));
        }
        recording.add_thread(thread);
        recording.add_thread(ThreadBuffer::new(3, "idle"));
        let decoded = read_back(&write(&recording));
        let rows: Vec<(&str, u64, u64, bool)> = decoded
            .slices
            .iter()
            .map(|s| (&*s.name, s.start, s.end, s.args.contains_key("unfinished")))
            .collect();
        assert_eq!(
            rows,
            [
                ("f", 50, 61, true),
                ("<unknown>", 50, 61, true),
                ("<unknown>", 50, 60, false),
            ]
        );
        // Both unknown ids share one interned name.
        assert_eq!(decoded.interned_names.len(), 2);
        let thread = decoded.tracks[&decoded.track_order[1]].message(4).unwrap();
        assert_eq!(thread.uint(2), Some(int32_id(u64::MAX) as u64));
        assert_eq!(decoded.tracks.len(), 3);
    }

    #[test]
    fn ids_fold_into_int32() {
        assert_eq!(int32_id(0), 0);
        assert_eq!(int32_id(4_194_304), 4_194_304);
        assert_eq!(int32_id(i32::MAX as u64), i64::from(i32::MAX));
        for id in [i32::MAX as u64 + 1, u64::MAX, 140_737_353_951_040] {
            assert!((0..=i64::from(i32::MAX)).contains(&int32_id(id)));
        }
    }

    /// A thread's events as a random program would make them, with the odd ones mixed in:
    /// returns without a call, exceptions with and without details, unwinds, return values,
    /// calls resumed at other lines, unknown ids, large timestamps and lines.
    fn random_events(seed: u64, count: usize, functions: u32) -> Vec<Recorded> {
        use EventKind::*;
        let mut state = seed | 1;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut ts = 1_000;
        let mut stack: Vec<u32> = Vec::new();
        let mut events = Vec::new();
        for _ in 0..count {
            ts += match next(8) {
                0 => 1 << (20 + next(20)),
                1 => 0,
                _ => next(300),
            };
            if next(50) == 0 {
                ts -= ts.min(next(100)); // a clock that went back
            }
            let function = match next(40) {
                0 => u32::MAX,
                1 => functions + 3,
                _ => next(u64::from(functions)) as u32,
            };
            let line = match next(6) {
                0 => 1 << 27,
                1 => function.wrapping_add(7),
                _ => function.wrapping_add(1),
            };
            let kind = match next(20) {
                0..=8 => Call,
                9..=15 => Return,
                16 => Line,
                17 => Exception,
                _ => Unwind,
            };
            let function = match kind {
                Return | Unwind | Exception | Line => *stack.last().unwrap_or(&function),
                Call => function,
            };
            match kind {
                Call => stack.push(function),
                Return | Unwind => {
                    stack.pop();
                }
                _ => {}
            }
            let event = Event::new(kind, FunctionId(function), line, ts);
            events.push(if kind != Line && next(5) == 0 {
                event.with_detail(format!("detail {}", next(1000)))
            } else {
                event.into()
            });
        }
        events
    }

    /// The packets of `events` encoded with every step taken by the general path, in one
    /// piece: what the plain path must give byte for byte.
    fn general_path_only(
        functions: &FunctionTable,
        events: &[Recorded],
        end_ns: Option<u64>,
    ) -> Vec<u8> {
        let process = ProcessInfo::default();
        let mut thread = ThreadBuffer::new(7, "t");
        for event in events {
            thread.push(event.clone());
        }
        let mut out = Vec::new();
        let mut output = PacketOutput::start(&mut out, &process);
        let first_ts = thread.events().next().map_or(0, |e| e.timestamp_ns);
        let mut sequence = SequenceWriter::start(&mut output, 0, &process, (7, "t"), first_ts);
        for event in thread.events() {
            if let Some(step) = sequence.spans.step(event) {
                sequence.write_step(&mut output.buffer, functions, &step);
            }
        }
        sequence.finish(&mut output, functions, end_ns).unwrap();
        output.finish().unwrap();
        out
    }

    #[test]
    fn plain_steps_encode_as_the_general_path_does() {
        let mut functions = FunctionTable::new();
        for i in 0..300u32 {
            let line = if i == 5 { u32::MAX } else { i + 1 };
            functions.intern(FunctionInfo::new("f", format!("f{i}"), "f.py", line));
        }
        for (seed, count) in [(1, 10), (2, 1000), (3, 5000), (4, 20_000)] {
            let events = random_events(seed, count, 300);
            let expected = general_path_only(&functions, &events, Some(1 << 62));
            for piece in [1, 3, 511, 512, 513, 4096, count] {
                let process = ProcessInfo::default();
                let mut out = Vec::new();
                let mut output = PacketOutput::start(&mut out, &process);
                let first_ts = events[0].event.timestamp_ns;
                let mut sequence =
                    SequenceWriter::start(&mut output, 0, &process, (7, "t"), first_ts);
                for part in events.chunks(piece) {
                    let mut chunk = ThreadBuffer::new(7, "t");
                    for event in part {
                        chunk.push(event.clone());
                    }
                    let mut details = chunk.details().iter();
                    for slice in chunk.event_slices() {
                        sequence
                            .events(&mut output, &functions, slice, &mut details)
                            .unwrap();
                    }
                }
                sequence
                    .finish(&mut output, &functions, Some(1 << 62))
                    .unwrap();
                output.finish().unwrap();
                assert!(out == expected, "seed {seed}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn golden_small() {
        check_golden("perfetto_small.pftrace", &write(&small_recording()));
    }
}
