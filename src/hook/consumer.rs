//! A consumer: one filtered tracer as the backends see it (`monitoring` on 3.12+, the
//! eval-frame route on 3.11). Backend-neutral: what it wants (its [`Filter`] and thread),
//! where its events go (its [`Sink`]), and its per-frame state. The running consumers live in
//! one registry shared by the backend and by [`delivery`](super::delivery).

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;

use crate::filter::{CodeInfo, Environment, Filter};
use crate::hook::addr_hash::{AddrHasher, AddrMap};
use crate::hook::record_sink::RecordSink;

/// Where a consumer's events go.
pub enum Sink {
    /// A Python trace function with `sys.settrace`'s contract: called on `call`, its result
    /// is the frame's local function for the other events.
    Callback(Py<PyAny>),
    /// The native recording of a `Recorder`: no Python call per event (see
    /// [`crate::hook::record_sink`]).
    Record(Box<RecordSink>),
}

static NEXT_CONSUMER_ID: AtomicU64 = AtomicU64::new(1);

/// A new consumer id, unique among all consumers (Tracers, Recorders, the debugger's route):
/// the registry removes consumers by id.
pub fn new_id() -> u64 {
    NEXT_CONSUMER_ID.fetch_add(1, Ordering::Relaxed)
}

pub struct Consumer {
    pub id: u64,
    pub sink: Sink,
    pub filter: Filter,
    /// The only thread traced, or None for every thread.
    pub thread: Option<u64>,
    /// Threads on which the callback raised: tracing is off there, as after a settrace error.
    pub failed_threads: Vec<u64>,
    /// Local trace functions, by frame address.
    pub locals: AddrMap<usize, Py<PyAny>>,
    /// Frames of code the filter does not match that are in scope through `depth`.
    pub in_scope: HashSet<usize, BuildHasherDefault<AddrHasher>>,
}

impl Consumer {
    pub fn new(id: u64, sink: Sink, filter: Filter, thread: Option<u64>) -> Self {
        Consumer {
            id,
            sink,
            filter,
            thread,
            failed_threads: Vec::new(),
            locals: AddrMap::default(),
            in_scope: HashSet::default(),
        }
    }

    /// Whether the consumer traces every thread (then [`Self::traces_thread`] is true for all).
    pub fn traces_every_thread(&self) -> bool {
        self.thread.is_none() && self.failed_threads.is_empty()
    }

    pub fn traces_thread(&self, thread: u64) -> bool {
        self.thread.is_none_or(|only| only == thread) && !self.failed_threads.contains(&thread)
    }
}

/// The running consumers. Only touched with the GIL held (ferrotrace is not built for
/// free-threaded Python), and no Python code runs while it is borrowed, so the RefCell never
/// sees a second borrow. That includes destructors: Python objects leave the registry by being
/// returned from the closure and are released after the borrow ends.
struct Registry(RefCell<Vec<Consumer>>);
// SAFETY: every access goes through `with_consumers`, which requires the GIL.
unsafe impl Sync for Registry {}

/// Const-initialised: no first-use check per event.
static REGISTRY: Registry = Registry(RefCell::new(Vec::new()));

/// Changes whenever a consumer is added or removed (decisions about the set are then stale).
static GENERATION: AtomicU64 = AtomicU64::new(1);

pub fn registry_generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Runs `f` on the running consumers. `f` must not call into Python.
pub fn with_consumers<R>(_py: Python<'_>, f: impl FnOnce(&mut Vec<Consumer>) -> R) -> R {
    f(&mut REGISTRY.0.borrow_mut())
}

/// Runs `f` on the registered consumer `id` (None if there is none). `f` must not call into
/// Python.
pub fn with_consumer<R>(py: Python<'_>, id: u64, f: impl FnOnce(&mut Consumer) -> R) -> Option<R> {
    with_consumers(py, |consumers| {
        consumers.iter_mut().find(|c| c.id == id).map(f)
    })
}

/// Adds a consumer to the registry.
pub fn register(py: Python<'_>, consumer: Consumer) {
    with_consumers(py, |consumers| consumers.push(consumer));
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Takes the consumer `id` out of the registry (dropped by the caller, outside the borrow);
/// returns it and whether the registry is now empty.
pub fn unregister(py: Python<'_>, id: u64) -> (Vec<Consumer>, bool) {
    with_consumers(py, |consumers| {
        let (removed, kept): (Vec<Consumer>, Vec<Consumer>) = std::mem::take(consumers)
            .into_iter()
            .partition(|c| c.id == id);
        *consumers = kept;
        GENERATION.fetch_add(1, Ordering::Relaxed);
        (removed, consumers.is_empty())
    })
}

/// The ids of the consumers whose filter selects this code.
pub fn matching(consumers: &[Consumer], code: &CodeInfo<'_>, env: &Environment) -> Vec<u64> {
    consumers
        .iter()
        .filter(|c| c.filter.matches(code, env))
        .map(|c| c.id)
        .collect()
}
