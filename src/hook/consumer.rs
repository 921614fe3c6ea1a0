//! A consumer: one filtered tracer as the backends see it (`monitoring` on 3.12+, the
//! eval-frame route on 3.11). Backend-neutral: what it wants (its [`Filter`] and thread),
//! where its events go (its [`Sink`]), and its per-frame state.

use std::collections::{HashMap, HashSet};

use pyo3::prelude::*;

use crate::filter::Filter;
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

pub struct Consumer {
    pub id: u64,
    pub sink: Sink,
    pub filter: Filter,
    /// The only thread traced, or None for every thread.
    pub thread: Option<u64>,
    /// Threads on which the callback raised: tracing is off there, as after a settrace error.
    pub failed_threads: Vec<u64>,
    /// Local trace functions, by frame address.
    pub locals: HashMap<usize, Py<PyAny>>,
    /// Frames of code the filter does not match that are in scope through `depth`.
    pub in_scope: HashSet<usize>,
}

impl Consumer {
    pub fn new(id: u64, sink: Sink, filter: Filter, thread: Option<u64>) -> Self {
        Consumer {
            id,
            sink,
            filter,
            thread,
            failed_threads: Vec::new(),
            locals: HashMap::new(),
            in_scope: HashSet::new(),
        }
    }

    pub fn traces_thread(&self, thread: u64) -> bool {
        self.thread.is_none_or(|only| only == thread) && !self.failed_threads.contains(&thread)
    }
}
