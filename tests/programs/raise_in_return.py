"""A trace function raising on a 'return' event: the return value is lost and the exception
appears in the caller at the call site, tracing is switched off; also raising on the 'return'
event of a generator's yield (the exception comes out of next())."""

EXPECT = ["call", "line", "return", "note:escaped", "note:gettrace after"]


def victim():
    value = "returned"
    return value


def gen():
    yield "yielded"
    yield "never"


def caller():
    try:
        return victim()
    except ArithmeticError as exc:
        return f"caller caught {exc}"


def run(tr, rec):
    armed = {"name": "victim"}

    @rec.recording
    def tracer(frame, event, arg):
        if event == "return" and frame.f_code.co_name == armed["name"]:
            armed["name"] = None
            raise ArithmeticError(f"no return from {frame.f_code.co_name}")
        return tracer

    tr.settrace(tracer)
    try:
        result = caller()
        rec.note("gettrace after", tr.gettrace())
    finally:
        tr.settrace(None)

    armed["name"] = "gen"
    g = gen()
    tr.settrace(tracer)
    try:
        next(g)
    except ArithmeticError as exc:
        rec.escaped(exc)
    finally:
        rec.note("gettrace after", tr.gettrace())
        tr.settrace(None)
    rec.note("generator afterwards", list(g))
    return result
