"""What the trace function sees around itself: its caller's caller (the recording wrapper is
its direct caller) is the traced frame (the trampoline adds no Python frame), the f_back chain
of program frames (including a generator frame's at its 'call' event), and frame.f_lasti and
whether f_trace is set at each event."""

import sys

EXPECT = ["call", "line", "return", "note:chain"]


def gen():
    yield 1
    yield 2


def inner():
    return list(gen())


def outer():
    return inner()


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        # 0 is this function, 1 the recorder's wrapper around it, 2 the traced frame.
        caller = sys._getframe(2)
        chain = []
        f = frame
        while f is not None and rec.mine(f):
            chain.append(f.f_code.co_qualname)
            f = f.f_back
        rec.note("chain", caller is frame, chain, frame.f_lasti, frame.f_trace is None)
        return tracer

    tr.settrace(tracer)
    try:
        result = outer()
    finally:
        tr.settrace(None)
    return result
