"""yield from: delegation of next/send/throw to a subgenerator, the subgenerator's return value
as the value of the expression, and an exception thrown into the delegator that the
subgenerator does not handle."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


def inner():
    got = yield "inner-1"
    try:
        yield f"inner got {got}"
    except ValueError:
        yield "inner handled"
    return "inner-result"


def outer():
    result = yield from inner()
    yield f"outer saw {result}"
    yield from range(2)


def leaf():
    yield "leaf"


def middle():
    yield from leaf()


def drive(rec):
    gen = outer()
    values = [next(gen), gen.send("hello"), gen.throw(ValueError("x")), next(gen)]
    values.extend(gen)
    g2 = middle()
    next(g2)
    try:
        g2.throw(IndexError("deep"))
    except IndexError as exc:
        rec.escaped(exc)
    return values


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = drive(rec)
    finally:
        tr.settrace(None)
    return result
