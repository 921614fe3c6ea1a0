"""Type stubs for ferrotrace's compiled core (hand-written; keep in step with src/api/)."""

import os
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
from typing import Any, Literal

TraceFunction = Callable[[FrameType, str, Any], "TraceFunction | None"]

__version__: str

class FerrotraceError(RuntimeError):
    """An error raised by ferrotrace itself."""

def settrace(function: TraceFunction | None, /) -> None:
    """Set the calling thread's trace function, as ``sys.settrace`` does."""

def gettrace() -> TraceFunction | None:
    """The calling thread's trace function (the very object that was set), or None."""

def settrace_all_threads(function: TraceFunction | None, /) -> None:
    """Set the trace function of every running thread and of threads started later."""

def _settraceallthreads(function: TraceFunction | None, /) -> None:
    """Set the trace function of every running thread (``sys._settraceallthreads``)."""

def _dispatch_count() -> int:
    """Events ferrotrace delivered to a trace function in this process (a testing aid)."""

def _set_empty_profile_hook(on: bool, /) -> None:
    """An empty C profile hook on the calling thread (a benchmark baseline, not a tool)."""

def _compile_script(source: bytes, filename: str, /) -> CodeType:
    """``compile(source, filename, "exec", dont_inherit=True)`` without building the ``ast``
    node types (``ferrotrace trace``'s start-up)."""

class tracing:
    """Context manager: trace the calling thread with ``function`` inside the block."""

    def __init__(self, function: TraceFunction | None) -> None: ...
    @property
    def function(self) -> TraceFunction | None: ...
    def __enter__(self) -> tracing: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...

class Tracer:
    """A trace function with a native filter (``sys.monitoring`` on 3.12+, a PEP 523
    frame-evaluation hook on 3.11).

    ``callback(frame, event, arg)`` has the contract of a ``sys.settrace`` global function but
    sees only the scopes the filter selects; it is independent of ``sys.settrace`` and of
    ``frame.f_trace``.
    """

    def __init__(
        self,
        callback: TraceFunction,
        *,
        modules: list[str] = ...,
        files: list[str] = ...,
        functions: list[str] = ...,
        user_code: bool = False,
        threads: list[str] = ...,
        events: str | None = None,
        depth: int = 0,
    ) -> None: ...
    @property
    def running(self) -> bool: ...
    def start(self, *, all_threads: bool = False) -> None: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Tracer: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...

class DebuggerCore:
    """The native decisions of a bdb debugger (``ferrotrace.debugger``), used as its trace
    function: it mirrors bdb's stepping state and breakpoint lines and calls ``dispatch``
    (bdb's own ``trace_dispatch``, bound) only for events where bdb could stop or act."""

    stopframe: FrameType | None
    returnframe: FrameType | None
    botframe: FrameType | None
    stoplineno: int
    quitting: bool
    def __init__(self, dispatch: TraceFunction, canonic: Callable[[str], str], /) -> None: ...
    def set_policy(self, python_decides: bool, user_call_observes: bool, /) -> None: ...
    def set_breaks(self, breaks: dict[str, list[int]], /) -> None: ...
    def set_native_breakpoints(
        self,
        bdb_globals: dict[str, Any],
        effective: Callable[..., Any],
        checkfuncname: Callable[..., Any],
        breakpoint_class: type,
        finisher: Callable[[FrameType, Any, bool], Any],
        /,
    ) -> None: ...
    def forget_code(self) -> None: ...
    @property
    def only_breakpoints(self) -> bool: ...
    @property
    def skipped_events(self) -> int: ...
    def __call__(self, frame: FrameType, event: str, arg: Any, /) -> Any: ...

class Recorder:
    """Records the events a native filter selects into native per-thread buffers, with no
    Python call per event, and writes them as a Perfetto, Chrome JSON or text trace.

    The filter arguments are ``Tracer``'s. With ``reprs=True`` the repr of returned values and
    the message of exceptions are recorded too (this runs their ``__repr__``/``__str__``);
    without it exceptions are recorded by their type's name and values not at all. With
    ``exit_lines=False`` a frame's exit and an exception record line 0 instead of their line
    (the Chrome and Perfetto files do not show it, and finding it costs most per event).

    With ``output=PATH`` the recorder writes that file itself, once, when it stops (in
    ``format``, ``"perfetto"`` by default). A Perfetto file is then streamed: each thread's
    full buffers go to a native writer thread that encodes them while the program runs, so
    memory stays bounded and little is left to do at ``stop()``. Such a recorder records once:
    ``write()`` and a second ``start()`` raise ``RuntimeError``. ``start()`` creates the file
    under a temporary name beside ``PATH`` (``OSError`` if it cannot), ``stop()`` completes it
    and renames it over ``PATH`` (``OSError`` if that fails: ``PATH`` is then left as it was).
    A recorder still running when the interpreter exits stops then and writes its file
    (``start()`` registers ``stop`` with ``atexit``; ``stop()`` unregisters it). A process
    forked while it records keeps its own events in memory and writes nothing.
    """

    def __init__(
        self,
        *,
        modules: list[str] = ...,
        files: list[str] = ...,
        functions: list[str] = ...,
        user_code: bool = False,
        threads: list[str] = ...,
        events: str | None = None,
        depth: int = 0,
        reprs: bool = False,
        exit_lines: bool = True,
        output: str | os.PathLike[str] | None = None,
        format: Literal["perfetto", "chrome", "text"] | None = None,
    ) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def event_count(self) -> int:
        """Events recorded so far, on every thread."""
    @property
    def call_count(self) -> int:
        """Calls recorded so far (generator resumptions included), on every thread."""
    def start(self, *, all_threads: bool = False) -> None:
        """Record the calling thread, or every thread; after stop() it adds to the same
        recording (with an ``output``: ``RuntimeError``)."""
    def stop(self) -> None:
        """Stop recording and keep what was recorded; with an ``output``, write it (or finish
        streaming it). Idempotent."""
    def write(
        self,
        path: str | os.PathLike[str],
        format: Literal["perfetto", "chrome", "text"] = "perfetto",
        *,
        color: bool = False,
    ) -> None:
        """Write the recording to ``path`` (``"-"``: standard output), whole or not at all.
        Raises ``OSError`` if it cannot be written, ``ValueError`` for an unknown format,
        ``RuntimeError`` for a recorder with an ``output`` (it writes that itself)."""
    def __enter__(self) -> Recorder: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...
