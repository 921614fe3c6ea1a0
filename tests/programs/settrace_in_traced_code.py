"""settrace() called by the traced code itself (not by the tracer): frames already traced keep
their local function, new frames get the new global function; settrace(None) from traced code
stops all events, and a later settrace() resumes 'call' events for new frames only."""

EXPECT = ["call", "line", "return", "note:gettrace"]


def leaf(tag):
    return tag


def body(tr, rec, second):
    a = leaf("before")
    tr.settrace(second)
    b = leaf("switched")
    tr.settrace(None)
    c = leaf("off")
    rec.note("gettrace", tr.gettrace())
    tr.settrace(second)
    d = leaf("on again")
    return a, b, c, d


def run(tr, rec):
    @rec.recording
    def first(frame, event, arg):
        return first

    @rec.recording
    def second(frame, event, arg):
        return second

    tr.settrace(first)
    try:
        result = body(tr, rec, second)
        rec.note("gettrace", tr.gettrace())
    finally:
        tr.settrace(None)
    return result
