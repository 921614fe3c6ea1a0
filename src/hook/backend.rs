//! Where consumers run on this interpreter: ferrotrace's `sys.monitoring` tool on 3.12+, the
//! PEP 523 frame-evaluation hook on 3.11. `Tracer` and `Recorder` start and stop through here.

use pyo3::prelude::*;

use crate::hook::consumer::Consumer;

/// Starts delivering events to `consumer`.
pub fn add_consumer(py: Python<'_>, consumer: Consumer) -> PyResult<()> {
    #[cfg(Py_3_12)]
    {
        let module = py.import("ferrotrace._native")?;
        crate::hook::monitoring::add_consumer(py, &module, consumer)
    }
    #[cfg(not(Py_3_12))]
    {
        crate::hook::evalframe::add_consumer(py, consumer)
    }
}

/// Stops delivering events to the consumer `id` and gives it back (a recorder keeps its
/// recording).
pub fn remove_consumer(py: Python<'_>, id: u64) -> PyResult<Option<Consumer>> {
    #[cfg(Py_3_12)]
    {
        crate::hook::monitoring::remove_consumer(py, id)
    }
    #[cfg(not(Py_3_12))]
    {
        crate::hook::evalframe::remove_consumer(py, id)
    }
}
