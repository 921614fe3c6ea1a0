"""Generators: each resumption is a 'call' event and each suspension a 'return' event with the
yielded value; send() values, the final return value, and StopIteration surfacing in the
consumer (exception event on a for loop's exhaustion, handled StopIteration from next())."""

EXPECT = ["call", "line", "return", "exception"]


def counter(n):
    i = 0
    while i < n:
        received = yield i
        if received is not None:
            i = received
        i += 1
    return "done"


def consume():
    seen = [v for v in counter(3)]
    gen = counter(10)
    first = next(gen)
    jumped = gen.send(7)
    rest = list(gen)
    g2 = counter(1)
    next(g2)
    try:
        next(g2)
    except StopIteration as stop:
        finished = stop.value
    return seen, first, jumped, rest, finished


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = consume()
    finally:
        tr.settrace(None)
    return result
