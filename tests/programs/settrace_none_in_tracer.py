"""settrace(None) called from inside the trace function: tracing stops at once for the thread,
so even frames that still have an f_trace get no further events; gettrace() is None inside the
tracer right after the call and in the traced code afterwards."""

EXPECT = ["call", "line", "note:gettrace"]


def work():
    a = 1
    b = 2
    c = 3
    return a + b + c


def caller():
    x = work()
    y = work()
    return x + y


def run(tr, rec):
    frames = []

    @rec.recording
    def tracer(frame, event, arg):
        frames.append(frame)
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        if frame.f_code.co_name == "work" and event == "line" and rel == 2:
            tr.settrace(None)
            rec.note("gettrace", "in tracer", tr.gettrace())
        return tracer

    tr.settrace(tracer)
    try:
        result = caller()
        rec.note("gettrace", "after", tr.gettrace())
    finally:
        tr.settrace(None)
    rec.note("f_trace kept", [f.f_code.co_name for f in frames if f.f_trace is not None])
    return result
