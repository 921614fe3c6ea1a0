"""A suspended generator keeps its f_trace while tracing is off; when it is resumed with a new
global function set, the 'call' event of the resumption goes to the new global function (not
to the old local one), and its result becomes the frame's f_trace."""

EXPECT = ["call", "line", "return", "note:f_trace while off"]


def gen():
    x = yield "one"
    y = yield f"two {x}"
    yield f"three {y}"


def run(tr, rec):
    @rec.recording
    def old(frame, event, arg):
        return old

    @rec.recording
    def new(frame, event, arg):
        return new

    g = gen()
    tr.settrace(old)
    try:
        first = next(g)
    finally:
        tr.settrace(None)
    rec.note("f_trace while off", g.gi_frame.f_trace)
    second = g.send("a")
    tr.settrace(new)
    try:
        third = g.send("b")
    finally:
        tr.settrace(None)
    rec.note("f_trace after", g.gi_frame.f_trace)
    return first, second, third
