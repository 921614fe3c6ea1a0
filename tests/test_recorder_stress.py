"""Stress tests of ``ferrotrace.Recorder``'s recording fast paths, the code that keeps raw
pointers checked only by a generation or a serial: the per-code slot (on 3.12+ a single
recorder's sink, valid for one registry generation) read through a cache by code address, and
each thread's open chunk (valid for one sink's serial).

Each test changes what those pointers were taken from while code objects keep their slots:
recorders stopped, restarted, swapped, collected while running; code objects freed and new ones
made at the same addresses; threads ending and new ones taking their ids; chunks filling while
threads switch. What was recorded must be exactly what ``sys.settrace`` sees, or the counts the
program makes. (Fork while recording: ``test_recorder.py``.)
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

import ferrotrace

THIS_FILE = str(Path(__file__).resolve())


def leaf(n):
    return n


def other(n):
    return n + 1


def loop(function, n: int) -> None:
    for i in range(n):
        function(i)


def plain(**filter_options) -> ferrotrace.Recorder:
    """A recorder of calls and returns only, exits at line 0: every fast path takes it."""
    return ferrotrace.Recorder(events="call,return", exit_lines=False, **filter_options)


# --- what a recorder records is what sys.settrace sees ----------------------------------------


def gen(n):
    for i in range(n):
        try:
            yield i
        except KeyError:
            pass


def delegates():
    yield from gen(3)
    return "done"


def raises(n):
    if n:
        raises(n - 1)
    raise IndexError(n)


async def waits(n):
    if n:
        await waits(n - 1)
    await asyncio.sleep(0)
    if n == 2:
        raise KeyError(n)
    return n


async def catches_from_waits():
    try:
        await waits(3)
    except KeyError:
        pass


class Swallows:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return True


def program() -> None:
    """Generators thrown into and closed, delegation, exceptions through several frames and a
    context manager, a comprehension, code made by exec, a coroutine chain that raises: three
    rounds, so the later ones take the paths a code object takes once it is known."""
    for round_ in range(3):
        g = gen(4)
        next(g)
        g.throw(KeyError)
        g.close()
        g = gen(3)
        next(g)
        try:
            g.throw(ValueError("x"))
        except ValueError:
            pass
        list(delegates())
        d = delegates()
        next(d)
        try:
            d.throw(RuntimeError)
        except RuntimeError:
            pass
        try:
            raises(3)
        except IndexError:
            pass
        with Swallows():
            raises(1)
        squares = lambda x: [y * y for y in range(x)]  # noqa: E731
        squares(3)
        namespace: dict = {}
        exec(compile("def made(x):\n    return x\n", THIS_FILE, "exec"), namespace)
        namespace["made"](round_)
        asyncio.run(catches_from_waits())


def settrace_events(events: tuple[str, ...], exit_lines: bool) -> list[tuple[str, str, int]]:
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code.co_filename == THIS_FILE and event in events:
            line = frame.f_lineno if event in ("call", "line") or exit_lines else 0
            if event == "call" and line == 0:
                line = frame.f_code.co_firstlineno  # a module's call: ferrotrace's first line
            seen.append((event, frame.f_code.co_qualname, line))
        return tracer

    sys.settrace(tracer)
    try:
        program()
    finally:
        sys.settrace(None)
    return seen


TEXT_EVENT = re.compile(r"^\s*(\w+)\s+.*:(\d+) (\S+)")


def recorded_events(
    events: tuple[str, ...], exit_lines: bool, tmp_path: Path
) -> list[tuple[str, str, int]]:
    recorder = ferrotrace.Recorder(
        files=[THIS_FILE], events=",".join(events), exit_lines=exit_lines
    )
    with recorder:
        program()
    path = tmp_path / "trace.txt"
    recorder.write(path, "text")
    recorded = []
    for text in path.read_text().splitlines():
        kind, line, name = TEXT_EVENT.match(text).groups()
        recorded.append(("return" if kind == "unwind" else kind, name, int(line)))
    return recorded


@pytest.mark.parametrize("exit_lines", [False, True])
@pytest.mark.parametrize(
    "events", [("call",), ("call", "return"), ("call", "return", "exception", "line")]
)
def test_generators_coroutines_and_exceptions_are_recorded_as_settrace_sees_them(
    events: tuple[str, ...], exit_lines: bool, tmp_path: Path
) -> None:
    assert recorded_events(events, exit_lines, tmp_path) == settrace_events(events, exit_lines)


# --- recorders come and go while code objects keep their slots --------------------------------


def test_recorders_stopped_restarted_and_swapped_keep_their_own_calls() -> None:
    first = plain(functions=["leaf"])
    first.start()
    loop(leaf, 100)
    loop(other, 100)
    first.stop()
    second = plain(functions=["other"])
    second.start()  # leaf's code still holds first's sink, from an older generation
    loop(leaf, 100)
    loop(other, 100)
    first.start()  # the same sink again, beside second
    loop(leaf, 50)
    loop(other, 50)
    second.stop()
    loop(leaf, 10)
    loop(other, 10)
    first.stop()
    assert (first.call_count, first.event_count) == (160, 320)
    assert (second.call_count, second.event_count) == (150, 300)

    stacked = [plain(functions=["leaf"]) for _ in range(5)]
    for recorder in stacked:  # one, two, ... five recorders of leaf, then four, ... none
        recorder.start()
        loop(leaf, 20)
    for recorder in stacked:
        loop(leaf, 20)
        recorder.stop()
    assert [r.call_count for r in stacked] == [20 * (5 - i) + 20 * (i + 1) for i in range(5)]


def test_a_recorder_collected_while_running_leaves_no_trace_in_later_recordings() -> None:
    def start_and_drop() -> None:
        dropped = plain(functions=["leaf"])
        dropped.start()
        loop(leaf, 10)

    start_and_drop()
    loop(leaf, 10)
    recorder = plain(functions=["leaf"])
    recorder.start()
    loop(leaf, 10)

    class Cycle:
        pass

    cycle = Cycle()
    cycle.itself = cycle
    cycle.recorder = plain(functions=["leaf"])
    cycle.recorder.start(all_threads=True)
    loop(leaf, 10)
    del cycle
    gc.collect()
    loop(leaf, 10)
    recorder.stop()
    assert recorder.call_count == 30


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_another_tools_events_do_not_change_what_is_recorded() -> None:
    monitoring = sys.monitoring
    tool = next(t for t in (5, 4, 3, 2, 1) if monitoring.get_tool(t) is None)
    monitoring.use_tool_id(tool, "stress-test")
    returns = []
    try:
        monitoring.register_callback(
            tool, monitoring.events.PY_RETURN, lambda *a: returns.append(1)
        )
        recorder = plain(functions=["leaf"])
        recorder.start()
        loop(leaf, 10)
        monitoring.set_events(tool, monitoring.events.PY_RETURN)
        loop(leaf, 10)
        monitoring.set_events(tool, 0)
        loop(leaf, 10)
        recorder.stop()
    finally:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.PY_RETURN, None)
        monitoring.free_tool_id(tool)
    assert recorder.call_count == 30
    assert len(returns) >= 10


# --- code objects freed and made again at the same addresses ----------------------------------


def test_code_objects_made_and_freed_in_a_loop_are_each_recorded(tmp_path: Path) -> None:
    """Each function made by exec has a name of its own, freed before the next is made (which
    may take its address): each call is recorded under its own function."""
    recorder = plain(functions=["made_*", "<lambda>"])
    expected = []
    with recorder:
        for i in range(1_000):
            namespace: dict = {}
            exec(f"def made_{i}(x):\n    return x + {i}\n", namespace)
            for _ in range(3):
                namespace[f"made_{i}"](1)
            times = lambda x, i=i: x * i  # noqa: E731
            times(2)
            expected += [f"made_{i}"] * 3 + ["<lambda>"]
            del namespace, times
    assert (recorder.call_count, recorder.event_count) == (len(expected), 2 * len(expected))
    path = tmp_path / "trace.json"
    recorder.write(path, "chrome")
    events = json.loads(path.read_text())["traceEvents"]
    assert [e["name"].rsplit(".", 1)[-1] for e in events if e["ph"] == "X"] == expected

    recorder = plain(functions=["made"])
    calls = 0
    for i in range(300):
        if i % 7 == 0:
            recorder.start()
        namespace = {}
        exec(f"def made(x):\n    return x + {i}\n", namespace)
        namespace["made"](1)
        calls += 1
        if i % 7 == 6:
            recorder.stop()
            meanwhile = plain(functions=["made"])
            with meanwhile:
                namespace["made"](2)
            assert meanwhile.call_count == 1
    recorder.stop()
    assert recorder.call_count == calls


def test_more_live_code_objects_than_the_slot_cache_holds() -> None:
    """6,000 live functions (more than the 4,096 cached slots: they share entries), recorded by
    two recorders, then one; half of them freed and 3,000 new ones made meanwhile."""
    functions = []
    for i in range(6_000):
        namespace: dict = {}
        exec(f"def made(x):\n    return x + {i}\n", namespace)
        functions.append(namespace["made"])
    both, first_only = plain(functions=["made"]), plain(functions=["made"])
    both.start()
    first_only.start()
    for _ in range(2):
        for function in functions:
            function(1)
    first_only.stop()
    for function in functions:
        function(1)
    functions = functions[::2]
    gc.collect()
    for i in range(3_000):
        namespace = {}
        exec(f"def made(x):\n    return x - {i}\n", namespace)
        namespace["made"](0)
        functions.append(namespace["made"])
    for function in functions:
        function(1)
    both.stop()
    assert first_only.call_count == 12_000
    assert both.call_count == 12_000 + 6_000 + 3_000 + 6_000


# --- threads ----------------------------------------------------------------------------------


def test_threads_that_end_and_threads_that_take_their_ids() -> None:
    recorder = plain(functions=["leaf"])
    recorder.start(all_threads=True)
    for _ in range(100):  # one at a time: a new thread mostly gets the ids the last one had
        thread = threading.Thread(target=loop, args=(leaf, 7))
        thread.start()
        thread.join()
    recorder.stop()
    assert recorder.call_count == 700


class Fails(Exception):
    pass


class Refused(Exception):
    pass


def ok():
    return 1


def bad(kind):
    raise kind


def calls_ok_and_bad(n: int, offset: int) -> None:
    for i in range(n):
        kind = (i + offset) % 5
        try:
            if kind == 0:
                bad(Fails)
            elif kind == 3:
                bad(Refused)
            else:
                ok()
        except (Fails, Refused):
            pass


def expected_slices(n: int, offset: int) -> list[tuple[str, str | None]]:
    kinds = [(i + offset) % 5 for i in range(n)]
    return [
        ("bad", "Fails") if kind == 0 else ("bad", "Refused") if kind == 3 else ("ok", None)
        for kind in kinds
    ]


def test_chunks_fill_exactly_while_threads_switch(tmp_path: Path) -> None:
    """Another thread records just as the main thread's first chunk (4,096 events) is full,
    then just as its second one (65,536 more) is, then two events short of the third's end:
    every call and unwind (with its exception's name) is kept, in order, on its thread."""
    recorder = plain(functions=["ok", "bad"])
    recorder.start(all_threads=True)
    main_thread = [(2_048, 0), (32_768, 1), (32_767, 2), (5, 3)]  # 2 events per call
    others = [(3_000, 1), (10, 2), (1, 3)]
    for (calls, offset), other_thread in zip(main_thread, [*others, None], strict=True):
        calls_ok_and_bad(calls, offset)
        if other_thread:
            thread = threading.Thread(target=calls_ok_and_bad, args=other_thread)
            thread.start()
            thread.join()
    recorder.stop()
    assert recorder.event_count == 2 * sum(calls for calls, _ in main_thread + others)
    path = tmp_path / "trace.json"
    recorder.write(path, "chrome")
    by_thread: dict[int, list] = {}
    for event in json.loads(path.read_text())["traceEvents"]:
        if event["ph"] == "X":
            slice_ = (event["name"], event.get("args", {}).get("exception"))
            by_thread.setdefault(event["tid"], []).append(slice_)
    main_slices = [s for calls, offset in main_thread for s in expected_slices(calls, offset)]
    assert by_thread.pop(threading.get_native_id()) == main_slices
    # The other threads may share a native id (one ends before the next starts).
    other_slices = [s for calls, offset in others for s in expected_slices(calls, offset)]
    assert Counter(s for slices in by_thread.values() for s in slices) == Counter(other_slices)


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_call_count_read_from_another_thread_while_recording(
    streaming: bool, tmp_path: Path
) -> None:
    output = {"output": tmp_path / "trace.pftrace"} if streaming else {}
    recorder = plain(functions=["leaf"], **output)
    done = threading.Event()
    counts = []

    def read_counts() -> None:
        while not done.is_set():
            counts.append(recorder.call_count)

    recorder.start()
    reader = threading.Thread(target=read_counts)
    reader.start()
    for _ in range(20):
        loop(leaf, 5_000)
    done.set()
    reader.join()
    assert recorder.call_count == 100_000
    recorder.stop()
    assert recorder.call_count == 100_000
    assert counts == sorted(counts)
    assert all(count <= 100_000 for count in counts)
