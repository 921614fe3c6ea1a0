"""gettrace() returns the very object given to settrace: a function, a bound method (a new
object each attribute access, so identity is with the one passed), a callable instance, from
traced code and from inside the trace function; None after settrace(None)."""

EXPECT = ["call", "line", "return", "note:identity"]


class Tracer:
    def __init__(self, rec):
        self.rec = rec

    def method(self, frame, event, arg):
        return self.rec.tracer

    def __call__(self, frame, event, arg):
        return self.rec.tracer


def inside(tr, expected):
    return tr.gettrace() is expected


def run(tr, rec):
    holder = Tracer(rec)
    bound = holder.method
    seen_in_tracer = []

    @rec.recording
    def plain(frame, event, arg):
        seen_in_tracer.append(tr.gettrace() is plain)
        return rec.tracer

    for candidate in (plain, bound, holder, rec.tracer):
        tr.settrace(candidate)
        try:
            same_now = tr.gettrace() is candidate
            same_inside = inside(tr, candidate)
            other_bound = tr.gettrace() is holder.method
        finally:
            tr.settrace(None)
        rec.note("identity", same_now, same_inside, other_bound, tr.gettrace())
    rec.note("identity in tracer", seen_in_tracer)
    return "ok"
