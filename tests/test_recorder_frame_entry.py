"""3.11: a recorder of calls and returns is served by the frame-evaluation function itself.

When every consumer of a frame is a record sink of ``call`` and ``return`` events, the 3.11
backend records the call before evaluating the frame and its return (or unwind) after, with
no trace hook (``src/hook/frame_record.rs``). The promise tested: what is recorded is what the
trace hook's route records (kinds, functions, lines, details, per thread, in order), and what
``sys.settrace`` reports restricted to calls and returns, over generators (``send``,
``throw`` into a started and an unstarted one, ``close``, ``yield from``), coroutines and
asyncio, async generators, exceptions (raised in Python, raised lazily by C code, through
``finally``), recursion to the limit, threads and ``sys.exit``; and that a ``Tracer`` with a
Python callback (or line events) beside such a recorder gets exactly its own stream.

3.11 only: 3.12+ records from ``sys.monitoring`` and has no such route.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
import threading
from pathlib import Path

import pytest

import ferrotrace
from ferrotrace import _native

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="the frame-evaluation route is the 3.11 backend; 3.12+ records from sys.monitoring",
)

THIS_FILE = str(Path(__file__).resolve())
TRACE_FILES = itertools.count()


# --- the recorded program ---------------------------------------------------------------------


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def counter(n):
    total = 0
    for i in range(n):
        sent = yield i
        total += sent or 0
    return total


def delegate():
    result = yield from counter(2)
    yield result


def resume_and_throw(gen):
    next(gen)
    gen.send(5)
    try:
        gen.throw(KeyError("started"))
    except KeyError:
        pass


def generators():
    list(counter(3))
    resume_and_throw(counter(4))
    unstarted = counter(2)
    try:
        unstarted.throw(KeyError("unstarted"))
    except KeyError:
        pass
    closed = counter(5)
    next(closed)
    closed.close()
    list(delegate())
    return sum(x * x for x in range(4))


async def double(x):
    await asyncio.sleep(0)
    return x * 2


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def main_async():
    values = await asyncio.gather(double(1), double(2))
    async for tick in ticks(2):
        values.append(tick)
    try:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0)
    except TimeoutError:
        pass
    return values


def failing():
    raise ValueError("bad count")


def converts():
    # A C function raises: the exception is not normalized until something needs it.
    return int("not a number")


def cleans_up():
    try:
        failing()
    finally:
        fib(2)


def exceptions():
    for function in (failing, converts, cleans_up):
        try:
            function()
        except ValueError:
            pass
    try:
        {}["missing"]
    except KeyError:
        return "handled"


def dive(n):
    return dive(n + 1)


def recursion_to_the_limit():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(_stack()) + 60)
    try:
        dive(0)
    except RecursionError:
        pass
    finally:
        sys.setrecursionlimit(limit)


def _stack():
    frames = []
    frame = sys._getframe()
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def exits(code):
    sys.exit(code)


def worker(n):
    fib(n)
    try:
        exits(1)
    except SystemExit:
        pass
    return list(counter(2))


class Shape:
    def __init__(self, sides):
        self.sides = sides

    def __repr__(self):
        return f"Shape({self.sides})"


def program(recursion: bool = True):
    fib(6)
    generators()
    asyncio.run(main_async())
    exceptions()
    if recursion:
        recursion_to_the_limit()
    try:
        exits(3)
    except SystemExit:
        pass
    threads = [threading.Thread(target=worker, args=(4 + i,), name=f"w{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shapes = [Shape(n) for n in (3, 4)]
    return (lambda: shapes)()


# --- recording and reading back ---------------------------------------------------------------


def parse_text(text: str) -> dict[str, list[tuple[str, ...]]]:
    """The text format as {thread name: [(kind, line, function, detail), ...]} (a recording of
    one thread has no thread header: it is the main thread's)."""
    events: list[tuple[str, ...]] = []
    threads: dict[str, list[tuple[str, ...]]] = {"MainThread": events}
    for line in text.splitlines():
        if line.startswith("--- thread "):
            name = line.removeprefix("--- thread ").rsplit(" (tid ", 1)[0]
            events = threads.setdefault(name, [])
            continue
        kind, where, function, *detail = line.split(None, 3)
        events.append((kind, where.rsplit(":", 1)[1], function, *(detail or [""])))
    return {name: events for name, events in threads.items() if events}


def read_back(recorder: ferrotrace.Recorder, tmp_path: Path) -> dict:
    """The recording, written in the text format and parsed back."""
    path = tmp_path / f"trace-{next(TRACE_FILES)}.txt"
    recorder.write(path, "text")
    return parse_text(path.read_text())


def record(
    tmp_path: Path,
    *,
    at_entry: bool,
    recursion: bool = True,
    events: str = "call,return",
    **kwargs,
) -> tuple[dict, int]:
    """The program's events as a recorder of `events` (of this file's code, and `kwargs`'s
    other filters) records them, on the frame-evaluation route or (``at_entry=False``)
    through the trace hook; and how many frames were recorded at their entry (on every
    thread)."""
    previous = _native._record_at_frame_entry(at_entry)
    before = _native._frames_recorded_at_entry()
    recorder = ferrotrace.Recorder(files=[THIS_FILE], events=events, **kwargs)
    try:
        recorder.start(all_threads=True)
        try:
            program(recursion)
        finally:
            recorder.stop()
    finally:
        _native._record_at_frame_entry(previous)
    at_entry_count = _native._frames_recorded_at_entry() - before
    return read_back(recorder, tmp_path), at_entry_count


def settrace_calls_and_returns() -> dict[str, list[tuple[str, str, str]]]:
    """What ``sys.settrace`` reports for the program's code, calls and returns only (an unwind
    is a ``return``), per thread."""
    threads: dict[str, list[tuple[str, str, str]]] = {}

    def collector(frame, event, arg):
        if frame.f_code.co_filename != THIS_FILE:
            return None
        if event in ("call", "return"):
            where = str(frame.f_lineno)
            thread = threading.current_thread().name
            threads.setdefault(thread, []).append((event, where, frame.f_code.co_qualname))
        return collector

    threading.settrace(collector)
    sys.settrace(collector)
    try:
        program(recursion=False)
    finally:
        sys.settrace(None)
        threading.settrace(None)
    return threads


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("reprs", [False, True])
def test_the_frame_entry_route_records_what_the_trace_hook_route_does(
    tmp_path: Path, reprs: bool
) -> None:
    # With reprs, the recursion is left out: the trace hook's route describes the innermost
    # frame's RecursionError at the recursion limit, where `str()` of it fails, and records the
    # type alone; the frame-evaluation route describes it after the frame, one level up.
    kwargs = {"reprs": True, "recursion": False} if reprs else {}
    at_entry, recorded_at_entry = record(tmp_path, at_entry=True, **kwargs)
    through_hook, recorded_through_hook = record(tmp_path, at_entry=False, **kwargs)
    assert recorded_at_entry > 50
    assert recorded_through_hook == 0
    assert set(at_entry) == {"MainThread", "w0", "w1"}
    assert at_entry == through_hook
    kinds = {event[0] for events in at_entry.values() for event in events}
    assert kinds == {"call", "return", "unwind"}


def test_the_frame_entry_route_records_what_settrace_reports(tmp_path: Path) -> None:
    recorded, _ = record(tmp_path, at_entry=True, recursion=False)
    as_settrace = {
        thread: [
            ("return" if kind == "unwind" else kind, where, function)
            for kind, where, function, _detail in events
        ]
        for thread, events in recorded.items()
    }
    assert as_settrace == settrace_calls_and_returns()


def test_generator_resumptions_and_unwinds_in_detail(tmp_path: Path) -> None:
    """One call per resumption at the resume point, a return at each yield, the call of a
    throw at the suspended yield, and unwinds described by the exception type."""
    recorder = ferrotrace.Recorder(functions=["counter", "converts"], events="call,return")
    before = _native._frames_recorded_at_entry()
    with recorder:
        resume_and_throw(counter(3))
        try:
            converts()
        except ValueError:
            pass
    assert _native._frames_recorded_at_entry() - before == 4
    events = [
        (kind, int(line), function, detail)
        for kind, line, function, detail in read_back(recorder, tmp_path)["MainThread"]
    ]
    first = counter.__code__.co_firstlineno
    yield_line = first + 3
    assert events == [
        ("call", first, "counter", ""),
        ("return", yield_line, "counter", ""),
        ("call", yield_line, "counter", ""),
        ("return", yield_line, "counter", ""),
        ("call", yield_line, "counter", ""),
        ("unwind", yield_line, "counter", "KeyError"),
        ("call", converts.__code__.co_firstlineno, "converts", ""),
        ("unwind", converts.__code__.co_firstlineno + 2, "converts", "ValueError"),
    ]


def test_a_tracer_beside_the_recorder_gets_exactly_its_stream(tmp_path: Path) -> None:
    """A Tracer with a Python callback (line events included) on some of the recorder's frames:
    those frames go through the trace hook for both, the others are recorded at entry; the
    Tracer's stream is the one it gets alone, and the recording the one the recorder makes
    alone."""

    def tracer_stream(with_recorder: bool) -> tuple[dict, dict]:
        seen: dict[str, list[tuple[str, str, int]]] = {}

        def callback(frame, event, arg):
            thread = threading.current_thread().name
            seen.setdefault(thread, []).append((event, frame.f_code.co_name, frame.f_lineno))
            return callback

        recorder = ferrotrace.Recorder(files=[THIS_FILE], events="call,return")
        tracer = ferrotrace.Tracer(callback, functions=["counter", "failing", "exits"])
        if with_recorder:
            recorder.start(all_threads=True)
        tracer.start(all_threads=True)
        try:
            program(recursion=False)
        finally:
            tracer.stop()
            recorder.stop()
        return seen, read_back(recorder, tmp_path)

    alone, _ = tracer_stream(with_recorder=False)
    beside, recorded = tracer_stream(with_recorder=True)
    assert set(alone) == {"MainThread", "w0", "w1"}
    kinds = {event for events in alone.values() for event, _, _ in events}
    assert kinds == {"call", "line", "return", "exception"}
    assert beside == alone
    recorded_alone, _ = record(tmp_path, at_entry=True, recursion=False)
    assert recorded == recorded_alone


@pytest.mark.parametrize(
    "filters",
    [
        {"functions": ["generators", "worker", "exceptions"], "depth": 2},
        {"threads": ["w0"]},
        {"events": "call"},
        {"events": "return", "reprs": True},
    ],
    ids=["depth", "threads", "calls only", "returns only"],
)
def test_other_filters_record_the_same_on_both_routes(tmp_path: Path, filters: dict) -> None:
    """A `depth` window, a thread filter, or one of the two events: the general path decides
    which frames are recorded at their entry; what is recorded is the trace hook's."""
    filters = dict(filters)
    events = filters.pop("events", "call,return")
    at_entry, recorded_at_entry = record(
        tmp_path, at_entry=True, recursion=False, events=events, **filters
    )
    through_hook, _ = record(tmp_path, at_entry=False, recursion=False, events=events, **filters)
    assert recorded_at_entry > 0
    assert at_entry and at_entry == through_hook


def sets_trace_midway(collector):
    sys.settrace(collector)
    fib(3)
    sys.settrace(None)
    return "set and unset"


def test_a_foreign_trace_function_keeps_its_events_and_the_recording_stays_whole(
    tmp_path: Path,
) -> None:
    """`sys.settrace` called inside a frame recorded at its entry: the frames it then traces go
    through the trace hook (the foreign function first, as CPython would call it alone), and
    the recording still has every call and return, the outer frame's included."""

    def trace_midway(with_recorder: bool) -> tuple[list, dict]:
        seen: list[tuple[str, str, int]] = []

        def collector(frame, event, arg):
            seen.append((event, frame.f_code.co_name, frame.f_lineno))
            return collector

        recorder = ferrotrace.Recorder(files=[THIS_FILE], events="call,return")
        if with_recorder:
            recorder.start()
        try:
            sets_trace_midway(collector)
        finally:
            sys.settrace(None)
            recorder.stop()
        return seen, read_back(recorder, tmp_path)

    alone, _ = trace_midway(with_recorder=False)
    beside, recorded = trace_midway(with_recorder=True)
    assert {event for event, _, _ in alone} == {"call", "line", "return"}
    assert beside == alone
    first = sets_trace_midway.__code__.co_firstlineno
    calls = [(kind, function) for kind, _, function, _ in recorded["MainThread"]]
    fib_3 = ["call", "call", "call", "return", "call", "return", "return", "call", "return"]
    assert calls == [
        ("call", "sets_trace_midway"),
        *[(kind, "fib") for kind in [*fib_3, "return"]],
        ("return", "sets_trace_midway"),
    ]
    assert recorded["MainThread"][-1][1] == str(first + 4)


def test_generators_resumed_across_start_and_stop_over_many_cycles(tmp_path: Path) -> None:
    """Generators started under one recorder and resumed under the next, or after it stopped,
    over many start/stop cycles of recorders of every thread: each recording is the trace
    hook's, and the recorders release the code objects they held."""

    def cycles(at_entry: bool) -> list[dict]:
        previous = _native._record_at_frame_entry(at_entry)
        recordings = []
        suspended = []
        try:
            for _ in range(40):
                recorder = ferrotrace.Recorder(files=[THIS_FILE], events="call,return")
                recorder.start(all_threads=True)
                try:
                    gen = counter(3)
                    next(gen)
                    if suspended:
                        next(suspended.pop(), None)
                finally:
                    recorder.stop()
                next(gen)
                suspended.append(gen)
                recordings.append(read_back(recorder, tmp_path))
        finally:
            _native._record_at_frame_entry(previous)
        return recordings

    code = counter.__code__
    before = sys.getrefcount(code)
    at_entry = cycles(at_entry=True)
    assert at_entry == cycles(at_entry=False)
    calls = [[kind for kind, _, _, _ in r["MainThread"] if kind == "call"] for r in at_entry]
    # Each cycle after the first: the new generator's start, the previous one's resumption,
    # and its close (GeneratorExit thrown in) when it is dropped, suspended, right after.
    assert [len(c) for c in calls] == [1] + [3] * 39
    gc.collect()
    assert sys.getrefcount(code) == before
