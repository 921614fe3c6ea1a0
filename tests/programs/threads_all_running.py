"""settrace_all_threads reaching a thread that is already running (Python 3.12+, where
threading.settrace_all_threads exists; on 3.11 CPython has no way to do this, so only the
calling thread is traced there): the waiting thread's frames that already exist are not
traced, the calls it makes afterwards are."""

import sys
import threading

EXPECT = ["call", "line", "return"]


def work(tag):
    value = [tag]
    return value * 2


def run(tr, rec):
    go = threading.Event()
    done = threading.Event()
    results = {}

    def waiting():
        go.wait()
        results["running"] = work("r")
        done.set()

    running_supported = sys.version_info >= (3, 12)
    thread = None
    if running_supported:
        thread = threading.Thread(target=waiting, name="already-running")
        thread.start()
    tr.settrace_all_threads(rec.tracer)
    try:
        results["main"] = work("m")
        if thread is not None:
            go.set()
            done.wait()
    finally:
        tr.settrace_all_threads(None)
    if thread is not None:
        thread.join()
    return sorted(results.items())
