//! ferrotrace: CPython's trace-function system, natively. This file only registers;
//! see ARCHITECTURE.md for how an event travels from CPython to a trace function.

pub mod api;
pub mod bindings;
pub mod debug;
pub mod errors;
pub mod filter;
pub mod hook;
pub mod output;
pub mod protocol;
pub mod record;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    bindings::frame::verify_layout(py)?;
    api::tracefunc::register(module)?;
    api::tracer::register(module)?;
    api::debugger::register(module)?;
    api::recorder::register(module)?;
    api::program::register(module)?;
    module.add("FerrotraceError", py.get_type::<errors::FerrotraceError>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
