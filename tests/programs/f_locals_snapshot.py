"""The frame's f_locals as the traced code itself sees it while traced: a dict (3.11 snapshot)
or proxy (3.13) taken once and read again later, and an edit made by the traced code through
it (on 3.11 discarded at the next trace event, on 3.13 written through); a tracer that does
not touch f_locals in some events and does in others."""

import sys

EXPECT = ["call", "line", "return", "note:snapshot"]


def observe(rec):
    a = 1
    view = sys._getframe().f_locals
    a = 2
    rec.note("snapshot", "a after rebinding", view.get("a"))
    view["a"] = 50
    b = a
    rec.note("snapshot", "a after edit", a, view.get("a"), view.get("b"))
    return a, b


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        if frame.f_code.co_name == "observe" and rel in (3, 6):
            rec.note("tracer sees", sorted(frame.f_locals))
        return tracer

    tr.settrace(tracer)
    try:
        result = observe(rec)
    finally:
        tr.settrace(None)
    return result
