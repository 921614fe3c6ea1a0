"""The trace function calls program functions directly: no events are generated for them
(tracing is suspended while a trace function runs), and their side effects are visible."""

EXPECT = ["call", "line", "return", "note:helper from tracer"]


def helper(x):
    y = x * 3
    return y


def body():
    a = 1
    return a + 1


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        if frame.f_code.co_name == "body":
            rec.note("helper from tracer", helper(len(event)))
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
