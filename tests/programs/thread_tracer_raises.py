"""A trace function raising inside a worker thread: the exception escapes the thread's target
(reported through threading.excepthook, recorded as a note), tracing is switched off in that
thread only; the main thread keeps tracing."""

import threading

EXPECT = ["call", "line", "return", "note:thread-exception"]


def work(tag):
    a = tag
    return a * 2


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        if threading.current_thread().name == "doomed" and event == "line":
            raise PermissionError("tracer refuses this thread")
        return tracer

    def target():
        tr.settrace(tracer)
        try:
            work("t")
        finally:
            rec.note("gettrace in thread", tr.gettrace())
            tr.settrace(None)

    tr.settrace(tracer)
    try:
        work("m")
        t = threading.Thread(target=target, name="doomed")
        t.start()
        t.join()
        work("n")
        rec.note("gettrace in main", tr.gettrace())
    finally:
        tr.settrace(None)
    return "ok"
