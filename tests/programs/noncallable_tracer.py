"""A non-callable trace function, settrace(42): settrace accepts it and gettrace() returns it;
the first 'call' event raises TypeError in the traced code and switches tracing off."""

EXPECT = ["call", "note:escaped", "note:gettrace"]


def victim():
    return "never reached"


def run(tr, rec):
    tr.settrace(42)
    current = tr.gettrace()
    try:
        victim()
    except TypeError as exc:
        rec.escaped(exc)
    finally:
        after = tr.gettrace()
        tr.settrace(None)
    rec.note("gettrace", current, after)
    # Now with the recording tracer, to show that tracing works normally again.
    tr.settrace(rec.tracer)
    try:
        result = victim()
    finally:
        tr.settrace(None)
    return result
