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
    /// Never replaced while the consumer is registered (the recording fast path keeps a
    /// pointer to a record sink for a registry generation).
    pub sink: Sink,
    pub filter: Filter,
    /// The only thread traced, or None for every thread.
    pub thread: Option<u64>,
    /// Threads on which the callback raised: tracing is off there, as after a settrace error.
    /// Added to only by [`Self::fail_thread`].
    failed_threads: Vec<u64>,
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

    /// Whether tracing was switched off on some thread.
    pub fn failed_on_a_thread(&self) -> bool {
        !self.failed_threads.is_empty()
    }

    /// Switches tracing off on `thread` (its callback raised there). A new registry generation:
    /// what was decided for the set of consumers (which of them trace a thread, the recording
    /// fast path's per-code state) no longer holds.
    pub fn fail_thread(&mut self, thread: u64) {
        self.failed_threads.push(thread);
        GENERATION.fetch_add(1, Ordering::Relaxed);
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

/// Changes whenever a consumer is added or removed, or a consumer's threads change (decisions
/// about the set are then stale). Per-event checks that only such a change could make fail
/// are left to it: the recording fast path checks nothing else of the registry.
static GENERATION: AtomicU64 = AtomicU64::new(1);

pub fn registry_generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Runs `f` on the running consumers. `f` must not call into Python.
pub fn with_consumers<R>(_py: Python<'_>, f: impl FnOnce(&mut Vec<Consumer>) -> R) -> R {
    f(&mut REGISTRY.0.borrow_mut())
}

/// The registry borrowed (see [`hold_registry`]).
pub struct Held(#[allow(dead_code)] std::cell::RefMut<'static, Vec<Consumer>>);

/// Borrows the registry, so that no one else refers to a consumer while the result is held
/// (for code that reached a consumer's parts by a pointer kept since an earlier borrow); None
/// if it is borrowed already. No Python code may run while it is held.
#[inline(always)]
pub fn hold_registry(_py: Python<'_>) -> Option<Held> {
    REGISTRY.0.try_borrow_mut().ok().map(Held)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterSpec;
    use crate::record::ProcessInfo;

    #[test]
    fn switching_a_thread_off_is_a_new_generation() {
        let sink = Sink::Record(Box::new(RecordSink::new(
            ProcessInfo::default(),
            false,
            false,
        )));
        let filter = Filter::new(&FilterSpec::default()).unwrap();
        let mut consumer = Consumer::new(new_id(), sink, filter, None);
        assert!(consumer.traces_every_thread() && !consumer.failed_on_a_thread());
        let before = registry_generation();
        consumer.fail_thread(7);
        assert!(registry_generation() > before);
        assert!(consumer.failed_on_a_thread() && !consumer.traces_thread(7));
        assert!(consumer.traces_thread(8) && !consumer.traces_every_thread());
    }
}
