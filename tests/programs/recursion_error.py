"""RecursionError under tracing, with a lowered recursion limit. The trace function runs one
frame deeper than the traced code, so it is always the trace function's call (or its own
callees) that hits the limit first: the error comes out of the trampoline, tracing is switched
off and the RecursionError propagates through the traced code. Shown with the recording trace
function and with one that tries to catch RecursionError itself (it cannot: the failing call is
the call to it). Depths, tracebacks and event counts must be identical."""

import sys

EXPECT = ["call", "line", "note:depth", "note:events"]


def dive(depth, seen):
    seen.append(depth)
    return dive(depth + 1, seen)


def attempt(tr, rec, tracer, label):
    seen = []
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_depth() + 40)
    tr.settrace(tracer)
    try:
        dive(0, seen)
    except RecursionError as exc:
        after = tr.gettrace()
        tr.settrace(None)
        sys.setrecursionlimit(old)
        rec.note("depth", label, max(seen), after is None)
        rec.escaped(exc)
    finally:
        tr.settrace(None)
        sys.setrecursionlimit(old)


def run(tr, rec):
    attempt(tr, rec, rec.tracer, "recording tracer")

    log = []

    def careful(frame, event, arg):
        try:
            if event == "exception":
                log.append((event, frame.f_lineno - frame.f_code.co_firstlineno, arg[0].__name__))
            else:
                log.append((event, frame.f_lineno - frame.f_code.co_firstlineno))
        except RecursionError:
            log.append(("tracer hit RecursionError", event))
        return careful

    attempt(tr, rec, careful, "careful tracer")
    counts = {}
    for entry in log:
        counts[entry[0]] = counts.get(entry[0], 0) + 1
    rec.note("events", len(log), counts, log[:5], log[-12:])
    return "ok"


def _depth():
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth
