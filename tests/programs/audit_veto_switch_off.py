"""A trace function raises while an audit hook vetoes 'sys.settrace': the trampoline's implicit
switch-off (CPython: _PyEval_SetTrace(tstate, NULL, NULL)) fails, so tracing stays on, and the
hook's exception replaces the trace function's one and propagates into the traced code."""

import sys

EXPECT = ["call", "line", "note:audit", "note:escaped"]


def work():
    a = 1
    return a + 1


def run(tr, rec):
    state = {"veto": False, "log": False}

    def hook(event, args):
        if event == "sys.settrace" and state["log"]:
            rec.note("audit", event, state["veto"])
            if state["veto"]:
                raise PermissionError("settrace vetoed")

    sys.addaudithook(hook)

    @rec.recording
    def failing(frame, event, arg):
        if event == "line":
            state["veto"] = True
            raise ValueError("tracer failed")
        return failing

    tr.settrace(failing)
    state["log"] = True
    try:
        work()
    except Exception as exc:
        rec.escaped(exc)
    finally:
        state["veto"] = False
        rec.note("still tracing", tr.gettrace() is failing)
        tr.settrace(None)
    state["log"] = False
    return "ok"
