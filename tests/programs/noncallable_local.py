"""The global trace function returns a non-callable local "function" (a string, then an int from
a later event): the frame's next event calls it and raises TypeError there, tracing is
switched off and the frame's f_trace is cleared."""

EXPECT = ["call", "line", "note:escaped", "note:gettrace"]


def victim(box):
    box.append(1)
    box.append(2)
    return box


def second_victim(box):
    box.append(3)
    box.append(4)
    return box


def run(tr, rec):
    frames = []

    @rec.recording
    def tracer(frame, event, arg):
        frames.append(frame)
        if frame.f_code.co_name == "victim":
            return "not callable"
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        return 7 if rel == 1 else tracer

    for fn in (victim, second_victim):
        box = []
        tr.settrace(tracer)
        try:
            fn(box)
        except TypeError as exc:
            rec.escaped(exc)
        finally:
            rec.note("gettrace", tr.gettrace())
            tr.settrace(None)
        rec.note("box", box)
        rec.note("f_trace", frames[-1].f_trace)
    return "ok"
