"""Generators and exceptions: resumption, delegation and unwinding.

Generator pipelines, ``yield from`` chains, ``send()``, generator expressions, and
exceptions raised and caught at various depths, including through generators and
``finally`` blocks.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "relay"

LOOPS = 3600
CHAIN = 10


class Rejected(Exception):
    pass


def numbers(n):
    yield from range(n)


def evens(source):
    for x in source:
        if x % 2 == 0:
            yield x


def squares(source):
    for x in source:
        yield x * x


def relay(depth, n):
    """A chain of ``yield from`` generators `depth` deep around `numbers(n)`."""
    if depth == 0:
        yield from numbers(n)
    else:
        yield from relay(depth - 1, n)


def accumulator():
    total = 0
    while True:
        value = yield total
        if value is None:
            return total
        total += value


def check(x):
    if x % 3 == 0:
        raise Rejected(x)
    return x


def deep_raise(n):
    if n == 0:
        raise ValueError("bottom")
    try:
        return deep_raise(n - 1)
    finally:
        pass


def guarded(source):
    for x in source:
        try:
            yield check(x)
        except Rejected:
            yield -1


def run(scale=1.0):
    total = 0
    caught = 0
    for i in range(max(1, round(LOOPS * scale))):
        total += sum(squares(evens(numbers(40))))
        total += sum(relay(CHAIN, 5))
        acc = accumulator()
        next(acc)
        for x in guarded(range(i % 7, i % 7 + 12)):
            acc.send(x)
        try:
            acc.send(None)
        except StopIteration as stop:
            total += stop.value
        try:
            deep_raise(5)
        except ValueError:
            caught += 1
        for x in range(8):
            try:
                check(x + i)
            except Rejected as exc:
                caught += exc.args[0] & 1
        total += sum(x for x in range(20) if x & 1)
    return total, caught
