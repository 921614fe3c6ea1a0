//! `sys.monitoring` callbacks as plain vectorcall C functions, for the events every traced
//! call pays (`PY_START`, `PY_RESUME`, `PY_RETURN`, `PY_YIELD`) and `PY_UNWIND`: CPython calls
//! them with its argument vector, without the keyword-aware argument parsing of a
//! `#[pyfunction]` nor the checks and recursion guard of a builtin function (each callback is
//! an object of its own small type, [`callback`], whose vectorcall slot is the entry); a
//! callback's fast path ([`try_fast`]) gets the arguments borrowed. The `extern "C"` entry
//! points are the only code here that CPython calls directly; they never unwind into it (a
//! panic becomes a Python exception).

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use std::sync::OnceLock;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::Borrowed;

/// What a callback does with `(code, offset[, value])`.
pub type Body =
    fn(Python<'_>, &Bound<'_, PyAny>, i64, Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>>;

/// A callback's fast path: `(code, offset)`, borrowed references as CPython passed them (no
/// reference count changes, no null check: CPython passes objects); true when it handled the
/// event, false to run the callback's general body.
pub type FastPath = fn(Python<'_>, *mut ffi::PyObject, *mut ffi::PyObject) -> bool;

/// As [`FastPath`], for a callback of `(code, offset, value)`.
pub type FastPathWithValue =
    fn(Python<'_>, *mut ffi::PyObject, *mut ffi::PyObject, *mut ffi::PyObject) -> bool;

/// Runs `fast` for a callback CPython called with `call`: Some(result of the callback) if it
/// handled the event (None returned, or a panic raised as an exception).
///
/// # Safety
/// As [`dispatch`].
#[inline(always)]
pub unsafe fn try_fast(call: Args, fast: FastPath) -> Option<*mut ffi::PyObject> {
    if !call.has_positional(2) {
        return None;
    }
    let args = call.args;
    // SAFETY: at least two borrowed references at `args` (a vectorcall passes as many valid
    // ones as it says), alive for the call.
    let (code, offset) = unsafe { (*args, *args.add(1)) };
    // SAFETY: as the caller promises.
    unsafe { run_fast(move |py| fast(py, code, offset)) }
}

/// As [`try_fast`], for a callback of `(code, offset, value)`.
///
/// # Safety
/// As [`dispatch`].
#[inline(always)]
pub unsafe fn try_fast_with_value(
    call: Args,
    fast: FastPathWithValue,
) -> Option<*mut ffi::PyObject> {
    if !call.has_positional(3) {
        return None;
    }
    let args = call.args;
    // SAFETY: at least three borrowed references at `args`, alive for the call.
    let (code, offset, value) = unsafe { (*args, *args.add(1), *args.add(2)) };
    // SAFETY: as the caller promises.
    unsafe { run_fast(move |py| fast(py, code, offset, value)) }
}

/// Runs a fast path (the closure holds the arguments themselves: nothing is stored for it).
///
/// # Safety
/// Called from a callback CPython called (it holds the GIL).
#[inline(always)]
unsafe fn run_fast(fast: impl FnOnce(Python<'_>) -> bool) -> Option<*mut ffi::PyObject> {
    // SAFETY: CPython holds the GIL while it calls a callback.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(move || fast(py))) {
        Ok(true) => Some(new_none(py)),
        Ok(false) => None,
        Err(_) => {
            PanicException::new_err("ferrotrace: panic in a sys.monitoring callback").restore(py);
            Some(null_mut())
        }
    }
}

/// A new reference to `None`, as a callback returns it. `None` is immortal since 3.12: as
/// CPython's own `Py_RETURN_NONE` there, no count to raise.
#[inline(always)]
fn new_none(py: Python<'_>) -> *mut ffi::PyObject {
    #[cfg(Py_3_12)]
    {
        let _ = py;
        // SAFETY: a static object, alive as long as the interpreter.
        unsafe { ffi::Py_None() }
    }
    #[cfg(not(Py_3_12))]
    {
        py.None().into_ptr()
    }
}

/// A callback's arguments, as CPython passed them to its vectorcall entry.
#[derive(Clone, Copy)]
pub struct Args {
    args: *const *mut ffi::PyObject,
    /// The number of positional arguments, with `PY_VECTORCALL_ARGUMENTS_OFFSET`.
    nargsf: usize,
    /// The names of keyword arguments after them (null: none).
    kwnames: *mut ffi::PyObject,
}

impl Args {
    pub fn new(
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> Self {
        Args {
            args,
            nargsf,
            kwnames,
        }
    }

    /// Whether there are at least `n` positional arguments and no keyword ones.
    #[inline(always)]
    fn has_positional(self, n: usize) -> bool {
        (self.nargsf & !ffi::PY_VECTORCALL_ARGUMENTS_OFFSET) >= n && self.kwnames.is_null()
    }

    /// The number of positional arguments; -1, which no callback accepts, if there are
    /// keyword arguments too.
    fn positional(self) -> ffi::Py_ssize_t {
        if !self.kwnames.is_null() {
            return -1;
        }
        (self.nargsf & !ffi::PY_VECTORCALL_ARGUMENTS_OFFSET) as ffi::Py_ssize_t
    }
}

/// Runs `body` for a callback CPython called with `call`.
///
/// # Safety
/// Called only by CPython through a callback's vectorcall entry, with the arguments it got:
/// the GIL is held and they are borrowed references.
pub unsafe fn dispatch(call: Args, body: Body) -> *mut ffi::PyObject {
    let (args, nargs) = (call.args, call.positional());
    // SAFETY: CPython holds the GIL while it calls a callback.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if !(2..=3).contains(&nargs) || args.is_null() {
            return Err(PyTypeError::new_err(
                "ferrotrace: a monitoring callback takes (code, offset[, value])",
            ));
        }
        // SAFETY: `nargs` (2 or 3) borrowed, non-null references at `args`, alive for the
        // call.
        let (code, offset, value) = unsafe {
            (
                Borrowed::from_ptr(py, *args),
                Borrowed::from_ptr(py, *args.add(1)),
                (nargs == 3).then(|| Borrowed::from_ptr(py, *args.add(2))),
            )
        };
        body(py, &code, offset.extract()?, value.as_deref())
    }));
    let error = match outcome {
        Ok(Ok(result)) => return result.into_ptr(),
        Ok(Err(error)) => error,
        Err(_) => PanicException::new_err("ferrotrace: panic in a sys.monitoring callback"),
    };
    error.restore(py);
    null_mut()
}

/// A callback object: its vectorcall entry, at the offset its type declares.
#[repr(C)]
struct Callback {
    ob_base: ffi::PyObject,
    entry: ffi::vectorcallfunc,
    name: *const c_char,
}

/// The callbacks' type, made once (a heap type: `PyType_FromSpec`). Its objects cannot be
/// made from Python; calling one calls its entry.
fn callback_type(py: Python<'_>) -> PyResult<*mut ffi::PyTypeObject> {
    static TYPE: OnceLock<Py<PyAny>> = OnceLock::new();
    if let Some(made) = TYPE.get() {
        return Ok(made.as_ptr().cast());
    }
    let members = Box::leak(Box::new([
        ffi::PyMemberDef {
            name: c"__vectorcalloffset__".as_ptr(),
            type_code: ffi::Py_T_PYSSIZET,
            offset: std::mem::offset_of!(Callback, entry) as ffi::Py_ssize_t,
            flags: ffi::Py_READONLY,
            doc: std::ptr::null(),
        },
        ffi::PyMemberDef::default(),
    ]));
    let slots = Box::leak(Box::new([
        ffi::PyType_Slot {
            slot: ffi::Py_tp_call,
            pfunc: ffi::PyVectorcall_Call as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_members,
            pfunc: members.as_mut_ptr().cast(),
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_repr,
            pfunc: callback_repr as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: callback_dealloc as *mut c_void,
        },
        ffi::PyType_Slot::default(),
    ]));
    let spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: c"ferrotrace._native.MonitoringCallback".as_ptr(),
        basicsize: std::mem::size_of::<Callback>() as std::ffi::c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_HAVE_VECTORCALL
            | ffi::Py_TPFLAGS_IMMUTABLETYPE
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION) as std::ffi::c_uint,
        slots: slots.as_mut_ptr(),
    }));
    // SAFETY: the GIL is held; the spec, its slots and members are never freed.
    let made = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(spec))? };
    Ok(TYPE.get_or_init(|| made.unbind()).as_ptr().cast())
}

/// `repr()` of a callback: `<ferrotrace monitoring callback _on_start>`.
unsafe extern "C" fn callback_repr(object: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this for an object of the callbacks' type, whose name is a static
    // C string.
    unsafe {
        let name = (*object.cast::<Callback>()).name;
        ffi::PyUnicode_FromFormat(c"<ferrotrace monitoring callback %s>".as_ptr(), name)
    }
}

/// Frees a callback (never, in practice: each is kept for the process) and its reference to
/// its type, as an object of a heap type must.
unsafe extern "C" fn callback_dealloc(object: *mut ffi::PyObject) {
    // SAFETY: CPython calls this once for an object of the callbacks' type, which holds a
    // reference to that type (taken by `PyType_GenericAlloc`) and was allocated with its
    // `tp_free`.
    unsafe {
        let kind = ffi::Py_TYPE(object);
        if let Some(free) = (*kind).tp_free {
            free(object.cast());
        }
        ffi::Py_DECREF(kind.cast());
    }
}

/// A callback object calling `entry` with the vectorcall protocol, shown as `name`.
pub fn callback<'py>(
    py: Python<'py>,
    name: &'static CStr,
    entry: ffi::vectorcallfunc,
) -> PyResult<Bound<'py, PyAny>> {
    let kind = callback_type(py)?;
    // SAFETY: the GIL is held; the new object is zeroed, with its type and one reference;
    // `entry` and `name` are filled before anyone else sees it.
    unsafe {
        let object = Bound::from_owned_ptr_or_err(py, ffi::PyType_GenericAlloc(kind, 0))?;
        let callback = object.as_ptr().cast::<Callback>();
        (*callback).entry = entry;
        (*callback).name = name.as_ptr();
        Ok(object)
    }
}
