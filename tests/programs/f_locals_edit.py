"""Locals edited by the tracer through frame.f_locals: an assignment in a 'line' event sticks
(the traced code sees the new value on 3.11 and 3.13), an argument edited at 'call' is seen by
the first line, a cell variable edited is seen by a closure, and a local unchanged by the
tracer keeps its value. Edit-then-re-read of frame.f_locals shows each version's snapshot
semantics (on 3.11 the re-read discards the edit)."""

EXPECT = ["call", "line", "return", "note:edited"]


def target(arg):
    x = 1
    y = x + 100
    z = y + arg
    return x, y, z


def with_cell(n):
    def get():
        return n

    before = get()
    after = get()
    return before, after


def body():
    return target(1000), with_cell(1)


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        name = frame.f_code.co_name
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        if name == "target" and event == "call":
            frame.f_locals["arg"] = 2000
            rec.note("edited", "arg")
        elif name == "target" and event == "line" and rel == 2:
            # One f_locals access per event: on 3.11 each access re-snapshots the fast
            # locals, which would discard an edit not yet written back.
            f_locals = frame.f_locals
            f_locals["x"] = 7
            rec.note("edited", "x", f_locals["x"])
        elif name == "target" and event == "line" and rel == 3:
            frame.f_locals["y"] = 500
            rec.note("edited", "y then re-read", frame.f_locals["y"])
        elif name == "with_cell" and event == "line" and rel == 5:
            frame.f_locals["n"] = 99
            rec.note("edited", "n")
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
