//! What Python sees of the engine: `settrace`, `gettrace`, the all-threads variants and the
//! `tracing` context manager. All are native so that calling them from traced code generates
//! no trace events of its own, exactly as calling `sys.settrace` does. `Tracer` (filtered
//! callbacks) and `Recorder` (filtered native recording). `_compile_script` for the command line.

pub mod breakpoint_hit;
pub mod debugger;
pub mod program;
pub mod recorder;
pub mod tracefunc;
pub mod tracer;
