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
"""

from ferrotrace._install import install, is_installed, uninstall
from ferrotrace._native import (
    Tracer,
    __version__,
    gettrace,
    settrace,
    settrace_all_threads,
    tracing,
)
from ferrotrace.exceptions import FerrotraceError

__all__ = [
    "FerrotraceError",
    "Tracer",
    "__version__",
    "gettrace",
    "install",
    "is_installed",
    "settrace",
    "settrace_all_threads",
    "tracing",
    "uninstall",
]
