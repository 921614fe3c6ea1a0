//! `DebuggerCore`: the native half of ferrotrace's debugger. It is the trace function a
//! `ferrotrace.debugger.Bdb` installs (its `trace_dispatch`), holds the mirror of bdb's
//! stepping state and breakpoint lines, and calls bdb's Python `trace_dispatch` only for the
//! events `crate::debug::decide` says could matter.
//!
//! ferrotrace's trampoline recognises the core and decides without any Python call
//! ([`intercept`]); called from any other trampoline (`sys.settrace` without `install()`) its
//! `__call__` makes the same decisions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString};
use pyo3::{PyTraverseError, PyTypeInfo, PyVisit};

use crate::api::breakpoint_hit::{self, BreakpointStop, Effective, NativeBreakpoints};
use crate::debug::{decide, BreakTable, Decision, Event, FrameFacts, StepState};
use crate::hook::addr_hash::AddrMap;
use crate::protocol::TraceEvent;

/// `CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR` (bdb's GENERATOR_AND_COROUTINE_FLAGS).
const GENERATOR_AND_COROUTINE_FLAGS: i64 = 0x20 | 0x80 | 0x200;

/// Events any core decided without calling Python, in this process (GIL-serialised).
/// `DebuggerCore`'s type object, stored at registration: the legacy trampoline compares every
/// event's trace function with it, and one relaxed load is cheaper than PyO3's lazy type lookup.
static CORE_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

static NATIVE_DECISIONS: AtomicU64 = AtomicU64::new(0);

/// Events any core saw, decided natively or delivered to Python (GIL-serialised).
static CORE_EVENTS: AtomicU64 = AtomicU64::new(0);

/// (events debugger cores saw, events they decided without Python) in this process, for
/// tests and the conformance runs.
#[pyfunction]
fn _debugger_event_counts() -> (u64, u64) {
    (
        CORE_EVENTS.load(Ordering::Relaxed),
        NATIVE_DECISIONS.load(Ordering::Relaxed),
    )
}

/// What the debugger needs of a code object, looked up once per breakpoint generation.
struct CodeFacts {
    /// Keeps the address from being reused by another code object while cached.
    _code: Py<PyAny>,
    canonic: String,
    /// `canonic` as the Python string bdb's `canonic` returned (the key of `Breakpoint.bplist`).
    canonic_object: Py<PyString>,
    first_lineno: i64,
    /// The last line the code spans (`co_lines()`), for "can a breakpoint be in it".
    #[cfg(Py_3_12)]
    last_lineno: i64,
    is_generator: bool,
    breaks_generation: u64,
    file_breaks: Option<Vec<i64>>,
}

/// DebuggerCore(dispatch, canonic)
/// --
///
/// The native decisions of a bdb debugger: `dispatch` is bdb's own `trace_dispatch` bound to
/// the debugger, `canonic` its `canonic`. Used as the debugger's trace function.
#[pyclass(module = "ferrotrace._native", name = "DebuggerCore")]
pub struct DebuggerCore {
    dispatch: Option<Py<PyAny>>,
    /// bdb's `trace_dispatch` for a `line` event only a breakpoint can stop at, without its
    /// per-event context manager (the debugger's `_ferrotrace_breakpoint_line`); None: use
    /// `dispatch`.
    breakpoint_line: Option<Py<PyAny>>,
    /// bdb's `effective` done natively at breakpoint lines (None: bdb's Python decides; taken
    /// out while a condition runs).
    native_breakpoints: Option<NativeBreakpoints>,
    canonic: Option<Py<PyAny>>,
    /// bdb's `skip` (module name patterns), as bdb set it, and whether it is non-empty.
    skip: Option<Py<PyAny>>,
    skip_active: bool,
    /// bdb's `is_skipped_module`, bound, and its answers by module name (the name string kept
    /// alive so that its address stays its own).
    skip_checker: Option<Py<PyAny>>,
    skipped_modules: HashMap<usize, (Py<PyAny>, bool)>,
    state: StepState,
    stopframe: Option<Py<PyAny>>,
    returnframe: Option<Py<PyAny>>,
    botframe: Option<Py<PyAny>>,
    breaks: BreakTable,
    /// Keyed by code object address (three lookups per event: not SipHash).
    codes: AddrMap<usize, CodeFacts>,
    /// 3.11: the debugger's route object (`start()`, `end(frame)`): while only breakpoints can
    /// stop the program, a ferrotrace `Tracer` (the PEP 523 route) on the functions that can
    /// hold one delivers this core's events instead of the legacy hook.
    #[cfg(not(Py_3_12))]
    route: Option<Py<PyAny>>,
    /// 3.11: the route's running Tracer and the breakpoint generation it was made for.
    #[cfg(not(Py_3_12))]
    route_tracer: Option<(Py<PyAny>, u64)>,
    /// 3.11: the breakpoint generation for which the route declined to start (a breakpoint
    /// line in a running frame): not asked again, at every event, until breakpoints change.
    #[cfg(not(Py_3_12))]
    route_declined: Option<u64>,
    /// The `threading` module, while this core is its hook for new threads.
    thread_hook: Option<Py<PyAny>>,
    /// The thread that last set `stopframe` (a stepping command); None until then.
    stepping_thread: Option<u64>,
    /// Events decided natively and not delivered (for tests and the benchmark's sanity check).
    skipped: u64,
}

fn current_thread() -> u64 {
    // SAFETY: always safe to call.
    unsafe { ffi::PyThread_get_thread_ident() as u64 }
}

fn optional_frame(value: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
    (!value.is_none()).then(|| value.clone().unbind())
}

#[pymethods]
impl DebuggerCore {
    #[new]
    fn new(dispatch: Py<PyAny>, canonic: Py<PyAny>) -> Self {
        DebuggerCore {
            dispatch: Some(dispatch),
            breakpoint_line: None,
            native_breakpoints: None,
            canonic: Some(canonic),
            skip: None,
            skip_active: false,
            skip_checker: None,
            skipped_modules: HashMap::new(),
            state: StepState::default(),
            stopframe: None,
            returnframe: None,
            botframe: None,
            breaks: BreakTable::default(),
            codes: AddrMap::default(),
            stepping_thread: None,
            thread_hook: None,
            #[cfg(not(Py_3_12))]
            route: None,
            #[cfg(not(Py_3_12))]
            route_tracer: None,
            #[cfg(not(Py_3_12))]
            route_declined: None,
            skipped: 0,
        }
    }

    #[getter]
    fn stopframe(&self, py: Python<'_>) -> Py<PyAny> {
        self.stopframe
            .as_ref()
            .map_or_else(|| py.None(), |f| f.clone_ref(py))
    }

    #[setter]
    fn set_stopframe(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.state.stopframe_set = !value.is_none();
        self.state.stopframe_is_generator = if value.is_none() {
            false
        } else {
            let flags: i64 = value.getattr("f_code")?.getattr("co_flags")?.extract()?;
            flags & GENERATOR_AND_COROUTINE_FLAGS != 0
        };
        self.stopframe = optional_frame(value);
        self.stepping_thread = Some(current_thread());
        Ok(())
    }

    #[getter]
    fn returnframe(&self, py: Python<'_>) -> Py<PyAny> {
        self.returnframe
            .as_ref()
            .map_or_else(|| py.None(), |f| f.clone_ref(py))
    }

    #[setter]
    fn set_returnframe(&mut self, value: &Bound<'_, PyAny>) {
        self.returnframe = optional_frame(value);
    }

    #[getter]
    fn botframe(&self, py: Python<'_>) -> Py<PyAny> {
        self.botframe
            .as_ref()
            .map_or_else(|| py.None(), |f| f.clone_ref(py))
    }

    #[setter]
    fn set_botframe(&mut self, value: &Bound<'_, PyAny>) {
        self.state.botframe_set = !value.is_none();
        self.botframe = optional_frame(value);
    }

    #[getter]
    fn skip(&self, py: Python<'_>) -> Py<PyAny> {
        self.skip
            .as_ref()
            .map_or_else(|| py.None(), |s| s.clone_ref(py))
    }

    #[setter]
    fn set_skip(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.skip_active = value.is_truthy()?;
        self.skip = Some(value.clone().unbind());
        self.skipped_modules.clear();
        Ok(())
    }

    /// bdb's `is_skipped_module`, bound: asked once per module name while `skip` is set.
    fn set_skip_checker(&mut self, checker: Py<PyAny>) {
        self.skip_checker = Some(checker);
        self.skipped_modules.clear();
    }

    #[getter]
    fn stoplineno(&self) -> i64 {
        self.state.stoplineno
    }

    #[setter]
    fn set_stoplineno(&mut self, value: i64) {
        self.state.stoplineno = value;
    }

    #[getter]
    fn quitting(&self) -> bool {
        self.state.quitting
    }

    #[setter]
    fn set_quitting(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        let hooked = {
            let mut this = slf.try_borrow_mut()?;
            this.state.quitting = value;
            if value {
                this.thread_hook.take()
            } else {
                None
            }
        };
        #[cfg(Py_3_12)]
        if value {
            crate::hook::debugger_monitoring::end_for(slf)?;
        }
        #[cfg(not(Py_3_12))]
        if value {
            route_stop(slf)?;
        }
        // Natively, as `threading.settrace(None)` would: no Python frame while tracing is on.
        if let Some(threading) = hooked {
            let threading = threading.bind(slf.py());
            let hook = pyo3::intern!(slf.py(), "_trace_hook");
            if threading.getattr(hook)?.is(slf) {
                threading.setattr(hook, slf.py().None())?;
            }
        }
        Ok(())
    }

    /// `threading` had this core set as the hook of new threads: remove it at `quitting`.
    fn unhook_threads_on_quit(&mut self, threading: Py<PyAny>) {
        self.thread_hook = Some(threading);
    }

    /// How much the Python subclass lets the core decide: `python_decides` when it overrides
    /// bdb's dispatch or stop/break predicates, `user_call_observes` when its `user_call`
    /// acts on calls it does not stop at.
    fn set_policy(&mut self, python_decides: bool, user_call_observes: bool) {
        self.state.python_decides = python_decides;
        self.state.user_call_observes = user_call_observes;
    }

    /// What to call for a `line` event that only a breakpoint can stop at (same arguments and
    /// effects as bdb's `trace_dispatch` for it).
    fn set_breakpoint_line(&mut self, function: Py<PyAny>) {
        self.breakpoint_line = Some(function);
    }

    /// Lets the core do bdb's `effective` natively at breakpoint lines: bdb's module dict, its
    /// `effective` and `checkfuncname` (if the module's change, bdb's Python decides),
    /// `bdb.Breakpoint`, and the debugger's `_ferrotrace_breakpoint_stop(frame, bp, flag)`.
    fn set_native_breakpoints(
        &mut self,
        bdb_globals: Py<PyDict>,
        effective: Py<PyAny>,
        checkfuncname: Py<PyAny>,
        breakpoint_class: Py<PyAny>,
        finisher: Py<PyAny>,
    ) {
        self.native_breakpoints = Some(NativeBreakpoints::new(
            bdb_globals,
            effective,
            checkfuncname,
            breakpoint_class,
            finisher,
        ));
    }

    /// Replaces the breakpoint lines with bdb's `breaks` ({canonic file: [line, ...]}).
    fn set_breaks(&mut self, breaks: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut files = Vec::with_capacity(breaks.len());
        for (file, lines) in breaks.iter() {
            files.push((file.extract::<String>()?, lines.extract::<Vec<i64>>()?));
        }
        self.breaks.replace(files);
        Ok(())
    }

    /// Whether only breakpoints can stop the program now (`continue`).
    #[getter]
    fn only_breakpoints(&self) -> bool {
        self.state.only_breakpoints()
    }

    /// Events the core decided without calling Python.
    #[getter]
    fn skipped_events(&self) -> u64 {
        self.skipped
    }

    /// Forgets cached code facts (bdb's `reset`: file names may mean other files now).
    fn forget_code(&mut self) {
        self.codes.clear();
    }

    fn __call__(
        slf: &Bound<'_, Self>,
        frame: &Bound<'_, PyAny>,
        event: &str,
        arg: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let event = match event {
            "call" => Event::Call,
            "line" => Event::Line,
            "return" => Event::Return,
            "exception" => Event::Exception,
            "opcode" => Event::Opcode,
            _ => return Ok(slf.clone().into_any().unbind()),
        };
        // SAFETY: a type check on a live object.
        if unsafe { ffi::PyFrame_Check(frame.as_ptr()) } == 0 {
            return Err(PyValueError::new_err("DebuggerCore: not a frame"));
        }
        // SAFETY: a live frame object (checked above), the GIL held.
        unsafe { call_core(slf, frame, event, arg) }
    }

    /// 3.11: the object whose `start()` moves this core onto a Tracer while it only waits for
    /// breakpoints and whose `end(frame)` brings it back to the legacy hook.
    #[cfg(not(Py_3_12))]
    fn set_route(&mut self, route: Py<PyAny>) {
        self.route = Some(route);
    }

    /// 3.11: the Tracer the route started (None: stopped), for the current breakpoints.
    #[cfg(not(Py_3_12))]
    #[pyo3(signature = (tracer, /))]
    fn set_route_tracer(&mut self, tracer: Option<Py<PyAny>>) {
        let generation = self.breaks.generation();
        self.route_tracer = tracer.map(|t| (t, generation));
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        #[cfg(not(Py_3_12))]
        for object in [
            self.route.as_ref(),
            self.route_tracer.as_ref().map(|(t, _)| t),
        ]
        .into_iter()
        .flatten()
        {
            visit.call(object)?;
        }
        if let Some(native) = &self.native_breakpoints {
            for object in native.objects() {
                visit.call(object)?;
            }
            visit.call(native.finisher())?;
        }
        for object in [
            &self.dispatch,
            &self.breakpoint_line,
            &self.canonic,
            &self.skip,
            &self.skip_checker,
            &self.stopframe,
            &self.returnframe,
            &self.botframe,
            &self.thread_hook,
        ]
        .into_iter()
        .flatten()
        {
            visit.call(object)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.dispatch = None;
        self.breakpoint_line = None;
        self.native_breakpoints = None;
        self.canonic = None;
        self.skip = None;
        self.skip_checker = None;
        self.skipped_modules.clear();
        self.stopframe = None;
        self.returnframe = None;
        self.botframe = None;
        self.thread_hook = None;
        #[cfg(not(Py_3_12))]
        {
            self.route = None;
            self.route_tracer = None;
        }
        self.codes.clear();
    }
}

impl DebuggerCore {
    /// The cached facts of a code object, with its breakpoint lines brought up to date.
    fn current_facts(&mut self, key: usize) -> Option<&CodeFacts> {
        let generation = self.breaks.generation();
        let facts = self.codes.get_mut(&key)?;
        if facts.breaks_generation != generation {
            facts.file_breaks = self.breaks.lines(&facts.canonic).map(<[i64]>::to_vec);
            facts.breaks_generation = generation;
        }
        self.codes.get(&key)
    }

    /// Only breakpoints can stop the program, and nothing else of bdb's needs events: the
    /// `sys.monitoring` route may take over (`crate::hook::debugger_monitoring`).
    pub(crate) fn breakpoints_only(&self) -> bool {
        self.state.only_breakpoints()
            && !self.state.user_call_observes
            && !self.state.stopframe_is_generator
            && self.returnframe.is_none()
            && !self.breaks.is_empty()
    }

    #[cfg(Py_3_12)]
    pub(crate) fn quitting_now(&self) -> bool {
        self.state.quitting
    }

    #[cfg(Py_3_12)]
    pub(crate) fn breaks_generation(&self) -> u64 {
        self.breaks.generation()
    }

    /// What to call for a `line` event at a breakpoint when bdb's `stop_here` is false and the
    /// core does not decide it.
    fn breakpoint_dispatch(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.breakpoint_line
            .as_ref()
            .or(self.dispatch.as_ref())
            .map(|d| d.clone_ref(py))
    }

    fn count_native_decision(&mut self) {
        self.skipped += 1;
        NATIVE_DECISIONS.store(
            NATIVE_DECISIONS.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// The core as a trace function (its `__call__`, and the Tracer route's direct call on 3.11).
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
unsafe fn call_core(
    slf: &Bound<'_, DebuggerCore>,
    frame: &Bound<'_, PyAny>,
    event: Event,
    arg: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    let decision = decide_for(slf, frame.as_ptr().cast(), event)?;
    match decision {
        Intercept::Deliver(dispatch) => {
            let name = pyo3::types::PyString::intern(py, trace_event(event).name());
            // As ferrotrace's trampoline does on 3.11: edits pdb makes through f_locals
            // (`!x = 1`) are written back, also when a Tracer delivers the event.
            #[cfg(not(Py_3_13))]
            let raw = frame.as_ptr().cast::<ffi::PyFrameObject>();
            // SAFETY: a live frame; the GIL is held.
            #[cfg(not(Py_3_13))]
            unsafe {
                if crate::bindings::frame::fast_as_locals(raw)
                    && ffi::PyFrame_FastToLocalsWithError(raw) < 0
                {
                    return Err(PyErr::fetch(py));
                }
            }
            let result = dispatch.call1(py, (frame, name, arg));
            // SAFETY: as above.
            #[cfg(not(Py_3_13))]
            unsafe {
                if crate::bindings::frame::fast_as_locals(raw) {
                    ffi::PyFrame_LocalsToFast(raw, 1);
                }
            }
            let result = result?;
            #[cfg(not(Py_3_12))]
            route_after_stop(slf, frame)?;
            Ok(result)
        }
        Intercept::KeepTracing => Ok(slf.clone().into_any().unbind()),
        Intercept::NoLocalTracing => Ok(py.None()),
    }
}

/// If `receiver` is a `DebuggerCore`, calls it as a trace function without a Python call (a
/// Tracer delivering to it: the 3.11 route); None: not a core.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
pub unsafe fn call_if_core(
    receiver: &Bound<'_, PyAny>,
    frame: &Bound<'_, PyAny>,
    event: TraceEvent,
    arg: &Bound<'_, PyAny>,
) -> Option<PyResult<Py<PyAny>>> {
    if ffi::Py_TYPE(receiver.as_ptr()) != CORE_TYPE.load(Ordering::Relaxed) {
        return None;
    }
    let event = core_event(event)?;
    // SAFETY: the type was checked above.
    let core = receiver.cast_unchecked::<DebuggerCore>();
    Some(call_core(core, frame, event, arg))
}

/// 3.11, after bdb's Python ran on an event the route's Tracer delivered: the user stepped
/// (back to the legacy hook), or changed breakpoints (the route starts again for them).
#[cfg(not(Py_3_12))]
fn route_after_stop(core: &Bound<'_, DebuggerCore>, frame: &Bound<'_, PyAny>) -> PyResult<()> {
    let (route, running, waiting, generation) = {
        let this = core.try_borrow()?;
        (
            this.route.as_ref().map(|r| r.clone_ref(core.py())),
            this.route_tracer.as_ref().map(|(_, g)| *g),
            this.breakpoints_only(),
            this.breaks.generation(),
        )
    };
    let (Some(route), Some(route_generation)) = (route, running) else {
        return Ok(());
    };
    if !waiting {
        route.call_method1(core.py(), "end", (frame,))?;
    } else if route_generation != generation {
        route.call_method0(core.py(), "start")?;
    }
    Ok(())
}

/// 3.11, from the legacy trampoline: the core only waits for breakpoints, so the route takes
/// over (once; other threads just drop their legacy hook).
#[cfg(not(Py_3_12))]
fn route_take_over(core: &Bound<'_, DebuggerCore>) -> PyResult<()> {
    let py = core.py();
    let (route, running, generation) = {
        let this = core.try_borrow()?;
        (
            this.route.as_ref().map(|r| r.clone_ref(py)),
            this.route_tracer.as_ref().map(|(_, g)| *g),
            this.breaks.generation(),
        )
    };
    let Some(route) = route else { return Ok(()) };
    if running == Some(generation) {
        return crate::hook::legacy::set_trace(py, &py.None().into_bound(py));
    }
    if core.try_borrow()?.route_declined == Some(generation) {
        return Ok(());
    }
    route.call_method0(py, "start")?;
    let mut this = core.try_borrow_mut()?;
    if this.route_tracer.is_none() {
        this.route_declined = Some(generation);
    }
    Ok(())
}

/// 3.11: stops the route's Tracer natively (`quitting`: no Python frame while tracing is on).
#[cfg(not(Py_3_12))]
fn route_stop(core: &Bound<'_, DebuggerCore>) -> PyResult<()> {
    let tracer = core.try_borrow_mut()?.route_tracer.take();
    if let Some((tracer, _)) = tracer {
        tracer.call_method0(core.py(), "stop")?;
    }
    Ok(())
}

/// The debugger's view of a trace event (None: a C event, which bdb never asks for).
fn core_event(event: TraceEvent) -> Option<Event> {
    match event {
        TraceEvent::Call => Some(Event::Call),
        TraceEvent::Line => Some(Event::Line),
        TraceEvent::Return => Some(Event::Return),
        TraceEvent::Exception => Some(Event::Exception),
        TraceEvent::Opcode => Some(Event::Opcode),
        _ => None,
    }
}

fn trace_event(event: Event) -> TraceEvent {
    match event {
        Event::Call => TraceEvent::Call,
        Event::Line => TraceEvent::Line,
        Event::Return => TraceEvent::Return,
        Event::Exception => TraceEvent::Exception,
        Event::Opcode => TraceEvent::Opcode,
    }
}

/// The core's answer for one event, ready for a trampoline.
pub enum Intercept {
    /// Call this (bdb's Python `trace_dispatch`) as the trace function.
    Deliver(Py<PyAny>),
    /// Nothing to call; the frame's local function is (or becomes, on `call`) the core.
    KeepTracing,
    /// `call` only: leave the frame untraced.
    NoLocalTracing,
}

/// If `callback` is a `DebuggerCore`, decides the event natively (None: not a core).
///
/// # Safety
/// `callback` and `frame` are live objects and the GIL is held.
#[inline(always)]
pub unsafe fn intercept(
    py: Python<'_>,
    callback: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    event: TraceEvent,
) -> Option<PyResult<Intercept>> {
    // Inlined into the trampoline: every event of every settrace user pays only this compare.
    if ffi::Py_TYPE(callback) != CORE_TYPE.load(Ordering::Relaxed) {
        return None;
    }
    Some(intercept_core(py, callback, frame, event))
}

/// [`intercept`] for a `callback` that is a `DebuggerCore`.
///
/// # Safety
/// As [`intercept`], and `callback`'s type is `DebuggerCore`.
#[inline(never)]
unsafe fn intercept_core(
    py: Python<'_>,
    callback: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    event: TraceEvent,
) -> PyResult<Intercept> {
    let Some(event) = core_event(event) else {
        return Ok(Intercept::KeepTracing);
    };
    let core = Bound::from_borrowed_ptr(py, callback);
    // SAFETY: the type was checked above.
    let core = core.cast_unchecked::<DebuggerCore>();
    let decided = decide_for(core, frame, event);
    // Continuing with breakpoints: sys.monitoring takes over, so that code without
    // breakpoints runs with no hook at all.
    if matches!(
        decided,
        Ok(Intercept::KeepTracing | Intercept::NoLocalTracing)
    ) && core.try_borrow().is_ok_and(|c| c.breakpoints_only())
    {
        #[cfg(Py_3_12)]
        let taken = crate::hook::debugger_monitoring::take_over(core);
        #[cfg(not(Py_3_12))]
        let taken = route_take_over(core);
        taken?;
    }
    decided
}

/// The last line `code` spans.
#[cfg(Py_3_12)]
fn last_line(code: &Bound<'_, PyAny>, first_lineno: i64) -> PyResult<i64> {
    let mut last = first_lineno;
    for entry in code.call_method0("co_lines")?.try_iter()? {
        if let Ok((_, _, Some(line))) = entry?.extract::<(i64, i64, Option<i64>)>() {
            last = last.max(line);
        }
    }
    Ok(last)
}

/// Whether a breakpoint can be in `code` (one of its lines, or its first line for a breakpoint
/// by function name).
#[cfg(Py_3_12)]
pub(crate) fn code_may_break(
    core: &Bound<'_, DebuggerCore>,
    code: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    ensure_code_facts(core, code)?;
    let mut this = core.try_borrow_mut()?;
    let Some(facts) = this.current_facts(code.as_ptr() as usize) else {
        return Ok(false);
    };
    let (first, last) = (facts.first_lineno, facts.last_lineno);
    Ok(facts
        .file_breaks
        .as_deref()
        .is_some_and(|lines| lines.iter().any(|&l| first <= l && l <= last)))
}

/// Whether bdb's `break_here` may say yes at `line` of `code` (before `effective()`).
#[cfg(Py_3_12)]
pub(crate) fn line_may_break(
    core: &Bound<'_, DebuggerCore>,
    code: &Bound<'_, PyAny>,
    line: i64,
) -> PyResult<bool> {
    ensure_code_facts(core, code)?;
    let mut this = core.try_borrow_mut()?;
    let Some(facts) = this.current_facts(code.as_ptr() as usize) else {
        return Ok(false);
    };
    let first = facts.first_lineno;
    Ok(facts
        .file_breaks
        .as_deref()
        .is_some_and(|lines| lines.contains(&line) || lines.contains(&first)))
}

/// Whether `code`'s file has breakpoints (bdb's `break_anywhere`).
#[cfg(Py_3_12)]
pub(crate) fn file_has_breaks(
    core: &Bound<'_, DebuggerCore>,
    code: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    ensure_code_facts(core, code)?;
    let mut this = core.try_borrow_mut()?;
    Ok(this
        .current_facts(code.as_ptr() as usize)
        .is_some_and(|facts| facts.file_breaks.is_some()))
}

/// # Safety
/// `frame` is a live frame object and the GIL is held.
unsafe fn decide_for(
    core: &Bound<'_, DebuggerCore>,
    frame: *mut ffi::PyFrameObject,
    event: Event,
) -> PyResult<Intercept> {
    let py = core.py();
    CORE_EVENTS.store(
        CORE_EVENTS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    let code_ptr = ffi::PyFrame_GetCode(frame);
    if code_ptr.is_null() {
        return Err(PyErr::fetch(py));
    }
    let code = Bound::from_owned_ptr(py, code_ptr.cast());
    let key = code.as_ptr() as usize;
    let lineno = i64::from(ffi::PyFrame_GetLineNumber(frame));
    let frame_addr = frame as usize;

    ensure_code_facts(core, &code)?;
    let module_skipped = module_skipped(core, frame)?;
    let mut guard = core.try_borrow_mut()?;
    if guard.current_facts(key).is_none() {
        return Ok(Intercept::KeepTracing);
    }
    let this = &mut *guard;
    let Some(facts) = this.codes.get(&key) else {
        return Ok(Intercept::KeepTracing);
    };
    let is = |slot: &Option<Py<PyAny>>| {
        slot.as_ref()
            .is_some_and(|f| f.as_ptr() as usize == frame_addr)
    };
    let frame_facts = FrameFacts {
        is_stopframe: is(&this.stopframe),
        is_returnframe: is(&this.returnframe),
        lineno,
        first_lineno: facts.first_lineno,
        is_generator: facts.is_generator,
        file_breaks: facts.file_breaks.as_deref(),
        other_thread: this
            .stepping_thread
            .is_some_and(|thread| thread != current_thread()),
        module_skipped,
    };
    let decision = decide(&this.state, event, &frame_facts);
    if decision == Decision::DeliverBreakpointLine {
        drop(guard);
        return Ok(match breakpoint_line_dispatch(core, frame, key)? {
            Some(dispatch) => Intercept::Deliver(dispatch),
            None => Intercept::KeepTracing,
        });
    }
    Ok(match decision {
        Decision::Deliver => match &this.dispatch {
            Some(dispatch) => Intercept::Deliver(dispatch.clone_ref(py)),
            None => Intercept::KeepTracing,
        },
        // Decided above, with no borrow held.
        Decision::DeliverBreakpointLine => Intercept::KeepTracing,
        Decision::KeepTracing => {
            this.count_native_decision();
            Intercept::KeepTracing
        }
        Decision::NoLocalTracing => {
            this.count_native_decision();
            Intercept::NoLocalTracing
        }
    })
}

/// A `line` event at a breakpoint line where bdb's `stop_here` is false: bdb's `effective`
/// natively. None: no breakpoint acts, so bdb's `dispatch_line` would do nothing more (and
/// none of its Python runs); else the trace function to call for the event.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
pub(crate) unsafe fn breakpoint_line_dispatch(
    core: &Bound<'_, DebuggerCore>,
    frame: *mut ffi::PyFrameObject,
    code_key: usize,
) -> PyResult<Option<Py<PyAny>>> {
    let py = core.py();
    let lineno = i64::from(ffi::PyFrame_GetLineNumber(frame));
    let (native, canonic, line, fallback) = {
        let mut this = core.try_borrow_mut()?;
        let fallback = this.breakpoint_dispatch(py);
        let Some(facts) = this.current_facts(code_key) else {
            return Ok(fallback);
        };
        // bdb's `break_here`: the line's breakpoints, else the function's first line's.
        let line = if facts
            .file_breaks
            .as_deref()
            .is_some_and(|lines| lines.contains(&lineno))
        {
            lineno
        } else {
            facts.first_lineno
        };
        let canonic = facts.canonic_object.clone_ref(py);
        (this.native_breakpoints.take(), canonic, line, fallback)
    };
    let Some(mut native) = native else {
        return Ok(fallback);
    };
    // Python runs here (the condition): no borrow held.
    let outcome = breakpoint_hit::effective(py, &mut native, canonic.bind(py), line, frame);
    let finisher = native.finisher().clone_ref(py);
    {
        let mut this = core.try_borrow_mut()?;
        if this.native_breakpoints.is_none() {
            this.native_breakpoints = Some(native);
        }
    }
    match outcome? {
        Effective::Nothing => {
            core.try_borrow_mut()?.count_native_decision();
            Ok(None)
        }
        Effective::Python => Ok(fallback),
        Effective::Stop(breakpoint, delete_temporary) => Ok(Some(
            Py::new(
                py,
                BreakpointStop::new(finisher, breakpoint, delete_temporary),
            )?
            .into_any(),
        )),
    }
}

/// Whether the frame's module (`f_globals['__name__']`) is one bdb's `skip` patterns exclude,
/// asked of bdb's `is_skipped_module` once per module name; false while `skip` is empty.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
unsafe fn module_skipped(
    core: &Bound<'_, DebuggerCore>,
    frame: *mut ffi::PyFrameObject,
) -> PyResult<bool> {
    let py = core.py();
    let checker = {
        let this = core.try_borrow()?;
        if !this.skip_active {
            return Ok(false);
        }
        match &this.skip_checker {
            Some(checker) => checker.clone_ref(py),
            None => return Ok(false),
        }
    };
    let globals = ffi::PyFrame_GetGlobals(frame);
    if globals.is_null() {
        return Err(PyErr::fetch(py));
    }
    let globals = Bound::from_owned_ptr(py, globals);
    let name = match globals.cast::<PyDict>() {
        Ok(dict) => dict.get_item(pyo3::intern!(py, "__name__"))?,
        Err(_) => None,
    };
    let Some(name) = name.filter(|n| n.is_instance_of::<pyo3::types::PyString>()) else {
        // bdb asks about None (no name): the checker decides, uncached.
        return checker.bind(py).call1((py.None(),))?.is_truthy();
    };
    let key = name.as_ptr() as usize;
    if let Some(&(_, skipped)) = core.try_borrow()?.skipped_modules.get(&key) {
        return Ok(skipped);
    }
    // Python runs here (a subclass may override is_skipped_module): no borrow held.
    let skipped = checker.bind(py).call1((&name,))?.is_truthy()?;
    let replaced = core
        .try_borrow_mut()?
        .skipped_modules
        .insert(key, (name.unbind(), skipped));
    drop(replaced);
    Ok(skipped)
}

/// Looks up (once per code object) what the decisions need of `code`; runs the debugger's
/// Python `canonic`, so no borrow of the core is held here.
fn ensure_code_facts(core: &Bound<'_, DebuggerCore>, code: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = core.py();
    let key = code.as_ptr() as usize;
    let needs_facts = {
        let this = core.try_borrow()?;
        !this.codes.contains_key(&key)
    };
    if needs_facts {
        // Python runs here (bdb's `canonic`, which a subclass may override): no borrow held.
        let canonic_fn = core.try_borrow()?.canonic.as_ref().map(|c| c.clone_ref(py));
        let Some(canonic_fn) = canonic_fn else {
            return Ok(());
        };
        let filename = code.getattr("co_filename")?;
        let canonic_object = canonic_fn
            .call1(py, (filename,))?
            .into_bound(py)
            .cast_into::<PyString>()?;
        let canonic: String = canonic_object.extract()?;
        let first_lineno: i64 = code.getattr("co_firstlineno")?.extract()?;
        let flags: i64 = code.getattr("co_flags")?.extract()?;
        #[cfg(Py_3_12)]
        let last_lineno = last_line(code, first_lineno)?;
        let facts = CodeFacts {
            _code: code.clone().unbind(),
            canonic,
            canonic_object: canonic_object.unbind(),
            first_lineno,
            #[cfg(Py_3_12)]
            last_lineno,
            is_generator: flags & GENERATOR_AND_COROUTINE_FLAGS != 0,
            breaks_generation: u64::MAX,
            file_breaks: None,
        };
        let replaced = core.try_borrow_mut()?.codes.insert(key, facts);
        drop(replaced);
    }
    Ok(())
}

/// CoreField(name)
/// --
///
/// A data descriptor for a bdb attribute kept in the instance's `DebuggerCore` (`stopframe`,
/// `returnframe`, `botframe`, `stoplineno`, `quitting`), or `trace_dispatch` (the core itself).
/// Native, so that bdb assigning the attribute while tracing is on runs no Python frame that
/// the debugger would see, exactly as a plain attribute.
#[pyclass(module = "ferrotrace._native", name = "CoreField", frozen)]
pub struct CoreField {
    name: Py<pyo3::types::PyString>,
}

/// The instance's core: `__dict__['_ferrotrace_core_object']`, made on first use by the
/// class's `_ferrotrace_make_core()`.
fn core_of<'py>(instance: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = instance.py();
    let dict = instance.getattr(pyo3::intern!(py, "__dict__"))?;
    if let Some(core) = dict
        .cast::<PyDict>()?
        .get_item(pyo3::intern!(py, "_ferrotrace_core_object"))?
    {
        return Ok(core);
    }
    instance.call_method0(pyo3::intern!(py, "_ferrotrace_make_core"))
}

#[pymethods]
impl CoreField {
    #[new]
    fn new(name: Bound<'_, pyo3::types::PyString>) -> Self {
        CoreField {
            name: name.unbind(),
        }
    }

    fn __get__(
        slf: &Bound<'_, Self>,
        instance: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let Some(instance) = instance.filter(|i| !i.is_none()) else {
            return Ok(slf.clone().into_any().unbind());
        };
        let core = core_of(instance)?;
        let name = slf.get().name.bind(slf.py());
        if name.to_str()? == "trace_dispatch" {
            return Ok(core.unbind());
        }
        Ok(core.getattr(name)?.unbind())
    }

    fn __set__(&self, instance: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = self.name.bind(instance.py());
        if name.to_str()? == "trace_dispatch" {
            return Err(pyo3::exceptions::PyAttributeError::new_err(
                "trace_dispatch is the debugger's native core and cannot be replaced",
            ));
        }
        core_of(instance)?.setattr(name, value)
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<DebuggerCore>()?;
    CORE_TYPE.store(
        DebuggerCore::type_object_raw(module.py()),
        Ordering::Relaxed,
    );
    module.add_class::<CoreField>()?;
    #[cfg(Py_3_12)]
    crate::hook::debugger_monitoring::register(module)?;
    module.add_function(wrap_pyfunction!(_debugger_event_counts, module)?)
}
