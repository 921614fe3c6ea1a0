"""generator.throw(): the exception appears in the generator frame at its yield (an
'exception' event there), once caught inside the generator and once propagating out of it."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


def resilient():
    while True:
        try:
            yield "ready"
        except ValueError as exc:
            yield f"caught {exc}"


def fragile():
    yield 1
    yield 2


def drive(rec):
    gen = resilient()
    next(gen)
    answer = gen.throw(ValueError("boom"))
    next(gen)
    g2 = fragile()
    next(g2)
    try:
        g2.throw(KeyError("lost"))
    except KeyError as exc:
        rec.escaped(exc)
    return answer


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = drive(rec)
    finally:
        tr.settrace(None)
    return result
