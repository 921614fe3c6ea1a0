"""sys.call_tracing(func, args) called from inside a trace function runs func with tracing
re-enabled, so func's own events are delivered (nested inside the outer event); called from
traced code it is just a call."""

import sys

EXPECT = ["call", "line", "return", "note:call_tracing result"]


def helper(x):
    y = x + 1
    return y


def traced():
    a = 1
    return sys.call_tracing(helper, (a,))


def run(tr, rec):
    done = []

    @rec.recording
    def tracer(frame, event, arg):
        if event == "line" and frame.f_code.co_name == "traced" and not done:
            done.append(1)
            rec.note("call_tracing result", sys.call_tracing(helper, (10,)))
        return tracer

    tr.settrace(tracer)
    try:
        result = traced()
    finally:
        tr.settrace(None)
    return result
