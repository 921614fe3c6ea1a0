"""Reference handling of trace functions: trace objects with __del__ record when they are freed.
A local function replaced by another is freed at once, one returned and then dropped by
returning None is kept while f_trace holds it, the global function is freed by settrace(None)
once the program drops its own reference, and a local function returned once per event (a new
object each time) is freed at the next event."""

EXPECT = ["call", "line", "return", "note:freed"]


class Traced:
    def __init__(self, rec, name, behaviour):
        self.rec = rec
        self.name = name
        self.behaviour = behaviour
        self.calls = 0

    def __call__(self, frame, event, arg):
        if not self.rec.mine(frame):
            return None
        self.calls += 1
        self.rec.log(frame, event, arg).extend([self.name, self.calls])
        return self.behaviour(self, frame, event)

    def __del__(self):
        self.rec.note("freed", self.name, self.calls)


def work():
    a = 1
    b = 2
    c = 3
    return a + b + c


def run(tr, rec):
    counter = {"n": 0}

    def fresh(self, frame, event):
        counter["n"] += 1
        return Traced(rec, f"fresh-{counter['n']}", fresh)

    def keep(self, frame, event):
        return None

    def global_behaviour(self, frame, event):
        # Only work() gets local functions: a local function freed when its frame ends runs
        # __del__, whose own frame must not get one in turn (that would never end).
        if event == "call" and frame.f_code is work.__code__:
            return Traced(rec, "fresh-0", fresh) if counter["n"] == 0 else Traced(rec, "kept", keep)
        return None

    tracer = Traced(rec, "global", global_behaviour)
    tr.settrace(tracer)
    del tracer
    try:
        first = work()
        rec.note("between calls")
        second = work()
        rec.note("before settrace(None)")
    finally:
        tr.settrace(None)
    rec.note("after settrace(None)")
    return first, second
