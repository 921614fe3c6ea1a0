//! The only place that reaches into CPython beyond PyO3's safe API: frame fields with no
//! public accessor, thread-state calls that CPython exports but does not document, and (3.11)
//! the interpreter frames and tracing fields the PEP 523 route works with.

pub mod frame;
#[cfg(all(Py_3_11, not(Py_3_12)))]
pub mod interpreter;
pub mod threadstate;
