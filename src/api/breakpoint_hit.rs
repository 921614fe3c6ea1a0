//! bdb's `effective(file, line, frame)` done natively for a `line` event at a breakpoint line
//! where only a breakpoint can stop the program: the hot path of a conditional breakpoint.
//!
//! Same steps, same order, same attribute reads and writes on the `bdb.Breakpoint` objects as
//! the standard library's Python (3.11 and 3.13 are alike): skip disabled ones, `checkfuncname`,
//! `hits += 1`, ignore counts, the condition evaluated with `eval`'s semantics against
//! `frame.f_globals` / `frame.f_locals` (compiled once per condition string). When no
//! breakpoint acts, nothing of bdb's Python runs; when one does, the debugger's Python finishes
//! `break_here` and `dispatch_line` with the breakpoint and flag found here.

use std::ffi::{c_char, c_int, CString};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::hook::addr_hash::AddrMap;

extern "C" {
    fn PySys_Audit(event: *const c_char, format: *const c_char, ...) -> c_int;
}

/// `PyCF_SOURCE_IS_UTF8` (compile.h): `eval` compiles a `str` with it.
const PYCF_SOURCE_IS_UTF8: c_int = 0x0100;

/// Conditions compiled so far are kept up to this many; then the cache starts again.
const COMPILED_CONDITIONS_LIMIT: usize = 256;

/// What the native `effective` needs of the debugger's Python side.
pub struct NativeBreakpoints {
    /// bdb's module dictionary and its `effective` / `checkfuncname` as imported: if someone
    /// replaces them, bdb's Python decides.
    bdb_globals: Py<PyDict>,
    effective: Py<PyAny>,
    checkfuncname: Py<PyAny>,
    /// `bdb.Breakpoint` (its `bplist` is read at every hit, as bdb does).
    breakpoint_class: Py<PyAny>,
    /// The debugger's `_ferrotrace_breakpoint_stop(frame, bp, flag)`.
    finisher: Py<PyAny>,
    /// Compiled conditions by the condition string object (kept alive, so its address is
    /// its own).
    compiled: AddrMap<usize, CompiledCondition>,
}

struct CompiledCondition {
    _cond: Py<PyAny>,
    /// The text compiled (leading blanks stripped), for the `compile` audit event.
    source: CString,
    code: Py<PyAny>,
}

impl NativeBreakpoints {
    pub fn new(
        bdb_globals: Py<PyDict>,
        effective: Py<PyAny>,
        checkfuncname: Py<PyAny>,
        breakpoint_class: Py<PyAny>,
        finisher: Py<PyAny>,
    ) -> Self {
        NativeBreakpoints {
            bdb_globals,
            effective,
            checkfuncname,
            breakpoint_class,
            finisher,
            compiled: AddrMap::default(),
        }
    }

    pub fn objects(&self) -> [&Py<PyAny>; 4] {
        [
            self.bdb_globals.as_any(),
            &self.effective,
            &self.checkfuncname,
            &self.breakpoint_class,
        ]
    }

    pub fn finisher(&self) -> &Py<PyAny> {
        &self.finisher
    }

    /// Whether bdb's module still has the `effective` and `checkfuncname` this mirrors.
    fn stock(&self, py: Python<'_>) -> PyResult<bool> {
        let globals = self.bdb_globals.bind(py);
        let same = |name: &Bound<'_, PyString>, expected: &Py<PyAny>| -> PyResult<bool> {
            Ok(globals
                .get_item(name)?
                .is_some_and(|f| f.as_ptr() == expected.as_ptr()))
        };
        Ok(same(pyo3::intern!(py, "effective"), &self.effective)?
            && same(pyo3::intern!(py, "checkfuncname"), &self.checkfuncname)?)
    }
}

/// What `effective` chose.
pub enum Effective {
    /// `(None, None)`: bdb's `break_here` is false and `dispatch_line` does nothing more.
    Nothing,
    /// `(bp, flag)`: the debugger stops at `bp` (flag: a temporary one may be deleted).
    Stop(Py<PyAny>, bool),
    /// Not decided here (bdb's functions replaced, an unexpected `bplist`): bdb's Python
    /// decides, nothing having been changed.
    Python,
}

/// bdb's `effective(file, line, frame)`; `native` is the core's (taken out while Python runs).
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
pub unsafe fn effective(
    py: Python<'_>,
    native: &mut NativeBreakpoints,
    file: &Bound<'_, PyString>,
    line: i64,
    frame: *mut ffi::PyFrameObject,
) -> PyResult<Effective> {
    if !native.stock(py)? {
        return Ok(Effective::Python);
    }
    let bplist = native
        .breakpoint_class
        .bind(py)
        .getattr(pyo3::intern!(py, "bplist"))?;
    let Ok(bplist) = bplist.cast::<PyDict>() else {
        return Ok(Effective::Python);
    };
    let key = PyTuple::new(
        py,
        [file.as_any().clone(), line.into_pyobject(py)?.into_any()],
    )?;
    // A missing entry raises KeyError in bdb: its Python does that.
    let Some(possibles) = bplist.get_item(&key)? else {
        return Ok(Effective::Python);
    };
    let Ok(possibles) = possibles.cast::<PyList>() else {
        return Ok(Effective::Python);
    };
    let frame_obj = Bound::from_borrowed_ptr(py, frame.cast());
    let f_lineno = i64::from(ffi::PyFrame_GetLineNumber(frame));
    // `for b in possibles`: the live list, by index.
    let mut index = 0;
    while index < possibles.len() {
        let b = possibles.get_item(index)?;
        index += 1;
        if !b.getattr(pyo3::intern!(py, "enabled"))?.is_truthy()? {
            continue;
        }
        if !checkfuncname(&b, &frame_obj, f_lineno)? {
            continue;
        }
        let hits = pyo3::intern!(py, "hits");
        b.setattr(hits, b.getattr(hits)?.add(1)?)?;
        let cond = b.getattr(pyo3::intern!(py, "cond"))?;
        let ignore = pyo3::intern!(py, "ignore");
        if !cond.is_truthy()? {
            if b.getattr(ignore)?.gt(0)? {
                b.setattr(ignore, b.getattr(ignore)?.sub(1)?)?;
                continue;
            }
            return Ok(Effective::Stop(b.unbind(), true));
        }
        match evaluate(py, native, &cond, frame).and_then(|value| value.is_truthy()) {
            Ok(true) => {
                if b.getattr(ignore)?.gt(0)? {
                    b.setattr(ignore, b.getattr(ignore)?.sub(1)?)?;
                } else {
                    return Ok(Effective::Stop(b.unbind(), true));
                }
            }
            Ok(false) => {}
            // bdb's bare `except:`: stop, and keep a temporary breakpoint.
            Err(_) => return Ok(Effective::Stop(b.unbind(), false)),
        }
    }
    Ok(Effective::Nothing)
}

/// bdb's `checkfuncname(b, frame)`.
fn checkfuncname(b: &Bound<'_, PyAny>, frame: &Bound<'_, PyAny>, f_lineno: i64) -> PyResult<bool> {
    let py = b.py();
    let funcname = b.getattr(pyo3::intern!(py, "funcname"))?;
    if !funcname.is_truthy()? {
        return Ok(!b.getattr(pyo3::intern!(py, "line"))?.ne(f_lineno)?);
    }
    let co_name = frame
        .getattr(pyo3::intern!(py, "f_code"))?
        .getattr(pyo3::intern!(py, "co_name"))?;
    if co_name.ne(&funcname)? {
        return Ok(false);
    }
    let first_line = pyo3::intern!(py, "func_first_executable_line");
    if !b.getattr(first_line)?.is_truthy()? {
        b.setattr(first_line, f_lineno)?;
    }
    Ok(!b.getattr(first_line)?.ne(f_lineno)?)
}

/// `eval(cond, frame.f_globals, frame.f_locals)` as bdb's `effective` runs it.
///
/// # Safety
/// As [`effective`].
unsafe fn evaluate<'py>(
    py: Python<'py>,
    native: &mut NativeBreakpoints,
    cond: &Bound<'py, PyAny>,
    frame: *mut ffi::PyFrameObject,
) -> PyResult<Bound<'py, PyAny>> {
    let frame_obj = Bound::from_borrowed_ptr(py, frame.cast());
    let globals = frame_obj.getattr(pyo3::intern!(py, "f_globals"))?;
    // 3.11: the getter fills the locals dict from the fast locals, as the trace trampoline
    // does before bdb's Python runs; 3.13: a write-through proxy.
    let locals = frame_obj.getattr(pyo3::intern!(py, "f_locals"))?;
    let Ok(cond_str) = cond.cast::<PyString>() else {
        // A code object or bytes: the builtin decides, as in bdb.
        let builtins = py.import("builtins")?;
        return builtins.getattr("eval")?.call1((cond, &globals, &locals));
    };
    let code = compiled(py, native, cond_str)?;
    let globals = globals.cast::<PyDict>()?;
    // eval() gives globals without __builtins__ the current ones.
    let builtins_key = pyo3::intern!(py, "__builtins__");
    if !globals.contains(builtins_key)? {
        let builtins = ffi::PyEval_GetBuiltins();
        if builtins.is_null() {
            return Err(PyErr::fetch(py));
        }
        globals.set_item(builtins_key, Bound::from_borrowed_ptr(py, builtins))?;
    }
    if PySys_Audit(c"exec".as_ptr(), c"O".as_ptr(), code.as_ptr()) < 0 {
        return Err(PyErr::fetch(py));
    }
    let result = Bound::from_owned_ptr_or_err(
        py,
        ffi::PyEval_EvalCode(code.as_ptr(), globals.as_ptr(), locals.as_ptr()),
    );
    // 3.11: what the condition assigned (`:=`) goes back to the fast locals, as the
    // trampoline's write-back after bdb's Python would.
    #[cfg(not(Py_3_13))]
    if crate::bindings::frame::fast_as_locals(frame) {
        ffi::PyFrame_LocalsToFast(frame, 1);
    }
    result
}

/// The condition compiled as `eval` compiles a string (leading blanks stripped, `<string>`).
fn compiled<'py>(
    py: Python<'py>,
    native: &mut NativeBreakpoints,
    cond: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = cond.as_ptr() as usize;
    if let Some(entry) = native.compiled.get(&key) {
        // eval() parses the text again each time, with its audit event.
        let filename = pyo3::intern!(py, "<string>");
        // SAFETY: a NUL-terminated string and a live object; the GIL is held.
        let audited = unsafe {
            PySys_Audit(
                c"compile".as_ptr(),
                c"yO".as_ptr(),
                entry.source.as_ptr(),
                filename.as_ptr(),
            )
        };
        if audited < 0 {
            return Err(PyErr::fetch(py));
        }
        return Ok(entry.code.bind(py).clone());
    }
    let text = cond.to_str()?;
    let source = CString::new(text.trim_start_matches([' ', '\t'])).map_err(|_| {
        pyo3::exceptions::PySyntaxError::new_err("source code string cannot contain null bytes")
    })?;
    let mut flags = ffi::PyCompilerFlags {
        cf_flags: PYCF_SOURCE_IS_UTF8,
        cf_feature_version: c_int::from(py.version_info().minor),
    };
    // SAFETY: NUL-terminated strings; the GIL is held.
    let code = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::Py_CompileStringExFlags(
                source.as_ptr(),
                c"<string>".as_ptr(),
                ffi::Py_eval_input,
                &mut flags,
                -1,
            ),
        )?
    };
    if native.compiled.len() >= COMPILED_CONDITIONS_LIMIT {
        native.compiled.clear();
    }
    native.compiled.insert(
        key,
        CompiledCondition {
            _cond: cond.clone().into_any().unbind(),
            source,
            code: code.clone().unbind(),
        },
    );
    Ok(code)
}

/// BreakpointStop
/// --
///
/// The trace function for one `line` event at which [`effective`] chose a breakpoint: calls the
/// debugger's `_ferrotrace_breakpoint_stop(frame, bp, flag)`, which finishes bdb's
/// `break_here` and `dispatch_line`.
#[pyclass(module = "ferrotrace._native", name = "BreakpointStop", frozen)]
pub struct BreakpointStop {
    finisher: Py<PyAny>,
    breakpoint: Py<PyAny>,
    delete_temporary: bool,
}

impl BreakpointStop {
    pub fn new(finisher: Py<PyAny>, breakpoint: Py<PyAny>, delete_temporary: bool) -> Self {
        BreakpointStop {
            finisher,
            breakpoint,
            delete_temporary,
        }
    }
}

#[pymethods]
impl BreakpointStop {
    fn __call__(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        _event: &Bound<'_, PyAny>,
        _arg: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.finisher
            .call1(py, (frame, &self.breakpoint, self.delete_temporary))
    }
}
