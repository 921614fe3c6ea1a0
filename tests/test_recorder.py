"""``ferrotrace.Recorder``: native recording (no Python per event) and its three outputs.

The promises tested: every call of the selected code is recorded (a Chrome trace has exactly
one complete event per call, properly nested per thread, threads included); a Perfetto trace
parses (with the small protobuf decoder below) and has one track per thread with balanced
slices; the API (start/stop, context manager, counts, events, reprs, write errors).

Runs on both backends of the filtered engine: ``sys.monitoring`` (3.12+) and the PEP 523
frame-evaluation hook (3.11).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

import ferrotrace

THIS_FILE = str(Path(__file__).resolve())


# --- the recorded program ---------------------------------------------------------------------


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def failing():
    raise ValueError("bad count")


def catches():
    try:
        failing()
    except ValueError:
        return "caught"


def countdown(n):
    while n:
        yield n
        n -= 1


def worker(results):
    results.append(fib(6))


def program():
    """Calls: program 1, fib(8) 67, catches 1, failing 1, countdown 4 (one per resumption:
    3 values and the final one), two workers each 1 + fib(6) 25."""
    fib(8)
    catches()
    list(countdown(3))
    results = []
    threads = [threading.Thread(target=worker, args=(results,), name=f"w{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


EXPECTED_CALLS = {
    "program": 1,
    "fib": 67 + 2 * 25,
    "catches": 1,
    "failing": 1,
    "countdown": 4,
    "worker": 2,
}
if sys.version_info < (3, 12):
    # Before PEP 709 (3.12) a list comprehension runs as a function of its own.
    EXPECTED_CALLS["program.<locals>.<listcomp>"] = 1


def record(**kwargs) -> ferrotrace.Recorder:
    recorder = ferrotrace.Recorder(files=[THIS_FILE], **kwargs)
    recorder.start(all_threads=True)
    try:
        program()
    finally:
        recorder.stop()
    return recorder


# --- Chrome -----------------------------------------------------------------------------------


def chrome_events(recorder: ferrotrace.Recorder, tmp_path: Path) -> list[dict]:
    path = tmp_path / "trace.json"
    recorder.write(path, "chrome")
    return json.loads(path.read_text())["traceEvents"]


def assert_properly_nested(slices: list[dict]) -> None:
    """Per thread, every slice lies within the one that encloses it (a stack check in
    start order, parents before children)."""
    by_thread: dict[int, list[dict]] = {}
    for event in slices:
        by_thread.setdefault(event["tid"], []).append(event)
    for events in by_thread.values():
        stack: list[tuple[int, int]] = []
        for event in sorted(events, key=lambda e: (ns(e["ts"]), -ns(e["dur"]))):
            start, end = ns(event["ts"]), ns(event["ts"]) + ns(event["dur"])
            while stack and stack[-1][1] <= start and stack[-1][1] < end:
                stack.pop()
            if stack:
                assert stack[-1][0] <= start and end <= stack[-1][1], (event, stack)
            stack.append((start, end))


def ns(microseconds: float) -> int:
    return round(microseconds * 1000)


def test_chrome_has_one_complete_event_per_call_nested_per_thread(tmp_path: Path) -> None:
    recorder = record()
    events = chrome_events(recorder, tmp_path)
    slices = [e for e in events if e["ph"] == "X"]
    assert Counter(e["name"] for e in slices) == EXPECTED_CALLS
    assert recorder.call_count == sum(EXPECTED_CALLS.values())
    assert all(e["args"]["file"] == THIS_FILE for e in slices)
    assert not any(e["args"].get("unfinished") for e in slices)
    assert_properly_nested(slices)

    # The main thread and both workers, each named, each with its own calls.
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(names.values()) == ["MainThread", "w0", "w1"]
    per_thread = Counter((names[e["tid"]], e["name"]) for e in slices)
    for name in ("w0", "w1"):
        assert per_thread[(name, "worker")] == 1 and per_thread[(name, "fib")] == 25
    assert per_thread[("MainThread", "fib")] == 67

    # The exception: `failing` exits by it, `catches` saw it and returned normally.
    (failing,) = [e for e in slices if e["name"] == "failing"]
    (catches,) = [e for e in slices if e["name"] == "catches"]
    assert failing["args"]["exception"] == "ValueError"
    assert catches["args"]["exception"] == "ValueError"
    assert "return" not in catches["args"]  # values only with reprs=True


def test_reprs_record_values_and_messages(tmp_path: Path) -> None:
    slices = [e for e in chrome_events(record(reprs=True), tmp_path) if e["ph"] == "X"]
    (catches,) = [e for e in slices if e["name"] == "catches"]
    (failing,) = [e for e in slices if e["name"] == "failing"]
    assert catches["args"]["return"] == "'caught'"
    assert failing["args"]["exception"] == "ValueError: bad count"
    countdown_values = [e["args"]["return"] for e in slices if e["name"] == "countdown"]
    assert countdown_values == ["3", "2", "1", "None"]


# --- Perfetto ---------------------------------------------------------------------------------


def decode(data: bytes) -> list[tuple[int, int | bytes]]:
    """Protobuf wire format: (field, value) pairs; varints as int, length-delimited as bytes."""
    fields = []
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            fields.append((field, varint()))
        elif wire == 2:
            size = varint()
            fields.append((field, data[pos : pos + size]))
            pos += size
        elif wire == 1:
            fields.append((field, data[pos : pos + 8]))
            pos += 8
        elif wire == 5:
            fields.append((field, data[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"wire type {wire} at {pos}")
    assert pos == len(data)
    return fields


def message(fields: list[tuple[int, int | bytes]], number: int) -> list:
    return [decode(value) for field, value in fields if field == number]


def scalar(fields: list[tuple[int, int | bytes]], number: int):
    return next((value for field, value in fields if field == number), None)


def default_tracks(packets: list) -> dict[int, int]:
    """Sequence -> the track its track events default to (TracePacketDefaults)."""
    tracks = {}
    for packet in packets:
        for defaults in message(packet, 59):  # TracePacket.trace_packet_defaults
            for track_event in message(defaults, 11):  # TracePacketDefaults.track_event_defaults
                tracks[scalar(packet, 10)] = scalar(track_event, 11)  # .track_uuid
    return tracks


def test_perfetto_parses_with_a_track_per_thread(tmp_path: Path) -> None:
    recorder = record()
    path = tmp_path / "trace.pftrace"
    recorder.write(path)  # perfetto is the default format
    packets = [decode(p) for field, p in decode(path.read_bytes()) if field == 1]

    thread_tracks = {}  # track uuid -> thread name
    for packet in packets:
        for descriptor in message(packet, 60):  # TracePacket.track_descriptor
            for thread in message(descriptor, 4):  # TrackDescriptor.thread
                thread_tracks[scalar(descriptor, 1)] = scalar(thread, 5).decode()
    assert sorted(thread_tracks.values()) == ["MainThread", "w0", "w1"]

    names: dict[tuple[int, int], str] = {}  # (sequence, iid) -> function name
    depth: Counter = Counter()
    begins: Counter = Counter()
    defaults = default_tracks(packets)
    for packet in packets:
        sequence = scalar(packet, 10)  # trusted_packet_sequence_id
        for interned in message(packet, 12):
            for name in message(interned, 2):  # InternedData.event_names
                names[(sequence, scalar(name, 1))] = scalar(name, 2).decode()
        for event in message(packet, 11):  # TracePacket.track_event
            track = scalar(event, 11) or defaults[sequence]
            assert track in thread_tracks
            if scalar(event, 9) == 1:  # TYPE_SLICE_BEGIN
                depth[track] += 1
                begins[names[(sequence, scalar(event, 10))]] += 1
            else:
                assert scalar(event, 9) == 2 and depth[track] > 0
                depth[track] -= 1
    assert begins == EXPECTED_CALLS
    assert set(depth.values()) == {0}


# --- the API ----------------------------------------------------------------------------------


def test_start_and_stop_on_every_version(tmp_path: Path) -> None:
    recorder = ferrotrace.Recorder(functions=["no_such_function_xyz"])
    with recorder:
        assert recorder.running
    assert not recorder.running
    # Nothing recorded is still a valid (empty) trace.
    recorder.write(tmp_path / "empty.json", "chrome")
    assert json.loads((tmp_path / "empty.json").read_text())["traceEvents"]


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown event"):
        ferrotrace.Recorder(events="call,bogus")
    with pytest.raises(ValueError, match="never closed"):
        ferrotrace.Recorder(files=["[abc"])
    recorder = ferrotrace.Recorder()
    with pytest.raises(ValueError, match="unknown trace format"):
        recorder.write(tmp_path / "x", "svg")
    with pytest.raises(FileNotFoundError):
        recorder.write(tmp_path / "missing" / "x.json", "chrome")
    with pytest.raises(IsADirectoryError):
        recorder.write(tmp_path, "chrome")


def test_context_manager_calling_thread_only_and_counts() -> None:
    results: list[int] = []
    other = threading.Thread(target=worker, args=(results,))
    with ferrotrace.Recorder(functions=["fib"]) as recorder:
        fib(5)
        other.start()
        other.join()
        running_count = recorder.event_count
    # Every event by default: call, line and return of 15 calls (fib's body is one line).
    assert running_count == recorder.event_count == 3 * 15
    assert recorder.call_count == 15


def test_calls_and_returns_of_the_calling_thread_only() -> None:
    """A recorder of calls and returns started for its own thread: every call and return
    there (the 3.12+ fast path takes both), none of another thread running the same code."""
    results: list[int] = []
    other = threading.Thread(target=worker, args=(results,))
    recorder = ferrotrace.Recorder(functions=["fib"], events="call,return", exit_lines=False)
    with recorder:
        for _ in range(3):
            fib(5)
        other.start()
        other.join()
        fib(5)
    assert results == [8]
    assert recorder.call_count == 4 * 15
    assert recorder.event_count == 2 * 4 * 15


def test_restarting_adds_to_the_recording(tmp_path: Path) -> None:
    recorder = ferrotrace.Recorder(functions=["fib"])
    with recorder:
        fib(3)
    fib(3)  # not recorded
    with recorder:
        fib(2)
    assert recorder.call_count == 5 + 3
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert len(slices) == 8
    assert_properly_nested(slices)


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="provoked by taking every sys.monitoring tool id, which 3.11 does not have",
)
def test_a_start_that_fails_keeps_the_earlier_recording(tmp_path: Path) -> None:
    recorder = ferrotrace.Recorder(functions=["fib"])
    with recorder:
        fib(3)
    taken = [t for t in range(6) if sys.monitoring.get_tool(t) is None]
    for tool in taken:
        sys.monitoring.use_tool_id(tool, "test")
    try:
        with pytest.raises(Exception, match="tool id"):
            recorder.start()
    finally:
        for tool in taken:
            sys.monitoring.free_tool_id(tool)
    assert recorder.call_count == 5
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert len(slices) == 5
    with recorder:  # and it can go on once a tool id is free again
        fib(2)
    assert recorder.call_count == 5 + 3


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="the sys.monitoring callbacks are the 3.12+ backend's"
)
def test_the_monitoring_callbacks_check_their_arguments() -> None:
    """The callbacks a recorder registers with sys.monitoring (objects of a small type whose
    vectorcall entry is ferrotrace's own): called by hand they take (code, offset[, value])
    and nothing else, the type makes no new ones, and recording goes on after such calls."""
    monitoring = sys.monitoring
    recorder = ferrotrace.Recorder(functions=["fib"], exit_lines=False)
    with recorder:
        tool = next(t for t in range(6) if monitoring.get_tool(t) == "ferrotrace")
        start = monitoring.register_callback(tool, monitoring.events.PY_START, None)
        monitoring.register_callback(tool, monitoring.events.PY_START, start)
        assert repr(start) == "<ferrotrace monitoring callback _on_start>"
        for bad in [(), (fib.__code__,), (fib.__code__, 0, None, None)]:
            with pytest.raises(TypeError, match="takes \\(code, offset"):
                start(*bad)
        with pytest.raises(TypeError, match="takes \\(code, offset"):
            start(fib.__code__, 0, value=None)
        with pytest.raises(TypeError):
            type(start)()
        fib(4)
    assert recorder.call_count == 9


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_a_tool_id_the_program_frees_or_takes_over_is_left_to_it() -> None:
    """The program frees ferrotrace's sys.monitoring tool id while a recorder runs: stop()
    keeps what was recorded (and touches no tool: another one may have the id by then), and
    the next recorder, started beside it or later, claims an id again."""
    monitoring = sys.monitoring

    def tool_of_ferrotrace() -> int:
        return next(t for t in range(6) if monitoring.get_tool(t) == "ferrotrace")

    freed = ferrotrace.Recorder(functions=["fib"], exit_lines=False)
    freed.start()
    fib(3)
    monitoring.free_tool_id(tool_of_ferrotrace())
    beside = ferrotrace.Recorder(functions=["fib"], exit_lines=False)
    beside.start()  # claims an id again, for both
    fib(2)
    beside.stop()
    freed.stop()
    assert (freed.call_count, beside.call_count) == (5 + 3, 3)
    assert "ferrotrace" not in [monitoring.get_tool(t) for t in range(6)]

    taken_over = ferrotrace.Recorder(functions=["fib"], exit_lines=False)
    taken_over.start()
    fib(2)
    tool = tool_of_ferrotrace()
    monitoring.free_tool_id(tool)
    monitoring.use_tool_id(tool, "another tool")
    starts = []
    try:
        monitoring.register_callback(
            tool, monitoring.events.PY_START, lambda code, offset: starts.append(code)
        )
        monitoring.set_events(tool, monitoring.events.PY_START)
        taken_over.stop()
        assert taken_over.call_count == 3
        assert monitoring.get_tool(tool) == "another tool"
        assert monitoring.get_events(tool) == monitoring.events.PY_START
        with ferrotrace.Recorder(functions=["fib"], exit_lines=False) as again:
            fib(2)
        assert again.call_count == 3
        assert fib.__code__ in starts
    finally:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.PY_START, None)
        monitoring.free_tool_id(tool)


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="the sys.monitoring callbacks are the 3.12+ backend's"
)
def test_an_offset_that_runs_python_code_leaves_the_fast_path() -> None:
    """A callback called by hand with an offset that is not an int but converts to one
    (`__index__`, Python code that calls recorded functions): the conversion runs outside the
    recording fast path, whose registry borrow it would otherwise meet (a PanicException)."""
    monitoring = sys.monitoring
    converted = []

    class Offset:
        def __index__(self) -> int:
            converted.append(fib(2))
            return 0

    recorder = ferrotrace.Recorder(functions=["fib"], events="call", exit_lines=False)
    with recorder:
        fib(1)  # the slot of fib's code now says: fast path
        tool = next(t for t in range(6) if monitoring.get_tool(t) == "ferrotrace")
        start = monitoring.register_callback(tool, monitoring.events.PY_START, None)
        monitoring.register_callback(tool, monitoring.events.PY_START, start)
        start(fib.__code__, Offset())
        before = recorder.call_count
        fib(4)
    assert converted == [1]
    assert recorder.call_count == before + 9


def test_events_select_what_is_kept(tmp_path: Path) -> None:
    recorder = ferrotrace.Recorder(functions=["catches", "failing"], events="call,line")
    with recorder:
        catches()
    text = tmp_path / "trace.txt"
    recorder.write(text, "text")
    kinds = [line.split()[0] for line in text.read_text().splitlines()]
    assert set(kinds) == {"call", "line"}
    assert kinds.count("call") == 2


def test_text_format_and_color(tmp_path: Path) -> None:
    recorder = ferrotrace.Recorder(functions=["catches", "failing"], reprs=True)
    with recorder:
        catches()
    path = tmp_path / "trace.txt"
    recorder.write(path, "text")
    lines = path.read_text().splitlines()
    line = catches.__code__.co_firstlineno
    here = (
        Path(THIS_FILE).relative_to(Path.cwd())
        if Path.cwd() in Path(THIS_FILE).parents
        else THIS_FILE
    )
    assert lines[0] == f"call      {here}:{line} catches"
    assert lines[1] == f"  line      {here}:{line + 1} catches  try:"
    assert lines[-1] == f"return    {here}:{line + 4} catches -> 'caught'"
    assert any(
        entry.strip().startswith("unwind") and "ValueError: bad count" in entry for entry in lines
    )
    recorder.write(path, "text", color=True)
    assert "\x1b[" in path.read_text()


def test_no_python_object_is_kept_per_event() -> None:
    """Recording returns and exceptions keeps no reference to the values."""

    class Value:
        pass

    def make():
        return Value()

    before = sum(isinstance(o, Value) for o in gc.get_objects())
    with ferrotrace.Recorder(functions=["make"], reprs=True) as recorder:
        for _ in range(100):
            make()
    gc.collect()
    assert sum(isinstance(o, Value) for o in gc.get_objects()) == before
    assert recorder.call_count == 100


def test_a_repr_that_raises_does_not_reach_the_program() -> None:
    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    def make():
        return Broken()

    with ferrotrace.Recorder(functions=["make"], reprs=True) as recorder:
        value = make()
    assert isinstance(value, Broken)
    assert recorder.call_count == 1


def test_exit_lines_off_keeps_call_lines_only(tmp_path: Path) -> None:
    recorder = ferrotrace.Recorder(functions=["catches", "failing"], exit_lines=False)
    with recorder:
        catches()
    path = tmp_path / "trace.txt"
    recorder.write(path, "text")
    entries = [line.split()[:2] for line in path.read_text().splitlines()]
    first = catches.__code__.co_firstlineno
    calls = [where for kind, where in entries if kind == "call"]
    assert [where.rsplit(":", 1)[1] for where in calls] == [
        str(first),
        str(failing.__code__.co_firstlineno),
    ]
    exits = [where for kind, where in entries if kind in ("return", "unwind", "exception")]
    assert exits and all(where.endswith(":0") for where in exits)


def test_a_recorder_beside_a_tracer_sees_the_same_calls(tmp_path: Path) -> None:
    """With a callback consumer present, events take the general path; both get theirs."""
    seen: list[str] = []

    def callback(frame, event, arg):
        if event == "call":
            seen.append(frame.f_code.co_name)
        return callback

    recorder = ferrotrace.Recorder(functions=["fib", "catches", "failing"])
    tracer = ferrotrace.Tracer(callback, functions=["fib", "catches", "failing"])
    recorder.start()
    tracer.start()
    try:
        fib(5)
        catches()
    finally:
        tracer.stop()
        recorder.stop()
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert Counter(e["name"] for e in slices) == Counter(seen)
    assert Counter(seen) == {"fib": 15, "catches": 1, "failing": 1}
    assert_properly_nested(slices)


def test_code_objects_are_released_with_the_recorder() -> None:
    """The sink holds each code object it saw (so its address stays its own) until the
    recorder goes; many start/stop cycles neither leak nor lose references."""
    code = fib.__code__
    before = sys.getrefcount(code)
    for _ in range(200):
        recorder = ferrotrace.Recorder(functions=["fib"])
        with recorder:
            fib(3)
        assert recorder.call_count == 5
        assert sys.getrefcount(code) > before
        del recorder
    gc.collect()
    assert sys.getrefcount(code) == before


def test_a_tracer_started_beside_a_call_recorder_sees_exceptions(tmp_path: Path) -> None:
    """A recorder of calls and returns leaves exception events off; a tracer that wants them,
    started later, gets them (in `failing`, where raised, and in `catches`, where caught)."""
    seen: list[tuple[str, str]] = []

    def callback(frame, event, arg):
        if event == "exception":
            seen.append((frame.f_code.co_name, arg[0].__name__))
        return callback

    recorder = ferrotrace.Recorder(functions=["catches", "failing"], events="call,return")
    with recorder:
        catches()
        with ferrotrace.Tracer(callback, functions=["catches", "failing"]):
            catches()
        catches()
    assert seen == [("failing", "ValueError"), ("catches", "ValueError")]
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert Counter(e["name"] for e in slices) == {"catches": 3, "failing": 3}
    assert all(e["args"]["exception"] == "ValueError" for e in slices if e["name"] == "failing")


def two_yields():
    yield 1
    yield 2


def settrace_call_lines(function) -> list[int]:
    """The lines `sys.settrace` gives the call events of `function`'s frames (one per start
    or resumption) while the generator is consumed twice."""
    lines: list[int] = []

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code is function.__code__:
            lines.append(frame.f_lineno)
        return None

    sys.settrace(tracer)
    try:
        list(function())
        list(function())
    finally:
        sys.settrace(None)
    return lines


def test_resumed_generators_keep_the_line_of_each_resumption(tmp_path: Path) -> None:
    """A generator resumes at several offsets; each call event keeps its own line (the line
    of a call is cached per code object and offset)."""
    expected = settrace_call_lines(two_yields)
    assert len(expected) == 2 * 3 and len(set(expected)) == 3
    recorder = ferrotrace.Recorder(functions=["two_yields"], exit_lines=False)
    with recorder:
        list(two_yields())
        list(two_yields())
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert [e["args"]["line"] for e in slices] == expected


def test_two_recorders_each_keep_their_calls(tmp_path: Path) -> None:
    """Two recorders of the same code, with different event sets, both take every event."""
    everything = ferrotrace.Recorder(files=[THIS_FILE], events="call,return", exit_lines=False)
    calls_only = ferrotrace.Recorder(functions=["fib"], events="call", exit_lines=False)
    everything.start()
    calls_only.start()
    try:
        fib(8)
        catches()
        fib(8)
    finally:
        calls_only.stop()
        everything.stop()
    assert calls_only.call_count == calls_only.event_count == 2 * 67
    assert everything.call_count == 2 * 67 + 2
    assert everything.event_count == 2 * everything.call_count
    slices = [e for e in chrome_events(everything, tmp_path) if e["ph"] == "X"]
    assert Counter(e["name"] for e in slices) == {"fib": 2 * 67, "catches": 1, "failing": 1}
    assert not any(e["args"].get("unfinished") for e in slices)
    assert_properly_nested(slices)


class Refused(Exception):
    pass


def refuses():
    raise Refused


def test_exception_names_stay_right_for_each_type(tmp_path: Path) -> None:
    """Without reprs an exception is described by its type's name, kept per type: every
    exception of each type is named, and a second type gets its own name."""
    recorder = ferrotrace.Recorder(functions=["failing", "refuses"], exit_lines=False)
    with recorder:
        for _ in range(3):
            for function in (failing, refuses):
                try:
                    function()
                except Exception:
                    pass
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert [(e["name"], e["args"]["exception"]) for e in slices] == [
        ("failing", "ValueError"),
        ("refuses", "Refused"),
    ] * 3


def raises(kind: type[Exception]) -> None:
    raise kind("message")


def test_an_exception_type_first_seen_in_a_known_function_is_named(tmp_path: Path) -> None:
    """A function whose unwinds are recorded without Python (its earlier calls were seen) that
    raises an exception of a type new to the recorder: named all the same, each unwind by its
    own type, on the thread it happened on."""
    kinds = [ValueError, ValueError, KeyError, ValueError, KeyError, LookupError, LookupError]
    recorder = ferrotrace.Recorder(functions=["raises"], exit_lines=False)
    with recorder:
        for kind in kinds:
            try:
                raises(kind)
            except Exception:
                pass
    slices = [e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"]
    assert [e["args"]["exception"] for e in slices] == [k.__qualname__ for k in kinds]

    other_thread = ferrotrace.Recorder(functions=["raises"], events="call,return", exit_lines=False)
    with other_thread:
        for kind in kinds[:2]:
            try:
                raises(kind)
            except Exception:
                pass
        thread = threading.Thread(target=lambda: [catch_from(raises, k) for k in kinds])
        thread.start()
        thread.join()
    assert other_thread.call_count == 2
    assert other_thread.event_count == 2 * 2  # call, unwind


def catch_from(function, *args) -> None:
    try:
        function(*args)
    except Exception:
        pass


# --- streaming: Recorder(output=...) ---------------------------------------------------------

STREAMED_PROGRAM = """\
import threading

def leaf(n):
    return n

def gen(n):
    for i in range(n):
        yield i

def fails(n):
    raise ValueError(n)

def work(n):
    total = 0
    for i in range(n):
        total += leaf(i)
    for x in gen(50):
        total += x
    for i in range(20):
        try:
            fails(i)
        except ValueError:
            pass
    return total

def run(calls):
    threads = []
    for i in range(2):
        threads.append(threading.Thread(target=work, args=(calls // 4,), name=f"s{i}"))
        threads[-1].start()
    work(calls)
    for t in threads:
        t.join()
"""

# Calls of `run(80_000)` per thread: more than 140,000 events (over three chunks) on the main
# thread. A generator's resumption is a call of its own.
STREAMED_CALLS = {
    "MainThread": {"run": 1, "work": 1, "leaf": 80_000, "gen": 51, "fails": 20},
    "s0": {"work": 1, "leaf": 20_000, "gen": 51, "fails": 20},
    "s1": {"work": 1, "leaf": 20_000, "gen": 51, "fails": 20},
}


def load_streamed_program(tmp_path: Path):
    import importlib.util

    path = tmp_path / "streamed.py"
    path.write_text(STREAMED_PROGRAM)
    spec = importlib.util.spec_from_file_location("streamed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(path)


def read_perfetto(data: bytes):
    """Parses a trace with Perfetto's own protobuf definitions and replays it as the trace
    processor does (each sequence's defaults, interned names and incremental clock): the calls
    per (thread name, function), and how many slices are marked unfinished. Checks on the way
    that every slice ends on the track it began on, no name or track is unknown, and time never
    goes back on a track."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent

    trace = Trace.FromString(data)
    sequences: dict[int, dict] = {}
    threads: dict[int, str] = {}  # track uuid -> thread name
    stacks: dict[int, list[str]] = {}
    last_ts: dict[int, int] = {}
    calls: Counter = Counter()
    unfinished = 0
    for packet in trace.packet:
        sequence_id = packet.trusted_packet_sequence_id
        assert sequence_id
        if packet.sequence_flags & 1:  # SEQ_INCREMENTAL_STATE_CLEARED
            sequences[sequence_id] = {"names": {}, "annotations": {}, "track": None, "ts": 0}
        sequence = sequences[sequence_id]
        if packet.HasField("trace_packet_defaults"):
            defaults = packet.trace_packet_defaults
            sequence["track"] = defaults.track_event_defaults.track_uuid
            assert defaults.timestamp_clock_id == 64
        if packet.HasField("track_descriptor") and packet.track_descriptor.HasField("thread"):
            descriptor = packet.track_descriptor
            threads[descriptor.uuid] = descriptor.thread.thread_name
        for name in packet.interned_data.event_names:
            sequence["names"][name.iid] = name.name
        for name in packet.interned_data.debug_annotation_names:
            sequence["annotations"][name.iid] = name.name
        if not packet.HasField("track_event"):
            continue
        assert packet.sequence_flags & 2  # SEQ_NEEDS_INCREMENTAL_STATE
        sequence["ts"] += packet.timestamp
        track = sequence["track"]
        assert track in threads
        assert sequence["ts"] >= last_ts.get(track, 0)
        last_ts[track] = sequence["ts"]
        event = packet.track_event
        stack = stacks.setdefault(track, [])
        if event.type == TrackEvent.TYPE_SLICE_BEGIN:
            name = sequence["names"][event.name_iid]
            stack.append(name)
            calls[(threads[track], name)] += 1
        else:
            assert event.type == TrackEvent.TYPE_SLICE_END and stack
            stack.pop()
            annotations = {sequence["annotations"][a.name_iid] for a in event.debug_annotations}
            unfinished += "unfinished" in annotations
    assert not any(stacks.values())
    return calls, unfinished


def per_sequence(data: bytes) -> dict[int, list[bytes]]:
    """Each packet sequence's packets, in file order."""
    sequences: dict[int, list[bytes]] = {}
    for field, packet in decode(data):
        assert field == 1
        sequences.setdefault(scalar(decode(packet), 10), []).append(packet)
    return sequences


def test_a_streamed_trace_is_the_trace_write_gives(tmp_path: Path) -> None:
    program, path = load_streamed_program(tmp_path)
    streamed = tmp_path / "streamed.pftrace"
    # Side by side on the same events: the same timestamps, ids and threads for both.
    streaming = ferrotrace.Recorder(files=[path], output=streamed)
    kept = ferrotrace.Recorder(files=[path])
    kept.start(all_threads=True)
    streaming.start(all_threads=True)
    try:
        program.run(80_000)
        assert not streamed.exists()  # written under a temporary name until the end
        assert streaming.call_count == kept.call_count
    finally:
        streaming.stop()
        kept.stop()
    kept.write(tmp_path / "kept.pftrace")
    data = streamed.read_bytes()
    assert per_sequence(data) == per_sequence((tmp_path / "kept.pftrace").read_bytes())
    calls, unfinished = read_perfetto(data)
    assert calls == Counter(
        {(thread, name): n for thread, names in STREAMED_CALLS.items() for name, n in names.items()}
    )
    assert unfinished == 0
    assert streaming.call_count == kept.call_count == sum(calls.values())
    assert streaming.event_count == kept.event_count > 2 * sum(calls.values())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_streaming_recorder_records_once(tmp_path: Path) -> None:
    output = tmp_path / "once.pftrace"
    recorder = ferrotrace.Recorder(functions=["fib"], output=output)
    with pytest.raises(RuntimeError, match="writes .*once.pftrace itself when it stops"):
        recorder.write(tmp_path / "other.pftrace")
    with recorder:
        fib(5)
        running = (recorder.call_count, recorder.event_count)
    assert running == (recorder.call_count, recorder.event_count) == (15, 45)
    calls, unfinished = read_perfetto(output.read_bytes())
    assert (calls, unfinished) == ({("MainThread", "fib"): 15}, 0)
    with pytest.raises(RuntimeError, match="create a new Recorder"):
        recorder.start()
    with pytest.raises(RuntimeError, match="itself when it stops"):
        recorder.write(tmp_path / "other.pftrace")
    recorder.stop()  # idempotent
    assert not (tmp_path / "other.pftrace").exists()


def test_a_streaming_recorder_closes_open_calls(tmp_path: Path) -> None:
    output = tmp_path / "open.pftrace"
    recorder = ferrotrace.Recorder(files=[THIS_FILE], output=output)

    def inner() -> None:
        recorder.stop()

    def outer() -> None:
        recorder.start()
        inner()

    outer()
    calls, unfinished = read_perfetto(output.read_bytes())
    # The calls open when it stopped: `inner` and `stop`'s caller chain within this file.
    assert calls[("MainThread", "test_a_streaming_recorder_closes_open_calls.<locals>.inner")]
    assert unfinished == sum(calls.values())


def test_streaming_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format= is the format of output="):
        ferrotrace.Recorder(format="chrome")
    with pytest.raises(ValueError, match="unknown trace format"):
        ferrotrace.Recorder(output=tmp_path / "x", format="svg")
    # The file is created when recording starts: an error then, nothing recorded.
    missing = ferrotrace.Recorder(functions=["fib"], output=tmp_path / "missing" / "t.pftrace")
    with pytest.raises(FileNotFoundError):
        missing.start()
    assert not missing.running
    # A name with a NUL byte is refused when recording starts, and nothing is created (the
    # commit's system calls would have cut the name short at the NUL).
    cut = ferrotrace.Recorder(functions=["fib"], output=tmp_path / "a\0b.pftrace")
    with pytest.raises(OSError, match="NUL byte"):
        cut.start()
    assert not cut.running and list(tmp_path.iterdir()) == []
    # A write that fails at the end: an OSError from stop(), the target left as it was.
    directory = tmp_path / "gone"
    directory.mkdir()
    recorder = ferrotrace.Recorder(functions=["fib"], output=directory / "t.pftrace")
    recorder.start()
    fib(3)
    import shutil

    shutil.rmtree(directory)
    with pytest.raises(FileNotFoundError):
        recorder.stop()
    assert not recorder.running and not directory.exists()


@pytest.mark.parametrize("fmt", ["chrome", "text"])
def test_other_formats_are_written_when_the_recorder_stops(fmt: str, tmp_path: Path) -> None:
    output = tmp_path / f"trace.{fmt}"
    with ferrotrace.Recorder(functions=["fib"], output=output, format=fmt) as recorder:
        fib(3)
        assert not output.exists()
    assert output.stat().st_size > 0
    assert recorder.call_count == 5
    if fmt == "chrome":
        slices = [e for e in json.loads(output.read_text())["traceEvents"] if e["ph"] == "X"]
        assert len(slices) == 5


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_while_streaming_keeps_its_events_and_writes_nothing(
    tmp_path: Path,
) -> None:
    import os

    program, path = load_streamed_program(tmp_path)
    output = tmp_path / "parent.pftrace"
    recorder = ferrotrace.Recorder(files=[path], output=output)
    recorder.start()
    program.work(1_000)
    pid = os.fork()
    if pid == 0:  # the child: records several chunks, stops, exits normally
        status = 1
        try:
            program.work(100_000)
            recorder.stop()
            status = 0 if recorder.call_count >= 100_000 and not output.exists() else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    program.work(2_000)
    recorder.stop()
    calls, unfinished = read_perfetto(output.read_bytes())
    assert calls == {
        ("MainThread", "work"): 2,
        ("MainThread", "leaf"): 3_000,
        ("MainThread", "gen"): 2 * 51,
        ("MainThread", "fails"): 2 * 20,
    }
    assert unfinished == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_while_recording_to_a_chrome_output_writes_nothing(
    tmp_path: Path,
) -> None:
    import os

    output = tmp_path / "parent.json"
    recorder = ferrotrace.Recorder(functions=["fib"], output=output, format="chrome")
    recorder.start()
    fib(5)
    pid = os.fork()
    if pid == 0:  # the child stops the recorder (as its exit would) and must write nothing
        status = 1
        try:
            fib(6)
            recorder.stop()
            status = 0 if not output.exists() else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    fib(4)
    recorder.stop()
    events = json.loads(output.read_text())["traceEvents"]
    assert sum(e.get("ph") == "X" for e in events) == 15 + 9


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.parametrize(
    ("options", "all_threads"),
    [({}, False), ({"events": "call,return", "exit_lines": False}, True)],
    ids=["calling-thread", "calls-and-returns-everywhere"],
)
def test_a_forked_child_records_under_its_own_thread_id(
    options: dict, all_threads: bool, tmp_path: Path
) -> None:
    """The thread that forks has another native id in the child: what it records there is
    labelled with that id (not the parent's, which the recording had cached), on each route (the
    second parametrization takes the recording fast paths); the parent's recording is its own."""
    import os

    recorder = ferrotrace.Recorder(functions=["fib", "catches"], **options)
    recorder.start(all_threads=all_threads)
    fib(4)
    fib(4)  # 2 * 9 calls in the parent, the second time through the per-code caches
    child_output = tmp_path / "child.json"
    child_tid = tmp_path / "child_tid"
    pid = os.fork()
    if pid == 0:  # the child: records, writes its own file, exits
        status = 1
        try:
            fib(3)
            catches()
            fib(3)  # 2 * 5 + 1 calls in the child
            recorder.stop()
            recorder.write(child_output, "chrome")
            child_tid.write_text(str(threading.get_native_id()))
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    fib(2)  # 3 more in the parent
    recorder.stop()
    parent_tid, child = threading.get_native_id(), int(child_tid.read_text())
    assert child != parent_tid

    def calls_by_thread(path: Path) -> Counter:
        events = json.loads(path.read_text())["traceEvents"]
        return Counter((e["tid"], e["name"]) for e in events if e["ph"] == "X")

    parent_output = tmp_path / "parent.json"
    recorder.write(parent_output, "chrome")
    # The child's file: the parent's calls before the fork, then the child's own.
    assert calls_by_thread(child_output) == {
        (parent_tid, "fib"): 18,
        (child, "fib"): 10,
        (child, "catches"): 1,
    }
    assert calls_by_thread(parent_output) == {(parent_tid, "fib"): 21}


def test_code_objects_made_and_dropped_while_recording() -> None:
    """Each new code object gets what the fast path keeps for it, freed with the code object:
    code made and dropped by the hundred, recorders coming and going, every call kept."""
    for _ in range(3):
        recorder = ferrotrace.Recorder(functions=["made"], exit_lines=False)
        with recorder:
            for i in range(200):
                namespace: dict = {}
                exec(compile(f"def made():\n    return {i}\n", "<made>", "exec"), namespace)
                assert namespace["made"]() == i
                assert namespace["made"]() == i
                del namespace
        assert recorder.call_count == 2 * 200
        del recorder
        gc.collect()


def test_a_code_object_made_where_a_dropped_one_was_is_recorded_as_itself(tmp_path: Path) -> None:
    """What the fast path keeps per code object is found by the code object's address: one
    made at the address of one dropped (which the test makes sure happens; a recorder keeps the
    code objects it saw until it goes) is recorded under its own name and lines, never the
    dropped one's."""
    addresses = []
    for round in range(4):
        recorder = ferrotrace.Recorder(functions=["made_*"], exit_lines=False)
        expected = []
        with recorder:
            for i in range(100):
                name, first_line = f"made_{(i + round) % 7}", 1 + (i + round) % 5
                source = "\n" * (first_line - 1) + f"def {name}():\n    return {i}\n"
                namespace: dict = {}
                exec(compile(source, "<made>", "exec"), namespace)
                addresses.append(id(namespace[name].__code__))
                assert namespace[name]() == i
                assert namespace[name]() == i
                expected += [(name, first_line)] * 2
                namespace.clear()  # the function and its globals refer to each other
        slices = sorted(
            (e for e in chrome_events(recorder, tmp_path) if e["ph"] == "X"),
            key=lambda e: e["ts"],
        )
        assert [(e["name"], e["args"]["line"]) for e in slices] == expected
        del recorder
        gc.collect()
    assert len(set(addresses)) < len(addresses), "no code object took a dropped one's address"


AT_EXIT_PROGRAM = """\
import os, sys
import ferrotrace
def f(n):
    return n
recorder = ferrotrace.Recorder(functions=['f'], output='at_exit.pftrace', format=sys.argv[2])
recorder.start()
for i in range(100_000):
    f(i)
del recorder  # still running: kept until exit
print('done', flush=True)
ending = sys.argv[1]
if ending == 'exit':
    sys.exit(4)
if ending == 'raise':
    raise KeyError('uncaught')
if ending == 'os._exit':
    os._exit(3)
"""


def has_unnamed_files(directory: Path) -> bool:
    """Whether files can be created unnamed in `directory` (Linux's O_TMPFILE)."""
    import os

    try:
        os.close(os.open(directory, os.O_TMPFILE | os.O_WRONLY))
    except (AttributeError, OSError):
        return False
    return True


@pytest.mark.parametrize("fmt", ["perfetto", "chrome"])
@pytest.mark.parametrize(
    ("ending", "returncode"), [("return", 0), ("exit", 4), ("raise", 1), ("os._exit", 3)]
)
def test_a_recorder_still_running_at_exit_writes_its_file(
    tmp_path: Path, fmt: str, ending: str, returncode: int
) -> None:
    import subprocess

    (tmp_path / "program.py").write_text(AT_EXIT_PROGRAM)
    result = subprocess.run(
        [sys.executable, "program.py", ending, fmt],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (returncode, "done\n")
    written = tmp_path / "at_exit.pftrace"
    if ending == "os._exit":
        # No exit hook runs: no file, and where the file system has unnamed files (O_TMPFILE)
        # nothing at all is left behind.
        assert not written.exists()
        if fmt == "chrome" or has_unnamed_files(tmp_path):
            assert sorted(p.name for p in tmp_path.iterdir()) == ["program.py"]
        return
    assert ("KeyError: 'uncaught'" in result.stderr) == (ending == "raise")
    assert "Exception ignored" not in result.stderr
    if fmt == "perfetto":
        calls, unfinished = read_perfetto(written.read_bytes())
        assert (calls, unfinished) == (Counter({("MainThread", "f"): 100_000}), 0)
    else:
        events = json.loads(written.read_text())["traceEvents"]
        assert sum(e.get("ph") == "X" and e["name"] == "f" for e in events) == 100_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["at_exit.pftrace", "program.py"]


def test_the_counts_can_be_read_while_another_thread_stops_the_recorder(tmp_path: Path) -> None:
    program, path = load_streamed_program(tmp_path)
    recorder = ferrotrace.Recorder(files=[path], output=tmp_path / "read.pftrace")
    recorder.start(all_threads=True)
    program.run(80_000)
    errors: list[BaseException] = []
    seen: list[tuple[int, int, bool]] = []
    stopping = threading.Event()
    stopped = threading.Event()

    def read() -> None:
        # Reads until the recorder has stopped, from before stop() starts.
        while True:
            try:
                seen.append((recorder.call_count, recorder.event_count, recorder.running))
            except BaseException as error:  # noqa: BLE001 - any error is the failure
                errors.append(error)
                return
            finally:
                stopping.set()
            if stopped.is_set():
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stopping.wait()
    try:
        recorder.stop()
    finally:
        stopped.set()
        reader.join()
    assert errors == []
    assert seen  # read at least once, from before stop() started
    expected = sum(sum(names.values()) for names in STREAMED_CALLS.values())
    assert recorder.call_count == expected
    calls, _ = read_perfetto((tmp_path / "read.pftrace").read_bytes())
    assert sum(calls.values()) == expected
