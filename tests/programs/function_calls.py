"""Plain calls: a 'call' event per new frame, a 'line' event per line, 'return' with the value
(None for a function that falls off its end), keyword/default/star arguments."""

EXPECT = ["call", "line", "return"]


def add(a, b=10):
    total = a + b
    return total


def no_return(x):
    x += 1


def star(*args, **kwargs):
    return len(args) + len(kwargs)


def outer(n):
    first = add(n)
    second = add(n, b=2)
    no_return(first)
    return star(first, second, key=n)


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        value = outer(3)
    finally:
        tr.settrace(None)
    rec.note("value", value)
    return value
