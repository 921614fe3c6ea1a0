"""Comprehensions (list/set/dict, nested, with conditions) and generator expressions: on
3.11 each is a frame of its own, on 3.12+ list/set/dict comprehensions are inlined."""

EXPECT = ["call", "line", "return"]


def comps(n):
    squares = [i * i for i in range(n)]
    evens = {i for i in squares if i % 2 == 0}
    table = {i: [j for j in range(i)] for i in range(3)}
    total = sum(i for i in range(n) if i != 2)
    nested = [(a, b) for a in range(2) for b in "xy"]
    return squares, sorted(evens), table, total, nested


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = comps(4)
    finally:
        tr.settrace(None)
    return result
