//! What the `ferrotrace` command needs natively to run a program as `python` would.

use std::ffi::c_int;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// `PyCF_SOURCE_IS_UTF8` (not exported by pyo3-ffi): `compile()` always sets it.
const PYCF_SOURCE_IS_UTF8: c_int = 0x0100;

/// _compile_script(source, filename, /)
/// --
///
/// compile(source, filename, "exec", dont_inherit=True) for the bytes of a script, without
/// compile()'s check for an ast object: that check creates the ast module's node types the
/// first time, which costs a traced run's start-up more than the rest of the compilation.
#[pyfunction]
#[pyo3(signature = (source, filename, /))]
pub fn _compile_script<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyBytes>,
    filename: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    if source.as_bytes().contains(&0) || filename.to_str()?.contains('\0') {
        // compile() rejects a null byte with an error of its own (ValueError before 3.12,
        // SyntaxError since): let it say so.
        return compile_builtin(py, source, filename);
    }
    // compile()'s flags with dont_inherit=True and the default optimize (-1).
    let mut flags = ffi::PyCompilerFlags {
        cf_flags: PYCF_SOURCE_IS_UTF8,
        cf_feature_version: c_int::from(py.version_info().minor),
    };
    // SAFETY: the GIL is held; a bytes object's buffer ends with a NUL (and has none before
    // it, checked above) and lives as long as `source`; `filename` is a str; the result is a
    // new reference or NULL with an exception set.
    unsafe {
        let code = ffi::Py_CompileStringObject(
            ffi::PyBytes_AsString(source.as_ptr()),
            filename.as_ptr(),
            ffi::Py_file_input,
            &mut flags,
            -1,
        );
        Bound::from_owned_ptr_or_err(py, code)
    }
}

fn compile_builtin<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyBytes>,
    filename: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("dont_inherit", true)?;
    py.import("builtins")?
        .getattr("compile")?
        .call((source, filename, "exec"), Some(&kwargs))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(_compile_script, module)?)?;
    Ok(())
}
