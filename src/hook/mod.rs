//! How events arrive from CPython.
//!
//! `legacy`: the `Py_tracefunc` route (`PyEval_SetTrace`), the same C hook `sys.settrace`
//! uses; on 3.12+ CPython drives it from `sys.monitoring` itself.
//! `consumer`: a filtered tracer as every backend sees it.
//! `monitoring` (3.12+): ferrotrace's own `sys.monitoring` tool, for filtered tracers.
//! `record_sink`: the consumer that records events natively, for every backend.

pub mod consumer;
pub mod legacy;
#[cfg(Py_3_12)]
pub mod monitoring;
pub mod record_sink;
