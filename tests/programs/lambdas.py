"""Lambdas: called directly, from C (map, sorted key, filter) and lambdas returning lambdas."""

EXPECT = ["call", "line", "return"]


def use_lambdas():
    double = lambda x: x * 2
    adder = lambda a: lambda b: a + b
    values = list(map(lambda v: v + 1, [1, 2, 3]))
    ordered = sorted(["ccc", "a", "bb"], key=lambda s: len(s))
    kept = list(filter(lambda v: v % 2, range(5)))
    return double(4), adder(1)(2), values, ordered, kept


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = use_lambdas()
    finally:
        tr.settrace(None)
    return result
