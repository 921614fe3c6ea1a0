"""Putting ferrotrace under ``sys.settrace`` so that unmodified tools run on it."""

from __future__ import annotations

import _thread
import sys

from ferrotrace import _native

# sys attribute -> ferrotrace's replacement. `threading.settrace*` need no patch: they call
# `sys.settrace` / `sys._settraceallthreads` by attribute when they run.
_REPLACEMENTS = {
    "settrace": _native.settrace,
    "gettrace": _native.gettrace,
}
if hasattr(sys, "_settraceallthreads"):  # 3.12+
    _REPLACEMENTS["_settraceallthreads"] = _native._settraceallthreads

# `threading.Lock()` itself, without importing `threading` into every program that imports
# ferrotrace (millions of instructions of its start-up).
_lock = _thread.allocate_lock()
_originals: dict[str, object] = {}


def install() -> None:
    """Make ``sys.settrace is ferrotrace.settrace`` (and ``sys.gettrace``, and on 3.12+
    ``sys._settraceallthreads``). Idempotent. Trace functions already set stay set."""
    with _lock:
        if _originals:
            return
        for name, replacement in _REPLACEMENTS.items():
            _originals[name] = getattr(sys, name)
            setattr(sys, name, replacement)


def uninstall() -> None:
    """Restore the exact objects ``install()`` replaced. Idempotent."""
    with _lock:
        for name, original in _originals.items():
            setattr(sys, name, original)
        _originals.clear()


def is_installed() -> bool:
    """Whether ``install()`` is in effect."""
    return bool(_originals)
