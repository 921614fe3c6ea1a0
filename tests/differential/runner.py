"""Run one differential program under one tracing backend; write what it recorded as JSON.

Usage (from the repository root; ``tests/test_differential.py`` does this)::

    python -I -S -B tests/differential/runner.py PROGRAM BACKEND OUTPUT_JSON [SITE_DIR...]

``-S``: no ``site`` processing, so no ``.pth`` file can put anything (ferrotrace, say) into a
run; the runner appends the SITE_DIRs (the venv's site-packages, as the parent process sees
them) to ``sys.path`` itself. Without ``-S`` no SITE_DIR is needed.

PROGRAM is a file in ``tests/programs/``; BACKEND is one of:

``sys``
    CPython's own ``sys.settrace``/``sys.gettrace``. ferrotrace is never imported.
``ferrotrace``
    ``ferrotrace.settrace``/``ferrotrace.gettrace``/``ferrotrace.settrace_all_threads``.
``installed``
    ``ferrotrace.install()`` first, then the ``sys`` functions (which are now ferrotrace's), the
    way unmodified tools (pdb, bdb, ``threading.settrace``) end up on ferrotrace.
``tracer``
    ``settrace(func)`` starts a ``ferrotrace.Tracer(func, files=[PROGRAM])`` on the calling
    thread (stopping the previous one; the environment variable ``FERROTRACE_TEST_FILTER``,
    a JSON object of ``Tracer`` keyword arguments, replaces ``files=[PROGRAM]``),
    ``settrace(None)`` stops it, ``gettrace()`` is the running Tracer's callback or None.
    ``settrace_all_threads`` raises NotImplementedError. Only meaningful for programs about
    plain event streams (``tests/test_tracer.py``, ``tests/test_tracer_restricted.py``).

The program protocol is described in ``tests/differential/README.md``. Everything the program
observes goes into a ``Recorder``; the JSON holds the recorded streams (one per thread, keyed
by thread name), ``run()``'s summarised result or exception, whether a trace function was
still set when ``run()`` returned, and (for the ferrotrace backends) how many events
ferrotrace's own trampoline dispatched.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import sys
import threading
import types
import warnings

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_SIMPLE = (type(None), bool, int, float, str, bytes)


def scrub(text: str) -> str:
    """Text without memory addresses, capped in length."""
    text = _ADDRESS.sub("0x?", text)
    return text if len(text) <= 120 else text[:117] + "..."


def summary(value: object, depth: int = 0) -> object:
    """A deterministic, JSON-able description of ``value`` (never a memory address)."""
    kind = type(value)
    if kind in _SIMPLE:
        return scrub(repr(value))
    if isinstance(value, BaseException):
        return ["exc", kind.__name__, scrub(str(value))]
    if kind in (tuple, list) and depth < 3:
        if len(value) <= 12:
            return [kind.__name__, *(summary(item, depth + 1) for item in value)]
        head = [summary(item, depth + 1) for item in value[:6]]
        tail = [summary(item, depth + 1) for item in value[-3:]]
        return [kind.__name__, *head, f"...{len(value) - 9} more...", *tail]
    if kind is dict and depth < 3 and len(value) <= 10:
        items = sorted((str(k), summary(v, depth + 1)) for k, v in value.items())
        return ["dict", *items]
    if isinstance(value, type):
        return f"<class {value.__qualname__}>"
    if isinstance(value, types.BuiltinFunctionType):
        return f"<builtin {value.__qualname__}>"
    if isinstance(value, types.FunctionType | types.MethodType):
        return f"<{kind.__name__} {value.__qualname__}>"
    if isinstance(value, types.CodeType):
        return f"<code {value.co_qualname}>"
    return f"<{kind.__qualname__}>"


class Recorder:
    """Collects what a program observes, per thread, in order.

    Stream entries (JSON lists):

    * a trace event: ``[event, qualname, line, arg, returned, on]`` where ``line`` is
      ``frame.f_lineno - co_firstlineno``, ``arg`` the summary of the event's argument,
      ``returned`` what the trace function returned (``"T:<label>"`` for a recording trace
      function, ``["raised", type, message]`` if it raised) and ``on`` whether ``gettrace()``
      was non-None once the trace function had finished; ``opcode`` events add ``f_lasti``.
    * a note the program made: ``["note", label, *summaries]``.
    """

    def __init__(self, filename: str, gettrace) -> None:
        self.filename = filename
        self._gettrace = gettrace
        self.streams: dict[str, list] = {}
        self.tracer = self.recording(self._standard, label="tracer")
        self.profiler = self._make_profiler()

    # -- helpers for programs ------------------------------------------------------------
    def mine(self, frame: types.FrameType) -> bool:
        """Whether ``frame`` runs code of the program file (other frames are not recorded)."""
        return frame.f_code.co_filename == self.filename

    def stream(self) -> list:
        name = threading.current_thread().name
        stream = self.streams.get(name)
        if stream is None:
            stream = self.streams.setdefault(name, [])
        return stream

    def note(self, label: str, *values: object) -> None:
        """Record an observation of the program (values are summarised)."""
        self.stream().append(["note", label, *(summary(v) for v in values)])

    def escaped(self, exc: BaseException) -> None:
        """Record an exception that reached the traced code, with its traceback's program
        frames (qualname, line relative to the function)."""
        self.note("escaped", exc, self.tb_summary(exc.__traceback__))

    def tracing_on(self) -> bool:
        return self._gettrace() is not None

    def line_of(self, frame: types.FrameType) -> int | None:
        lineno = frame.f_lineno
        return None if lineno is None else lineno - frame.f_code.co_firstlineno

    def tb_summary(self, tb: types.TracebackType | None) -> list:
        entries = []
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == self.filename:
                lineno = tb.tb_lineno
                rel = None if lineno is None else lineno - code.co_firstlineno
                entries.append([code.co_qualname, rel])
            tb = tb.tb_next
        return entries

    def arg_summary(self, event: str, arg: object) -> object:
        if event == "exception" and isinstance(arg, tuple) and len(arg) == 3:
            kind, value, tb = arg
            message = None if value is None else scrub(str(value))
            return ["exc", kind.__name__, message, self.tb_summary(tb)]
        return summary(arg)

    def log(self, frame: types.FrameType, event: str, arg: object) -> list:
        """Append an event entry (without its ``returned``/``on`` fields) and return it."""
        entry = [event, frame.f_code.co_qualname, self.line_of(frame), self.arg_summary(event, arg)]
        self.stream().append(entry)
        return entry

    # -- trace functions -----------------------------------------------------------------
    def recording(self, function, label: str | None = None, all_files: bool = False):
        """Wrap trace function ``function`` so that each event it gets in a program frame is
        recorded. Use as a decorator: inside ``function`` its own name then refers to the
        wrapper, so ``return tracer`` keeps recording.

        Frames of other files are not recorded: their ``call`` event returns None without
        calling ``function`` (unless ``all_files``); their other events (possible only if
        someone set their ``f_trace``) are passed to ``function`` unrecorded.
        """
        recorder = self
        label = label or function.__name__

        def wrapper(frame, event, arg):
            if not all_files and not recorder.mine(frame):
                if event == "call":
                    return None
                return function(frame, event, arg)
            entry = recorder.log(frame, event, arg)
            if event == "opcode":
                entry.append(frame.f_lasti)
            try:
                result = function(frame, event, arg)
            except BaseException as exc:
                raised = ["raised", type(exc).__name__, scrub(str(exc))]
                entry[4:4] = [raised, recorder.tracing_on()]
                raise
            entry[4:4] = [recorder.describe(result), recorder.tracing_on()]
            return result

        wrapper.recorded_label = label
        wrapper.__qualname__ = f"recording({label})"
        return wrapper

    def describe(self, result: object) -> object:
        label = getattr(result, "recorded_label", None)
        if isinstance(label, str):
            return f"T:{label}"
        return summary(result)

    def _standard(self, frame, event, arg):
        return self.tracer

    def _make_profiler(self):
        recorder = self

        def profiler(frame, event, arg):
            if recorder.mine(frame):
                entry = recorder.log(frame, "P:" + event, arg)
                entry[4:4] = [None, recorder.tracing_on()]

        return profiler


class TracerBackend:
    """``settrace``/``gettrace`` emulated with one ``ferrotrace.Tracer`` restricted to the
    program file, on the calling thread (the ``tracer`` backend)."""

    def __init__(self, tracer_class: type, filename: str) -> None:
        self._tracer_class = tracer_class
        self._filename = filename
        spec = os.environ.get("FERROTRACE_TEST_FILTER")
        self._filter = json.loads(spec) if spec else {"files": [filename]}
        self._tracer = None
        self._function = None

    def settrace(self, function) -> None:
        if self._tracer is not None:
            tracer, self._tracer, self._function = self._tracer, None, None
            tracer.stop()
        if function is not None:
            tracer = self._tracer_class(function, **self._filter)
            tracer.start()
            self._tracer, self._function = tracer, function

    def gettrace(self):
        return self._function

    def settrace_all_threads(self, function) -> None:
        raise NotImplementedError("the tracer backend traces the calling thread only")


def make_backend(name: str, program: str | None = None) -> types.SimpleNamespace:
    if name == "sys":

        def settrace_all_threads(function):
            if hasattr(threading, "settrace_all_threads"):  # 3.12+
                threading.settrace_all_threads(function)
            else:
                threading.settrace(function)
                sys.settrace(function)

        return types.SimpleNamespace(
            settrace=sys.settrace,
            gettrace=sys.gettrace,
            settrace_all_threads=settrace_all_threads,
            dispatch_count=None,
        )

    import ferrotrace
    from ferrotrace import _native

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source_tree = os.path.join(root, "python")
    if os.path.abspath(ferrotrace.__file__).startswith(source_tree + os.sep):
        raise SystemExit(f"ferrotrace imported from the source tree: {ferrotrace.__file__}")
    if name == "ferrotrace":
        return types.SimpleNamespace(
            settrace=ferrotrace.settrace,
            gettrace=ferrotrace.gettrace,
            settrace_all_threads=ferrotrace.settrace_all_threads,
            dispatch_count=_native._dispatch_count,
        )
    if name == "installed":
        ferrotrace.install()
        assert sys.settrace is ferrotrace.settrace
        sys_backend = make_backend("sys")
        sys_backend.dispatch_count = _native._dispatch_count
        return sys_backend
    if name == "tracer":
        emulation = TracerBackend(ferrotrace.Tracer, program)
        return types.SimpleNamespace(
            settrace=emulation.settrace,
            gettrace=emulation.gettrace,
            settrace_all_threads=emulation.settrace_all_threads,
            dispatch_count=None,
        )
    raise SystemExit(f"unknown backend {name!r}")


def load_program(path: str) -> types.ModuleType:
    name = "program_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def add_site_packages(directories: list[str]) -> None:
    """Make installed packages importable without running ``site`` (``-S``), which is also
    what makes a venv's site-packages importable on these Python versions."""
    for directory in directories:
        if directory not in sys.path:
            sys.path.append(directory)


def main() -> None:
    program, backend_name, output = sys.argv[1:4]
    add_site_packages(sys.argv[4:])
    path = os.path.abspath(program)
    backend = make_backend(backend_name, path)
    module = load_program(path)
    recorder = Recorder(module.__spec__.origin, backend.gettrace)
    assert module.run.__code__.co_filename == recorder.filename

    def unraisable(info):
        recorder.note("unraisable", info.exc_type.__name__, scrub(str(info.exc_value)))

    def thread_excepthook(args):
        recorder.note("thread-exception", args.exc_type.__name__, scrub(str(args.exc_value)))

    def showwarning(message, category, filename, lineno, file=None, line=None):
        recorder.note("warning", category.__name__, scrub(str(message)))

    sys.unraisablehook = unraisable
    threading.excepthook = thread_excepthook
    warnings.simplefilter("always")
    warnings.showwarning = showwarning

    api = types.SimpleNamespace(
        settrace=backend.settrace,
        gettrace=backend.gettrace,
        settrace_all_threads=backend.settrace_all_threads,
    )
    before = backend.dispatch_count() if backend.dispatch_count else None
    error = result = None
    # Automatic collections run after a number of allocations, which differs between backends
    # (ferrotrace is imported in one of them): finalizers run by the cyclic GC would be
    # recorded at different points. Programs that need a collection call gc.collect().
    gc.collect()
    gc.disable()
    try:
        result = summary(module.run(api, recorder))
    except BaseException as exc:  # recorded and compared, never hidden
        error = [type(exc).__name__, scrub(str(exc)), recorder.tb_summary(exc.__traceback__)]
    finally:
        final_on = backend.gettrace() is not None
        backend.settrace(None)
        threading.settrace(None)
        gc.enable()
    dispatched = None
    if backend.dispatch_count is not None:
        dispatched = backend.dispatch_count() - before

    data = {
        "program": os.path.basename(path),
        "backend": backend_name,
        "python": list(sys.version_info[:3]),
        "streams": recorder.streams,
        "result": result,
        "error": error,
        "final_on": final_on,
        "dispatched": dispatched,
        "ferrotrace_imported": "ferrotrace" in sys.modules,
        "expect": list(getattr(module, "EXPECT", [])),
    }
    with open(output, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
