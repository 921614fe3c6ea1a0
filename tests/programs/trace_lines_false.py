"""frame.f_trace_lines = False set by the tracer on 'call': that frame gets no 'line' events
but still 'return' and 'exception' events; other frames are unaffected; setting it back to
True (from the 'call' event of a callee, on frame.f_back) resumes line events mid-frame."""

EXPECT = ["call", "line", "return", "exception", "note:f_trace_lines"]


def quiet(n):
    a = n + 1
    b = a * 2
    try:
        raise ValueError("seen anyway")
    except ValueError:
        pass
    return b


def loud(n):
    a = n - 1
    return a


def reenable():
    return "on"


def toggled():
    x = 1
    x += 1
    state = reenable()
    x += 1
    x += 1
    return x, state


def body():
    return quiet(1) + loud(1), toggled()


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        if event == "call" and frame.f_code.co_name in ("quiet", "toggled"):
            frame.f_trace_lines = False
        if event == "call" and frame.f_code.co_name == "reenable":
            frame.f_back.f_trace_lines = True
        rec.note("f_trace_lines", frame.f_trace_lines)
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
