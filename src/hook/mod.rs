//! How events arrive from CPython.
//!
//! `legacy`: the `Py_tracefunc` route (`PyEval_SetTrace`), the same C hook `sys.settrace`
//! uses; on 3.12+ CPython drives it from `sys.monitoring` itself.
//! `consumer`, `decision`, `delivery`: filtered tracers as every backend sees them, which
//! code they want, and how one event reaches them.
//! `monitoring` (3.12+): ferrotrace's own `sys.monitoring` tool, for filtered tracers;
//! `monitoring_record`: its fast path for recorders of calls and returns.
//! `evalframe` (3.11): the PEP 523 frame-evaluation hook, which switches a C trace hook on
//! only while a frame some filtered tracer wants runs; `frame_record`: the frames it records
//! itself, with no trace hook (recorders of calls and returns).
//! `backend`: which of the two runs the consumers on this interpreter.
//! `record_sink`: the consumer that records events natively, for every backend; `clock`:
//! its timestamps.

pub mod addr_hash;
pub mod backend;
pub mod clock;
pub mod consumer;
#[cfg(Py_3_12)]
pub mod debugger_monitoring;
pub mod decision;
pub mod delivery;
#[cfg(all(Py_3_11, not(Py_3_12)))]
pub mod evalframe;
#[cfg(Py_3_12)]
pub mod fastcall;
#[cfg(all(Py_3_11, not(Py_3_12)))]
pub mod frame_record;
pub mod legacy;
#[cfg(Py_3_12)]
pub mod monitoring;
#[cfg(Py_3_12)]
pub mod monitoring_record;
pub mod record_sink;
