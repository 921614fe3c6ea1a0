"""A local trace function that returns None from a 'line' event: f_trace is kept (returning
None does not unset it), so the frame keeps getting line and return events; a global function
returning None from 'call' leaves the frame untraced."""

EXPECT = ["call", "line", "return", "note:f_trace"]


def traced():
    a = 1
    b = 2
    return a + b


def untraced():
    c = 3
    return c


def body():
    return traced(), untraced()


def run(tr, rec):
    @rec.recording
    def local(frame, event, arg):
        rec.note("f_trace", frame.f_trace)
        return None

    @rec.recording
    def global_(frame, event, arg):
        if frame.f_code.co_name == "untraced":
            return None
        return local

    tr.settrace(global_)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
