"""A local trace function returns another function: from the next event on, the frame's events
go to the new function (frame.f_trace is replaced); it can hand over again, and a plain
(non-recording) callable object can be handed in too, which then gets the events silently."""

EXPECT = ["call", "line", "return", "note:f_trace", "note:silent"]


def work():
    a = 1
    b = 2
    c = 3
    d = 4
    return a + b + c + d


class Silent:
    def __init__(self, rec, then):
        self.rec = rec
        self.then = then
        self.count = 0

    def __call__(self, frame, event, arg):
        self.count += 1
        self.rec.note("silent", event, self.count)
        return self.then if self.count == 2 else self


def run(tr, rec):
    @rec.recording
    def first(frame, event, arg):
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        return second if rel == 1 else first

    @rec.recording
    def second(frame, event, arg):
        rec.note("f_trace", frame.f_trace)
        return Silent(rec, third)

    @rec.recording
    def third(frame, event, arg):
        rec.note("f_trace", frame.f_trace)
        return third

    tr.settrace(first)
    try:
        result = work()
    finally:
        tr.settrace(None)
    return result
