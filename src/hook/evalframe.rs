//! The PEP 523 route (3.11) for filtered tracers.
//!
//! On 3.11 any C trace or profile hook puts the whole thread into the eval loop's slow tracing
//! mode, so ferrotrace sets none by default. Instead it installs a frame-evaluation function
//! (`_PyInterpreterState_SetEvalFrameFunc`), which CPython calls for every frame it starts or
//! resumes (a generator's `next`, `send` and `throw` included) and which calls through to the
//! function that was there before (`_PyEval_EvalFrameDefault`). For each frame it decides, once
//! per code object, whether a consumer wants it; only then does it point the thread's C trace
//! hook at [`trampoline`] for the duration of that frame's evaluation, and restores the hook
//! the caller had when the evaluation returns. Frames that a traced frame calls are switched
//! back the same way, so code no consumer wants runs untraced even below a match.
//!
//! Another tool's trace function (`sys.settrace`, coverage's C tracer, a debugger) keeps its
//! slot: while ferrotrace's trampoline is installed, `c_traceobj` stays the other tool's
//! object (so `sys.gettrace()` is unchanged) and the trampoline calls the other tool's function
//! first (`chained`), then the consumers. If the other tool changes its function meanwhile,
//! the trampoline and the frame's end adopt the new one.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::bindings::interpreter::{self, InterpreterFrame};
use crate::errors::FerrotraceError;
use crate::filter::{cache, CachedDecision, CodeInfo, Environment, EventMask, Filter};
use crate::hook::addr_hash::AddrMap;
use crate::hook::backend::NotStarted;
use crate::hook::consumer::{self, with_consumers, Consumer, Sink};
use crate::hook::decision::{
    code_names, depth_scope, environment_to_add, thread_consumers, NO_ENVIRONMENT,
};
use crate::hook::delivery::{self, EventFrame};
use crate::hook::frame_record::{self, served_at_entry_and_exit, Entry, PlainRecord};
use crate::hook::legacy::never_unwind;
use crate::hook::record_sink::{now_ns, record_kind, LineSource, Occurrence};
use crate::protocol::TraceEvent;
use crate::record::EventKind;

/// The generation of the current decisions, new whenever the set of consumers changes; 0
/// while there is no consumer. Code objects keep their decision in a `co_extra` slot, stamped
/// with the generation that made it (see [`crate::filter::cache`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Whether some consumer has a `depth` (frames its filter rejects may then be in scope).
static ANY_DEPTH: AtomicBool = AtomicBool::new(false);
/// Whether every consumer is a recorder of calls and returns on every thread, with no `depth`
/// (`ferrotrace trace --format perfetto`): then a wanted frame's consumers are those its code
/// matches, all served at the frame's entry and exit (see [`record_frame`]).
static ONLY_CALL_RECORDERS: AtomicBool = AtomicBool::new(false);
/// ferrotrace's `co_extra` index, requested once per process (-1: not yet).
static CODE_EXTRA_INDEX: AtomicIsize = AtomicIsize::new(-1);
/// Whether the hot path may read the slot directly (checked when the index is requested)
/// rather than through `_PyCode_GetExtra`.
static CODE_EXTRA_DIRECT: AtomicBool = AtomicBool::new(false);
/// The eval-frame function ferrotrace's hook calls through to (0: `_PyEval_EvalFrameDefault`).
static PREVIOUS_EVAL: AtomicUsize = AtomicUsize::new(0);
/// Whether frames wanted only by recorders of calls and returns are recorded by the eval-frame
/// function itself (see `frame_record`); off only to compare with the trace hook's route.
static RECORD_AT_ENTRY: AtomicBool = AtomicBool::new(true);
/// Frames recorded at their entry (a testing aid).
static RECORDED_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

fn count_recorded_at_entry() {
    RECORDED_AT_ENTRY.fetch_add(1, Ordering::Relaxed);
}

struct Engine {
    /// Whether ferrotrace's eval-frame function is installed.
    installed: bool,
    environment: Option<Environment>,
    /// Code objects some consumer wants (the reference keeps the address from being reused
    /// while the entry lives).
    wanted: AddrMap<usize, WantedCode>,
}

/// A code object some consumer wants.
struct WantedCode {
    _code: Py<PyAny>,
    consumers: Arc<[u64]>,
    /// How its frames are recorded with no lookup, once known (see `frame_record`).
    plain: Option<PlainRecord>,
}

/// Only touched with the GIL held, never across a call into Python (see `consumer`).
struct GilCell(RefCell<Engine>);
// SAFETY: every access goes through `with_engine`, which requires the GIL.
unsafe impl Sync for GilCell {}

static ENGINE: LazyLock<GilCell> = LazyLock::new(|| {
    GilCell(RefCell::new(Engine {
        installed: false,
        environment: None,
        wanted: AddrMap::default(),
    }))
});

fn with_engine<R>(_py: Python<'_>, f: impl FnOnce(&mut Engine) -> R) -> R {
    f(&mut ENGINE.0.borrow_mut())
}

/// A frame being evaluated with ferrotrace's trampoline as the thread's trace hook.
struct TracedFrame {
    frame: *mut InterpreterFrame,
    /// The consumers that trace this evaluation of the frame.
    consumers: Rc<[u64]>,
    /// Whether one of them records (then events are also described for a record sink).
    records: bool,
    /// The events some of them want: the others return at once.
    wanted: EventMask,
    /// The exception of the frame's last `exception` event: the one that leaves the frame if
    /// it then unwinds (3.11's `return` event does not carry it).
    exception: Option<Py<PyAny>>,
}

/// Per-thread state. Its Python objects (`TracedFrame::exception`) are released when the
/// frame's evaluation ends, with the GIL held, so the stack is empty when a thread exits.
struct ThreadTracing {
    /// Another tool's trace hook, called first while ferrotrace's trampoline is installed.
    chained: Cell<Option<ffi::Py_tracefunc>>,
    /// The frames traced on this thread, innermost last.
    traced: RefCell<Vec<TracedFrame>>,
}

thread_local! {
    static THREAD: ThreadTracing = const {
        ThreadTracing {
            chained: Cell::new(None),
            traced: RefCell::new(Vec::new()),
        }
    };
}

fn trampoline_hook() -> ffi::Py_tracefunc {
    trampoline
}

fn is_trampoline(hook: Option<ffi::Py_tracefunc>) -> bool {
    hook.is_some_and(|hook| ptr::fn_addr_eq(hook, trampoline_hook()))
}

extern "C" {
    fn _PyEval_EvalFrameDefault(
        tstate: *mut ffi::PyThreadState,
        frame: *mut ffi::_PyInterpreterFrame,
        throwflag: c_int,
    ) -> *mut ffi::PyObject;
}

fn previous_eval() -> ffi::_PyFrameEvalFunction {
    match PREVIOUS_EVAL.load(Ordering::Relaxed) {
        0 => _PyEval_EvalFrameDefault,
        // SAFETY: only ever stored from a `_PyFrameEvalFunction` (see `install`).
        address => unsafe { std::mem::transmute::<usize, ffi::_PyFrameEvalFunction>(address) },
    }
}

// ------------------------------------------------------------------------------------------
// Consumers
// ------------------------------------------------------------------------------------------

/// Adds a consumer; the first one installs the eval-frame function.
pub fn add_consumer(py: Python<'_>, consumer: Consumer) -> Result<(), NotStarted> {
    if let Err(error) = prepare(py, &consumer.filter) {
        return Err(NotStarted {
            error,
            consumer: Some(Box::new(consumer)),
        });
    }
    consumer::register(py, consumer);
    consumers_changed(py);
    Ok(())
}

/// What must be in place before a consumer is registered: the frame layout checked, the
/// `co_extra` slot, the library environment if `filter` needs it, and the eval-frame function.
fn prepare(py: Python<'_>, filter: &Filter) -> PyResult<()> {
    interpreter::layout().map_err(|detail| {
        FerrotraceError::new_err(format!(
            "ferrotrace.Tracer cannot run on this interpreter: its {detail} layout is not the \
             one ferrotrace was built for"
        ))
    })?;
    if CODE_EXTRA_INDEX.load(Ordering::Relaxed) < 0 {
        // SAFETY: the GIL is held.
        let index = unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(keep_decision) };
        if index < 0 {
            return Err(PyRuntimeError::new_err(
                "ferrotrace: no free co_extra slot for per-code decisions",
            ));
        }
        CODE_EXTRA_INDEX.store(index, Ordering::Relaxed);
        // SAFETY: the GIL is held.
        let direct = unsafe { interpreter::verify_code_extra(py, index) };
        CODE_EXTRA_DIRECT.store(direct, Ordering::Relaxed);
    }
    let known = with_engine(py, |engine| engine.environment.is_some());
    if let Some(environment) = environment_to_add(py, filter, known)? {
        with_engine(py, |engine| engine.environment = Some(environment));
    }
    install(py)
}

/// Removes a consumer and gives it back (a recorder keeps its recording); the last one uninstalls the eval-frame function, unless another tool
/// installed its own on top of it since (then ferrotrace's stays, passing every frame through,
/// and the error says so).
pub fn remove_consumer(py: Python<'_>, id: u64) -> PyResult<Option<Consumer>> {
    let (removed, now_empty) = consumer::unregister(py, id);
    consumers_changed(py);
    if now_empty {
        uninstall(py)?;
    }
    Ok(removed.into_iter().next())
}

/// New decisions for the new set of consumers.
fn consumers_changed(py: Python<'_>) {
    let (any, any_depth, only_call_recorders) = with_consumers(py, |consumers| {
        (
            !consumers.is_empty(),
            consumers.iter().any(|c| c.filter.depth() > 0),
            consumers.iter().all(|c| {
                served_at_entry_and_exit(c)
                    && c.traces_every_thread()
                    && c.filter.spec().threads.is_empty()
                    && c.filter.depth() == 0
            }),
        )
    });
    ANY_DEPTH.store(any_depth, Ordering::Relaxed);
    ONLY_CALL_RECORDERS.store(only_call_recorders, Ordering::Relaxed);
    let generation = if any { cache::next_generation() } else { 0 };
    GENERATION.store(generation, Ordering::Relaxed);
    let stale = with_engine(py, |engine| std::mem::take(&mut engine.wanted));
    drop(stale);
}

fn install(py: Python<'_>) -> PyResult<()> {
    if with_engine(py, |engine| engine.installed) {
        return Ok(());
    }
    // SAFETY: the GIL is held.
    unsafe {
        let tstate = ffi::PyThreadState_Get();
        let current = interpreter::eval_frame_function(tstate);
        if !ptr::fn_addr_eq(current, eval_frame as ffi::_PyFrameEvalFunction) {
            PREVIOUS_EVAL.store(current as usize, Ordering::Relaxed);
        }
        interpreter::set_eval_frame_function(tstate, eval_frame);
    }
    with_engine(py, |engine| engine.installed = true);
    Ok(())
}

fn uninstall(py: Python<'_>) -> PyResult<()> {
    if !with_engine(py, |engine| engine.installed) {
        return Ok(());
    }
    // SAFETY: the GIL is held. PREVIOUS_EVAL stays set: evaluations that started through
    // ferrotrace's function may still be running, and they return through it.
    unsafe {
        let tstate = ffi::PyThreadState_Get();
        let current = interpreter::eval_frame_function(tstate);
        if !ptr::fn_addr_eq(current, eval_frame as ffi::_PyFrameEvalFunction) {
            return Err(FerrotraceError::new_err(
                "ferrotrace.Tracer stopped, but its PEP 523 frame-evaluation hook cannot be \
                 removed: another tool installed its own hook after it. Stop that tool first; \
                 ferrotrace's hook now passes every frame through untraced",
            ));
        }
        interpreter::set_eval_frame_function(tstate, previous_eval());
    }
    with_engine(py, |engine| engine.installed = false);
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Decisions
// ------------------------------------------------------------------------------------------

/// The `co_extra` slot's free function: the slot holds a plain number, nothing to free.
unsafe extern "C" fn keep_decision(_decision: *mut c_void) {}

/// The cached decision for `code` in this generation: whether some consumer wants it.
///
/// # Safety
/// `code` is a live code object and the GIL is held.
#[inline(always)]
unsafe fn cached_decision(code: *mut ffi::PyObject, generation: u64) -> Option<bool> {
    let index = CODE_EXTRA_INDEX.load(Ordering::Relaxed);
    let extra = if CODE_EXTRA_DIRECT.load(Ordering::Relaxed) {
        interpreter::code_extra(code, index)
    } else {
        code_extra_through_api(code, index)
    };
    CachedDecision::from_raw(extra as u64)
        .filter(|decision| decision.is_current(generation))
        .map(CachedDecision::matches)
}

/// Whether `code` carries this generation's decision that no consumer wants it: one load
/// and one comparison (false when the slot cannot be read directly; the slow path decides).
///
/// # Safety
/// `code` is a live code object and the GIL is held.
#[inline(always)]
unsafe fn known_unwanted(code: *mut ffi::PyObject, generation: u64) -> bool {
    CODE_EXTRA_DIRECT.load(Ordering::Relaxed)
        && interpreter::code_extra(code, CODE_EXTRA_INDEX.load(Ordering::Relaxed)) as u64
            == CachedDecision::new(generation, false).to_raw()
}

/// The slot through `_PyCode_GetExtra` (null if unset or on error); out of line, so that the
/// fast path keeps no registers for it.
#[cold]
#[inline(never)]
unsafe fn code_extra_through_api(code: *mut ffi::PyObject, index: isize) -> *mut c_void {
    let mut extra: *mut c_void = ptr::null_mut();
    if index < 0 || ffi::PyUnstable_Code_GetExtra(code, index, &mut extra) < 0 {
        ffi::PyErr_Clear();
        return ptr::null_mut();
    }
    extra
}

/// The consumers whose filter selects the code of `frame` (deciding on first sight).
///
/// # Safety
/// `frame` is a live interpreter frame and the GIL is held.
unsafe fn matching_consumers(py: Python<'_>, frame: *const InterpreterFrame) -> PyResult<Vec<u64>> {
    let code = interpreter::code(frame);
    let generation = GENERATION.load(Ordering::Relaxed);
    match cached_decision(code, generation) {
        Some(false) => return Ok(Vec::new()),
        Some(true) => {
            let key = code as usize;
            if let Some(ids) = with_engine(py, |e| e.wanted.get(&key).map(|w| w.consumers.to_vec()))
            {
                return Ok(ids);
            }
        }
        None => {}
    }
    let code_object = Bound::from_borrowed_ptr(py, code);
    let (filename, name, qualname) = code_names(&code_object)?;
    let module = module_name(py, interpreter::globals(frame));
    let info = CodeInfo {
        filename: &filename,
        name: &name,
        qualname: &qualname,
        module: module.as_deref(),
    };
    let ids = with_engine(py, |engine| {
        let env = engine.environment.as_ref().unwrap_or(&NO_ENVIRONMENT);
        with_consumers(py, |consumers| consumer::matching(consumers, &info, env))
    });
    let index = CODE_EXTRA_INDEX.load(Ordering::Relaxed);
    if generation != 0 && index >= 0 {
        let raw = CachedDecision::new(generation, !ids.is_empty()).to_raw();
        if ffi::PyUnstable_Code_SetExtra(code, index, raw as *mut c_void) < 0 {
            ffi::PyErr_Clear();
        }
    }
    if !ids.is_empty() {
        let replaced = with_engine(py, |engine| {
            engine.wanted.insert(
                code as usize,
                WantedCode {
                    _code: code_object.unbind(),
                    consumers: ids.as_slice().into(),
                    plain: None,
                },
            )
        });
        drop(replaced);
    }
    Ok(ids)
}

/// `__name__` in a frame's globals, without running Python code.
unsafe fn module_name(py: Python<'_>, globals: *mut ffi::PyObject) -> Option<String> {
    if globals.is_null() || ffi::PyDict_Check(globals) == 0 {
        return None;
    }
    let name = ffi::PyDict_GetItemWithError(globals, pyo3::intern!(py, "__name__").as_ptr());
    if name.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    Bound::from_borrowed_ptr(py, name).extract().ok()
}

/// The matching consumers of each frame from `caller` outward (see [`depth_scope`]).
///
/// # Safety
/// `caller` is null or a running interpreter frame, and the GIL is held.
unsafe fn callers_matching(
    py: Python<'_>,
    caller: *mut InterpreterFrame,
) -> impl Iterator<Item = PyResult<Vec<u64>>> + use<'_> {
    let mut ancestor = caller;
    std::iter::from_fn(move || {
        if ancestor.is_null() {
            return None;
        }
        // SAFETY: a running frame, and the frames that called it.
        let matched = unsafe { matching_consumers(py, ancestor) };
        ancestor = unsafe { interpreter::previous(ancestor) };
        Some(matched)
    })
}

// ------------------------------------------------------------------------------------------
// The eval-frame function
// ------------------------------------------------------------------------------------------

/// What the hook changed before evaluating a frame, to be undone when it returns.
struct Switched {
    /// Whether the caller ran with ferrotrace's trampoline.
    caller_traced: bool,
    /// Whether this frame was pushed on the thread's traced frames.
    pushed: bool,
    /// The record sinks that recorded the frame's call at its entry, with no trace hook: its
    /// exit goes to them too.
    recorded: Option<Vec<u64>>,
}

/// The frame-evaluation function. Never unwinds into CPython.
///
/// # Safety
/// Called by CPython only, with the GIL held and a live frame.
unsafe extern "C" fn eval_frame(
    tstate: *mut ffi::PyThreadState,
    frame: *mut ffi::_PyInterpreterFrame,
    throwflag: c_int,
) -> *mut ffi::PyObject {
    // The fast path, all that untraced code pays: the thread is not in ferrotrace's tracing
    // and no consumer wants the code. Kept small, so that it needs no stack frame of its own
    // and calls through as a tail call.
    let generation = GENERATION.load(Ordering::Relaxed);
    if !is_trampoline(interpreter::trace_hook(tstate))
        && (generation == 0
            || (!ANY_DEPTH.load(Ordering::Relaxed)
                && known_unwanted(
                    interpreter::code(interpreter::cast_frame(frame)),
                    generation,
                )))
    {
        return previous_eval()(tstate, frame, throwflag);
    }
    eval_frame_decided(tstate, frame, throwflag)
}

/// The rest of [`eval_frame`]: decide, switch the trace hook, evaluate, switch back.
#[inline(never)]
unsafe fn eval_frame_decided(
    tstate: *mut ffi::PyThreadState,
    frame: *mut ffi::_PyInterpreterFrame,
    throwflag: c_int,
) -> *mut ffi::PyObject {
    let iframe = interpreter::cast_frame(frame);
    let caller_traced = is_trampoline(interpreter::trace_hook(tstate));
    if interpreter::in_trace_function(tstate) {
        // Code run by a trace or profile function is never traced.
        return previous_eval()(tstate, frame, throwflag);
    }
    if !caller_traced
        && ONLY_CALL_RECORDERS.load(Ordering::Relaxed)
        && RECORD_AT_ENTRY.load(Ordering::Relaxed)
        && interpreter::trace_hook(tstate).is_none()
    {
        if let Some(result) = record_frame(tstate, iframe, throwflag) {
            return result;
        }
    }
    // SAFETY: the caller's guarantees are passed on.
    let switched = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        begin_frame(tstate, iframe, throwflag, caller_traced)
    }))
    .unwrap_or(None);
    let result = previous_eval()(tstate, frame, throwflag);
    if let Some(switched) = switched {
        // SAFETY: as above; the frame is still alive (its owner clears it after we return).
        let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
            end_frame(tstate, iframe, switched, result)
        }));
    }
    result
}

/// The common case of `ferrotrace trace` in one piece: every consumer is a recorder of calls
/// and returns on every thread, the thread has no trace hook, and the frame's code was decided
/// before. Records the frame's call, evaluates it and records its exit; None (nothing done)
/// when the case is another.
///
/// # Safety
/// As for [`eval_frame`].
unsafe fn record_frame(
    tstate: *mut ffi::PyThreadState,
    frame: *mut InterpreterFrame,
    throwflag: c_int,
) -> Option<*mut ffi::PyObject> {
    let py = Python::assume_attached();
    let code = interpreter::code(frame);
    if cached_decision(code, GENERATION.load(Ordering::Relaxed)) != Some(true) {
        return None;
    }
    let key = code as usize;
    // Inside `catch_unwind` like everything else this extern "C" function runs (the engine's
    // borrow is the only thing here that could panic).
    let (consumers, plain) = panic::catch_unwind(AssertUnwindSafe(|| {
        with_engine(py, |e| {
            e.wanted.get(&key).map(|w| (w.consumers.clone(), w.plain))
        })
    }))
    .ok()
    .flatten()?;
    let raw_frame = frame.cast::<ffi::_PyInterpreterFrame>();
    match frame_record::entry(tstate, frame, throwflag) {
        Entry::Call(offset) => {
            // SAFETY (all three): the caller's guarantees are passed on; the frame is alive
            // until its owner clears it after we return.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
                if !plain.is_some_and(|plain| plain.record_call(py, offset)) {
                    frame_record::record_call(py, &consumers, frame, offset);
                    // First seen, or the sink changed (or the thread was new to it).
                    if plain.is_none_or(|plain| plain.is_call_at(offset)) {
                        learn_plain_record(py, key, &consumers, frame, offset);
                    }
                }
            }));
            count_recorded_at_entry();
            let result = previous_eval()(tstate, raw_frame, throwflag);
            let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
                if result.is_null() || !plain.is_some_and(|plain| plain.record_return(py)) {
                    frame_record::record_exit(py, &consumers, frame, result);
                }
            }));
            Some(result)
        }
        Entry::Silent => Some(previous_eval()(tstate, raw_frame, throwflag)),
        Entry::Unknown => None,
    }
}

/// Caches how frames of the code `key` are recorded with no lookup, once its sink knows it.
///
/// # Safety
/// As for [`eval_frame`].
unsafe fn learn_plain_record(
    py: Python<'_>,
    key: usize,
    consumers: &[u64],
    frame: *mut InterpreterFrame,
    offset: i64,
) {
    if let Some(plain) = frame_record::plain_record_of(py, consumers, frame, offset) {
        with_engine(py, |e| {
            if let Some(wanted) = e.wanted.get_mut(&key) {
                wanted.plain = Some(plain);
            }
        });
    }
}

/// Runs `f` with the thread's error indicator saved and restored around it (an error `f`
/// leaves is discarded), so that a pending exception is neither seen nor lost.
///
/// # Safety
/// The GIL is held.
pub(crate) unsafe fn with_error_aside<R>(f: impl FnOnce() -> R) -> R {
    let (mut kind, mut value, mut traceback) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
    let result = f();
    ffi::PyErr_Clear();
    ffi::PyErr_Restore(kind, value, traceback);
    result
}

/// Decides how `frame` runs and switches the thread's trace hook accordingly; None when
/// nothing was changed.
unsafe fn begin_frame(
    tstate: *mut ffi::PyThreadState,
    frame: *mut InterpreterFrame,
    throwflag: c_int,
    caller_traced: bool,
) -> Option<Switched> {
    let py = Python::assume_attached();
    let generation = GENERATION.load(Ordering::Relaxed);
    let consumers = if !ANY_DEPTH.load(Ordering::Relaxed)
        && known_unwanted(interpreter::code(frame), generation)
    {
        // Called by a traced frame, but wanted by no consumer.
        Vec::new()
    } else {
        // A thrown exception is already set when a generator is resumed by `throw()`.
        with_error_aside(|| frame_consumers(py, tstate, frame).unwrap_or_default())
    };
    if consumers.is_empty() {
        return run_untraced(tstate, caller_traced, None);
    }
    let (records, wanted, entry_and_exit) = with_consumers(py, |all| {
        all.iter().filter(|c| consumers.contains(&c.id)).fold(
            (false, EventMask::empty(), true),
            |(records, wanted, entry_and_exit), c| {
                (
                    records || matches!(c.sink, Sink::Record(_)),
                    wanted.union(c.filter.events()),
                    entry_and_exit && served_at_entry_and_exit(c),
                )
            },
        )
    });
    if entry_and_exit && RECORD_AT_ENTRY.load(Ordering::Relaxed) {
        // Unless another tool's trace function needs the eval loop's events of this frame.
        let other_tool = if caller_traced {
            THREAD.try_with(|t| t.chained.get()).ok().flatten()
        } else {
            interpreter::trace_hook(tstate)
        };
        if other_tool.is_none() {
            match frame_record::entry(tstate, frame, throwflag) {
                Entry::Call(offset) => {
                    frame_record::record_call(py, &consumers, frame, offset);
                    count_recorded_at_entry();
                    return run_untraced(tstate, caller_traced, Some(consumers));
                }
                Entry::Silent => return run_untraced(tstate, caller_traced, None),
                Entry::Unknown => {}
            }
        }
    }
    let current = interpreter::trace_hook(tstate);
    let pushed = THREAD
        .try_with(|thread| {
            if !caller_traced {
                thread.chained.set(current);
            }
            thread.traced.borrow_mut().push(TracedFrame {
                frame,
                consumers: consumers.into(),
                records,
                wanted,
                exception: None,
            });
        })
        .is_ok();
    if !pushed {
        return None;
    }
    interpreter::set_trace_hook(tstate, Some(trampoline_hook()));
    Some(Switched {
        caller_traced,
        pushed: true,
        recorded: None,
    })
}

/// Runs a frame with no trace hook of ferrotrace's (whatever hook the other tool has), the
/// record sinks `recorded` getting its exit; None when nothing is to be done at its end.
unsafe fn run_untraced(
    tstate: *mut ffi::PyThreadState,
    caller_traced: bool,
    recorded: Option<Vec<u64>>,
) -> Option<Switched> {
    if caller_traced {
        // Below a traced frame: the other tool's hook, if any, for this frame.
        let chained = THREAD.try_with(|t| t.chained.get()).ok().flatten();
        interpreter::set_trace_hook(tstate, chained);
    } else if recorded.is_none() {
        return None;
    }
    Some(Switched {
        caller_traced,
        pushed: false,
        recorded,
    })
}

/// The consumers that trace this evaluation of `frame` on this thread.
unsafe fn frame_consumers(
    py: Python<'_>,
    tstate: *mut ffi::PyThreadState,
    frame: *const InterpreterFrame,
) -> PyResult<Vec<u64>> {
    let generation = GENERATION.load(Ordering::Relaxed);
    if generation == 0 {
        return Ok(Vec::new());
    }
    let on_thread = thread_consumers(py);
    if on_thread.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = matching_consumers(py, frame)?;
    if ANY_DEPTH.load(Ordering::Relaxed) {
        let callers = callers_matching(py, interpreter::current_frame(tstate));
        let scoped = depth_scope(py, &ids, callers)?;
        ids.extend(scoped);
    }
    ids.retain(|id| on_thread.contains(id));
    Ok(ids)
}

/// Undoes [`begin_frame`] after the frame's evaluation returned `result`: forgets the frame
/// if it finished, and gives the caller back its mode, adopting the other tool's current
/// hook if it changed meanwhile.
unsafe fn end_frame(
    tstate: *mut ffi::PyThreadState,
    frame: *mut InterpreterFrame,
    switched: Switched,
    result: *mut ffi::PyObject,
) {
    if let Some(consumers) = &switched.recorded {
        frame_record::record_exit(Python::assume_attached(), consumers, frame, result);
        if !switched.caller_traced {
            // Nothing was switched for this frame.
            return;
        }
    }
    if switched.pushed {
        let popped = THREAD
            .try_with(|thread| {
                let mut traced = thread.traced.borrow_mut();
                let at = traced.iter().rposition(|t| t.frame == frame)?;
                Some(traced.remove(at))
            })
            .ok()
            .flatten();
        let py = Python::assume_attached();
        let frame_object = interpreter::frame_object(frame);
        if !frame_object.is_null() && !interpreter::is_suspended(frame, result) {
            // Releasing local trace functions may run destructors: the frame's exception
            // (if it raised) is kept aside meanwhile.
            with_error_aside(|| delivery::forget_frame(py, frame_object as usize));
        }
        // Released outside the thread's stack (a destructor may start another frame).
        let exception = popped.and_then(|frame| frame.exception);
        with_error_aside(|| drop(exception.map(|e| e.into_bound(py))));
    }
    let current = interpreter::trace_hook(tstate);
    let other_tool = if is_trampoline(current) {
        THREAD.try_with(|t| t.chained.get()).ok().flatten()
    } else {
        current
    };
    if switched.caller_traced {
        let _ = THREAD.try_with(|t| t.chained.set(other_tool));
        interpreter::set_trace_hook(tstate, Some(trampoline_hook()));
    } else {
        interpreter::set_trace_hook(tstate, other_tool);
    }
}

/// After the calling thread's trace function was set (by `ferrotrace.settrace`): if the frame
/// running is one that ferrotrace traces, its trampoline goes back in front of the new hook,
/// which it calls first from now on. (CPython's own `sys.settrace` cannot tell ferrotrace; the
/// frame then stays untraced until it calls a function or one returns to it.)
pub fn adopt_trace_hook() {
    // SAFETY: called from Python code, so the GIL is held and the thread state is live.
    unsafe {
        let tstate = ffi::PyThreadState_Get();
        let current = interpreter::trace_hook(tstate);
        if is_trampoline(current) || interpreter::in_trace_function(tstate) {
            return;
        }
        let running = interpreter::current_frame(tstate);
        let traced_here = THREAD
            .try_with(|thread| {
                thread
                    .traced
                    .borrow()
                    .last()
                    .is_some_and(|top| top.frame == running)
            })
            .unwrap_or(false);
        if traced_here {
            let _ = THREAD.try_with(|t| t.chained.set(current));
            interpreter::set_trace_hook(tstate, Some(trampoline_hook()));
        }
    }
}

// ------------------------------------------------------------------------------------------
// The trace trampoline
// ------------------------------------------------------------------------------------------

/// The C trace hook of a thread while a traced frame runs. Never unwinds into CPython.
///
/// # Safety
/// Called by CPython only, with the GIL held, a live frame and `obj` the thread's
/// `c_traceobj` (another tool's, or null).
unsafe extern "C" fn trampoline(
    obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    never_unwind(
        // SAFETY: the caller's guarantees are passed on.
        || unsafe { dispatch(obj, frame, what, arg) },
        || {},
        c"ferrotrace: internal error in the Tracer's trampoline",
    )
}

/// Puts the trampoline back in front of the thread's trace hook if something set another one
/// (or none) while the trampoline ran; that one is chained to from now on.
unsafe fn stay_in_front() {
    let tstate = ffi::PyThreadState_Get();
    let current = interpreter::trace_hook(tstate);
    if !is_trampoline(current) {
        let _ = THREAD.try_with(|t| t.chained.set(current));
        interpreter::set_trace_hook(tstate, Some(trampoline_hook()));
    }
}

unsafe fn dispatch(
    obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    let chained = THREAD.try_with(|t| t.chained.get()).ok().flatten();
    if let Some(other_tool) = chained {
        let status = other_tool(obj, frame, what, arg);
        // The other tool may have set another function (or none), as a debugger does when
        // it continues: from now on the trampoline chains to that.
        stay_in_front();
        if status != 0 {
            // Its error propagates; the consumers do not see this event (as with
            // sys.monitoring, where the first raising callback ends the event).
            return status;
        }
    }
    let Some(event) = TraceEvent::from_what(what) else {
        return 0;
    };
    let target = interpreter::of_frame_object(frame);
    let py = Python::assume_attached();
    // An `exception` event's arg is `(type, value, traceback)`.
    let arg_exception = if event == TraceEvent::Exception && !arg.is_null() {
        Bound::from_borrowed_ptr(py, arg).get_item(1).ok()
    } else {
        None
    };
    // 3.11 reports a frame that an exception leaves as `return` with no value.
    let unwinding = arg.is_null() && event == TraceEvent::Return;
    let found = THREAD
        .try_with(|thread| {
            let mut traced = thread.traced.borrow_mut();
            let top = traced.last_mut().filter(|top| top.frame == target)?;
            // A record sink describes an unwinding frame by the exception that leaves it.
            let replaced = match (&arg_exception, top.records) {
                (Some(exception), true) => top.exception.replace(exception.clone().unbind()),
                _ => None,
            };
            let leaving = unwinding
                .then(|| top.exception.as_ref().map(|e| e.clone_ref(py)))
                .flatten();
            let consumers = top.wanted.contains(event).then(|| top.consumers.clone());
            Some((consumers, top.records, leaving, replaced))
        })
        .ok()
        .flatten();
    let Some((consumers, records, leaving, replaced)) = found else {
        return 0;
    };
    drop(replaced.map(|e| e.into_bound(py)));
    let Some(consumers) = consumers else {
        // No consumer of this frame wants this kind of event (a recorder of calls and its
        // lines): CPython's eval loop still reports it, ferrotrace returns at once.
        return 0;
    };
    let frame_object = Bound::from_borrowed_ptr(py, frame.cast());
    let arg = if arg.is_null() {
        py.None().into_bound(py)
    } else {
        Bound::from_borrowed_ptr(py, arg)
    };
    let code = Bound::from_borrowed_ptr(py, interpreter::code(target));
    let exception = arg_exception.or_else(|| leaving.map(|e| e.into_bound(py)));
    let site = EventFrame {
        frame: &frame_object,
        sets_lineno: false,
        line: None,
        occurrence: if records {
            occurrence(event, &code, frame, &arg, exception.as_ref(), unwinding)
        } else {
            None
        },
    };
    let delivered = delivery::deliver(py, &consumers, &site, event, &arg);
    // A callback may have set a trace function (`pdb.set_trace()`): chain to it.
    stay_in_front();
    match delivered {
        Ok(()) => 0,
        Err(err) => {
            err.restore(py);
            -1
        }
    }
}

/// The event as a record sink keeps it, at the line CPython set for the event; `exception` is
/// the one raised (`exception`) or leaving the frame (an unwinding `return`).
unsafe fn occurrence<'a, 'py>(
    event: TraceEvent,
    code: &'a Bound<'py, PyAny>,
    frame: *mut ffi::PyFrameObject,
    arg: &'a Bound<'py, PyAny>,
    exception: Option<&'a Bound<'py, PyAny>>,
    unwinding: bool,
) -> Option<Occurrence<'a, 'py>> {
    let kind = record_kind(event, unwinding)?;
    let value = match kind {
        EventKind::Return => Some(arg),
        EventKind::Exception | EventKind::Unwind => exception,
        EventKind::Call | EventKind::Line => None,
    };
    Some(Occurrence {
        kind,
        code,
        line: LineSource::Frame(frame),
        value,
        timestamp_ns: now_ns(),
    })
}

// ------------------------------------------------------------------------------------------
// Testing aids: the frame-evaluation slot as another PEP 523 tool would use it
// ------------------------------------------------------------------------------------------

/// What the pass-through hook below replaced (0: `_PyEval_EvalFrameDefault`).
static OTHER_TOOL_PREVIOUS: AtomicUsize = AtomicUsize::new(0);
/// Frames the pass-through hook saw.
static OTHER_TOOL_FRAMES: AtomicU64 = AtomicU64::new(0);

/// A pass-through frame-evaluation function standing for another PEP 523 tool.
unsafe extern "C" fn other_tool_eval_frame(
    tstate: *mut ffi::PyThreadState,
    frame: *mut ffi::_PyInterpreterFrame,
    throwflag: c_int,
) -> *mut ffi::PyObject {
    OTHER_TOOL_FRAMES.fetch_add(1, Ordering::Relaxed);
    let previous = match OTHER_TOOL_PREVIOUS.load(Ordering::Relaxed) {
        0 => _PyEval_EvalFrameDefault,
        // SAFETY: only ever stored from a `_PyFrameEvalFunction`.
        address => std::mem::transmute::<usize, ffi::_PyFrameEvalFunction>(address),
    };
    previous(tstate, frame, throwflag)
}

/// _eval_frame_hook()
/// --
///
/// Whose frame-evaluation function the interpreter runs: "default", "ferrotrace" or "other"
/// (a testing aid).
#[pyfunction]
pub fn _eval_frame_hook() -> &'static str {
    // SAFETY: called from Python, so the GIL is held.
    let current = unsafe { interpreter::eval_frame_function(ffi::PyThreadState_Get()) };
    if ptr::fn_addr_eq(
        current,
        _PyEval_EvalFrameDefault as ffi::_PyFrameEvalFunction,
    ) {
        "default"
    } else if ptr::fn_addr_eq(current, eval_frame as ffi::_PyFrameEvalFunction) {
        "ferrotrace"
    } else {
        "other"
    }
}

/// _set_other_eval_frame_hook(on, /)
/// --
///
/// Installs (on=True) a pass-through frame-evaluation function standing for another PEP 523
/// tool, on top of whatever is installed, or puts back what it replaced (on=False). Returns
/// how many frames it has seen (a testing aid).
#[pyfunction]
#[pyo3(signature = (on, /))]
pub fn _set_other_eval_frame_hook(on: bool) -> u64 {
    // SAFETY: called from Python, so the GIL is held.
    unsafe {
        let tstate = ffi::PyThreadState_Get();
        let current = interpreter::eval_frame_function(tstate);
        let installed =
            ptr::fn_addr_eq(current, other_tool_eval_frame as ffi::_PyFrameEvalFunction);
        if on && !installed {
            OTHER_TOOL_FRAMES.store(0, Ordering::Relaxed);
            OTHER_TOOL_PREVIOUS.store(current as usize, Ordering::Relaxed);
            interpreter::set_eval_frame_function(tstate, other_tool_eval_frame);
        } else if !on && installed {
            let previous = match OTHER_TOOL_PREVIOUS.load(Ordering::Relaxed) {
                0 => _PyEval_EvalFrameDefault,
                address => std::mem::transmute::<usize, ffi::_PyFrameEvalFunction>(address),
            };
            interpreter::set_eval_frame_function(tstate, previous);
        }
    }
    OTHER_TOOL_FRAMES.load(Ordering::Relaxed)
}

/// _record_at_frame_entry(on, /)
/// --
///
/// Whether frames wanted only by recorders of calls and returns are recorded by the
/// frame-evaluation function itself (on=True, the default) or through the trace hook like
/// other frames (on=False, to compare the two); returns the previous setting (a testing aid).
#[pyfunction]
#[pyo3(signature = (on, /))]
pub fn _record_at_frame_entry(on: bool) -> bool {
    RECORD_AT_ENTRY.swap(on, Ordering::Relaxed)
}

/// _frames_recorded_at_entry()
/// --
///
/// How many frames the frame-evaluation function has recorded itself, on every thread (a
/// testing aid).
#[pyfunction]
pub fn _frames_recorded_at_entry() -> u64 {
    RECORDED_AT_ENTRY.load(Ordering::Relaxed)
}

pub fn register(module: &Bound<'_, pyo3::types::PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(_frames_recorded_at_entry, module)?)?;
    module.add_function(wrap_pyfunction!(_eval_frame_hook, module)?)?;
    module.add_function(wrap_pyfunction!(_record_at_frame_entry, module)?)?;
    module.add_function(wrap_pyfunction!(_set_other_eval_frame_hook, module)?)?;
    Ok(())
}
