"""Threads traced at the same time: three threads install the trace function, then wait on a
barrier and run concurrently; each thread's stream (keyed by thread name) must be exactly the
same under both backends even though the interleaving between threads is not fixed."""

import threading

EXPECT = ["call", "line", "return"]


def compute(seed):
    value = seed
    for _ in range(50):
        value = (value * 31 + 7) % 1009
    return value


def run(tr, rec):
    barrier = threading.Barrier(3)
    results = {}

    def worker(seed):
        tr.settrace(rec.tracer)
        try:
            barrier.wait()
            results[threading.current_thread().name] = [compute(seed + i) for i in range(3)]
        finally:
            tr.settrace(None)

    threads = [threading.Thread(target=worker, args=(i,), name=f"conc-{i}") for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results.items())
