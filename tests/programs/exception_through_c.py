"""Exceptions crossing C code: a key function raising inside sorted(), a function raising
inside map() consumed by list(), a __eq__ raising inside list.index, and a __hash__ raising
inside a dict lookup. The Python frames see call/exception/return; C frames are invisible."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


def bad_key(item):
    if item == 2:
        raise ValueError(f"bad key {item}")
    return item


def bad_map(item):
    return 10 // item


class Weird:
    def __eq__(self, other):
        raise TypeError("no equality")

    def __hash__(self):
        raise KeyError("no hash")


def body(rec):
    attempts = [
        lambda: sorted([3, 1, 2], key=bad_key),
        lambda: list(map(bad_map, [1, 0])),
        lambda: [1, Weird()].index(Weird()),
        lambda: {}.get(Weird()),
    ]
    for attempt in attempts:
        try:
            attempt()
        except Exception as exc:
            rec.escaped(exc)
    return sorted([3, 1], key=bad_key)


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = body(rec)
    finally:
        tr.settrace(None)
    return result
