"""A trace function raising on a 'call' event: the exception appears in the called function
before its first line (so the caller sees it at the call site), tracing is switched off for
the thread (gettrace() is None) and the frame's f_trace is cleared. Done for a function and
then, tracing re-enabled, for the resumption of a generator."""

EXPECT = ["call", "line", "note:escaped", "note:gettrace after"]


def victim(x):
    y = x + 1
    return y


def gen():
    yield 1
    yield 2


def caller():
    before = 1
    return victim(before)


def run(tr, rec):
    frames = []
    armed = {"on": "victim"}

    @rec.recording
    def tracer(frame, event, arg):
        if event == "call" and frame.f_code.co_name == armed["on"]:
            frames.append(frame)
            armed["on"] = None
            raise RuntimeError(f"tracer refused {frame.f_code.co_name}")
        return tracer

    tr.settrace(tracer)
    try:
        caller()
    except RuntimeError as exc:
        rec.escaped(exc)
    finally:
        rec.note("gettrace after", tr.gettrace())
        tr.settrace(None)
    rec.note("f_trace of failed frame", frames[0].f_trace)

    g = gen()
    next(g)
    armed["on"] = "gen"
    tr.settrace(tracer)
    try:
        next(g)
    except RuntimeError as exc:
        rec.escaped(exc)
    finally:
        rec.note("gettrace after", tr.gettrace())
        tr.settrace(None)
    rec.note("generator after failure", list(g))
    return "ok"
