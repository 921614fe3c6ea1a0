"""Long runs, many cycles and many threads: no crash, no growth of memory or references."""

import gc
import sys
import threading
import time
import tracemalloc

import ferrotrace
from ferrotrace import _native


def noop(frame, event, arg):
    return noop


def workload(n):
    total = 0
    for i in range(n):
        total += i
    return total


def generator(n):
    for i in range(n):
        try:
            yield i
        finally:
            pass


def raising(n):
    try:
        raise ValueError(n)
    except ValueError as exc:
        return exc.args[0]


def exercise():
    workload(20)
    list(generator(5))
    gen = generator(5)
    next(gen)
    gen.close()
    raising(3)


def test_a_thousand_start_stop_cycles_leak_nothing():
    exercise()  # warm caches before measuring
    gc.collect()
    refs_before = sys.getrefcount(noop)
    tracemalloc.start()
    try:
        for _ in range(100):
            ferrotrace.settrace(noop)
            exercise()
            ferrotrace.settrace(None)
        gc.collect()
        baseline, _ = tracemalloc.get_traced_memory()
        dispatched_before = _native._dispatch_count()
        for _ in range(1000):
            ferrotrace.settrace(noop)
            exercise()
            ferrotrace.settrace(None)
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _native._dispatch_count() - dispatched_before > 1000 * 50
    assert sys.getrefcount(noop) == refs_before
    # 1000 cycles of ~90 events each: any per-event or per-cycle leak would show as tens of kB.
    assert current - baseline < 16 * 1024, (baseline, current)


def test_ten_million_events_without_growth():
    def counting_tracer(frame, event, arg):
        return counting_tracer

    gc.collect()
    refs_before = sys.getrefcount(counting_tracer)
    before = _native._dispatch_count()
    ferrotrace.settrace(counting_tracer)
    try:
        # One call event, one return event, and two line events per iteration.
        workload(5_000_000)
    finally:
        ferrotrace.settrace(None)
    dispatched = _native._dispatch_count() - before
    assert dispatched >= 10_000_000
    assert sys.getrefcount(counting_tracer) == refs_before


def test_frames_and_local_trace_functions_are_released():
    captured = []

    def local(frame, event, arg):
        return local

    def global_(frame, event, arg):
        if frame.f_code is workload.__code__:
            captured.append(frame)
            return local
        return None

    gc.collect()
    local_refs = sys.getrefcount(local)
    ferrotrace.settrace(global_)
    workload(3)
    ferrotrace.settrace(None)
    frame = captured.pop()
    # The finished frame still holds its local trace function...
    assert frame.f_trace is local
    frame_refs = sys.getrefcount(frame)
    frame.f_trace = None
    assert sys.getrefcount(local) == local_refs
    assert sys.getrefcount(frame) == frame_refs


def test_eight_threads_tracing_at_once():
    results = {}
    errors = []
    barrier = threading.Barrier(8)

    def worker(index):
        counts = {}

        def tracer(frame, event, arg):
            if frame.f_code is workload.__code__:
                counts[event] = counts.get(event, 0) + 1
            return tracer

        try:
            barrier.wait()
            ferrotrace.settrace(tracer)
            for _ in range(50):
                workload(200)
                exercise()
            ferrotrace.settrace(None)
            results[index] = counts
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 8
    expected = results[0]
    assert expected["call"] == 100 and expected["return"] == 100
    assert all(counts == expected for counts in results.values())


def gc_pressure(iterations):
    """`iterations` rounds of generators abandoned mid-iteration, closed, thrown into, and
    exceptions."""
    for _ in range(iterations):
        gens = [generator(3) for _ in range(5)]
        for gen in gens[:3]:
            next(gen)
        gens[0].close()
        try:
            gens[1].throw(KeyError("x"))
        except KeyError:
            pass
        del gens
        raising(1)


def reference_growth_under_gc_pressure(settrace, iterations):
    """How many references to the trace function outlive `gc_pressure(iterations)`."""
    gc.collect()
    refs_before = sys.getrefcount(noop)
    settrace(noop)
    try:
        gc_pressure(iterations)
    finally:
        settrace(None)
    gc.collect()
    return sys.getrefcount(noop) - refs_before


def test_generators_and_exceptions_under_gc_pressure():
    # CPython itself keeps a reference or so alive (a frame it caches); the check is that
    # ferrotrace keeps exactly what sys.settrace keeps, however many rounds run.
    stock = reference_growth_under_gc_pressure(sys.settrace, 2000)
    ours_short = reference_growth_under_gc_pressure(ferrotrace.settrace, 10)
    ours_long = reference_growth_under_gc_pressure(ferrotrace.settrace, 2000)
    assert ours_long == ours_short == stock
    assert stock <= 2


# ferrotrace.Tracer (sys.monitoring on 3.12+, the frame-evaluation hook on 3.11).


def test_tracers_started_and_stopped_while_eight_threads_run():
    """Tracers come and go (all threads, depth, several at once) while eight threads run
    generators, exceptions and abandoned generators: no crash, no error in the threads,
    every thread's result intact, no reference to the callbacks left behind."""
    errors = []
    results = []
    stop = threading.Event()
    started = threading.Barrier(9)

    def worker():
        try:
            started.wait()
            while not stop.is_set():
                exercise()
                gens = [generator(3) for _ in range(3)]
                next(gens[0])
                next(gens[1])
                try:
                    gens[1].throw(KeyError("x"))
                except KeyError:
                    pass
                del gens
                results.append(workload(30))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def callback(frame, event, arg):
        return callback

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    gc.collect()
    refs_before = sys.getrefcount(callback)
    started.wait()
    try:
        for round_ in range(30):
            first = ferrotrace.Tracer(callback, functions=["workload", "generator"])
            second = ferrotrace.Tracer(callback, functions=["exercise"], depth=1 + round_ % 3)
            first.start(all_threads=True)
            second.start(all_threads=round_ % 2 == 0)
            exercise()
            # Let every worker run a loop or so under these tracers.
            wanted = len(results) + 8
            while len(results) < wanted and not errors:
                time.sleep(0.001)
            second.stop()
            first.stop()
            del first, second
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    gc.collect()
    assert errors == []
    assert results and set(results) == {workload(30)}
    assert sys.getrefcount(callback) == refs_before


def test_tracer_references_under_gc_pressure():
    """Generators abandoned mid-iteration, closed and thrown into under a Tracer: its callback
    and local functions are released as under sys.settrace."""

    def growth(iterations):
        gc.collect()
        refs_before = sys.getrefcount(noop)
        with ferrotrace.Tracer(noop, functions=["generator", "raising"]):
            gc_pressure(iterations)
        gc.collect()
        return sys.getrefcount(noop) - refs_before

    assert growth(10) == growth(2000) == 0
