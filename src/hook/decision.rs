//! What both backends need to decide which consumers want a code object.

use std::cell::{Cell, RefCell};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::filter::{Environment, Filter};
use crate::hook::consumer::{registry_generation, with_consumers};

/// Per thread: which consumers trace it, for one registry generation.
struct ThreadDecision {
    generation: Cell<u64>,
    consumers: RefCell<Vec<u64>>,
}

thread_local! {
    static THREAD_DECISION: ThreadDecision = const {
        ThreadDecision {
            generation: Cell::new(0),
            consumers: RefCell::new(Vec::new()),
        }
    };
}

/// The consumers that trace the calling thread: its ident and `threading` name against each
/// consumer's thread and `threads` filter. Decided once per thread and set of consumers (so a
/// thread renamed after its first traced event keeps its first name's decision).
pub fn thread_consumers(py: Python<'_>) -> Vec<u64> {
    let generation = registry_generation();
    let cached = THREAD_DECISION.try_with(|thread| {
        (thread.generation.get() == generation).then(|| thread.consumers.borrow().clone())
    });
    match cached {
        Ok(Some(ids)) => return ids,
        Ok(None) => {}
        // The thread is exiting: nothing of it is traced any more.
        Err(_) => return Vec::new(),
    }
    // SAFETY: always safe to call.
    let ident = unsafe { ffi::PyThread_get_thread_ident() as u64 };
    let needs_name = with_consumers(py, |consumers| {
        consumers
            .iter()
            .any(|c| c.traces_thread(ident) && !c.filter.matches_thread(ident, ""))
    });
    // A thread not yet registered with `threading` (its first frames) has no name yet: decide
    // without it, and again next time.
    let name = needs_name.then(|| current_thread_name(py, ident));
    let settled = name.as_ref().is_none_or(Option::is_some);
    let name = name.flatten().unwrap_or_default();
    let ids: Vec<u64> = with_consumers(py, |consumers| {
        consumers
            .iter()
            .filter(|c| c.traces_thread(ident) && c.filter.matches_thread(ident, &name))
            .map(|c| c.id)
            .collect()
    });
    if settled {
        let _ = THREAD_DECISION.try_with(|thread| {
            *thread.consumers.borrow_mut() = ids.clone();
            thread.generation.set(generation);
        });
    }
    ids
}

/// Keeps in `ids` the consumers that trace the calling thread (see [`thread_consumers`]);
/// once decided for the thread, without allocating.
pub fn retain_thread_consumers(py: Python<'_>, ids: &mut Vec<u64>) {
    let generation = registry_generation();
    let filtered = THREAD_DECISION.try_with(|thread| {
        if thread.generation.get() != generation {
            return false;
        }
        let on_thread = thread.consumers.borrow();
        ids.retain(|id| on_thread.contains(id));
        true
    });
    match filtered {
        Ok(true) => {}
        Ok(false) => {
            let on_thread = thread_consumers(py);
            ids.retain(|id| on_thread.contains(id));
        }
        Err(_) => ids.clear(),
    }
}

/// The `threading` name of the calling thread, read from `threading._active` without an
/// import and without running Python code; None if the thread is not known there (yet).
fn current_thread_name(py: Python<'_>, ident: u64) -> Option<String> {
    let lookup = || -> PyResult<String> {
        let threading = loaded_module(py, "threading")
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err("threading"))?;
        let thread = threading.getattr("_active")?.get_item(ident)?;
        thread.getattr("_name")?.extract()
    };
    lookup().ok()
}

/// The module `name` if it is imported (in `sys.modules`), found without an import (which
/// would go through the running frame's `__builtins__`) and without running Python code.
pub fn loaded_module<'py>(py: Python<'py>, name: &str) -> Option<Bound<'py, PyAny>> {
    // SAFETY: the GIL is held; a borrowed reference or null.
    let modules = unsafe { ffi::PySys_GetObject(c"modules".as_ptr()) };
    if modules.is_null() {
        return None;
    }
    // SAFETY: as above.
    let modules = unsafe { Bound::from_borrowed_ptr(py, modules) };
    modules.get_item(name).ok()
}

/// The environment of a backend that has not asked for one: filters that do not select the
/// user's code never look at it.
pub static NO_ENVIRONMENT: Environment = Environment::empty();

/// The [`library_environment`] for a consumer with `filter` when the backend has none yet
/// (`known` is false); None when the filter does not select the user's code. Asking
/// `sysconfig` and `site` costs a process about 9 million instructions of start-up
/// (`ferrotrace trace --file '**'` never needs it).
pub fn environment_to_add(
    py: Python<'_>,
    filter: &Filter,
    known: bool,
) -> PyResult<Option<Environment>> {
    if known || !filter.selects_user_code() {
        return Ok(None);
    }
    library_environment(py).map(Some)
}

/// Directories that are not the user's code: the interpreter's library, installed packages and
/// their console scripts (such as the `ferrotrace` command itself).
pub fn library_environment(py: Python<'_>) -> PyResult<Environment> {
    let sysconfig = py.import("sysconfig")?;
    let paths = sysconfig.call_method0("get_paths")?;
    let mut dirs: Vec<String> = Vec::new();
    for key in ["stdlib", "platstdlib", "purelib", "platlib", "scripts"] {
        if let Ok(path) = paths.get_item(key) {
            dirs.push(path.extract()?);
        }
    }
    let site = py.import("site")?;
    if let Ok(packages) = site.call_method0("getsitepackages") {
        dirs.extend(packages.extract::<Vec<String>>()?);
    }
    if let Ok(user) = site.call_method0("getusersitepackages") {
        dirs.push(user.extract()?);
    }
    let os_path = py.import("os.path")?;
    let real: Vec<String> = dirs
        .iter()
        .filter_map(|d| os_path.call_method1("realpath", (d,)).ok()?.extract().ok())
        .collect();
    dirs.extend(real);
    Ok(Environment::new(dirs))
}

/// A code object's `co_filename`, `co_name` and `co_qualname`.
pub fn code_names(code: &Bound<'_, PyAny>) -> PyResult<(String, String, String)> {
    Ok((
        code.getattr("co_filename")?.extract()?,
        code.getattr("co_name")?.extract()?,
        code.getattr("co_qualname")?.extract()?,
    ))
}

/// The consumers with a `depth`, other than those in `matched` (whose filter selects the frame
/// itself), within whose window a frame is: `depth` calls or fewer below its nearest caller
/// whose code they match. `ancestors` yields, for each caller outward, the consumers matching
/// its code; it is read only as far as needed.
pub fn depth_scope(
    py: Python<'_>,
    matched: &[u64],
    ancestors: impl Iterator<Item = PyResult<Vec<u64>>>,
) -> PyResult<Vec<u64>> {
    let mut pending: Vec<(u64, u32)> = with_consumers(py, |consumers| {
        consumers
            .iter()
            .filter(|c| c.filter.depth() > 0 && !matched.contains(&c.id))
            .map(|c| (c.id, c.filter.depth()))
            .collect()
    });
    let mut in_scope = Vec::new();
    let mut distance: u32 = 1;
    for ancestor_matched in ancestors {
        if pending.is_empty() {
            break;
        }
        let ancestor_matched = ancestor_matched?;
        pending.retain(|&(id, depth)| {
            if ancestor_matched.contains(&id) {
                // The nearest match decides, in scope or not.
                if distance <= depth {
                    in_scope.push(id);
                }
                false
            } else {
                distance < depth
            }
        });
        distance = distance.saturating_add(1);
    }
    Ok(in_scope)
}
