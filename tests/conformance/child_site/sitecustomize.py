"""Installs ferrotrace in the Python subprocesses of a ``run_regrtest.py --ferrotrace`` run.

The runner prepends this directory to ``PYTHONPATH`` and sets
``FERROTRACE_CONFORMANCE_INSTALL=1``, so a child such as ``python -m pdb script.py`` started by
test_pdb gets ``ferrotrace.install()`` before its own code runs. Children started with ``-I``,
``-E`` or ``-S``, or with an environment that drops these variables, never import this file:
the runner records those launches, and ``expected_differences.toml`` names the tests that make
them. Without the variable set (a stock run never sets it) this module does nothing.

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
