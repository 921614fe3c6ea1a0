"""A trace function raising on a 'line' event: the exception is raised at that line of the
traced function (the line does not run), propagates normally through the callers, tracing is
switched off (no more events, gettrace() is None) and the frame's f_trace is cleared; a
try/except in the traced function itself can catch it."""

EXPECT = ["call", "line", "note:escaped", "note:gettrace after"]


def victim(box):
    box.append("first line ran")
    box.append("second line ran")
    return box


def self_catching(box):
    try:
        box.append("guarded line ran")
    except LookupError as exc:
        box.append(f"caught {exc!r}")
    box.append("after")
    return box


def caller(box):
    return victim(box)


def run(tr, rec):
    frames = []
    plan = {"victim": 2, "self_catching": 2}

    @rec.recording
    def tracer(frame, event, arg):
        name = frame.f_code.co_name
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        if event == "line" and plan.get(name) == rel:
            frames.append(frame)
            del plan[name]
            raise LookupError(f"tracer stops {name} at +{rel}")
        return tracer

    box = []
    tr.settrace(tracer)
    try:
        caller(box)
    except LookupError as exc:
        rec.escaped(exc)
    finally:
        rec.note("gettrace after", tr.gettrace())
        tr.settrace(None)
    rec.note("box", box)
    rec.note("f_trace of failed frame", frames[-1].f_trace)

    box2 = []
    tr.settrace(tracer)
    try:
        self_catching(box2)
        rec.note("gettrace after", tr.gettrace())
    finally:
        tr.settrace(None)
    rec.note("box", box2)
    return "ok"
