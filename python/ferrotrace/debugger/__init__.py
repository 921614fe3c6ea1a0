"""ferrotrace's debugger: pdb's commands, prompts and output, with the per-event decisions
(is there a breakpoint here, is this the frame being stepped) made natively.

``Bdb`` and ``Pdb`` subclass the standard library's ``bdb.Bdb`` and ``pdb.Pdb``; everything the
user sees is pdb's own code. Their trace function is a native ``DebuggerCore`` that mirrors bdb's
stepping state and breakpoint lines and calls bdb's Python dispatch only for the events where
bdb could stop or act, so ``continue`` runs code without breakpoints at native speed::

    import ferrotrace.debugger
    ferrotrace.debugger.set_trace()   # or breakpoint() with PYTHONBREAKPOINT=ferrotrace.set_trace

    ferrotrace.debugger.install()     # bdb.Bdb / pdb.Pdb are these classes from now on
"""

from __future__ import annotations

import bdb as _bdb
import contextlib
import pdb as _pdb
import sys
import threading
import types

from ferrotrace import _install
from ferrotrace._native import DebuggerCore

__all__ = [
    "Bdb",
    "Pdb",
    "install",
    "is_installed",
    "main",
    "pm",
    "post_mortem",
    "run",
    "runcall",
    "runctx",
    "runeval",
    "set_trace",
    "uninstall",
]

# The standard library's classes, captured before install() can replace the module attributes.
StockBdb = getattr(_bdb, "_ferrotrace_stock_Bdb", _bdb.Bdb)
StockPdb = getattr(_pdb, "_ferrotrace_stock_Pdb", _pdb.Pdb)
_bdb._ferrotrace_stock_Bdb = StockBdb
_pdb._ferrotrace_stock_Pdb = StockPdb

# Methods whose answers the native core reproduces; a subclass overriding one of them decides
# in Python, so every event is delivered to it.
_DECIDING_METHODS = (
    "dispatch_line",
    "dispatch_call",
    "dispatch_return",
    "dispatch_exception",
    "dispatch_opcode",
    "stop_here",
    "break_here",
    "break_anywhere",
)
# `user_call`s that do nothing unless `stop_here(frame)`.
_QUIET_USER_CALLS = (StockBdb.user_call, StockPdb.user_call)


def _mirrored(name: str, doc: str) -> property:
    def get(self):
        return getattr(self._ferrotrace_core, name)

    def set(self, value):
        setattr(self._ferrotrace_core, name, value)

    return property(get, set, doc=doc)


def _then_sync_breaks(name: str):
    """bdb's method ``name``, then the core's breakpoint lines updated from ``self.breaks``."""

    def method(self, *args, **kwargs):
        try:
            return getattr(super(_NativeCore, self), name)(*args, **kwargs)
        finally:
            self._ferrotrace_sync_breaks()

    method.__name__ = method.__qualname__ = name
    return method


class _NativeCore:
    """The part shared by ``Bdb`` and ``Pdb``: bdb's stepping state lives in the native core
    (these properties), and ``trace_dispatch`` is the core itself."""

    stopframe = _mirrored("stopframe", "The frame bdb stops in (None: anywhere).")
    returnframe = _mirrored("returnframe", "The frame whose return bdb stops at.")
    botframe = _mirrored("botframe", "The frame below which bdb does not stop.")
    stoplineno = _mirrored("stoplineno", "Stop in stopframe at lines >= this; -1: never.")
    quitting = _mirrored("quitting", "Whether the debugger is quitting.")

    @property
    def _ferrotrace_core(self) -> DebuggerCore:
        try:
            return self.__dict__["_ferrotrace_core_object"]
        except KeyError:
            pass
        cls = type(self)
        core = DebuggerCore(types.MethodType(StockBdb.trace_dispatch, self), self.canonic)
        python_decides = any(
            getattr(cls, name, None) is not getattr(StockBdb, name, None)
            for name in _DECIDING_METHODS
        )
        core.set_policy(python_decides, cls.user_call not in _QUIET_USER_CALLS)
        self.__dict__["_ferrotrace_core_object"] = core
        return core

    @property
    def trace_dispatch(self) -> DebuggerCore:
        """The trace function: the native core (bdb's own dispatch runs behind it)."""
        return self._ferrotrace_core

    @property
    def skipped_events(self) -> int:
        """Events decided natively, without calling Python."""
        return self._ferrotrace_core.skipped_events

    def _ferrotrace_sync_breaks(self) -> None:
        self._ferrotrace_core.set_breaks(getattr(self, "breaks", {}))

    def reset(self):
        self._ferrotrace_core.forget_code()
        super().reset()

    def _set_stopinfo(self, *args, **kwargs):
        # Every command that resumes the program passes here: the breakpoints are current.
        super()._set_stopinfo(*args, **kwargs)
        self._ferrotrace_sync_breaks()

    # bdb's breakpoint edits, each followed by a synchronisation of the core's lines.
    set_break = _then_sync_breaks("set_break")
    clear_break = _then_sync_breaks("clear_break")
    clear_bpbynumber = _then_sync_breaks("clear_bpbynumber")
    clear_all_file_breaks = _then_sync_breaks("clear_all_file_breaks")
    clear_all_breaks = _then_sync_breaks("clear_all_breaks")


class Bdb(_NativeCore, StockBdb):
    """``bdb.Bdb`` with native decisions: same methods, same behaviour."""


class Pdb(_NativeCore, StockPdb):
    """``pdb.Pdb`` with native decisions: same commands, same output."""


# -- entry points, as pdb's module functions ------------------------------------------------


@contextlib.contextmanager
def _pdb_module_uses_ours():
    """Runs one of pdb's module functions with ``pdb.Pdb`` being ours (they name it globally)."""
    _install.install()
    previous = _pdb.Pdb
    _pdb.Pdb = Pdb if previous is StockPdb else previous
    try:
        yield
    finally:
        _pdb.Pdb = previous


def run(statement, globals=None, locals=None):
    """``pdb.run`` on ferrotrace's debugger."""
    with _pdb_module_uses_ours():
        return _pdb.run(statement, globals, locals)


def runeval(expression, globals=None, locals=None):
    """``pdb.runeval`` on ferrotrace's debugger."""
    with _pdb_module_uses_ours():
        return _pdb.runeval(expression, globals, locals)


def runctx(statement, globals, locals):
    """``pdb.runctx`` on ferrotrace's debugger."""
    with _pdb_module_uses_ours():
        return _pdb.runctx(statement, globals, locals)


def runcall(*args, **kwds):
    """``pdb.runcall`` on ferrotrace's debugger."""
    with _pdb_module_uses_ours():
        return _pdb.runcall(*args, **kwds)


def set_trace(*, header=None):
    """Enter ferrotrace's debugger at the calling frame (``pdb.set_trace``). Use it with
    ``breakpoint()`` through ``PYTHONBREAKPOINT=ferrotrace.set_trace``."""
    _set_trace_at(sys._getframe().f_back, header)


def _set_trace_at(frame, header=None):
    _install.install()
    debugger = Pdb()
    if header is not None:
        debugger.message(header)
    debugger.set_trace(frame)


def post_mortem(t=None):
    """Post-mortem debugging of a traceback (or, on 3.13, an exception); by default the
    exception being handled (``pdb.post_mortem``)."""
    with _pdb_module_uses_ours():
        return _pdb.post_mortem(t)


def pm():
    """Post-mortem debugging of the last uncaught exception (``pdb.pm``)."""
    with _pdb_module_uses_ours():
        return _pdb.pm()


def main(argv=None, prog="ferrotrace debug") -> None:
    """``python -m pdb``'s command line (restart on exit, post-mortem on an uncaught exception)
    on ferrotrace's debugger. ``argv``: the arguments after the program name."""
    if argv is not None:
        sys.argv[:] = [prog, *argv]
    with _pdb_module_uses_ours():
        _pdb.main()


# -- drop-in --------------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Make ``bdb.Bdb`` and ``pdb.Pdb`` ferrotrace's classes (and put ferrotrace's engine
    under ``sys.settrace``), so tools that subclass them get native decisions. Idempotent."""
    global _installed
    with _install_lock:
        _install.install()
        _bdb.Bdb = Bdb
        _pdb.Pdb = Pdb
        _installed = True


def uninstall() -> None:
    """Restore the standard library's ``bdb.Bdb`` and ``pdb.Pdb``. Idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            _bdb.Bdb = StockBdb
            _pdb.Pdb = StockPdb
            _installed = False


def is_installed() -> bool:
    """Whether ``install()`` is in effect."""
    return _installed
