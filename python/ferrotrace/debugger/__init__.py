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

import ast
import bdb as _bdb
import contextlib
import linecache
import pdb as _pdb
import sys
import threading
import types

from ferrotrace import _install, _native
from ferrotrace._native import CoreField, DebuggerCore, Tracer

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
# 3.12+ bdb records the frame being dispatched (`set_enterframe`, without a `finally`).
_HAS_ENTERFRAME = hasattr(StockBdb, "set_enterframe")
# `user_call`s that do nothing unless `stop_here(frame)`.
_QUIET_USER_CALLS = (StockBdb.user_call, StockPdb.user_call)


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

    # bdb's stepping state lives in the native core; the descriptors are native so that bdb
    # assigning them (`self.quitting = True` in run()'s finally, with tracing still on) runs no
    # Python frame, as with plain attributes.
    stopframe = CoreField("stopframe")
    returnframe = CoreField("returnframe")
    botframe = CoreField("botframe")
    stoplineno = CoreField("stoplineno")
    quitting = CoreField("quitting")
    skip = CoreField("skip")
    trace_dispatch = CoreField("trace_dispatch")

    def _ferrotrace_make_core(self) -> DebuggerCore:
        cls = type(self)
        core = DebuggerCore(types.MethodType(StockBdb.trace_dispatch, self), self.canonic)
        # A subclass's own trace_dispatch reaches the core through super(): it must get every
        # event back, so its Python code decides everything.
        python_decides = cls.trace_dispatch is not _NativeCore.trace_dispatch or any(
            getattr(cls, name, None) is not getattr(StockBdb, name, None)
            for name in _DECIDING_METHODS
        )
        core.set_policy(python_decides, cls.user_call not in _QUIET_USER_CALLS)
        core.set_breakpoint_line(self._ferrotrace_breakpoint_line)
        # bdb's `effective` (conditions, hit and ignore counts) is done natively at breakpoint
        # lines while the module's functions are these.
        core.set_native_breakpoints(
            vars(_bdb),
            _bdb.effective,
            _bdb.checkfuncname,
            _bdb.Breakpoint,
            self._ferrotrace_breakpoint_stop,
        )
        core.set_skip_checker(self.is_skipped_module)
        if sys.version_info < (3, 12):
            core.set_route(_EvalFrameRoute(self, core))
        self.__dict__["_ferrotrace_core_object"] = core
        return core

    def _ferrotrace_breakpoint_line(self, frame, event, arg):
        """bdb's ``trace_dispatch`` for a ``line`` event that only a breakpoint can stop at
        (not quitting, not stepping here), without its per-event context manager: the hot
        path of a conditional breakpoint. Same effects, ``enterframe`` (3.12+) included."""
        if _HAS_ENTERFRAME:
            self.enterframe = frame
            result = self.dispatch_line(frame)
            self.enterframe = None
            return result
        return self.dispatch_line(frame)

    def _ferrotrace_breakpoint_stop(self, frame, bp, flag):
        """The rest of bdb's ``dispatch_line`` once the core did ``effective()`` natively and
        it chose ``bp`` (``flag``: a temporary breakpoint may be deleted): ``break_here``'s
        last steps, ``user_line`` and the ``quitting`` check, ``enterframe`` (3.12+) included."""
        if _HAS_ENTERFRAME:
            self.enterframe = frame
        self.currentbp = bp.number
        if flag and bp.temporary:
            self.do_clear(str(bp.number))
        self.user_line(frame)
        if self.quitting:
            raise _bdb.BdbQuit
        if _HAS_ENTERFRAME:
            self.enterframe = None
        return self.trace_dispatch

    @property
    def _ferrotrace_core(self) -> DebuggerCore:
        core = self.__dict__.get("_ferrotrace_core_object")
        return core if core is not None else self._ferrotrace_make_core()

    @property
    def skipped_events(self) -> int:
        """Events decided natively, without calling Python."""
        return self._ferrotrace_core.skipped_events

    def _ferrotrace_sync_breaks(self) -> None:
        self._ferrotrace_core.set_breaks(getattr(self, "breaks", {}))

    def set_continue(self):
        super().set_continue()
        if not self.breaks:
            self._ferrotrace_unhook_new_threads()

    def set_quit(self):
        super().set_quit()
        self._ferrotrace_unhook_new_threads()

    # Threads started while the debugger runs are traced by it too (stock pdb ignores them),
    # so that a breakpoint hit in one stops there; stepping stays with the thread that steps.
    def _ferrotrace_hook_new_threads(self) -> None:
        if threading.gettrace() is None:
            threading.settrace(self.trace_dispatch)
            self.__dict__["_ferrotrace_thread_hook"] = True
            # The core removes the hook itself when bdb sets `quitting` (end of run()).
            self._ferrotrace_core.unhook_threads_on_quit(threading)

    def _ferrotrace_unhook_new_threads(self) -> None:
        if self.__dict__.pop("_ferrotrace_thread_hook", False):
            if threading.gettrace() is self.trace_dispatch:
                threading.settrace(None)

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


def _code_scopes(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, co_name) of every code object the source compiles to: the
    module, functions (from their first decorator), lambdas, classes and 3.11's comprehensions."""
    names = {
        ast.ListComp: "<listcomp>",
        ast.SetComp: "<setcomp>",
        ast.DictComp: "<dictcomp>",
        ast.GeneratorExp: "<genexpr>",
        ast.Lambda: "<lambda>",
    }
    scopes = [(1, sys.maxsize, "<module>")]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            scopes.append((first, node.end_lineno or node.lineno, node.name))
        elif type(node) in names:
            scopes.append((node.lineno, node.end_lineno or node.lineno, names[type(node)]))
    return scopes


def _breakpoint_functions(breaks: dict) -> list[str] | None:
    """The co_names of the code objects in which a breakpoint line can run (every scope that
    contains the line: a name matches in any file, which only traces more); None when a
    file's source cannot be read."""
    names: set[str] = set()
    for filename, lines in breaks.items():
        source = "".join(linecache.getlines(filename))
        if not source:
            return None
        try:
            scopes = _code_scopes(ast.parse(source))
        except (SyntaxError, ValueError):
            return None
        for line in lines:
            names.update(name for first, last, name in scopes if first <= line <= last)
    return sorted(names)


class _EvalFrameRoute:
    """3.11: while the debugger only waits for breakpoints, a ferrotrace ``Tracer`` (the PEP 523
    route: no C trace hook outside the frames it selects) delivers the core's events for the
    functions where a breakpoint can run, instead of the legacy hook that slows every frame.
    The core calls ``start()`` when the program continues and ``end(frame)`` when the user
    steps at a breakpoint."""

    def __init__(self, debugger, core) -> None:
        self._debugger = debugger
        self._core = core
        self._tracer = None

    def start(self) -> None:
        functions = _breakpoint_functions(self._debugger.breaks)
        self._stop_tracer()
        if functions is None or self._breakpoint_in_a_running_frame():
            # Stays on the legacy hook: a Tracer sees frames from their start only.
            return
        # Only `call` and `line` can matter while only breakpoints stop the program.
        tracer = Tracer(self._core, functions=functions, events="call,line")
        try:
            tracer.start(all_threads=True)
        except NotImplementedError:
            return
        self._tracer = tracer
        self._core.set_route_tracer(tracer)
        _native.settrace(None)  # this thread's legacy hook: the Tracer delivers now

    def _breakpoint_in_a_running_frame(self) -> bool:
        debugger = self._debugger
        for top in sys._current_frames().values():
            frame = top
            while frame is not None:
                lines = debugger.breaks.get(debugger.canonic(frame.f_code.co_filename))
                if lines:
                    code = frame.f_code
                    last = max((line for _, _, line in code.co_lines() if line), default=0)
                    if any(code.co_firstlineno <= line <= last for line in lines):
                        return True
                frame = frame.f_back
        return False

    def end(self, frame) -> None:
        self._stop_tracer()
        core = self._core
        _native.settrace(core)
        # The frames bdb's `call` events would have traced: the stopped one and, above it,
        # those of files with breakpoints.
        first = True
        while frame is not None:
            if frame.f_trace is None and (first or self._debugger.break_anywhere(frame)):
                frame.f_trace = core
            first = False
            frame = frame.f_back

    def _stop_tracer(self) -> None:
        tracer, self._tracer = self._tracer, None
        self._core.set_route_tracer(None)
        if tracer is not None:
            tracer.stop()


class Bdb(_NativeCore, StockBdb):
    """``bdb.Bdb`` with native decisions: same methods, same behaviour."""

    def reset(self):
        if isinstance(self, StockPdb):
            # pdb's reset calls `bdb.Bdb.reset(self)` by name, which is this class after
            # install(): that is the standard library's step of Pdb.reset below.
            StockBdb.reset(self)
            return
        self._ferrotrace_core.forget_code()
        StockBdb.reset(self)
        self._ferrotrace_hook_new_threads()


# One terminal: threads that stop at the same time take turns at the prompt.
_interaction_lock = threading.RLock()


class Pdb(Bdb, StockPdb):
    """``pdb.Pdb`` with native decisions: same commands, same output."""

    def reset(self):
        self._ferrotrace_core.forget_code()
        StockPdb.reset(self)
        self._ferrotrace_hook_new_threads()

    def interaction(self, *args, **kwargs):
        with _interaction_lock:
            return super().interaction(*args, **kwargs)


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
