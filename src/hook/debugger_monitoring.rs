//! The debugger's `sys.monitoring` route (3.12+). While a ferrotrace debugger only waits for
//! breakpoints (after `continue`), the legacy trace hook is switched off and events come from
//! a tool of its own: `PY_START`/`PY_RESUME` decide once per code object, code that cannot hold
//! a breakpoint is `DISABLE`d (it then runs with no hook at all), code that can gets `LINE`
//! events, and a line that is not a breakpoint is `DISABLE`d too. A breakpoint line goes to
//! bdb's Python dispatch; if the user then steps, the route ends and the legacy hook is back on
//! that thread, with the frames' `f_trace` as bdb would have set them.
//!
//! One debugger at a time has the route (the last to continue); breakpoints changed at a stop
//! restart the events, so every decision is taken again.

use std::cell::RefCell;
use std::sync::{LazyLock, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString};

use crate::api::debugger::{self, DebuggerCore};
use crate::bindings::frame;
use crate::hook::legacy;

const PY_START: u32 = 1;
const PY_RESUME: u32 = 2;
const LINE: u32 = 32;
/// `sys.monitoring.DEBUGGER_ID`, then any free id.
const TOOL_IDS: [u8; 6] = [0, 4, 3, 2, 1, 5];

struct Session {
    core: Py<DebuggerCore>,
    tool: u8,
    breaks_generation: u64,
    /// Code objects with `LINE` events on.
    lined: Vec<Py<PyAny>>,
}

struct GilCell(RefCell<Option<Session>>);
// SAFETY: only touched with the GIL held (no free-threaded builds), never across Python code.
unsafe impl Sync for GilCell {}

static SESSION: LazyLock<GilCell> = LazyLock::new(|| GilCell(RefCell::new(None)));

fn with_session<R>(_py: Python<'_>, f: impl FnOnce(&mut Option<Session>) -> R) -> R {
    f(&mut SESSION.0.borrow_mut())
}

/// `sys`, `sys.monitoring` and this module's two callbacks, looked up at import: an import
/// from inside a callback would go through the running frame's `__builtins__`, which code run
/// by `eval` may not have.
struct Handles {
    sys: Py<PyAny>,
    monitoring: Py<PyAny>,
    disable: Py<PyAny>,
    on_start: Py<PyAny>,
    on_line: Py<PyAny>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

fn handles() -> PyResult<&'static Handles> {
    HANDLES.get().ok_or_else(|| {
        PyRuntimeError::new_err("ferrotrace debugger: sys.monitoring route used before import")
    })
}

fn monitoring(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    Ok(handles()?.monitoring.bind(py).clone())
}

/// Called from the legacy trampoline when `core` only waits for breakpoints: switches the
/// calling thread's legacy hook off and makes sure the route is on for `core`.
pub fn take_over(core: &Bound<'_, DebuggerCore>) -> PyResult<()> {
    let py = core.py();
    legacy::set_trace(py, &py.None().into_bound(py))?;
    let generation = core.try_borrow()?.breaks_generation();
    let current = with_session(py, |s| {
        s.as_ref()
            .map(|s| (s.core.as_ptr() == core.as_ptr(), s.breaks_generation))
    });
    match current {
        Some((true, seen)) if seen == generation => return Ok(()),
        Some((true, _)) => return refresh(py, generation),
        Some((false, _)) => end(py)?,
        None => {}
    }
    let mon = monitoring(py)?;
    let mut claimed = None;
    for tool in TOOL_IDS {
        if mon.call_method1("get_tool", (tool,))?.is_none() {
            mon.call_method1("use_tool_id", (tool, "ferrotrace debugger"))?;
            claimed = Some(tool);
            break;
        }
    }
    let Some(tool) = claimed else {
        return Err(PyRuntimeError::new_err(
            "ferrotrace debugger: every sys.monitoring tool id is taken",
        ));
    };
    let callbacks = handles()?;
    let on_start = callbacks.on_start.bind(py);
    mon.call_method1("register_callback", (tool, PY_START, on_start))?;
    mon.call_method1("register_callback", (tool, PY_RESUME, on_start))?;
    mon.call_method1(
        "register_callback",
        (tool, LINE, callbacks.on_line.bind(py)),
    )?;
    with_session(py, |s| {
        *s = Some(Session {
            core: core.clone().unbind(),
            tool,
            breaks_generation: generation,
            lined: Vec::new(),
        })
    });
    mon.call_method1("set_events", (tool, PY_START | PY_RESUME))?;
    // Code DISABLEd by an earlier session (other breakpoints then) is decided again.
    mon.call_method0("restart_events")?;
    decide_running_code(core)
}

/// Frames already running get no `PY_START`: their code is decided now (every thread).
fn decide_running_code(core: &Bound<'_, DebuggerCore>) -> PyResult<()> {
    let py = core.py();
    let frames = handles()?.sys.bind(py).call_method0("_current_frames")?;
    for top in frames.call_method0("values")?.try_iter()? {
        let mut current = Some(top?);
        while let Some(f) = current {
            enable_lines_if_may_break(core, &f.getattr("f_code")?)?;
            let back = f.getattr("f_back")?;
            current = (!back.is_none()).then_some(back);
        }
    }
    Ok(())
}

/// Turns `LINE` on for `code` if a breakpoint can be in it.
fn enable_lines_if_may_break(
    core: &Bound<'_, DebuggerCore>,
    code: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = core.py();
    let Some(tool) = with_session(py, |s| s.as_ref().map(|s| s.tool)) else {
        return Ok(false);
    };
    if !debugger::code_may_break(core, code)? {
        return Ok(false);
    }
    monitoring(py)?.call_method1("set_local_events", (tool, code, LINE))?;
    with_session(py, |s| {
        if let Some(s) = s {
            s.lined.push(code.clone().unbind());
        }
    });
    Ok(true)
}

/// Breakpoints changed: every code object is decided again.
fn refresh(py: Python<'_>, generation: u64) -> PyResult<()> {
    let (tool, lined) = with_session(py, |s| match s {
        Some(s) => {
            s.breaks_generation = generation;
            (Some(s.tool), std::mem::take(&mut s.lined))
        }
        None => (None, Vec::new()),
    });
    let Some(tool) = tool else { return Ok(()) };
    let mon = monitoring(py)?;
    for code in &lined {
        mon.call_method1("set_local_events", (tool, code.bind(py), 0))?;
    }
    drop(lined);
    mon.call_method0("restart_events")?;
    match session_core(py) {
        Some((core, _)) => decide_running_code(core.bind(py)),
        None => Ok(()),
    }
}

/// Ends the route (its tool id is freed).
pub fn end(py: Python<'_>) -> PyResult<()> {
    let Some(session) = with_session(py, Option::take) else {
        return Ok(());
    };
    let mon = monitoring(py)?;
    for code in &session.lined {
        mon.call_method1("set_local_events", (session.tool, code.bind(py), 0))?;
    }
    mon.call_method1("set_events", (session.tool, 0))?;
    for event in [PY_START, PY_RESUME, LINE] {
        mon.call_method1("register_callback", (session.tool, event, py.None()))?;
    }
    mon.call_method1("free_tool_id", (session.tool,))?;
    drop(session);
    Ok(())
}

/// Ends the route if `core` has it (the debugger is quitting).
pub fn end_for(core: &Bound<'_, DebuggerCore>) -> PyResult<()> {
    let py = core.py();
    if with_session(py, |s| {
        s.as_ref().is_some_and(|s| s.core.as_ptr() == core.as_ptr())
    }) {
        end(py)?;
    }
    Ok(())
}

/// `sys.settrace(function)` (ferrotrace's): another trace function, or none, replaces the
/// debugger's, as it would replace stock bdb's; the route ends with it.
pub fn on_settrace(function: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = function.py();
    let replaced = with_session(py, |s| {
        s.as_ref()
            .is_some_and(|s| s.core.as_ptr() != function.as_ptr())
    });
    if replaced {
        end(py)?;
    }
    Ok(())
}

fn session_core(py: Python<'_>) -> Option<(Py<DebuggerCore>, u8)> {
    with_session(py, |s| s.as_ref().map(|s| (s.core.clone_ref(py), s.tool)))
}

fn disable(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(handles()?.disable.clone_ref(py))
}

#[pyfunction]
pub fn _debugger_on_start(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    _offset: i64,
) -> PyResult<Py<PyAny>> {
    let Some((core, _)) = session_core(py) else {
        return disable(py);
    };
    if enable_lines_if_may_break(core.bind(py), code)? {
        Ok(py.None())
    } else {
        disable(py)
    }
}

#[pyfunction]
pub fn _debugger_on_line(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    line: i64,
) -> PyResult<Py<PyAny>> {
    let Some((core, _)) = session_core(py) else {
        return disable(py);
    };
    let core = core.bind(py);
    if !debugger::line_may_break(core, code, line)? {
        return disable(py);
    }
    // SAFETY: the GIL is held; in a monitoring callback the current frame is the monitored one.
    let raw_frame = unsafe { ffi::PyEval_GetFrame() };
    if raw_frame.is_null() {
        return Ok(py.None());
    }
    // SAFETY: a live frame (the monitored one); the GIL is held.
    let dispatch =
        unsafe { debugger::breakpoint_line_dispatch(core, raw_frame, code.as_ptr() as usize)? };
    // None: no breakpoint acts here; the line's events stay on for the next hit.
    let Some(dispatch) = dispatch else {
        return Ok(py.None());
    };
    // SAFETY: a live frame, borrowed for the call.
    let frame = unsafe { Bound::from_borrowed_ptr(py, raw_frame.cast()) };
    let outcome = dispatch.call1(py, (&frame, PyString::intern(py, "line"), py.None()));

    let (still_waiting, quitting, generation) = {
        let this = core.try_borrow()?;
        (
            this.breakpoints_only(),
            this.quitting_now(),
            this.breaks_generation(),
        )
    };
    if still_waiting && !quitting {
        if with_session(py, |s| s.as_ref().map(|s| s.breaks_generation)) != Some(generation) {
            refresh(py, generation)?;
        }
    } else {
        end(py)?;
        if !quitting {
            back_to_legacy(core, &frame)?;
        }
    }
    outcome.map(|_| py.None())
}

/// The user stepped at a breakpoint: the legacy hook again on this thread, the stopped frame
/// traced, and its callers traced where bdb's `call` would have traced them (files with
/// breakpoints).
fn back_to_legacy(core: &Bound<'_, DebuggerCore>, frame: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = core.py();
    legacy::set_trace(py, core.as_any())?;
    let mut current = Some(frame.clone());
    let mut first = true;
    while let Some(f) = current {
        let code = f.getattr("f_code")?;
        let raw = f.as_ptr().cast::<ffi::PyFrameObject>();
        // SAFETY: a live frame object we hold; the GIL is held.
        let untraced = unsafe { frame::f_trace(raw).is_null() };
        if untraced && (first || debugger::file_has_breaks(core, &code)?) {
            // SAFETY: as above; a new strong reference is given to the frame.
            unsafe {
                ffi::Py_INCREF(core.as_ptr());
                frame::replace_f_trace(raw, core.as_ptr());
            }
        }
        first = false;
        let back = f.getattr("f_back")?;
        current = (!back.is_none()).then_some(back);
    }
    Ok(())
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let on_start = wrap_pyfunction!(_debugger_on_start, module)?;
    let on_line = wrap_pyfunction!(_debugger_on_line, module)?;
    module.add_function(on_start.clone())?;
    module.add_function(on_line.clone())?;
    let sys = py.import("sys")?;
    let monitoring = sys.getattr("monitoring")?;
    let disable = monitoring.getattr("DISABLE")?;
    let _ = HANDLES.set(Handles {
        sys: sys.into_any().unbind(),
        monitoring: monitoring.unbind(),
        disable: disable.unbind(),
        on_start: on_start.into_any().unbind(),
        on_line: on_line.into_any().unbind(),
    });
    Ok(())
}
