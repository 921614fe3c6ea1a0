"""The trace function re-installs itself with settrace() on every event (as some tools do to
"refresh" tracing), and gettrace() is read inside the tracer each time; events continue
unchanged and nothing is lost or duplicated."""

EXPECT = ["call", "line", "return", "exception", "note:same"]


def work(n):
    out = []
    for i in range(n):
        try:
            out.append(10 // (i - 1))
        except ZeroDivisionError:
            out.append(None)
    return out


def run(tr, rec):
    same = []

    @rec.recording
    def tracer(frame, event, arg):
        tr.settrace(tracer)
        same.append(tr.gettrace() is tracer)
        return tracer

    tr.settrace(tracer)
    try:
        result = work(3)
    finally:
        tr.settrace(None)
    rec.note("same", all(same), len(same))
    return result
