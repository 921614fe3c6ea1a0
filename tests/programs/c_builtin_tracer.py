"""C callables as trace functions: getattr (returns None for every event: only 'call' events
happen and frames get no local function), slice (its result, a slice, becomes f_trace and the
next local event fails with TypeError because it is not callable), len (raises TypeError at the
first event: tracing is switched off) and a functools.partial object (a C callable returning
the recording Python tracer)."""

import functools
import sys

EXPECT = ["call", "line", "return", "note:f_trace", "note:escaped"]


def probe():
    first = sys._getframe().f_trace
    second = sys._getframe().f_trace
    return first, second


def run(tr, rec):
    tr.settrace(getattr)
    try:
        first, second = probe()
        same = tr.gettrace() is getattr
    finally:
        tr.settrace(None)
    rec.note("f_trace", first, second, same)

    for builtin in (slice, len):
        tr.settrace(builtin)
        try:
            probe()
        except TypeError as exc:
            rec.escaped(exc)
        finally:
            after = tr.gettrace()
            tr.settrace(None)
        rec.note("gettrace after", builtin.__name__, after)

    partial = functools.partial(rec.tracer)
    tr.settrace(partial)
    try:
        first, second = probe()
        same = tr.gettrace() is partial
    finally:
        tr.settrace(None)
    rec.note("f_trace", first, second, same)
    return "ok"
