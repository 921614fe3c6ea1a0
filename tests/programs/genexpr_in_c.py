"""Generators consumed by C code: sum(), sorted(), zip() of two generators, any() stopping a
generator early (the unfinished generator is then closed when its last reference goes), and
dict() from a generator of pairs, and a generator raising inside sum()."""

EXPECT = ["call", "line", "return", "exception"]


def numbers(n):
    for i in range(n):
        yield i


def failing():
    yield 1
    raise ValueError("generator failed mid-way")


def consume():
    total = sum(x * 2 for x in numbers(3))
    ordered = sorted(numbers(3), reverse=True)
    pairs = list(zip(numbers(2), numbers(5)))
    found = any(x == 1 for x in numbers(10))
    mapping = dict((k, k * k) for k in numbers(2))
    try:
        sum(failing())
    except ValueError as exc:
        error = str(exc)
    return total, ordered, pairs, found, mapping, error


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = consume()
    finally:
        tr.settrace(None)
    return result
