"""ferrotrace: CPython's trace-function system (``sys.settrace``), natively in Rust.

The engine has the contract of ``sys.settrace``/``sys.gettrace``, event for event::

    import ferrotrace

    def tracer(frame, event, arg):
        print(event, frame.f_code.co_name, frame.f_lineno)
        return tracer

    ferrotrace.settrace(tracer)      # this thread
    ...
    ferrotrace.settrace(None)

    with ferrotrace.tracing(tracer):  # restores the previous trace function on exit
        ...

    ferrotrace.install()             # sys.settrace is ferrotrace.settrace: pdb, bdb, trace, ...
    ferrotrace.uninstall()           # the originals, exactly

    ferrotrace.set_trace()           # pdb's debugger with native decisions (ferrotrace.debugger)
"""

import sys as _sys

from ferrotrace._install import install, is_installed, uninstall
from ferrotrace._native import (
    Recorder,
    Tracer,
    __version__,
    gettrace,
    settrace,
    settrace_all_threads,
    tracing,
)
from ferrotrace.exceptions import FerrotraceError


def set_trace(*, header=None):
    """Enter ferrotrace's debugger (pdb's commands, native decisions) at the calling frame.
    ``breakpoint()`` calls it with ``PYTHONBREAKPOINT=ferrotrace.set_trace``."""
    from ferrotrace import debugger

    debugger._set_trace_at(_sys._getframe().f_back, header)


def post_mortem(t=None):
    """Post-mortem debugging of a traceback (default: the exception being handled)."""
    from ferrotrace import debugger

    return debugger.post_mortem(t)


def pm():
    """Post-mortem debugging of the last uncaught exception."""
    from ferrotrace import debugger

    return debugger.pm()


__all__ = [
    "FerrotraceError",
    "Recorder",
    "Tracer",
    "__version__",
    "gettrace",
    "install",
    "is_installed",
    "pm",
    "post_mortem",
    "set_trace",
    "settrace",
    "settrace_all_threads",
    "tracing",
    "uninstall",
]
