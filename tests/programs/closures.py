"""Closures: cell and free variables, nonlocal rebinding, a closure over a parameter, and a
tracer that reads frame.f_locals on every event (3.11: the fast-locals snapshot is taken and
written back around each trace call, including the 'call' event before cells are made)."""

EXPECT = ["call", "line", "return", "note:locals"]


def make_counter(start):
    count = start

    def step(by=1):
        nonlocal count
        count += by
        return count

    return step


def cell_param(x):
    def get():
        return x

    x = x * 2
    return get()


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        names = sorted(frame.f_locals)
        rec.note("locals", frame.f_code.co_name, event, names)
        return tracer

    tr.settrace(tracer)
    try:
        counter = make_counter(5)
        counter()
        counter(3)
        value = (counter(), cell_param(21))
    finally:
        tr.settrace(None)
    return value
