//! The `sys.monitoring` route (3.12+) for filtered tracers: code that no tracer wants costs one
//! `PY_START` callback, after which that code location is `DISABLE`d; code that a tracer wants
//! gets local events, which are turned into exactly the events `sys.settrace` would deliver
//! for it, following CPython's own translation in `Python/legacy_tracing.c`.
//!
//! Each tracer keeps its own local trace functions (what its callback returned on `call`) in a
//! table keyed by frame, so that several tracers, `sys.settrace` and other `sys.monitoring`
//! tools never share `frame.f_trace`.

use std::cell::RefCell;
use std::ffi::c_int;
use std::sync::{LazyLock, OnceLock};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple};

use crate::bindings::frame;
use crate::filter::{CodeInfo, Environment, Filter};
use crate::hook::addr_hash::AddrMap;
use crate::hook::backend::NotStarted;
use crate::hook::consumer::{self, with_consumers, Consumer, Sink};
use crate::hook::decision::{
    code_names, depth_scope, environment_to_add, retain_thread_consumers, NO_ENVIRONMENT,
};
use crate::hook::delivery::{self, EventFrame};
use crate::hook::fastcall;
use crate::hook::monitoring_record::{self, record_cached, record_cached_unwind};
use crate::hook::record_sink::{now_ns, record_kind, LineSource, Missing, Occurrence};
use crate::protocol::TraceEvent;
use crate::record::EventKind;

// `sys.monitoring.events` bits (stable since 3.12).
const PY_START: u32 = 1;
const PY_RESUME: u32 = 2;
const PY_RETURN: u32 = 4;
const PY_YIELD: u32 = 8;
const LINE: u32 = 32;
const INSTRUCTION: u32 = 64;
const JUMP: u32 = 128;
const STOP_ITERATION: u32 = 512;
const RAISE: u32 = 1024;
const PY_UNWIND: u32 = 4096;
const PY_THROW: u32 = 8192;

/// Discovers code objects, at a start or (for a generator or coroutine created earlier) a
/// resume; both are `DISABLE`d for code no tracer wants.
const DISCOVERY_EVENTS: u32 = PY_START | PY_RESUME;
/// Events that exist only globally, so they fire for all code and the callbacks filter them by
/// code object: switched on only once some code is wanted, so that a filter matching nothing
/// costs nothing even in exception-heavy programs.
const GLOBAL_EVENTS: u32 = DISCOVERY_EVENTS | RAISE | PY_UNWIND | PY_THROW;
/// Events switched on per code object, for code some tracer wants.
const LOCAL_EVENTS: u32 = PY_RESUME | PY_RETURN | PY_YIELD | LINE | JUMP | STOP_ITERATION;

struct CodeEntry {
    /// Keeps the address from being reused by another code object while the entry lives.
    _code: Py<PyAny>,
    /// Which consumers (by id) want this code.
    wanted_by: Vec<u64>,
    local_events: u32,
}

struct Engine {
    tool: Option<u8>,
    /// The global events switched on once some code was wanted (0 before: only
    /// `DISCOVERY_EVENTS`); see `global_events_wanted`.
    global_events: u32,
    codes: AddrMap<usize, CodeEntry>,
    environment: Option<Environment>,
}

/// The engine is only touched with the GIL held (it is not built for free-threaded Python), and
/// no Python code runs while it is borrowed, so the RefCell never sees a second borrow. That
/// includes destructors: Python objects leave the engine by being returned from the closure
/// and are released after the borrow ends.
struct GilCell(RefCell<Engine>);
// SAFETY: every access goes through `with_engine`, which requires the GIL.
unsafe impl Sync for GilCell {}

static ENGINE: LazyLock<GilCell> = LazyLock::new(|| {
    GilCell(RefCell::new(Engine {
        tool: None,
        global_events: 0,
        codes: AddrMap::default(),
        environment: None,
    }))
});

fn with_engine<R>(_py: Python<'_>, f: impl FnOnce(&mut Engine) -> R) -> R {
    f(&mut ENGINE.0.borrow_mut())
}

/// `sys.monitoring` and its `DISABLE`, looked up once: an import from inside a callback would go
/// through the traced frame's `__builtins__`, which code run by `eval` may not have.
static MONITORING: OnceLock<(Py<PyAny>, Py<PyAny>)> = OnceLock::new();

fn monitoring_and_disable(py: Python<'_>) -> PyResult<&'static (Py<PyAny>, Py<PyAny>)> {
    if let Some(cached) = MONITORING.get() {
        return Ok(cached);
    }
    let monitoring = py.import("sys")?.getattr("monitoring")?;
    let disable = monitoring.getattr("DISABLE")?;
    Ok(MONITORING.get_or_init(|| (monitoring.unbind(), disable.unbind())))
}

fn monitoring(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    Ok(monitoring_and_disable(py)?.0.bind(py).clone())
}

/// Adds a consumer; the first one claims a `sys.monitoring` tool id and registers callbacks.
pub fn add_consumer(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    consumer: Consumer,
) -> Result<(), NotStarted> {
    if let Err(error) = claim_tool_once(py, module, &consumer.filter) {
        return Err(NotStarted {
            error,
            consumer: Some(Box::new(consumer)),
        });
    }
    let id = consumer.id;
    consumer::register(py, consumer);
    // Decisions depend on the set of consumers: decide again.
    let stale_decisions = with_engine(py, |engine| std::mem::take(&mut engine.codes));
    drop(stale_decisions);
    if let Err(error) = restart_events(py) {
        let consumer = remove_consumer(py, id).ok().flatten().map(Box::new);
        return Err(NotStarted { error, consumer });
    }
    Ok(())
}

/// The first consumer claims a tool id and registers the callbacks; the first one whose
/// `filter` selects the user's code while the tool is held asks for the library environment.
fn claim_tool_once(py: Python<'_>, module: &Bound<'_, PyModule>, filter: &Filter) -> PyResult<()> {
    let (tool, known) = with_engine(py, |engine| (engine.tool, engine.environment.is_some()));
    // An id another tool has taken since is left to it: ferrotrace claims another one.
    let needs_tool = match tool {
        Some(tool) => !holds_tool(py, tool)?,
        None => true,
    };
    if let Some(environment) = environment_to_add(py, filter, known)? {
        with_engine(py, |engine| engine.environment = Some(environment));
    }
    if needs_tool {
        let tool = claim_tool(py)?;
        register_callbacks(py, module, tool)?;
        monitoring(py)?.call_method1("set_events", (tool, DISCOVERY_EVENTS))?;
        with_engine(py, |engine| {
            engine.global_events = 0;
            engine.tool = Some(tool);
        });
    }
    Ok(())
}

/// Removes a consumer and gives it back (a recorder keeps its recording); the last one
/// releases the tool id.
pub fn remove_consumer(py: Python<'_>, id: u64) -> PyResult<Option<Consumer>> {
    let (removed, now_empty) = consumer::unregister(py, id);
    let (codes, tool) = with_engine(py, |engine| {
        let codes: Vec<(usize, CodeEntry)> = engine.codes.drain().collect();
        (codes, engine.tool)
    });
    let consumer = removed.into_iter().next();
    let Some(tool) = tool else {
        return Ok(consumer);
    };
    let mon = monitoring(py)?;
    // Another tool may have the id by now (the program freed it): not ours to change or free.
    let ours = holds_tool(py, tool)?;
    for (_, entry) in codes.iter().filter(|_| ours) {
        if entry.local_events != 0 {
            mon.call_method1("set_local_events", (tool, entry._code.bind(py), 0))?;
        }
    }
    drop(codes);
    if now_empty {
        if ours {
            mon.call_method1("set_events", (tool, 0))?;
            for event in event_bits() {
                mon.call_method1("register_callback", (tool, event, py.None()))?;
            }
            mon.call_method1("free_tool_id", (tool,))?;
        }
        with_engine(py, |engine| {
            engine.tool = None;
            engine.global_events = 0;
            // The next claim asks again, if a filter needs it.
            engine.environment = None;
        });
    } else {
        restart_events(py)?;
    }
    Ok(consumer)
}

fn restart_events(py: Python<'_>) -> PyResult<()> {
    // DISABLE decisions were taken for the old set of consumers.
    monitoring(py)?.call_method0("restart_events")?;
    Ok(())
}

fn event_bits() -> [u32; 11] {
    [
        PY_START,
        PY_RESUME,
        PY_RETURN,
        PY_YIELD,
        LINE,
        INSTRUCTION,
        JUMP,
        STOP_ITERATION,
        RAISE,
        PY_UNWIND,
        PY_THROW,
    ]
}

/// The name ferrotrace claims its tool id under.
const TOOL_NAME: &str = "ferrotrace";

/// Whether ferrotrace still holds the tool id it claimed. The program may free any id: one
/// freed and not claimed since is claimed again (until 3.14 freeing an id leaves its events
/// and callbacks, ferrotrace's, in place; they are cleared only by the id's user); one another
/// tool claimed is that tool's.
fn holds_tool(py: Python<'_>, tool: u8) -> PyResult<bool> {
    let mon = monitoring(py)?;
    let name = mon.call_method1("get_tool", (tool,))?;
    if name.is_none() {
        mon.call_method1("use_tool_id", (tool, TOOL_NAME))?;
        return Ok(true);
    }
    Ok(name.extract::<String>().is_ok_and(|name| name == TOOL_NAME))
}

fn claim_tool(py: Python<'_>) -> PyResult<u8> {
    let mon = monitoring(py)?;
    // Prefer the ids without a conventional owner (3, 4), then the others but the debugger's.
    for tool in [4u8, 3, 2, 1, 5] {
        if mon.call_method1("get_tool", (tool,))?.is_none() {
            mon.call_method1("use_tool_id", (tool, TOOL_NAME))?;
            return Ok(tool);
        }
    }
    Err(PyRuntimeError::new_err(
        "ferrotrace: every sys.monitoring tool id is taken; stop another monitoring tool first",
    ))
}

/// The callbacks of the events every traced call pays, and of `PY_UNWIND`, as vectorcall
/// callback objects (made once).
static FAST_CALLBACKS: OnceLock<[Py<PyAny>; 4]> = OnceLock::new();

unsafe extern "C" fn fast_on_start(
    _callback: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = fastcall::Args::new(args, nargsf, kwnames);
    // SAFETY: called by CPython through the callback's vectorcall entry.
    unsafe {
        if let Some(result) = fastcall::try_fast(call, |py, code, offset| {
            record_cached(py, code, EventKind::Call, offset)
        }) {
            return result;
        }
        fastcall::dispatch(call, |py, code, offset, _| on_start(py, code, offset))
    }
}

unsafe extern "C" fn fast_on_return(
    _callback: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = fastcall::Args::new(args, nargsf, kwnames);
    // SAFETY: called by CPython through the callback's vectorcall entry.
    unsafe {
        if let Some(result) = fastcall::try_fast(call, record_cached_return) {
            return result;
        }
        fastcall::dispatch(call, |py, c, o, v| frame_exit(py, c, o, v, true))
    }
}

unsafe extern "C" fn fast_on_yield(
    _callback: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = fastcall::Args::new(args, nargsf, kwnames);
    // SAFETY: called by CPython through the callback's vectorcall entry.
    unsafe {
        if let Some(result) = fastcall::try_fast(call, record_cached_return) {
            return result;
        }
        fastcall::dispatch(call, |py, c, o, v| frame_exit(py, c, o, v, false))
    }
}

/// `PY_RETURN` and `PY_YIELD` on the recording fast path (a recorder keeps no value and, for
/// `record_cached`'s recorders, forgets no frame: that is for local trace functions).
#[inline(always)]
fn record_cached_return(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    offset: *mut ffi::PyObject,
) -> bool {
    record_cached(py, code, EventKind::Return, offset)
}

/// `PY_RETURN` (`final_exit`) or `PY_YIELD`: a legacy `return` with the value.
fn frame_exit(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    offset: i64,
    value: Option<&Bound<'_, PyAny>>,
    final_exit: bool,
) -> PyResult<Py<PyAny>> {
    let none = py.None().into_bound(py);
    let value = value.unwrap_or(&none);
    deliver(
        py,
        code,
        TraceEvent::Return,
        value,
        None,
        final_exit,
        Source::at(offset),
    )?;
    Ok(py.None())
}

fn fast_callbacks(py: Python<'_>) -> PyResult<&'static [Py<PyAny>; 4]> {
    if let Some(made) = FAST_CALLBACKS.get() {
        return Ok(made);
    }
    let made = [
        fastcall::callback(py, c"_on_start", fast_on_start)?.unbind(),
        fastcall::callback(py, c"_on_return", fast_on_return)?.unbind(),
        fastcall::callback(py, c"_on_yield", fast_on_yield)?.unbind(),
        fastcall::callback(py, c"_on_unwind", fast_on_unwind)?.unbind(),
    ];
    Ok(FAST_CALLBACKS.get_or_init(|| made))
}

fn register_callbacks(py: Python<'_>, module: &Bound<'_, PyModule>, tool: u8) -> PyResult<()> {
    let mon = monitoring(py)?;
    let [start, ret, yielded, unwind] = fast_callbacks(py)?;
    for (event, callback) in [
        (PY_START, start),
        (PY_RESUME, start),
        (PY_RETURN, ret),
        (PY_YIELD, yielded),
        (PY_UNWIND, unwind),
    ] {
        mon.call_method1("register_callback", (tool, event, callback.bind(py)))?;
    }
    let pairs: [(u32, &str); 6] = [
        (PY_THROW, "_on_throw"),
        (RAISE, "_on_raise"),
        (STOP_ITERATION, "_on_raise"),
        (LINE, "_on_line"),
        (JUMP, "_on_jump"),
        (INSTRUCTION, "_on_instruction"),
    ];
    for (event, name) in pairs {
        mon.call_method1("register_callback", (tool, event, module.getattr(name)?))?;
    }
    Ok(())
}

/// Whether any consumer wants `code` (the allocation-free check for global events).
fn is_wanted(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<bool> {
    let key = code.as_ptr() as usize;
    let matched = match with_engine(py, |e| e.codes.get(&key).map(|c| !c.wanted_by.is_empty())) {
        Some(wanted) => wanted,
        None => !wanted_by(py, code, None)?.is_empty(),
    };
    Ok(matched || !scoped_consumers(py, current_frame_key()).is_empty())
}

fn current_frame_key() -> usize {
    // SAFETY: the GIL is held by every caller (they are monitoring callbacks).
    unsafe { ffi::PyEval_GetFrame() as usize }
}

/// Consumers for which the frame is in scope through `depth`.
fn scoped_consumers(py: Python<'_>, frame_key: usize) -> Vec<u64> {
    with_consumers(py, |consumers| {
        consumers
            .iter()
            .filter(|c| c.in_scope.contains(&frame_key))
            .map(|c| c.id)
            .collect()
    })
}

/// The matching consumers of each caller of the current frame, outward (see [`depth_scope`]).
fn callers_matching(py: Python<'_>) -> impl Iterator<Item = PyResult<Vec<u64>>> + use<'_> {
    // SAFETY: the GIL is held; PyFrame_GetBack returns a new reference or null.
    let mut ancestor = unsafe {
        let current = ffi::PyEval_GetFrame();
        if current.is_null() {
            None
        } else {
            Bound::<PyAny>::from_owned_ptr_or_opt(py, ffi::PyFrame_GetBack(current).cast())
        }
    };
    std::iter::from_fn(move || {
        let frame = ancestor.take()?;
        // SAFETY: a live frame; new reference or null.
        ancestor = unsafe {
            Bound::from_owned_ptr_or_opt(py, ffi::PyFrame_GetBack(frame.as_ptr().cast()).cast())
        };
        Some(
            frame
                .getattr("f_code")
                .and_then(|code| wanted_by(py, &code, Some(&frame))),
        )
    })
}

fn any_consumer_has_depth(py: Python<'_>) -> bool {
    with_consumers(py, |consumers| {
        consumers.iter().any(|c| c.filter.depth() > 0)
    })
}

/// Which consumers want `code`, deciding (and enabling its local events) on first sight.
fn wanted_by(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    frame: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<u64>> {
    let key = code.as_ptr() as usize;
    if let Some(ids) = with_engine(py, |e| e.codes.get(&key).map(|c| c.wanted_by.clone())) {
        return Ok(ids);
    }
    let (filename, name, qualname) = code_names(code)?;
    let module = match frame {
        Some(frame) => module_name_of(frame),
        None => current_module_name(py),
    };
    let info = CodeInfo {
        filename: &filename,
        name: &name,
        qualname: &qualname,
        module: module.as_deref(),
    };
    let (ids, tool) = with_engine(py, |engine| {
        let env = engine.environment.as_ref().unwrap_or(&NO_ENVIRONMENT);
        let ids = with_consumers(py, |consumers| consumer::matching(consumers, &info, env));
        (ids, engine.tool)
    });
    let replaced = with_engine(py, |engine| {
        engine.codes.insert(
            key,
            CodeEntry {
                _code: code.clone().unbind(),
                wanted_by: ids.clone(),
                local_events: 0,
            },
        )
    });
    drop(replaced);
    if tool.is_some() && !ids.is_empty() {
        ensure_local_events(py, code)?;
    }
    Ok(ids)
}

/// Switches on the local events of `code` (and, the first time, the global-only events).
fn ensure_local_events(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<()> {
    let key = code.as_ptr() as usize;
    let (tool, needs_local, needs_global) = with_engine(py, |engine| {
        let (wanted, global) = with_consumers(py, |consumers| {
            (
                local_events_wanted(consumers),
                global_events_wanted(consumers),
            )
        });
        let needs_local = engine
            .codes
            .get_mut(&key)
            .is_some_and(|entry| std::mem::replace(&mut entry.local_events, wanted) == 0);
        // More global events when a consumer that wants them came; never fewer while running
        // (events nobody wants are dropped by the delivery).
        let needs_global = (global & !engine.global_events != 0).then(|| {
            engine.global_events |= global;
            engine.global_events
        });
        (engine.tool, needs_local, needs_global)
    });
    let Some(tool) = tool else {
        return Ok(());
    };
    let mon = monitoring(py)?;
    if let Some(global) = needs_global {
        mon.call_method1("set_events", (tool, global))?;
    }
    if needs_local {
        let events = with_consumers(py, |consumers| local_events_wanted(consumers));
        mon.call_method1("set_local_events", (tool, code, events))?;
    }
    Ok(())
}

/// The local events wanted code gets: `LINE` and `JUMP` make `line` events, and switching
/// them on also changes which `STOP_ITERATION` events CPython fires (a generator exhausted by a
/// `for` loop), so they are left off only while no consumer wants `line` or `exception`
/// events: then a recorder of calls pays nothing per line.
fn local_events_wanted(consumers: &[Consumer]) -> u32 {
    let needs_lines = consumers.iter().any(|c| {
        let events = c.filter.events();
        events.contains(TraceEvent::Line) || events.contains(TraceEvent::Exception)
    });
    let mut events = LOCAL_EVENTS;
    if !needs_lines {
        events &= !(LINE | JUMP);
    }
    if !wants_exceptions(consumers) {
        events &= !STOP_ITERATION;
    }
    events
}

/// The global events once some code is wanted: `RAISE` (which only makes `exception` events,
/// for every raise anywhere) only if some consumer wants `exception` events.
fn global_events_wanted(consumers: &[Consumer]) -> u32 {
    if wants_exceptions(consumers) {
        GLOBAL_EVENTS
    } else {
        GLOBAL_EVENTS & !RAISE
    }
}

fn wants_exceptions(consumers: &[Consumer]) -> bool {
    consumers
        .iter()
        .any(|c| c.filter.events().contains(TraceEvent::Exception))
}

fn module_name_of(frame: &Bound<'_, PyAny>) -> Option<String> {
    let globals = frame.getattr("f_globals").ok()?;
    globals.get_item("__name__").ok()?.extract().ok()
}

fn current_module_name(py: Python<'_>) -> Option<String> {
    // SAFETY: the GIL is held; the frame is borrowed for the duration of this call.
    let frame = unsafe { ffi::PyEval_GetFrame() };
    if frame.is_null() {
        return None;
    }
    // SAFETY: a live frame object, borrowed.
    let frame = unsafe { Bound::from_borrowed_ptr(py, frame.cast()) };
    let globals = frame.getattr("f_globals").ok()?;
    globals.get_item("__name__").ok()?.extract().ok()
}

/// What the `sys.monitoring` event said beyond the legacy event: record sinks keep it.
struct Source<'a, 'py> {
    /// The instruction's byte offset.
    offset: i64,
    /// The exception raised (`exception`) or unwinding the frame (`return` by `PY_UNWIND`).
    exception: Option<&'a Bound<'py, PyAny>>,
    /// `PY_UNWIND`: the frame exits by an exception.
    unwinding: bool,
}

impl Source<'_, '_> {
    fn at(offset: i64) -> Self {
        Source {
            offset,
            exception: None,
            unwinding: false,
        }
    }
}

/// The event as a record sink keeps it, stamped now.
fn occurrence_of<'a, 'py>(
    kind: EventKind,
    code: &'a Bound<'py, PyAny>,
    arg: &'a Bound<'py, PyAny>,
    line: LineSource,
    source: &Source<'a, 'py>,
) -> Occurrence<'a, 'py> {
    Occurrence {
        kind,
        code,
        line,
        value: match kind {
            EventKind::Return => Some(arg),
            EventKind::Exception | EventKind::Unwind => source.exception,
            EventKind::Call | EventKind::Line => None,
        },
        timestamp_ns: now_ns(),
    }
}

/// The hot path of recorders: when every consumer records natively with no `depth` and no
/// thread filter, and `code` was decided before, the event is recorded in one borrow of each
/// table, with no frame object and no Python call (unless a repr is wanted). False when the
/// general path must handle it.
fn record_fast(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    event: TraceEvent,
    arg: &Bound<'_, PyAny>,
    line: Option<c_int>,
    source: &Source<'_, '_>,
) -> bool {
    let Some(kind) = record_kind(event, source.unwinding) else {
        return false;
    };
    if monitoring_record::known_general(code) {
        return false;
    }
    let key = code.as_ptr() as usize;
    let line = match line {
        Some(line) => LineSource::Known(u32::try_from(line).unwrap_or(0)),
        None => LineSource::Offset(source.offset),
    };
    // Built (and stamped) only once the consumers are known to be recorders: a callback's
    // event does not pay for it here.
    let mut occurrence = None;
    // SAFETY: always safe to call.
    let thread = || unsafe { ffi::PyThread_get_thread_ident() as u64 };
    let mut needs_python: Vec<(u64, Missing)> = Vec::new();
    // Two tables, two different cells: borrowing the registry inside the engine is fine.
    let handled = with_engine(py, |engine| {
        let Some(entry) = engine.codes.get(&key) else {
            return false;
        };
        if entry.wanted_by.is_empty() {
            return false;
        }
        with_consumers(py, |consumers| {
            let simple = consumers.iter().all(|c| {
                matches!(c.sink, Sink::Record(_))
                    && c.filter.depth() == 0
                    && c.filter.spec().threads.is_empty()
            });
            if !simple {
                return false;
            }
            let occurrence = occurrence.insert(occurrence_of(kind, code, arg, line, source));
            for &id in &entry.wanted_by {
                let Some(consumer) = consumers.iter_mut().find(|c| c.id == id) else {
                    continue;
                };
                let on_thread = consumer.traces_every_thread() || consumer.traces_thread(thread());
                if !on_thread || !consumer.filter.events().contains(event) {
                    continue;
                }
                if let Sink::Record(sink) = &mut consumer.sink {
                    if let Err(missing) = sink.try_record(occurrence) {
                        needs_python.push((id, missing));
                    }
                }
            }
            true
        })
    });
    if let Some(occurrence) = &occurrence {
        for (id, missing) in needs_python {
            delivery::record_with_python(py, id, missing, occurrence);
        }
    }
    handled
}

/// After the general path took a call or return of `code`: lets the next ones take the
/// recording fast path if they can (see [`monitoring_record`]).
fn refresh_fast_path(py: Python<'_>, code: &Bound<'_, PyAny>, event: TraceEvent) {
    if !matches!(event, TraceEvent::Call | TraceEvent::Return)
        || monitoring_record::is_current(code)
    {
        return;
    }
    let key = code.as_ptr() as usize;
    if let Some(wanted_by) = with_engine(py, |e| e.codes.get(&key).map(|c| c.wanted_by.clone())) {
        monitoring_record::refresh(py, code, &wanted_by);
    }
}

/// Delivers one legacy event to every consumer that wants `code` on this thread.
fn deliver(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    event: TraceEvent,
    arg: &Bound<'_, PyAny>,
    line: Option<c_int>,
    final_exit: bool,
    source: Source<'_, '_>,
) -> PyResult<()> {
    if record_fast(py, code, event, arg, line, &source) {
        refresh_fast_path(py, code, event);
        return Ok(());
    }
    let mut ids = wanted_by(py, code, None)?;
    ids.extend(scoped_consumers(py, current_frame_key()));
    if ids.is_empty() {
        return Ok(());
    }
    retain_thread_consumers(py, &mut ids);
    // SAFETY: the GIL is held; in a monitoring callback the current frame is the monitored one.
    let raw_frame = unsafe { ffi::PyEval_GetFrame() };
    if raw_frame.is_null() {
        return Err(pyo3::exceptions::PySystemError::new_err(
            "ferrotrace: missing frame in a sys.monitoring callback",
        ));
    }
    // SAFETY: a live frame, borrowed; we take a strong reference for the duration of the event.
    let frame_obj = unsafe { Bound::from_borrowed_ptr(py, raw_frame.cast()) };
    let line_source = match line {
        Some(line) => LineSource::Known(u32::try_from(line).unwrap_or(0)),
        None => LineSource::Frame(raw_frame),
    };
    // Only record sinks take the occurrence (and its timestamp).
    let records = with_consumers(py, |consumers| {
        consumers.iter().any(|c| matches!(c.sink, Sink::Record(_)))
    });
    let occurrence = record_kind(event, source.unwinding)
        .filter(|_| records)
        .map(|kind| occurrence_of(kind, code, arg, line_source, &source));
    let site = EventFrame {
        frame: &frame_obj,
        sets_lineno: true,
        line,
        occurrence,
    };
    let outcome = delivery::deliver(py, &ids, &site, event, arg);
    refresh_fast_path(py, code, event);
    if final_exit {
        delivery::forget_frame(py, raw_frame as usize);
    }
    // SAFETY: a live frame.
    if unsafe { frame::trace_opcodes(raw_frame) } {
        enable_instruction_events(py, code)?;
    }
    outcome
}

fn enable_instruction_events(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<()> {
    let key = code.as_ptr() as usize;
    let (tool, events) = with_engine(py, |engine| {
        let events = engine.codes.get_mut(&key).map(|entry| {
            entry.local_events |= INSTRUCTION;
            entry.local_events
        });
        (engine.tool, events)
    });
    if let (Some(tool), Some(events)) = (tool, events) {
        monitoring(py)?.call_method1("set_local_events", (tool, code, events))?;
    }
    Ok(())
}

fn disable(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(monitoring_and_disable(py)?.1.clone_ref(py))
}

/// How a frame that starts or resumes is traced.
enum FrameScope {
    /// Some consumer wants it: deliver `call`.
    Traced,
    /// No consumer wants it, now or later: its code can be `DISABLE`d.
    Never,
    /// No consumer wants it this time (a `depth` window may include it another time).
    NotNow,
}

/// Decides, at a start or a resume (including a throw into a generator), which consumers trace
/// the current frame: those matching its code, and those with a `depth` within which it is.
fn decide_frame_scope(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<FrameScope> {
    let matched = wanted_by(py, code, None)?;
    if !any_consumer_has_depth(py) {
        return Ok(if matched.is_empty() {
            FrameScope::Never
        } else {
            FrameScope::Traced
        });
    }
    // Scope through depth is decided per frame, at every start or resume.
    let scoped = depth_scope(py, &matched, callers_matching(py))?;
    let frame_key = current_frame_key();
    with_consumers(py, |consumers| {
        for consumer in consumers.iter_mut() {
            if scoped.contains(&consumer.id) {
                consumer.in_scope.insert(frame_key);
            } else {
                consumer.in_scope.remove(&frame_key);
            }
        }
    });
    if matched.is_empty() && scoped.is_empty() {
        // Not DISABLE: the same code may be called within a match's depth later.
        return Ok(FrameScope::NotNow);
    }
    if !scoped.is_empty() {
        ensure_local_events(py, code)?;
    }
    Ok(FrameScope::Traced)
}

/// `PY_START` and `PY_RESUME` (called through `fast_on_start`).
fn on_start(py: Python<'_>, code: &Bound<'_, PyAny>, offset: i64) -> PyResult<Py<PyAny>> {
    let none = py.None().into_bound(py);
    if record_fast(py, code, TraceEvent::Call, &none, None, &Source::at(offset)) {
        refresh_fast_path(py, code, TraceEvent::Call);
        return Ok(py.None());
    }
    match decide_frame_scope(py, code)? {
        FrameScope::Never => return disable(py),
        FrameScope::NotNow => return Ok(py.None()),
        FrameScope::Traced => {}
    }
    deliver(
        py,
        code,
        TraceEvent::Call,
        &py.None().into_bound(py),
        None,
        false,
        Source::at(offset),
    )?;
    Ok(py.None())
}

#[pyfunction]
pub fn _on_throw(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    offset: i64,
    _exception: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // A global event (no DISABLE): the scope is decided again, as at any resume.
    if !matches!(decide_frame_scope(py, code)?, FrameScope::Traced) {
        return Ok(());
    }
    deliver(
        py,
        code,
        TraceEvent::Call,
        &py.None().into_bound(py),
        None,
        false,
        Source::at(offset),
    )
}

unsafe extern "C" fn fast_on_unwind(
    _callback: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = fastcall::Args::new(args, nargsf, kwnames);
    // SAFETY: called by CPython through the callback's vectorcall entry.
    unsafe {
        if let Some(result) = fastcall::try_fast_with_value(call, record_unwind) {
            return result;
        }
        fastcall::dispatch(call, on_unwind)
    }
}

/// `PY_UNWIND` on the recording fast path (a recorder forgets no frame: see
/// [`record_cached_return`]).
#[inline(always)]
fn record_unwind(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    _offset: *mut ffi::PyObject,
    exception: *mut ffi::PyObject,
) -> bool {
    // SAFETY: the callback's argument, a live object: its type is too.
    let exception_type = unsafe { ffi::Py_TYPE(exception) } as usize;
    record_cached_unwind(py, code, exception_type)
}

/// `PY_UNWIND`: a legacy `return` (with None) of a frame an exception leaves.
fn on_unwind(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    offset: i64,
    exception: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    deliver(
        py,
        code,
        TraceEvent::Return,
        &py.None().into_bound(py),
        None,
        true,
        Source {
            offset,
            exception,
            unwinding: true,
        },
    )?;
    Ok(py.None())
}

#[pyfunction]
pub fn _on_raise(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    offset: i64,
    exception: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // RAISE is a global event: fires for every code object, wanted or not.
    if !is_wanted(py, code)? {
        return Ok(());
    }
    let traceback = exception
        .getattr("__traceback__")
        .unwrap_or_else(|_| py.None().into_bound(py));
    let arg = PyTuple::new(
        py,
        [
            exception.get_type().into_any(),
            exception.clone(),
            traceback,
        ],
    )?;
    let source = Source {
        offset,
        exception: Some(exception),
        unwinding: false,
    };
    deliver(
        py,
        code,
        TraceEvent::Exception,
        arg.as_any(),
        None,
        false,
        source,
    )
}

#[pyfunction]
pub fn _on_line(py: Python<'_>, code: &Bound<'_, PyAny>, line: i64) -> PyResult<()> {
    if line < 0 || !current_frame_traces_lines(py) {
        return Ok(());
    }
    let line = c_int::try_from(line).map_err(|e| PyValueError::new_err(e.to_string()))?;
    deliver(
        py,
        code,
        TraceEvent::Line,
        &py.None().into_bound(py),
        Some(line),
        false,
        Source::at(0),
    )
}

#[pyfunction]
pub fn _on_jump(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    from: i64,
    to: i64,
) -> PyResult<Py<PyAny>> {
    if to > from {
        return disable(py);
    }
    // SAFETY: `code` is a live code object (sys.monitoring passes the code being run).
    let (from_line, to_line) = unsafe {
        let raw = code.as_ptr().cast::<ffi::PyCodeObject>();
        (
            ffi::PyCode_Addr2Line(raw, c_int::try_from(from).unwrap_or(c_int::MAX)),
            ffi::PyCode_Addr2Line(raw, c_int::try_from(to).unwrap_or(c_int::MAX)),
        )
    };
    if to_line != from_line {
        return disable(py);
    }
    if current_frame_traces_lines(py) && to_line >= 0 {
        deliver(
            py,
            code,
            TraceEvent::Line,
            &py.None().into_bound(py),
            Some(to_line),
            false,
            Source::at(0),
        )?;
    }
    Ok(py.None())
}

#[pyfunction]
pub fn _on_instruction(py: Python<'_>, code: &Bound<'_, PyAny>, _offset: i64) -> PyResult<()> {
    // SAFETY: the GIL is held.
    let raw = unsafe { ffi::PyEval_GetFrame() };
    // SAFETY: a live frame, borrowed.
    if raw.is_null() || !unsafe { frame::trace_opcodes(raw) } {
        return Ok(());
    }
    deliver(
        py,
        code,
        TraceEvent::Opcode,
        &py.None().into_bound(py),
        None,
        false,
        Source::at(0),
    )
}

fn current_frame_traces_lines(_py: Python<'_>) -> bool {
    // SAFETY: the GIL is held.
    let raw = unsafe { ffi::PyEval_GetFrame() };
    if raw.is_null() {
        return false;
    }
    // SAFETY: a live frame, borrowed.
    unsafe { frame::trace_lines(raw) }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    monitoring_and_disable(module.py())?;
    module.add_function(wrap_pyfunction!(_on_throw, module)?)?;
    module.add_function(wrap_pyfunction!(_on_raise, module)?)?;
    module.add_function(wrap_pyfunction!(_on_line, module)?)?;
    module.add_function(wrap_pyfunction!(_on_jump, module)?)?;
    module.add_function(wrap_pyfunction!(_on_instruction, module)?)?;
    Ok(())
}
