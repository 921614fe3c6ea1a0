"""Installs ferrotrace in the Python subprocesses of a ``run_regrtest.py --ferrotrace`` run.

For the length of that run only, the runner copies this file into the site-packages directory
of the interpreter it runs on, next to a ``ferrotrace_conformance.pth`` whose one ``import``
line imports it, and sets ``FERROTRACE_CONFORMANCE_INSTALL=1``. The site module processes
``.pth`` files at startup even in isolated mode (``-I``) and with ``-E``, so every child of the
run started from this interpreter, such as ``python -m pdb script.py`` (test_pdb) or
``python -X faulthandler -I -m trace ...`` (test_trace), gets ``ferrotrace.install()`` before
its own code runs. Only a child started with ``-S`` (no site module), from another
interpreter, or with an environment that drops the variable escapes it: the runner records
those launches.

Without the variable set, as in every process outside such a run (a stock run never sets
it), importing this module does nothing; so the two files are harmless should an interrupted
run leave them behind.

With ``FERROTRACE_CONFORMANCE_LOG`` set, the child appends one JSON line to that file at exit:
its ``sys.orig_argv``, whether install() was still in effect, and ferrotrace's dispatch count.
It never writes to stdout or stderr, whose contents the tests compare.
"""

import os

if os.environ.get("FERROTRACE_CONFORMANCE_INSTALL") == "1":
    import sys

    import ferrotrace
    from ferrotrace import _native

    ferrotrace.install()
    if os.environ.get("FERROTRACE_CONFORMANCE_DEBUGGER") == "1":
        import ferrotrace.debugger

        ferrotrace.debugger.install()

    _log = os.environ.get("FERROTRACE_CONFORMANCE_LOG")
    if _log:
        import atexit
        import json

        def _report(log=_log):
            record = {
                "pid": os.getpid(),
                "argv": list(sys.orig_argv),
                "installed": ferrotrace.is_installed()
                and sys.settrace is ferrotrace.settrace
                and sys.gettrace is ferrotrace.gettrace,
                "dispatch_count": _native._dispatch_count(),
            }
            try:
                with open(log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError:
                pass

        atexit.register(_report)
