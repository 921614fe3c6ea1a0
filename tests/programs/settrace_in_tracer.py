"""settrace() called from inside a trace function: the new global function gets the 'call'
events of frames entered afterwards, while frames already traced keep their f_trace (the old
local function); gettrace() reflects the change immediately."""

EXPECT = ["call", "line", "return", "note:gettrace"]


def leaf(n):
    return n * 2


def body():
    a = leaf(1)
    b = leaf(2)
    c = leaf(3)
    return a + b + c


def run(tr, rec):
    @rec.recording
    def first(frame, event, arg):
        if event == "return" and frame.f_code.co_name == "leaf":
            tr.settrace(second)
            rec.note("gettrace", tr.gettrace())
        return first

    @rec.recording
    def second(frame, event, arg):
        return second

    tr.settrace(first)
    try:
        result = body()
        rec.note("gettrace", tr.gettrace())
    finally:
        tr.settrace(None)
    return result
