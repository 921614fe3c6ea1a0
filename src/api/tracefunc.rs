use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::bindings::threadstate;
use crate::errors::CoreError;
use crate::hook::legacy;

/// CPython's own `sys.gettrace`, captured at import: it reads the thread's registered trace
/// object, which is the user's function whether ferrotrace or `sys.settrace` set it.
static SYS_GETTRACE: OnceLock<Py<PyAny>> = OnceLock::new();

pub fn prepare(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let gettrace = sys.getattr("gettrace")?;
    if !threadstate::is_sys_builtin(&sys, &gettrace)? {
        return Err(CoreError::SysFunction("gettrace").into());
    }
    let _ = SYS_GETTRACE.set(gettrace.unbind());
    legacy::prepare(py)
}

/// settrace(function, /)
/// --
///
/// Set the calling thread's trace function, as sys.settrace does; None removes it.
#[pyfunction]
#[pyo3(signature = (function, /))]
pub fn settrace(py: Python<'_>, function: &Bound<'_, PyAny>) -> PyResult<()> {
    legacy::set_trace(py, function)?;
    #[cfg(Py_3_12)]
    crate::hook::debugger_monitoring::on_settrace(function)?;
    Ok(())
}

/// gettrace()
/// --
///
/// Return the calling thread's trace function (the very object that was set), or None.
#[pyfunction]
pub fn gettrace(py: Python<'_>) -> PyResult<Py<PyAny>> {
    match SYS_GETTRACE.get() {
        Some(gettrace) => Ok(gettrace.bind(py).call0()?.unbind()),
        None => Err(CoreError::SysFunction("gettrace").into()),
    }
}

/// _settraceallthreads(function, /)
/// --
///
/// Set the trace function of every thread running now, as sys._settraceallthreads does
/// (Python 3.12+); threads started later are not affected.
#[pyfunction]
#[pyo3(signature = (function, /))]
pub fn _settraceallthreads(py: Python<'_>, function: &Bound<'_, PyAny>) -> PyResult<()> {
    legacy::set_trace_all_threads(py, function)
}

/// settrace_all_threads(function, /)
/// --
///
/// Set the trace function of every thread: those running now, and (through
/// threading.settrace) those started later. As threading.settrace_all_threads does.
#[pyfunction]
#[pyo3(signature = (function, /))]
pub fn settrace_all_threads(py: Python<'_>, function: &Bound<'_, PyAny>) -> PyResult<()> {
    py.import("threading")?
        .getattr("settrace")?
        .call1((function,))?;
    _settraceallthreads(py, function)
}

/// _dispatch_count()
/// --
///
/// How many events ferrotrace's trampoline has delivered to a trace function in this process (a testing aid: it
/// proves that ferrotrace, not CPython's own trampoline, dispatched them).
#[pyfunction]
pub fn _dispatch_count() -> u64 {
    legacy::dispatch_count()
}

/// The cheapest possible C profile hook: the floor any `sys.setprofile`-based tool pays.
unsafe extern "C" fn empty_profile_hook(
    _obj: *mut pyo3::ffi::PyObject,
    _frame: *mut pyo3::ffi::PyFrameObject,
    _what: std::ffi::c_int,
    _arg: *mut pyo3::ffi::PyObject,
) -> std::ffi::c_int {
    0
}

/// _set_empty_profile_hook(on, /)
/// --
///
/// Install (or remove) an empty C profile hook on the calling thread: a benchmark baseline
/// for what any profile hook costs, not a tool.
#[pyfunction]
#[pyo3(signature = (on, /))]
pub fn _set_empty_profile_hook(on: bool) {
    let hook = if on {
        Some(empty_profile_hook as pyo3::ffi::Py_tracefunc)
    } else {
        None
    };
    // SAFETY: the GIL is held (a pyfunction); a null object is allowed.
    unsafe { pyo3::ffi::PyEval_SetProfile(hook, std::ptr::null_mut()) };
}

/// tracing(function)
/// --
///
/// Context manager: trace the calling thread with `function` inside the block and restore
/// the previous trace function on exit. Nested and re-entered uses restore in order.
#[pyclass(module = "ferrotrace._native", name = "tracing")]
pub struct Tracing {
    function: Option<Py<PyAny>>,
    saved: Vec<Py<PyAny>>,
}

#[pymethods]
impl Tracing {
    #[new]
    fn new(function: Py<PyAny>) -> Self {
        Tracing {
            function: Some(function),
            saved: Vec::new(),
        }
    }

    #[getter]
    fn function(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.function {
            Some(function) => function.clone_ref(py),
            None => py.None(),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let py = slf.py();
        let previous = gettrace(py)?;
        let function = slf.borrow().function(py);
        settrace(py, function.bind(py))?;
        slf.borrow_mut().saved.push(previous);
        Ok(slf)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&mut self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let previous = self.saved.pop().unwrap_or_else(|| py.None());
        settrace(py, previous.bind(py))?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let function = self.function(py);
        Ok(format!("ferrotrace.tracing({})", function.bind(py).repr()?))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(function) = &self.function {
            visit.call(function)?;
        }
        for previous in &self.saved {
            visit.call(previous)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.function = None;
        self.saved.clear();
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    prepare(module.py())?;
    module.add_function(wrap_pyfunction!(settrace, module)?)?;
    module.add_function(wrap_pyfunction!(gettrace, module)?)?;
    module.add_function(wrap_pyfunction!(settrace_all_threads, module)?)?;
    module.add_function(wrap_pyfunction!(_settraceallthreads, module)?)?;
    module.add_function(wrap_pyfunction!(_dispatch_count, module)?)?;
    module.add_function(wrap_pyfunction!(_set_empty_profile_hook, module)?)?;
    module.add_class::<Tracing>()?;
    Ok(())
}
