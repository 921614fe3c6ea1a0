//! The one error type of the core, converted to a Python exception at the edge.

use std::fmt;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::PyErr;

create_exception!(
    ferrotrace,
    FerrotraceError,
    PyRuntimeError,
    "An error raised by ferrotrace itself (not by a traced program or a trace function)."
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// The running interpreter's frame objects are not laid out as this build expects.
    FrameLayout(String),
    /// A function of the `sys` module that ferrotrace stands on is missing or was replaced.
    SysFunction(&'static str),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::FrameLayout(detail) => write!(
                f,
                "this interpreter's frame layout is not the one ferrotrace was built for \
                 ({detail}); rebuild ferrotrace for this Python"
            ),
            CoreError::SysFunction(name) => write!(
                f,
                "sys.{name} is not CPython's own builtin; import ferrotrace before any tool \
                 that replaces it"
            ),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        FerrotraceError::new_err(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_tell_what_to_do() {
        let msg = CoreError::SysFunction("gettrace").to_string();
        assert!(msg.contains("sys.gettrace"), "{msg}");
        assert!(msg.contains("import ferrotrace before"), "{msg}");
        let msg = CoreError::FrameLayout("f_trace".into()).to_string();
        assert!(msg.contains("rebuild ferrotrace"), "{msg}");
    }
}
