"""An exception unwinding through several frames: 'exception' event in each frame it passes,
'return' with None from the frames it leaves, then handled in a caller; also an exception
handled in the same frame it was raised in, and one inside a loop."""

EXPECT = ["call", "line", "return", "exception"]


def level3(x):
    return {"a": 1}[x]


def level2(x):
    y = level3(x)
    return y


def level1(x):
    try:
        return level2(x)
    except KeyError as exc:
        return f"missing {exc}"


def local_handling():
    total = 0
    for i in range(3):
        try:
            total += 10 // (i - 1)
        except ZeroDivisionError:
            total -= 1
    return total


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = (level1("a"), level1("b"), local_handling())
    finally:
        tr.settrace(None)
    return result
