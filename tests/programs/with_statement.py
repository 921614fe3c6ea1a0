"""with statements: __enter__/__exit__ frames, an __exit__ that suppresses the exception, one
that does not, nested with, and a contextlib.contextmanager generator (contextlib's own frames
are not recorded)."""

import contextlib

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


class Manager:
    def __init__(self, suppress):
        self.suppress = suppress

    def __enter__(self):
        return "entered"

    def __exit__(self, kind, value, tb):
        return self.suppress and kind is not None


@contextlib.contextmanager
def managed(rec):
    rec.note("setup")
    try:
        yield "resource"
    except ZeroDivisionError:
        rec.note("handled in generator")
    finally:
        rec.note("teardown")


def body(rec):
    with Manager(True) as value:
        raise ValueError("suppressed")
    try:
        with Manager(False), Manager(False):
            raise TypeError("escapes")
    except TypeError as exc:
        rec.escaped(exc)
    with managed(rec) as res:
        1 / 0
    return value, res


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = body(rec)
    finally:
        tr.settrace(None)
    return result
