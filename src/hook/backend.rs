//! Where consumers run on this interpreter: ferrotrace's `sys.monitoring` tool on 3.12+, the
//! PEP 523 frame-evaluation hook on 3.11. `Tracer` and `Recorder` start and stop through here.

use pyo3::prelude::*;

use crate::hook::consumer::Consumer;

/// A consumer that could not be started, given back with the reason, so that nothing it holds
/// (a recorder's recording) is lost.
pub struct NotStarted {
    pub error: PyErr,
    /// None only if the consumer was lost inside the backend (it never is today).
    pub consumer: Option<Box<Consumer>>,
}

/// Starts delivering events to `consumer`.
pub fn add_consumer(py: Python<'_>, consumer: Consumer) -> Result<(), NotStarted> {
    #[cfg(Py_3_12)]
    {
        let module = match py.import("ferrotrace._native") {
            Ok(module) => module,
            Err(error) => {
                return Err(NotStarted {
                    error,
                    consumer: Some(Box::new(consumer)),
                })
            }
        };
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
