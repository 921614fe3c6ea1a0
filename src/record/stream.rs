//! Streaming a recording out while it records: the pieces a recording hands to a writer
//! thread ([`Piece`]) and the recording's end of the channel ([`ChunkStream`]).
//!
//! A streaming [`Recording`](super::Recording) sends each new function when it interns it, and
//! each thread's chunk when it is full (the cold path of a push), so the writer always knows a
//! function before an event refers to it. The writer returns the chunks it has encoded to a
//! small pool, from which the threads take their next chunk (its pages already faulted in).
//! Nothing is dropped: if the writer is slower, chunks wait in the channel.
//!
//! # Fork
//!
//! A process forked while recording has no writer thread, and the channel's and the pool's
//! locks may have been held by the parent's writer at the fork. So everything here first
//! checks that it runs in the process that opened the stream; a child never sends, never takes
//! a pool chunk, and never drops the channel's sender (it is leaked): its recording keeps its
//! events in memory, as a recording that does not stream does.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use super::{Event, Events, FunctionInfo};

/// Chunks kept in the pool for reuse (1 MiB each).
pub const POOL_CHUNKS: usize = 4;

/// What a streaming recording sends to its writer, in the order things happened.
#[derive(Debug)]
pub enum Piece {
    /// A function interned by the recording: its id is the number of functions sent before.
    Function(FunctionInfo),
    /// A thread's next events.
    Chunk(Chunk),
    /// Asks how many calls the writer has seen so far.
    CountCalls(SyncSender<usize>),
    /// Every thread's last chunk has been sent; calls still open end at `end_ns`.
    Finish { end_ns: Option<u64> },
    /// The writer is to hand its state back and end its thread (before a fork).
    Suspend,
}

/// Some consecutive events of one thread.
#[derive(Debug)]
pub struct Chunk {
    /// The thread's index in the recording (the writers number threads by it).
    pub thread: usize,
    pub tid: u64,
    pub name: String,
    pub events: Vec<Event>,
    /// The details of the events that have one, in event order.
    pub details: Vec<Box<str>>,
}

impl Chunk {
    /// The events with their details, oldest first.
    pub fn events(&self) -> Events<'_> {
        Events::of_chunk(&self.events, &self.details)
    }
}

/// What restarts a writer that is asleep (its owner's business: see [`ChunkStream::sleep`]).
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// The recording's end of a stream: the channel to the writer and the pool of used chunks.
pub struct ChunkStream {
    pid: u32,
    /// Leaked rather than dropped in a forked child (see the module's documentation).
    sender: ManuallyDrop<Sender<Piece>>,
    pool: ChunkPool,
    pub(crate) asleep: AtomicBool,
    wake: OnceLock<Wake>,
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("pid", &self.pid)
            .field("asleep", &self.asleep)
            .finish_non_exhaustive()
    }
}

/// Encoded chunks, cleared, for the recording threads to fill again.
#[derive(Clone, Debug, Default)]
pub struct ChunkPool(Arc<Mutex<Vec<Vec<Event>>>>);

impl ChunkPool {
    /// Keeps `chunk` (emptied) for reuse if the pool has room; else frees it.
    pub fn recycle(&self, mut chunk: Vec<Event>) {
        chunk.clear();
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOL_CHUNKS {
                pool.push(chunk);
            }
        }
    }

    fn take(&self) -> Option<Vec<Event>> {
        self.0.lock().ok()?.pop()
    }
}

impl ChunkStream {
    /// A stream opened by this process, and the writer's ends: the receiver and the pool.
    pub fn open() -> (Arc<ChunkStream>, Receiver<Piece>, ChunkPool) {
        let (sender, receiver) = mpsc::channel();
        let pool = ChunkPool::default();
        let stream = ChunkStream {
            pid: std::process::id(),
            sender: ManuallyDrop::new(sender),
            pool: pool.clone(),
            asleep: AtomicBool::new(false),
            wake: OnceLock::new(),
        };
        (Arc::new(stream), receiver, pool)
    }

    /// Whether this is the process that opened the stream (not a child forked since).
    pub fn in_this_process(&self) -> bool {
        std::process::id() == self.pid
    }

    /// Sends `piece` to the writer; false if there is no writer any more (it failed: the
    /// error is reported when the stream is finished). Only in the process that opened it.
    pub fn send(&self, piece: Piece) -> bool {
        if self.asleep.swap(false, Ordering::AcqRel) {
            if let Some(wake) = self.wake.get() {
                wake();
            }
        }
        self.sender.send(piece).is_ok()
    }

    /// Says that the writer is asleep (its thread suspended): the next [`send`](Self::send)
    /// first calls the function given to [`on_wake`](Self::on_wake). Pieces sent meanwhile
    /// wait in the channel.
    pub fn sleep(&self) {
        self.asleep.store(true, Ordering::Release);
    }

    /// What wakes the writer; only the first function given is kept.
    pub fn on_wake(&self, wake: Wake) {
        let _ = self.wake.set(wake);
    }

    /// Another sender on the channel (for the writer's owner).
    pub fn sender(&self) -> Sender<Piece> {
        (*self.sender).clone()
    }

    /// An encoded chunk to fill again, if the writer returned one.
    pub fn recycled_chunk(&self) -> Option<Vec<Event>> {
        self.pool.take()
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        if self.in_this_process() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.sender) };
        }
    }
}
