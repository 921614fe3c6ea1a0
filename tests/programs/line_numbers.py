"""Line attribution: statements spanning several lines, several statements on one line,
one-line compound statements, a call whose arguments span lines, decorators and default
arguments evaluated at def time; the 'line' events and f_lineno values must agree."""

EXPECT = ["call", "line", "return"]


def deco(fn):
    return fn


def multi(a,
          b=1 + 1):
    total = (a +
             b +
             3)
    x = 1; y = 2; z = x + y
    if total > 3: total -= 1
    result = dict(
        total=total,
        z=z,
    )
    return (result
            ["total"])


def define():
    @deco
    def inner(v=len("abc")):
        return v
    return inner()


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = (multi(4), define())
    finally:
        tr.settrace(None)
    return result
