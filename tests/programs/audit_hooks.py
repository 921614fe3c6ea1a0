"""Audit hooks: settrace raises the 'sys.settrace' audit event (each call, including
settrace(None) and the implicit switch-off after a trace function raises); a hook that vetoes
makes settrace raise and leaves the current trace function in place."""

import sys

EXPECT = ["call", "line", "note:audit", "note:escaped"]


def work():
    a = 1
    return a + 1


def run(tr, rec):
    state = {"veto": False, "log": False}

    def hook(event, args):
        if event in ("sys.settrace", "sys.setprofile") and state["log"]:
            rec.note("audit", event, state["veto"])
            if state["veto"]:
                raise PermissionError("settrace vetoed")

    sys.addaudithook(hook)
    state["log"] = True

    tr.settrace(rec.tracer)
    try:
        work()
    finally:
        tr.settrace(None)

    tr.settrace(rec.tracer)
    state["veto"] = True
    try:
        tr.settrace(None)
    except PermissionError as exc:
        rec.escaped(exc)
    rec.note("still tracing after veto", tr.gettrace() is rec.tracer)
    work()
    state["veto"] = False
    tr.settrace(None)

    @rec.recording
    def failing(frame, event, arg):
        if event == "line":
            raise ValueError("tracer failed")
        return failing

    tr.settrace(failing)
    try:
        work()
    except ValueError as exc:
        rec.escaped(exc)
    finally:
        rec.note("after switch-off", tr.gettrace())
        tr.settrace(None)

    state["log"] = False
    return "ok"
