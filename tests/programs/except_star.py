"""except*: an ExceptionGroup split across two except* clauses, an unhandled remainder that
propagates (re-raised group), and a group raised out of a nested function."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


def raise_group():
    raise ExceptionGroup("many", [ValueError("v1"), TypeError("t1"), ValueError("v2")])


def handle(rec):
    caught = []
    try:
        raise_group()
    except* ValueError as group:
        caught.append(("value", len(group.exceptions)))
    except* TypeError as group:
        caught.append(("type", len(group.exceptions)))
    return caught


def partial(rec):
    try:
        raise_group()
    except* TypeError:
        rec.note("type part handled")


def body(rec):
    caught = handle(rec)
    try:
        partial(rec)
    except ExceptionGroup as group:
        rec.escaped(group)
        rec.note("remaining", [type(e).__name__ for e in group.exceptions])
    return caught


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = body(rec)
    finally:
        tr.settrace(None)
    return result
