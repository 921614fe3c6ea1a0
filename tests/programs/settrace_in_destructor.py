"""settrace() called from a destructor that the trace machinery itself triggers. (1) The old
global function, freed by settrace(new), calls settrace(other) in __del__: CPython stores the
new function before releasing the old one, so the nested call stands. (2) A local function
freed when the trampoline replaces f_trace sets a new global function. (3) A global function
that raises is freed by the implicit switch-off and its __del__ turns tracing on again.
(On 3.11 the nested call in (1) fails: "Cannot install a trace function while another trace
function is being installed", reported as unraisable.)"""

import gc

EXPECT = ["call", "line", "return", "note:del", "note:gettrace", "note:escaped"]


class Tracer:
    """A trace object that records its events (tagged with its name) and can run an action
    from __del__; it never traces __del__ frames."""

    def __init__(self, rec, name, on_event=None, on_del=None):
        self.rec = rec
        self.name = name
        self.on_event = on_event
        self.on_del = on_del

    def __call__(self, frame, event, arg):
        if not self.rec.mine(frame) or frame.f_code.co_name == "__del__":
            return None
        self.rec.log(frame, event, arg).append(self.name)
        if self.on_event is not None:
            return self.on_event(self, frame, event)
        return self

    def __del__(self):
        self.rec.note("del", self.name)
        if self.on_del is not None:
            self.on_del()


def work(tag):
    value = tag
    value += "!"
    return value


def run(tr, rec):
    keep = {}

    # (1)
    keep["g3"] = Tracer(rec, "g3")
    tr.settrace(Tracer(rec, "g1", on_del=lambda: tr.settrace(keep["g3"])))
    try:
        work("a")
        tr.settrace(Tracer(rec, "g2"))
        rec.note("gettrace", "after (1)", tr.gettrace() is keep["g3"])
        work("b")
    finally:
        tr.settrace(None)

    # (2)
    keep["g4"] = Tracer(rec, "g4")

    def switch_local(self, frame, event):
        if event == "line":
            return Tracer(rec, "l2")
        return self

    def global_for_2(self, frame, event):
        if frame.f_code.co_name == "work":
            return Tracer(rec, "l1", on_event=switch_local,
                          on_del=lambda: tr.settrace(keep["g4"]))
        return self

    keep["g_for_2"] = Tracer(rec, "g-for-2", on_event=global_for_2)
    tr.settrace(keep["g_for_2"])
    try:
        work("c")
        rec.note("gettrace", "after (2)", tr.gettrace() is keep["g4"])
        work("d")
    finally:
        tr.settrace(None)

    # (3)
    keep["g6"] = Tracer(rec, "g6")

    def refuse(self, frame, event):
        raise RuntimeError(f"{self.name} refuses")

    tr.settrace(Tracer(rec, "g5", on_event=refuse, on_del=lambda: tr.settrace(keep["g6"])))
    try:
        work("e")
    except RuntimeError as exc:
        rec.escaped(exc)
    try:
        rec.note("gettrace", "after (3)", tr.gettrace() is keep["g6"])
        work("f")
    finally:
        tr.settrace(None)
    keep.clear()  # break the cycle through global_for_2's closure, then collect it
    gc.collect()
    rec.note("collected")
    return "ok"
