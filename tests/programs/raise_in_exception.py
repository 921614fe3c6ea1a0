"""A trace function raising on an 'exception' event: its exception replaces the one being
raised (the original is gone, not chained as context), propagates from that point, and
tracing is switched off."""

EXPECT = ["call", "line", "exception", "note:escaped", "note:gettrace after"]


def thrower():
    raise KeyError("original")


def middle():
    try:
        thrower()
    except KeyError as exc:
        return f"middle caught the original {exc}"


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        if event == "exception":
            raise OverflowError(f"tracer replaced {arg[0].__name__}")
        return tracer

    tr.settrace(tracer)
    try:
        result = middle()
    except OverflowError as exc:
        rec.escaped(exc)
        context = exc.__context__
        rec.note("context", None if context is None else type(context).__name__)
        result = None
    finally:
        rec.note("gettrace after", tr.gettrace())
        tr.settrace(None)
    return result
