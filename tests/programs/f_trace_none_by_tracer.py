"""The tracer assigns frame.f_trace = None itself: returning None afterwards leaves it unset (no
further local events for that frame), while returning a function sets it again; the global
function still gets 'call' events for new frames."""

EXPECT = ["call", "line", "return", "note:f_trace"]


def first():
    a = 1
    b = 2
    return a + b


def second():
    c = 3
    d = 4
    return c + d


def body():
    return first(), second()


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        if event == "line" and rel == 1 and frame.f_code.co_name in ("first", "second"):
            frame.f_trace = None
            rec.note("f_trace", frame.f_trace)
            return tracer if frame.f_code.co_name == "second" else None
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
