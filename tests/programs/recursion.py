"""Recursion: nested frames of the same code each get their own call/line/return events,
and mutual recursion."""

EXPECT = ["call", "line", "return"]


def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = (fact(5), is_even(4), is_odd(3))
    finally:
        tr.settrace(None)
    return result
