"""Forbidden jumps: assigning f_lineno from a 'call' event, from an 'exception' event, from a
'return' event of a plain function, to a line outside the function and into the body of a
for loop raise ValueError inside the tracer (caught there and recorded); a jump from the
'return' event of a generator that just yielded is allowed on 3.13 (not on
3.11); a backward jump to the loop header is allowed."""

EXPECT = ["call", "line", "return", "exception", "note:jump error", "note:jump ok"]


def plain():
    a = 1
    try:
        raise KeyError("k")
    except KeyError:
        pass
    for i in range(3):
        a += i
    return a


def gen():
    yield "first"
    yield "second"
    yield "third"


def body():
    return plain(), list(gen())


def attempt(rec, frame, where, rel_target):
    try:
        frame.f_lineno = frame.f_code.co_firstlineno + rel_target
    except ValueError as exc:
        rec.note("jump error", where, str(exc))
    else:
        rec.note("jump ok", where, frame.f_lineno - frame.f_code.co_firstlineno)


def run(tr, rec):
    done = set()

    @rec.recording
    def tracer(frame, event, arg):
        name = frame.f_code.co_name
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        key = (name, event, rel)
        if key in done:
            return tracer
        done.add(key)
        if name == "plain":
            if event == "call":
                attempt(rec, frame, "call", 2)
            elif event == "exception":
                attempt(rec, frame, "exception", 5)
            elif event == "line" and rel == 1:
                attempt(rec, frame, "outside", 100)
            elif event == "line" and rel == 5:
                attempt(rec, frame, "into loop body", 7)
            elif event == "line" and rel == 7:
                attempt(rec, frame, "backwards to the for", 6)
            elif event == "return":
                attempt(rec, frame, "return", 1)
        elif name == "gen" and event == "return" and rel == 1:
            attempt(rec, frame, "generator return", 3)
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
