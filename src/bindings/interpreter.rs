//! CPython 3.11's evaluation internals that the PEP 523 route needs: the interpreter frame an
//! eval-frame function receives (`struct _PyInterpreterFrame`, `Include/internal/pycore_frame.h`)
//! and the tracing fields of the thread state (`struct _ts`, `Include/cpython/pystate.h`, with
//! `_PyCFrame.use_tracing`, which the eval loop ORs into each opcode).
//!
//! None of this is public API: [`verify_layout`] checks every field used against the running
//! interpreter when the module is imported. If anything differs, the 3.11 backend stays off
//! (`Tracer.start()` raises), and nothing else is affected.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::bindings::frame;

/// `struct _PyInterpreterFrame` (3.11).
#[repr(C)]
pub struct InterpreterFrame {
    f_func: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    f_code: *mut ffi::PyObject,
    frame_obj: *mut ffi::PyFrameObject,
    previous: *mut InterpreterFrame,
    prev_instr: *mut u16,
    stacktop: c_int,
    is_entry: bool,
    owner: c_char,
}

/// `enum _frameowner`: the frame lives inside a generator or coroutine object.
const FRAME_OWNED_BY_GENERATOR: c_char = 1;

/// `_PyCFrame` (3.11): one per running `_PyEval_EvalFrameDefault`, on the C stack.
#[repr(C)]
struct CFrame {
    use_tracing: u8,
    current_frame: *mut InterpreterFrame,
    previous: *mut CFrame,
}

/// The leading fields of `struct _ts` (3.11).
#[repr(C)]
struct ThreadStateHead {
    prev: *mut ffi::PyThreadState,
    next: *mut ffi::PyThreadState,
    interp: *mut ffi::PyInterpreterState,
    _initialized: c_int,
    _static: c_int,
    recursion_remaining: c_int,
    recursion_limit: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    tracing_what: c_int,
    cframe: *mut CFrame,
    c_profilefunc: Option<ffi::Py_tracefunc>,
    c_tracefunc: Option<ffi::Py_tracefunc>,
    c_profileobj: *mut ffi::PyObject,
    c_traceobj: *mut ffi::PyObject,
}

#[inline(always)]
unsafe fn head(tstate: *mut ffi::PyThreadState) -> *mut ThreadStateHead {
    tstate.cast()
}

/// Whether a trace or profile function is running on this thread (`tstate->tracing`): then
/// nothing is traced, as in CPython.
///
/// # Safety
/// `tstate` is the calling thread's state and the GIL is held.
#[inline(always)]
pub unsafe fn in_trace_function(tstate: *mut ffi::PyThreadState) -> bool {
    (*head(tstate)).tracing != 0
}

/// The thread's C trace hook (`c_tracefunc`).
///
/// # Safety
/// As for [`in_trace_function`].
#[inline(always)]
pub unsafe fn trace_hook(tstate: *mut ffi::PyThreadState) -> Option<ffi::Py_tracefunc> {
    (*head(tstate)).c_tracefunc
}

/// Points the thread's C trace hook at `hook`, keeping its object (`c_traceobj`, what
/// `sys.gettrace()` returns), and updates the innermost eval loop's tracing flag the way
/// CPython's `_PyThreadState_UpdateTracingState` does. The caller keeps `hook` and
/// `c_traceobj` consistent: `hook` is either the function that goes with that object, or
/// one that passes the object on to it.
///
/// # Safety
/// As for [`in_trace_function`].
#[inline(always)]
pub unsafe fn set_trace_hook(tstate: *mut ffi::PyThreadState, hook: Option<ffi::Py_tracefunc>) {
    let ts = head(tstate);
    (*ts).c_tracefunc = hook;
    let use_tracing =
        (*ts).tracing == 0 && ((*ts).c_tracefunc.is_some() || (*ts).c_profilefunc.is_some());
    if !(*ts).cframe.is_null() {
        (*(*ts).cframe).use_tracing = if use_tracing { 255 } else { 0 };
    }
}

/// The frame the thread is running (`tstate->cframe->current_frame`). In an eval-frame
/// function this is the caller of the frame about to be evaluated, whose `previous` link is not
/// set yet (the eval loop sets it from this).
///
/// # Safety
/// As for [`in_trace_function`].
#[inline(always)]
pub unsafe fn current_frame(tstate: *mut ffi::PyThreadState) -> *mut InterpreterFrame {
    let cframe = (*head(tstate)).cframe;
    if cframe.is_null() {
        ptr::null_mut()
    } else {
        (*cframe).current_frame
    }
}

/// The frame's code object (borrowed).
///
/// # Safety
/// `frame` is a live interpreter frame and the GIL is held.
#[inline(always)]
pub unsafe fn code(frame: *const InterpreterFrame) -> *mut ffi::PyObject {
    (*frame).f_code
}

/// The frame's globals (borrowed).
///
/// # Safety
/// As for [`code`].
#[inline(always)]
pub unsafe fn globals(frame: *const InterpreterFrame) -> *mut ffi::PyObject {
    (*frame).f_globals
}

/// The calling frame, or null; only for a frame that is running (see [`current_frame`]).
///
/// # Safety
/// As for [`code`].
#[inline(always)]
pub unsafe fn previous(frame: *const InterpreterFrame) -> *mut InterpreterFrame {
    (*frame).previous
}

/// The frame object made for this frame, if any (borrowed, may be null).
///
/// # Safety
/// As for [`code`].
#[inline(always)]
pub unsafe fn frame_object(frame: *const InterpreterFrame) -> *mut ffi::PyFrameObject {
    (*frame).frame_obj
}

/// Whether the frame, whose evaluation just returned `result`, is a generator or coroutine
/// suspended at a `yield`/`await` (it will be resumed) rather than finished.
///
/// # Safety
/// As for [`code`]; called right after the frame's evaluation returned.
pub unsafe fn is_suspended(frame: *const InterpreterFrame, result: *mut ffi::PyObject) -> bool {
    let Some(yield_value) = YIELD_VALUE.get() else {
        return false;
    };
    !result.is_null()
        && (*frame).owner == FRAME_OWNED_BY_GENERATOR
        && !(*frame).prev_instr.is_null()
        // `_Py_OPCODE`: the low byte of the code unit (little-endian; x86-64 only).
        && (*(*frame).prev_instr & 0xff) == *yield_value
}

/// Whether the frame lives inside a generator or coroutine object (it is being resumed), as
/// opposed to a frame of a plain call or the first run of a generator function's code, which
/// only makes the generator (`RETURN_GENERATOR`).
///
/// # Safety
/// As for [`code`].
#[inline(always)]
pub unsafe fn owned_by_generator(frame: *const InterpreterFrame) -> bool {
    (*frame).owner == FRAME_OWNED_BY_GENERATOR
}

/// `co_flags` of 3.11's `struct PyCodeObject` (`Include/cpython/code.h`).
const CODE_FLAGS_OFFSET: usize = 48;
/// `_co_firsttraceable`: the index of the code's first `RESUME`, where tracing starts.
const CODE_FIRST_TRACEABLE_OFFSET: usize = 168;
/// `co_code_adaptive`: the (quickened) instructions the eval loop runs (`_PyCode_CODE`).
const CODE_INSTRUCTIONS_OFFSET: usize = 184;
/// `CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR`.
const GENERATOR_FLAGS: c_int = 0x20 | 0x80 | 0x200;

/// Whether the code object is a generator, coroutine or async generator function's.
///
/// # Safety
/// `code` is a live code object, [`code_layout_verified`] said so, and the GIL is held.
#[inline(always)]
pub unsafe fn is_generator_code(code: *mut ffi::PyObject) -> bool {
    *code.cast::<u8>().add(CODE_FLAGS_OFFSET).cast::<c_int>() & GENERATOR_FLAGS != 0
}

/// The index of the first instruction of `code` that the eval loop traces (its first
/// `RESUME`).
///
/// # Safety
/// As for [`is_generator_code`].
#[inline(always)]
pub unsafe fn first_traceable(code: *mut ffi::PyObject) -> isize {
    *code
        .cast::<u8>()
        .add(CODE_FIRST_TRACEABLE_OFFSET)
        .cast::<c_int>() as isize
}

/// `_PyInterpreterFrame_LASTI`: the index of the instruction the frame executed last (-1
/// before its first).
///
/// # Safety
/// `frame` is a live interpreter frame, [`code_layout_verified`] said so, and the GIL is held.
#[inline(always)]
pub unsafe fn last_instruction(frame: *const InterpreterFrame) -> isize {
    let first = instructions((*frame).f_code);
    (*frame).prev_instr.offset_from(first)
}

/// Whether the instruction at `index` of `code` is a `RESUME` (as written or quickened): the
/// instruction at which a traced frame gets its `call` event.
///
/// # Safety
/// As for [`is_generator_code`]; `index` is within the code.
#[inline(always)]
pub unsafe fn is_resume(code: *mut ffi::PyObject, index: isize) -> bool {
    let Some(&[resume, resume_quick]) = RESUME_OPCODES.get() else {
        return false;
    };
    let opcode = *instructions(code).offset(index) & 0xff;
    opcode == resume || opcode == resume_quick
}

#[inline(always)]
unsafe fn instructions(code: *mut ffi::PyObject) -> *mut u16 {
    code.cast::<u8>()
        .add(CODE_INSTRUCTIONS_OFFSET)
        .cast::<u16>()
}

/// Whether starting a frame now fails at once with `RecursionError`, before its first
/// instruction and before any trace event: 3.11's `_Py_EnterRecursiveCallTstate` at the start
/// of `_PyEval_EvalFrameDefault` (`recursion_remaining-- <= 0`, then `_Py_CheckRecursiveCall`:
/// the depth reached the interpreter's limit and no `RecursionError` is being made).
///
/// # Safety
/// As for [`in_trace_function`].
#[inline(always)]
pub unsafe fn entry_overflows_recursion(tstate: *mut ffi::PyThreadState) -> bool {
    let ts = head(tstate);
    let remaining = (*ts).recursion_remaining;
    remaining <= 0
        && (*ts).recursion_headroom == 0
        && i64::from((*ts).recursion_limit) - i64::from(remaining) + 1
            >= i64::from(ffi::Py_GetRecursionLimit())
}

/// Whether the code object and recursion fields above were confirmed at import.
pub fn code_layout_verified() -> bool {
    CODE_LAYOUT.get().copied().unwrap_or(false)
}

/// The interpreter frame of a frame object.
///
/// # Safety
/// `frame` is a live frame object and the GIL is held.
#[inline(always)]
pub unsafe fn of_frame_object(frame: *mut ffi::PyFrameObject) -> *mut InterpreterFrame {
    frame::interpreter_frame(frame).cast()
}

/// `co_extra` of a code object (3.11's `struct PyCodeObject`, `Include/cpython/code.h`), which
/// points to a `_PyCodeObjectExtra`: a size, then that many slots.
const CODE_EXTRA_OFFSET: usize = 176;

#[repr(C)]
struct CodeExtra {
    size: ffi::Py_ssize_t,
    slots: [*mut c_void; 1],
}

/// Slot `index` of a code object's extra data, as `_PyCode_GetExtra` reads it (null if unset),
/// without the call; only once [`verify_code_extra`] said so.
///
/// # Safety
/// `code` is a live code object, `index` one that CPython handed out, and the GIL is held.
#[inline(always)]
pub unsafe fn code_extra(code: *mut ffi::PyObject, index: ffi::Py_ssize_t) -> *mut c_void {
    let extra = *code
        .cast::<u8>()
        .add(CODE_EXTRA_OFFSET)
        .cast::<*mut CodeExtra>();
    if extra.is_null() || index < 0 || (*extra).size <= index {
        return ptr::null_mut();
    }
    *ptr::addr_of!((*extra).slots)
        .cast::<*mut c_void>()
        .offset(index)
}

/// Whether [`code_extra`] reads what `_PyCode_GetExtra` does on this interpreter: checked on
/// a code object made for the purpose, through slot `index`.
///
/// # Safety
/// `index` is one that CPython handed out and the GIL is held.
pub unsafe fn verify_code_extra(py: Python<'_>, index: ffi::Py_ssize_t) -> bool {
    // Not through `compile()`: its check for an ast argument builds the ast node types,
    // millions of instructions of every start.
    let probe = ffi::Py_CompileStringExFlags(
        c"0".as_ptr(),
        c"<probe>".as_ptr(),
        ffi::Py_eval_input,
        ptr::null_mut(),
        -1,
    );
    let Ok(probe) = Bound::from_owned_ptr_or_err(py, probe) else {
        return false;
    };
    let code = probe.as_ptr();
    if !ptr::eq(ffi::Py_TYPE(code), ptr::addr_of_mut!(ffi::PyCode_Type)) {
        return false;
    }
    let marker = 0x5eed_u64 << 1;
    if ffi::PyUnstable_Code_SetExtra(code, index, marker as *mut c_void) < 0 {
        ffi::PyErr_Clear();
        return false;
    }
    let mut through_api: *mut c_void = ptr::null_mut();
    let read = ffi::PyUnstable_Code_GetExtra(code, index, &mut through_api) == 0
        && through_api as u64 == marker
        && code_extra(code, index) == through_api;
    ffi::PyErr_Clear();
    read
}

/// The opcode of `YIELD_VALUE`, read from the `opcode` module at import.
static YIELD_VALUE: OnceLock<u16> = OnceLock::new();

/// The opcodes of `RESUME` and of its quickened form `RESUME_QUICK`, read at import.
static RESUME_OPCODES: OnceLock<[u16; 2]> = OnceLock::new();

/// Whether the code object offsets and the recursion fields were confirmed at import.
static CODE_LAYOUT: OnceLock<bool> = OnceLock::new();

/// Why the layout check failed, or Ok; computed once, at import.
static LAYOUT: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether the layouts above match the running interpreter (checked at import).
pub fn layout() -> Result<(), String> {
    LAYOUT
        .get()
        .cloned()
        .unwrap_or_else(|| Err("not checked".into()))
}

/// Checks every field used above against the running interpreter, without changing anything
/// visible: the current frame against its frame object's Python attributes, and the thread
/// state against `sys.gettrace()`/`sys.getprofile()` and the tracing counter.
pub fn verify_layout(py: Python<'_>) -> PyResult<()> {
    let outcome = check(py)?;
    let _ = LAYOUT.set(outcome);
    Ok(())
}

fn check(py: Python<'_>) -> PyResult<Result<(), String>> {
    let sys = py.import("sys")?;
    let opcode: u16 = py
        .import("opcode")?
        .getattr("opmap")?
        .get_item("YIELD_VALUE")?
        .extract()?;
    let _ = YIELD_VALUE.set(opcode);
    let probe = sys.getattr("_getframe")?.call0()?;
    let caller = probe.getattr("f_back")?;
    if let Ok(Some(opcodes)) = resume_opcodes(py) {
        let _ = RESUME_OPCODES.set(opcodes);
    }
    // SAFETY: `probe` is a live frame (we hold it) and the GIL is held.
    let code_layout = unsafe { check_code_layout(py, &probe) }.unwrap_or(false);
    let _ = CODE_LAYOUT.set(code_layout);
    let mismatch = |what: &str| Ok(Err(format!("3.11 {what}")));
    // SAFETY: `probe` is a live frame (we hold it) and the GIL is held.
    unsafe {
        let frame = of_frame_object(probe.as_ptr().cast());
        if frame.is_null()
            || (*frame).frame_obj != probe.as_ptr().cast()
            || (*frame).f_code != probe.getattr("f_code")?.as_ptr()
            || (*frame).f_globals != probe.getattr("f_globals")?.as_ptr()
            || (*frame).f_builtins != probe.getattr("f_builtins")?.as_ptr()
            || (*frame).owner == FRAME_OWNED_BY_GENERATOR
        {
            return mismatch("_PyInterpreterFrame");
        }
        if !caller.is_none() {
            // f_back skips frames still in their prologue: look a few frames up.
            let wanted = of_frame_object(caller.as_ptr().cast());
            let mut ancestor = (*frame).previous;
            let mut steps = 0;
            while !ancestor.is_null() && ancestor != wanted && steps < 4 {
                ancestor = (*ancestor).previous;
                steps += 1;
            }
            if ancestor != wanted {
                return mismatch("_PyInterpreterFrame.previous");
            }
        }
        let tstate = ffi::PyThreadState_Get();
        let ts = head(tstate);
        let expected = |object: Bound<'_, PyAny>| {
            if object.is_none() {
                std::ptr::null_mut()
            } else {
                object.as_ptr()
            }
        };
        let trace_obj = expected(sys.getattr("gettrace")?.call0()?);
        let profile_obj = expected(sys.getattr("getprofile")?.call0()?);
        if (*ts).interp != ffi::PyThreadState_GetInterpreter(tstate)
            || (*ts).next != ffi::PyThreadState_Next(tstate)
            || (*ts).c_traceobj != trace_obj
            || (*ts).c_profileobj != profile_obj
            || (*ts).c_tracefunc.is_some() == trace_obj.is_null()
            || (*ts).c_profilefunc.is_some() == profile_obj.is_null()
            || (*ts).cframe.is_null()
        {
            return mismatch("PyThreadState");
        }
        // The eval loop running the import has the innermost frame as its current frame.
        let current = ffi::PyEval_GetFrame();
        if current.is_null() || (*(*ts).cframe).current_frame != of_frame_object(current) {
            return mismatch("_PyCFrame");
        }
        let tracing = (*ts).tracing;
        let use_tracing = (*(*ts).cframe).use_tracing;
        ffi::PyThreadState_EnterTracing(tstate);
        let entered = (*ts).tracing == tracing + 1 && (*(*ts).cframe).use_tracing == 0;
        ffi::PyThreadState_LeaveTracing(tstate);
        if !entered || (*ts).tracing != tracing || (*(*ts).cframe).use_tracing != use_tracing {
            return mismatch("PyThreadState.tracing");
        }
    }
    Ok(Ok(()))
}

/// `RESUME` from `opcode.opmap`, and `RESUME_QUICK`: 3.11 numbers its specialised
/// instructions (`opcode._specialized_instructions`, in order) with the opcodes `opmap` leaves
/// free, from 1 up (`Tools/scripts/generate_opcode_h.py`). None if either is not there.
fn resume_opcodes(py: Python<'_>) -> PyResult<Option<[u16; 2]>> {
    let opcode = py.import("opcode")?;
    let opmap = opcode.getattr("opmap")?;
    let Ok(resume) = opmap.get_item("RESUME").and_then(|op| op.extract::<u16>()) else {
        return Ok(None);
    };
    let used: Vec<u16> = opmap
        .call_method0("values")?
        .try_iter()?
        .map(|op| op?.extract())
        .collect::<PyResult<_>>()?;
    let specialized: Vec<String> = opcode.getattr("_specialized_instructions")?.extract()?;
    let Some(position) = specialized.iter().position(|name| name == "RESUME_QUICK") else {
        return Ok(None);
    };
    let resume_quick = (1..256u16).filter(|op| !used.contains(op)).nth(position);
    Ok(resume_quick.map(|quick| [resume, quick]))
}

/// Whether the code object fields read above (`co_flags`, `_co_firsttraceable`,
/// `co_code_adaptive`) and the recursion fields of the thread state are where this build
/// expects them: checked against the running probe frame and its code's Python attributes.
///
/// # Safety
/// `probe` is the running frame of the caller and the GIL is held.
unsafe fn check_code_layout(py: Python<'_>, probe: &Bound<'_, PyAny>) -> PyResult<bool> {
    let Some(resume) = RESUME_OPCODES.get().map(|ops| ops[0]) else {
        return Ok(false);
    };
    let frame = of_frame_object(probe.as_ptr().cast());
    let running = probe.getattr("f_code")?;
    if frame.is_null() || (*frame).f_code != running.as_ptr() {
        return Ok(false);
    }
    let lasti_bytes: isize = probe.getattr("f_lasti")?.extract()?;
    // A generator function's code starts with `RETURN_GENERATOR`, `POP_TOP`: its first
    // `RESUME` is not its first instruction.
    let generator = py
        .import("builtins")?
        .getattr("eval")?
        .call1(("lambda: (yield)",))?
        .getattr("__code__")?;
    for code_object in [&running, &generator] {
        let code = code_object.as_ptr();
        let flags: c_int = code_object.getattr("co_flags")?.extract()?;
        let raw: Vec<u8> = code_object.getattr("co_code")?.extract()?;
        let first_resume = raw
            .chunks_exact(2)
            .position(|unit| u16::from(unit[0]) == resume)
            .and_then(|index| isize::try_from(index).ok());
        if *code.cast::<u8>().add(CODE_FLAGS_OFFSET).cast::<c_int>() != flags
            || Some(first_traceable(code)) != first_resume
            || !is_resume(code, first_traceable(code))
        {
            return Ok(false);
        }
    }
    let ts = head(ffi::PyThreadState_Get());
    let remaining = (*ts).recursion_remaining;
    Ok(is_generator_code(generator.as_ptr())
        && !is_generator_code(running.as_ptr())
        && last_instruction(frame) * 2 == lasti_bytes
        && (*ts).recursion_limit == ffi::Py_GetRecursionLimit()
        && remaining > 0
        && remaining <= (*ts).recursion_limit
        && (*ts).recursion_headroom == 0)
}

/// The thread state's eval-frame function, as `_PyInterpreterState_GetEvalFrameFunc` returns it
/// (`_PyEval_EvalFrameDefault` when none was set).
///
/// # Safety
/// The GIL is held.
pub unsafe fn eval_frame_function(tstate: *mut ffi::PyThreadState) -> ffi::_PyFrameEvalFunction {
    ffi::_PyInterpreterState_GetEvalFrameFunc(ffi::PyThreadState_GetInterpreter(tstate))
}

/// Sets the interpreter's eval-frame function (`_PyEval_EvalFrameDefault` means none).
///
/// # Safety
/// The GIL is held.
pub unsafe fn set_eval_frame_function(
    tstate: *mut ffi::PyThreadState,
    function: ffi::_PyFrameEvalFunction,
) {
    ffi::_PyInterpreterState_SetEvalFrameFunc(
        ffi::PyThreadState_GetInterpreter(tstate),
        Some(function),
    );
}

/// An eval-frame function's interpreter-frame argument, as the layout above.
#[inline(always)]
pub fn cast_frame(frame: *mut ffi::_PyInterpreterFrame) -> *mut InterpreterFrame {
    frame.cast()
}

// The offsets of `Include/internal/pycore_frame.h` and `Include/cpython/pystate.h` (3.11,
// x86-64), which `verify_layout` confirms at run time.
const _: () = {
    assert!(std::mem::offset_of!(InterpreterFrame, previous) == 48);
    assert!(std::mem::offset_of!(InterpreterFrame, owner) == 69);
    assert!(std::mem::offset_of!(ThreadStateHead, recursion_remaining) == 32);
    assert!(std::mem::offset_of!(ThreadStateHead, recursion_headroom) == 40);
    assert!(std::mem::offset_of!(ThreadStateHead, cframe) == 56);
    assert!(std::mem::offset_of!(ThreadStateHead, c_tracefunc) == 72);
    assert!(std::mem::offset_of!(ThreadStateHead, c_traceobj) == 88);
};
