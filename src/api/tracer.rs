//! `ferrotrace.Tracer`: a trace function that sees only the code a filter selects.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::filter::{Filter, FilterSpec};
use crate::hook::backend;
use crate::hook::consumer::{self, Consumer, Sink};

/// Tracer(callback, *, modules=(), files=(), functions=(), user_code=False, threads=(),
///        events=None, depth=0)
/// --
///
/// A trace function with a native filter: `callback(frame, event, arg)` has the contract of a
/// sys.settrace global function, but sees only the scopes the filter selects. start()/stop(),
/// or use it as a context manager.
#[pyclass(module = "ferrotrace._native", name = "Tracer")]
pub struct Tracer {
    id: u64,
    callback: Option<Py<PyAny>>,
    filter: Filter,
    running: bool,
}

#[pymethods]
impl Tracer {
    #[new]
    #[pyo3(signature = (callback, *, modules=Vec::new(), files=Vec::new(), functions=Vec::new(),
                        user_code=false, threads=Vec::new(), events=None, depth=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        callback: Py<PyAny>,
        modules: Vec<String>,
        files: Vec<String>,
        functions: Vec<String>,
        user_code: bool,
        threads: Vec<String>,
        events: Option<String>,
        depth: u32,
    ) -> PyResult<Self> {
        let spec = FilterSpec {
            modules,
            files,
            functions,
            user_code,
            threads,
            events,
            depth,
        };
        let filter = filter_of(&spec)?;
        Ok(Tracer {
            id: consumer::new_id(),
            callback: Some(callback),
            filter,
            running: false,
        })
    }

    /// Start tracing: the calling thread, or every thread with all_threads=True.
    #[pyo3(signature = (*, all_threads=false))]
    fn start(&mut self, py: Python<'_>, all_threads: bool) -> PyResult<()> {
        if self.running {
            return Ok(());
        }
        let Some(callback) = &self.callback else {
            return Err(PyValueError::new_err("this Tracer was cleared"));
        };
        if !self.filter.spec().threads.is_empty() {
            // Thread names are read from `threading._active` (see `decision.rs`), which only
            // exists once `threading` is imported; `import ferrotrace` does not import it.
            py.import("threading")?;
        }
        start_backend(
            py,
            self.id,
            callback.clone_ref(py),
            self.filter.clone(),
            all_threads,
        )?;
        self.running = true;
        Ok(())
    }

    /// Stop tracing. Idempotent.
    fn stop(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.running {
            self.running = false;
            stop_backend(py, self.id)?;
        }
        Ok(())
    }

    #[getter]
    fn running(&self) -> bool {
        self.running
    }

    fn __enter__(mut slf: PyRefMut<'_, Self>) -> PyResult<PyRefMut<'_, Self>> {
        let py = slf.py();
        slf.start(py, false)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&mut self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(callback) = &self.callback {
            visit.call(callback)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.callback = None;
    }
}

fn start_backend(
    py: Python<'_>,
    id: u64,
    callback: Py<PyAny>,
    filter: Filter,
    all_threads: bool,
) -> PyResult<()> {
    let thread = if all_threads {
        None
    } else {
        // SAFETY: always safe to call.
        Some(unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64)
    };
    let consumer = Consumer::new(id, Sink::Callback(callback), filter, thread);
    backend::add_consumer(py, consumer).map_err(|not_started| not_started.error)
}

/// The native filter of a Tracer's or Recorder's keyword arguments; a bad pattern or event
/// name is a `ValueError` with the filter's one-line message.
pub fn filter_of(spec: &FilterSpec) -> PyResult<Filter> {
    Filter::new(spec).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn stop_backend(py: Python<'_>, id: u64) -> PyResult<()> {
    backend::remove_consumer(py, id).map(drop)
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Tracer>()?;
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    crate::bindings::interpreter::verify_layout(module.py())?;
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    crate::hook::evalframe::register(module)?;
    #[cfg(Py_3_12)]
    crate::hook::monitoring::register(module)?;
    Ok(())
}
