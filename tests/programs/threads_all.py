"""settrace_all_threads (threading.settrace + the calling thread, as threading.settrace_all_threads
does): threads started afterwards trace from their first call, including their run() call of
the program's target; tracing is off again for threads started after it is cleared."""

import threading

EXPECT = ["call", "line", "return", "exception"]


def work(name, n):
    acc = []
    for i in range(n):
        acc.append(f"{name}{i}")
    try:
        raise ValueError(name)
    except ValueError:
        pass
    return acc


def run(tr, rec):
    results = {}

    def target(name, n):
        results[name] = work(name, n)

    tr.settrace_all_threads(rec.tracer)
    try:
        work("main", 1)
        for name, n in (("t1", 2), ("t2", 1)):
            t = threading.Thread(target=target, args=(name, n), name=name)
            t.start()
            t.join()
    finally:
        tr.settrace_all_threads(None)
    t = threading.Thread(target=target, args=("t3", 1), name="t3")
    t.start()
    t.join()
    return sorted(results.items())
