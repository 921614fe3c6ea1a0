"""frame.f_trace assigned by hand while a global trace function is set: on the caller's frame
(which started before tracing, so it had none) it starts getting line/return events; on the
current frame it replaces the local function; assigning None stops the frame's local events;
and a frame whose 'call' returned None can still be traced by assigning f_trace."""

import sys

EXPECT = ["call", "line", "return", "note:f_trace"]


def helper():
    return 1


def set_on_caller(fn):
    sys._getframe(1).f_trace = fn
    return "set"


def self_assign(fn):
    frame = sys._getframe()
    frame.f_trace = fn
    x = 1
    frame.f_trace = None
    x += 1
    return x


def untraced_at_call(fn):
    sys._getframe().f_trace = fn
    y = 5
    return y


def outer(rec, other, local):
    a = set_on_caller(other)
    b = helper()
    c = self_assign(local)
    d = untraced_at_call(local)
    return a, b, c, d


def run(tr, rec):
    @rec.recording
    def other(frame, event, arg):
        return other

    @rec.recording
    def local(frame, event, arg):
        rec.note("f_trace", frame.f_trace)
        return local

    @rec.recording
    def global_(frame, event, arg):
        if frame.f_code.co_name in ("outer", "untraced_at_call"):
            return None
        return global_

    tr.settrace(global_)
    try:
        result = outer(rec, other, local)
    finally:
        tr.settrace(None)
    return result
