"""A class as the global trace function: the 'call' event instantiates it and the instance
(callable, returning itself or a new instance) becomes the frame's f_trace; also a tracer that
is a bound method returning another bound method of the same object (a new object each
time)."""

EXPECT = ["call", "line", "return", "note:instance"]


def work(x):
    y = x * 2
    return y + 1


def body():
    return work(1), work(2)


def run(tr, rec):
    class PerFrame:
        created = 0

        def __init__(self, frame, event, arg):
            PerFrame.created += 1
            self.number = PerFrame.created
            rec.log(frame, event, arg).append(f"instance {self.number}")

        def __call__(self, frame, event, arg):
            rec.log(frame, event, arg).append(f"instance {self.number}")
            return self

    tr.settrace(PerFrame)
    try:
        result = body()
        rec.note("gettrace is class", tr.gettrace() is PerFrame)
    finally:
        tr.settrace(None)
    rec.note("instance", PerFrame.created)

    class Methods:
        def global_(self, frame, event, arg):
            rec.log(frame, event, arg).append("global_")
            return self.local

        def local(self, frame, event, arg):
            rec.log(frame, event, arg).append("local")
            return self.local

    tr.settrace(Methods().global_)
    try:
        result += body()
    finally:
        tr.settrace(None)
    return result
