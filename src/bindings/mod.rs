//! The only place that reaches into CPython beyond PyO3's safe API: frame fields with no
//! public accessor, and thread-state calls that CPython exports but does not document.

pub mod frame;
pub mod threadstate;
