"""A real debugger on top of the trace function: bdb.Bdb (whose trace_dispatch is installed with
the backend's settrace) single-steps into the program, steps over the rest of a call with
set_next, reports a return value and an exception, continues to a breakpoint with set_continue,
then quits with set_quit (BdbQuit raised from the trace function)."""

import bdb

EXPECT = ["call", "note:user_line", "note:user_call", "note:user_return",
          "note:user_exception", "note:escaped"]


def helper(n):
    total = n * 2
    return total


def failing():
    raise KeyError("dbg")


def program():
    a = helper(1)
    b = helper(2)
    try:
        failing()
    except KeyError:
        pass
    c = a + b
    d = c * 2
    return d


def run(tr, rec):
    first = program.__code__.co_firstlineno

    class Debugger(bdb.Bdb):
        def __init__(self):
            super().__init__()
            self.lines = 0
            self.at_break = False

        def where(self, frame):
            return frame.f_code.co_qualname, frame.f_lineno - frame.f_code.co_firstlineno

        def user_call(self, frame, args):
            rec.note("user_call", *self.where(frame))

        def user_line(self, frame):
            self.lines += 1
            rec.note("user_line", *self.where(frame))
            if self.lines == 3:
                self.set_next(frame)
            elif self.at_break:
                self.set_quit()
            else:
                self.set_step()

        def user_return(self, frame, value):
            rec.note("user_return", *self.where(frame), value)

        def user_exception(self, frame, exc_info):
            rec.note("user_exception", *self.where(frame), exc_info[1])
            self.set_break(__file__, first + 7)
            self.at_break = True
            self.set_continue()

    db = Debugger()
    db.reset()
    db.set_step()
    # Record the 'call' events the global function gets (bdb returns its own bound method as
    # the local function, so line/return/exception events show up as bdb's user_* notes).
    tr.settrace(rec.recording(db.trace_dispatch, label="bdb"))
    try:
        program()
    except bdb.BdbQuit as exc:
        rec.escaped(exc)
    finally:
        rec.note("gettrace after quit", tr.gettrace())
        tr.settrace(None)
    db.clear_all_breaks()
    return db.lines
