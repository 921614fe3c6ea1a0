"""Threads: tracing is per thread. Each worker thread installs the trace function itself and
records its own stream (keyed by thread name); a thread that does not install one is not
traced; the main thread's tracing is unaffected. Threads run one after another (start, join)
so the result is deterministic."""

import threading

EXPECT = ["call", "line", "return", "note:gettrace in thread"]


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def traced_worker(tr, rec, n, results):
    tr.settrace(rec.tracer)
    try:
        results[threading.current_thread().name] = work(n)
    finally:
        tr.settrace(None)
    rec.note("gettrace in thread", tr.gettrace())


def untraced_worker(tr, rec, results):
    rec.note("gettrace in thread", tr.gettrace())
    results[threading.current_thread().name] = work(2)


def run(tr, rec):
    results = {}
    tr.settrace(rec.tracer)
    try:
        work(1)
        for name, n in (("worker-a", 2), ("worker-b", 3)):
            t = threading.Thread(target=traced_worker, args=(tr, rec, n, results), name=name)
            t.start()
            t.join()
        t = threading.Thread(target=untraced_worker, args=(tr, rec, results), name="worker-c")
        t.start()
        t.join()
        work(1)
    finally:
        tr.settrace(None)
    return sorted(results.items())
