"""Re-raising: bare raise in an except block, raise ... from ..., raise from None, an exception
raised while handling another (implicit chaining), and re-raise of a stored exception; each
frame the exception passes through gets an 'exception' event."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


def fail():
    raise ValueError("original")


def bare():
    try:
        fail()
    except ValueError:
        raise


def chained():
    try:
        fail()
    except ValueError as exc:
        raise RuntimeError("wrapped") from exc


def suppressed_context():
    try:
        fail()
    except ValueError:
        raise KeyError("fresh") from None


def stored():
    try:
        fail()
    except ValueError as exc:
        saved = exc
    raise saved


def body(rec):
    for fn in (bare, chained, suppressed_context, stored):
        try:
            fn()
        except Exception as exc:
            rec.escaped(exc)
            cause = exc.__cause__ or exc.__context__
            rec.note("cause", None if cause is None else type(cause).__name__)
    return "ok"


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = body(rec)
    finally:
        tr.settrace(None)
    return result
