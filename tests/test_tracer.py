"""``ferrotrace.Tracer``: a trace function with a native filter.

The promise tested: the callback sees exactly the events ``sys.settrace`` would have delivered
for the scopes (code objects) its filter selects, in the same order with the same ``arg``, and
nothing else; it is independent of ``sys.settrace``/``ferrotrace.settrace`` and ``f_trace``.

* ``test_same_event_stream_as_sys``: curated programs of ``tests/programs/`` run under the
  runner's ``tracer`` backend (one ``Tracer(func, files=[program])`` per ``settrace(func)``)
  and under ``sys``; their event entries must be equal.
* direct tests of filters, several tracers at once, lifetimes, a raising callback, ``events``.

Runs on both backends: ``sys.monitoring`` (3.12+) and the PEP 523 frame-evaluation hook (3.11).
"""

from __future__ import annotations

import difflib
import gc
import json
import sys
import threading

import pytest
from test_differential import PROGRAMS_DIR, check_reference, run_program

import ferrotrace

# ---------------------------------------------------------------------------------------------
# Differential: the runner's `tracer` backend against `sys`
# ---------------------------------------------------------------------------------------------

# Bugs found while writing these tests (Python 3.13), each with a reproducer in the report:

# program -> (xfail reason or None, labels of notes that inspect settrace state and so are not
# compared: the Tracer is independent of f_trace and of gettrace()).
CURATED: dict[str, tuple[str | None, frozenset[str]]] = {}


def _add(program: str, xfail: str | None = None, ignore: tuple[str, ...] = ()) -> None:
    CURATED[program] = (xfail, frozenset(ignore))


for _name in (
    "function_calls",
    "recursion",
    "closures",
    "comprehensions",
    "lambdas",
    "decorators",
    "class_body",
    "dunder_methods",
    "generators",
    "generator_throw",
    "generator_close",
    "yield_from",
    "coroutines",
    "async_generators",
    "with_statement",
    "try_finally",
    "reraise",
    "except_star",
    "exception_handled",
    "exception_through_c",
    "loops_and_branches",
    "line_numbers",
    "global_returns_other",
    "trace_lines_false",
    "genexpr_in_c",
    "finalizers",
    "exec_module_code",
    "tracer_calls_program",
    "monitoring_and_trace",
):
    _add(_name)
_add("local_returns_none", ignore=("f_trace",))
_add("local_returns_other", ignore=("f_trace",))
_add("raise_in_line", ignore=("gettrace after", "f_trace of failed frame"))
_add("raise_in_exception", ignore=("gettrace after",))
_add("raise_in_return", ignore=("gettrace after",))
_add("raise_in_call", ignore=("gettrace after", "f_trace of failed frame"))
_add("generator_resume_retrace", ignore=("f_trace while off", "f_trace after"))
_add("async_with_for")
_add("asyncio_tasks")
_add("asyncio_cancel")
# Not in the list (not about the events of scopes, or about settrace internals):
# - threads, threads_all, threads_all_running, threads_concurrent, thread_tracer_raises: the
#   backend keeps one Tracer for the calling thread; settrace_all_threads is not emulated.
# - settrace_*, gettrace_identity, f_trace_assign, f_trace_none_by_tracer, noncallable_*,
#   class_as_tracer, tracer_lifetimes, tracer_frame_chain, settrace_in_destructor: about the
#   settrace/gettrace/f_trace state itself.
# - jump_*, opcode_tracing, opcodes_without_lines: frame.f_lineno jumps and f_trace_opcodes
#   are settrace-frame features (and the Tracer's default events exclude 'opcode').
# - call_tracing: sys.call_tracing re-enables sys.settrace, not a Tracer.
# - trace_and_profile, c_builtin_tracer, audit_*, bdb_debugger: interleaving with profile
#   functions / audit hooks / bdb driving sys.settrace, not the Tracer's streams.
# - recursion_error: about where the RecursionError comes from in settrace's trampoline.
# - class_body_locals, f_locals_*: about the 3.11 trampoline's f_locals snapshots.


def compared(data: dict, ignored_notes: frozenset[str]) -> dict:
    """What the Tracer promises: the event entries without ``on`` (``[event, qualname, line,
    arg, returned]``, plus ``f_lasti`` for opcodes never), the program's own notes except
    those inspecting settrace state, ``run()``'s result and exception."""
    streams = {}
    for thread, stream in data["streams"].items():
        entries = []
        for entry in stream:
            if entry[0] == "note":
                if entry[1] not in ignored_notes:
                    entries.append(entry)
            else:
                entries.append(entry[:5])
        streams[thread] = entries
    return {"streams": streams, "result": data["result"], "error": data["error"]}


def lines(data: dict) -> list[str]:
    out = [f"result: {json.dumps(data['result'])}", f"error: {json.dumps(data['error'])}"]
    for thread, stream in sorted(data["streams"].items()):
        out.extend(f"[{thread}] {json.dumps(entry)}" for entry in stream)
    return out


def curated_params():
    for program, (xfail, _) in CURATED.items():
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        yield pytest.param(program, marks=marks, id=program)


def test_curated_programs_exist() -> None:
    missing = [p for p in CURATED if not (PROGRAMS_DIR / f"{p}.py").exists()]
    assert not missing


@pytest.mark.parametrize("program", list(curated_params()))
def test_same_event_stream_as_sys(tmp_path, program: str) -> None:
    path = PROGRAMS_DIR / f"{program}.py"
    reference = run_program(path, "sys", tmp_path)
    assert "failure" not in reference, reference.get("failure")
    check_reference(reference, program)
    candidate = run_program(path, "tracer", tmp_path)
    assert "failure" not in candidate, candidate.get("failure")
    assert candidate["stdout"] == reference["stdout"]

    ignored = CURATED[program][1]
    expected, actual = compared(reference, ignored), compared(candidate, ignored)
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                lines(expected), lines(actual), "sys.settrace", "Tracer", lineterm="", n=3
            )
        )
        pytest.fail(f"{program}: event streams differ (sys.settrace vs Tracer):\n{diff}")


# ---------------------------------------------------------------------------------------------
# Direct tests
# ---------------------------------------------------------------------------------------------


def leaf(x):
    y = x * 2
    return y


def target(n):
    total = 0
    for i in range(n):
        total += leaf(i)
    try:
        raise KeyError(n)
    except KeyError:
        pass
    return total


def caller():
    a = target(2)
    b = target(1)
    return a + b


def alpha():
    return beta() + 1


def beta():
    values = [leaf(i) for i in range(2)]
    return sum(values)


def workload():
    return caller() + alpha()


def describe(frame, event, arg) -> tuple:
    code = frame.f_code
    if event == "exception":
        arg = (arg[0].__name__, str(arg[1]))
    elif event == "return":
        arg = repr(arg) if isinstance(arg, int | str | type(None)) else type(arg).__name__
    return (event, code.co_qualname, frame.f_lineno - code.co_firstlineno, arg)


def recorder(log: list, only_this_file: bool = True):
    """A recording global/local trace function (returns itself)."""

    def callback(frame, event, arg):
        if only_this_file and frame.f_code.co_filename != __file__:
            return None
        log.append(describe(frame, event, arg))
        return callback

    return callback


def sys_stream(function=workload) -> list:
    """The events sys.settrace delivers for this file's code while running ``function``."""
    log: list = []
    sys.settrace(recorder(log))
    try:
        function()
    finally:
        sys.settrace(None)
    return log


def only(stream: list, *qualnames: str, events: tuple[str, ...] | None = None) -> list:
    return [
        entry
        for entry in stream
        if entry[1] in qualnames and (events is None or entry[0] in events)
    ]


def test_functions_filter_sees_only_that_scope() -> None:
    expected = only(sys_stream(), "target")
    assert expected and {e[0] for e in expected} == {"call", "line", "return", "exception"}
    log: list = []
    with ferrotrace.Tracer(recorder(log, only_this_file=False), functions=["target"]):
        workload()
    assert log == expected


def test_files_filter_matches_sys_stream() -> None:
    expected = sys_stream()
    log: list = []
    with ferrotrace.Tracer(recorder(log, only_this_file=False), files=[__file__]):
        workload()
    assert log == expected


def test_modules_filter() -> None:
    import json as json_module

    def encode():
        return json_module.dumps({"a": [1, 2]}, indent=1)

    modules_seen: set[str] = set()

    def callback(frame, event, arg):
        modules_seen.add(frame.f_globals.get("__name__"))
        return callback

    with ferrotrace.Tracer(callback, modules=["json"]):
        encode()
    assert modules_seen, "no event from the json package"
    assert all(m == "json" or m.startswith("json.") for m in modules_seen), modules_seen

    log: list = []
    with ferrotrace.Tracer(recorder(log, only_this_file=False), modules=[__name__]):
        workload()
    assert log == sys_stream()


@pytest.mark.parametrize("first", ["functions", "user code"])
def test_user_code_tracer_started_while_another_runs(first: str) -> None:
    # The library directories are looked up only by a filter that selects the user's code,
    # whether it starts first or while a tracer that does not need them runs.
    def encode():
        return json.dumps({"a": [1, 2]}, indent=1)

    def both():
        return workload(), encode()

    user: list = []
    scoped: list = []
    user_tracer = ferrotrace.Tracer(recorder(user, only_this_file=False))
    scoped_tracer = ferrotrace.Tracer(recorder(scoped, only_this_file=False), functions=["beta"])
    outer, inner = (
        (scoped_tracer, user_tracer) if first == "functions" else (user_tracer, scoped_tracer)
    )
    with outer, inner:
        both()
    assert scoped == only(sys_stream(both), "beta")
    # Everything of this file, nothing of json's (the standard library).
    assert user == sys_stream(both)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"functions": ["[abc"]}, "[abc"),
        ({"files": ["src/[x.py"]}, "src/[x.py"),
        ({"modules": [""]}, '""'),
        ({"threads": ["worker-["]}, "worker-["),
    ],
)
def test_bad_pattern_raises_value_error(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError) as info:
        ferrotrace.Tracer(lambda frame, event, arg: None, **kwargs)
    assert pattern in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_event_raises_value_error() -> None:
    with pytest.raises(ValueError, match="bogus"):
        ferrotrace.Tracer(lambda frame, event, arg: None, events="call,bogus")


def test_two_tracers_and_settrace_together() -> None:
    full = sys_stream()
    alone: list = []
    ferrotrace.settrace(recorder(alone))
    try:
        workload()
    finally:
        ferrotrace.settrace(None)
    assert alone == full

    log_a: list = []
    log_b: list = []
    together: list = []
    tracer_a = ferrotrace.Tracer(recorder(log_a, only_this_file=False), functions=["target"])
    tracer_b = ferrotrace.Tracer(recorder(log_b, only_this_file=False), functions=["alpha", "leaf"])
    with tracer_a, tracer_b:
        ferrotrace.settrace(recorder(together))
        try:
            workload()
        finally:
            ferrotrace.settrace(None)
    assert together == alone
    assert log_a == only(full, "target")
    assert log_b == only(full, "alpha", "leaf")


def test_tracer_matching_nothing_is_never_called() -> None:
    calls = []

    def callback(frame, event, arg):
        calls.append(event)
        return callback

    with ferrotrace.Tracer(callback, functions=["no_such_function_xyz"]):
        workload()
        encoded = json.dumps([1, {"b": 2}])
    with ferrotrace.Tracer(callback, files=["/no/such/dir/**/*.py"]):
        workload()
    assert encoded == '[1, {"b": 2}]'
    assert calls == []


def test_start_stop_many_times_keeps_no_reference() -> None:
    def callback(frame, event, arg):
        return callback

    gc.collect()
    before = sys.getrefcount(callback)
    for _ in range(200):
        tracer = ferrotrace.Tracer(callback, functions=["leaf"])
        tracer.start()
        leaf(1)
        tracer.stop()
        with tracer:
            leaf(2)
        del tracer
    reused = ferrotrace.Tracer(callback, functions=["leaf"])
    for _ in range(200):
        reused.start()
        leaf(3)
        reused.stop()
    del reused
    gc.collect()
    assert sys.getrefcount(callback) == before


@pytest.mark.parametrize("other", ["none", "ferrotrace", "sys"])
def test_raising_callback_switches_that_tracer_off(other: str) -> None:
    events: list = []

    def callback(frame, event, arg):
        events.append(event)
        if event == "line":
            raise ArithmeticError("callback failed")
        return callback

    def unrelated(frame, event, arg):
        return None

    settrace = {"none": None, "ferrotrace": ferrotrace.settrace, "sys": sys.settrace}[other]
    if settrace is not None:
        settrace(unrelated)
    try:
        before = (sys.gettrace(), ferrotrace.gettrace())
        tracer = ferrotrace.Tracer(callback, functions=["leaf"])
        with tracer:
            with pytest.raises(ArithmeticError, match="callback failed") as info:
                leaf(5)
            # the exception came out of leaf's first line
            assert info.traceback[-1].name == "callback"
            assert any(entry.name == "leaf" for entry in info.traceback)
            assert events == ["call", "line"]
            assert leaf(6) == 12
            assert leaf(7) == 14
            assert events == ["call", "line"], "the tracer kept delivering after raising"
            after = (sys.gettrace(), ferrotrace.gettrace())
            assert after[0] is before[0] and after[1] is before[1]
    finally:
        if settrace is not None:
            settrace(None)
    if other == "none":
        assert before == (None, None)
    else:
        assert unrelated in before


def test_events_call_return_only() -> None:
    expected = only(sys_stream(), "target", "leaf", events=("call", "return"))
    assert expected
    log: list = []
    with ferrotrace.Tracer(
        recorder(log, only_this_file=False), functions=["target", "leaf"], events="call,return"
    ):
        workload()
    assert log == expected


def test_other_threads_not_traced_by_default() -> None:
    log: list = []
    thread = threading.Thread(target=workload)
    with ferrotrace.Tracer(recorder(log, only_this_file=False), files=[__file__]):
        thread.start()
        thread.join()
    assert log == []


# Regression tests: a generator resumed before its code was ever seen, and code run by eval
# without `__import__` in its builtins (namedtuple's __new__, hence asyncio).


def gen():
    yield 1
    yield 2


def test_generator_started_before_tracer_is_traced_when_resumed() -> None:
    expected: list = []
    suspended = gen()
    next(suspended)  # started while nothing traces
    sys.settrace(recorder(expected))
    try:
        next(suspended)  # resumed under sys.settrace: call, line, return
    finally:
        sys.settrace(None)
    assert expected == [
        ("call", "gen", 1, None),
        ("line", "gen", 2, None),
        ("return", "gen", 2, "2"),
    ]

    log: list = []
    suspended = gen()
    next(suspended)
    with ferrotrace.Tracer(recorder(log, only_this_file=False), functions=["gen"]):
        next(suspended)  # resumed under the Tracer
    assert log == expected


def test_code_without_import_in_builtins() -> None:
    function = eval("lambda: 1", {"__builtins__": {}})
    with ferrotrace.Tracer(lambda frame, event, arg: None, functions=["no_such_function_xyz"]):
        assert function() == 1


def test_destructors_and_stop_inside_callbacks_reenter_safely() -> None:
    """A replaced local function whose __del__ starts and stops another Tracer, and a callback
    that stops its own Tracer: no re-entrancy error, and events stop after stop()."""
    seen: list = []

    class Local:
        def __call__(self, frame, event, arg):
            seen.append(event)
            return Local()  # replaces (and so releases) the previous local function

        def __del__(self):
            with ferrotrace.Tracer(lambda *a: None, functions=["nothing_here"]):
                pass

    def callback(frame, event, arg):
        return Local()

    with ferrotrace.Tracer(callback, functions=["target"]):
        target_result = target(3)
    assert target_result == target(3)
    assert seen and seen[-1] == "return"

    stopped: list = []

    def stopping(frame, event, arg):
        stopped.append(event)
        tracer.stop()
        return stopping

    tracer = ferrotrace.Tracer(stopping, functions=["target"])
    tracer.start()
    target(1)
    target(1)
    tracer.stop()
    assert stopped == ["call"]


# Threads, and other trace functions on the same thread.


def run_threads(*names: str) -> None:
    threads = [threading.Thread(target=workload, name=name) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def by_thread(log: list) -> dict:
    streams: dict = {}
    for thread, entry in log:
        streams.setdefault(thread, []).append(entry)
    return streams


def thread_recorder(log: list):
    def callback(frame, event, arg):
        log.append((threading.current_thread().name, describe(frame, event, arg)))
        return callback

    return callback


def test_all_threads_traces_threads_started_later() -> None:
    expected = only(sys_stream(), "target")
    log: list = []
    tracer = ferrotrace.Tracer(thread_recorder(log), functions=["target"])
    tracer.start(all_threads=True)
    try:
        run_threads("worker-1", "worker-2")
        workload()
    finally:
        tracer.stop()
    streams = by_thread(log)
    assert set(streams) == {"worker-1", "worker-2", threading.current_thread().name}
    assert all(stream == expected for stream in streams.values())


def test_threads_filter_by_name() -> None:
    expected = only(sys_stream(), "target")
    log: list = []
    tracer = ferrotrace.Tracer(thread_recorder(log), functions=["target"], threads=["worker-*"])
    tracer.start(all_threads=True)
    try:
        run_threads("worker-1", "helper-1")
        workload()
    finally:
        tracer.stop()
    assert by_thread(log) == {"worker-1": expected}


def test_trace_function_set_before_keeps_its_events_and_slot() -> None:
    """A sys.settrace user active when the Tracer starts sees exactly its own stream, and
    sys.gettrace() keeps returning its function inside the traced frames."""
    full = sys_stream()
    foreign_log: list = []
    foreign = recorder(foreign_log)
    tracer_log: list = []
    slots: list = []

    def callback(frame, event, arg):
        tracer_log.append(describe(frame, event, arg))
        slots.append(sys.gettrace() is foreign)
        return callback

    sys.settrace(foreign)
    try:
        with ferrotrace.Tracer(callback, functions=["target"]):
            workload()
    finally:
        sys.settrace(None)
    assert foreign_log == full
    assert tracer_log == only(full, "target")
    assert slots and all(slots)


def settrace_inside(settrace, function) -> int:
    settrace(function)
    total = target(1)
    settrace(None)
    return total + leaf(3)


def test_settrace_called_inside_a_traced_frame() -> None:
    """ferrotrace.settrace inside a frame the Tracer traces: both see their events."""
    foreign_log: list = []
    foreign = recorder(foreign_log)
    expected = sys_stream(lambda: settrace_inside(lambda f: None, None))
    expected = only(expected, "settrace_inside", "target")
    tracer_log: list = []
    with ferrotrace.Tracer(
        recorder(tracer_log, only_this_file=False), functions=["settrace_inside", "target"]
    ):
        settrace_inside(ferrotrace.settrace, foreign)
    assert tracer_log == expected
    assert [entry[1] for entry in foreign_log if entry[0] == "call"] == ["target", "leaf"]


def test_callback_that_sets_a_trace_function() -> None:
    """A callback that starts a sys.settrace user (as ``pdb.set_trace()`` does): the Tracer
    keeps its own events, and the new function gets the frames started afterwards."""
    full = sys_stream()
    foreign_log: list = []
    foreign = recorder(foreign_log)
    tracer_log: list = []

    def callback(frame, event, arg):
        tracer_log.append(describe(frame, event, arg))
        if event == "call" and sys.gettrace() is None:
            sys.settrace(foreign)
        return callback

    try:
        with ferrotrace.Tracer(callback, functions=["target"]):
            workload()
    finally:
        sys.settrace(None)
    assert tracer_log == only(full, "target")
    assert foreign_log[:2] == [("call", "leaf", 0, None), ("line", "leaf", 1, None)]
