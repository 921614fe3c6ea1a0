"""Jumping: assigning frame.f_lineno in a 'line' event to skip lines forward; the skipped
assignments never happen (recorded via the function's result) and the events continue from
the target line."""

EXPECT = ["call", "line", "return", "note:jumped"]


def target():
    x = 1
    x = 2  # skipped
    x = 3  # skipped
    y = x * 10
    return x, y


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        if event == "line" and frame.f_code.co_name == "target":
            rel = frame.f_lineno - frame.f_code.co_firstlineno
            if rel == 2:
                frame.f_lineno = frame.f_code.co_firstlineno + 4
                rec.note("jumped", frame.f_lineno - frame.f_code.co_firstlineno)
        return tracer

    tr.settrace(tracer)
    try:
        result = target()
    finally:
        tr.settrace(None)
    return result
