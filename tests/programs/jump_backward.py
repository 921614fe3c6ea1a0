"""Jumping backwards: assigning frame.f_lineno to an earlier line re-runs lines (a counter is
incremented again), limited to two extra passes; then a forward jump out of a for loop's body
to after the loop."""

EXPECT = ["call", "line", "return", "note:jumped"]


def repeat():
    count = 0
    count += 1
    marker = "after"
    return count, marker


def leave_loop():
    seen = []
    for i in range(5):
        seen.append(i)
    seen.append("end")
    return seen


def body():
    return repeat(), leave_loop()


def run(tr, rec):
    jumps = {"repeat": 0, "leave_loop": 0}

    @rec.recording
    def tracer(frame, event, arg):
        name = frame.f_code.co_name
        if event != "line" or name not in jumps:
            return tracer
        rel = frame.f_lineno - frame.f_code.co_firstlineno
        first = frame.f_code.co_firstlineno
        if name == "repeat" and rel == 3 and jumps[name] < 2:
            jumps[name] += 1
            frame.f_lineno = first + 2
            rec.note("jumped", name, 2)
        if name == "leave_loop" and rel == 3 and frame.f_locals["i"] == 1 and not jumps[name]:
            jumps[name] += 1
            frame.f_lineno = first + 4
            rec.note("jumped", name, 4)
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result, jumps
