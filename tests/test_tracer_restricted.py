"""Each filter kind against ``sys.settrace``: a ``Tracer`` with that filter must deliver the
``sys.settrace`` stream restricted to the scopes (frames) the filter selects, nothing more,
nothing less, same order, same ``arg``.

The differential programs of ``tests/programs/`` are run once under ``sys`` and once per filter
under the runner's ``tracer`` backend with ``FERROTRACE_TEST_FILTER`` set. The restriction of
the reference is computed here from the reference stream alone (a per-thread stack of frames
rebuilt from ``call``/``return`` events), so the expectation never comes from ferrotrace.

Only programs whose trace function is the recorder's standard one are used (its result does
not depend on which events it saw), and for ``depth`` only programs in which no Python frame
of another file (the stdlib) sits between two program frames: the stream shows program frames
only, while ``depth`` counts every Python frame.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from test_differential import PROGRAMS_DIR, check_reference, run_program

import ferrotrace


def _tracer_backend_missing() -> str | None:
    tracer = ferrotrace.Tracer(lambda frame, event, arg: None, functions=["no_such_function"])
    try:
        tracer.start()
    except NotImplementedError as exc:
        return str(exc)
    tracer.stop()
    return None


_MISSING = _tracer_backend_missing()
if _MISSING:
    pytest.skip(f"no filtered backend on this interpreter: {_MISSING}", allow_module_level=True)

# Programs traced by the recorder's standard trace function, on one thread.
PROGRAMS = (
    "async_generators",
    "asyncio_tasks",
    "class_body",
    "comprehensions",
    "coroutines",
    "decorators",
    "dunder_methods",
    "exception_handled",
    "exception_through_c",
    "function_calls",
    "generator_close",
    "generator_throw",
    "generators",
    "genexpr_in_c",
    "lambdas",
    "loops_and_branches",
    "recursion",
    "reraise",
    "try_finally",
    "with_statement",
    "yield_from",
)
# ... of which those that call methods or nested functions (``co_qualname`` with a dot).
QUALNAME_PROGRAMS = (
    "async_generators",
    "class_body",
    "comprehensions",
    "coroutines",
    "decorators",
    "dunder_methods",
    "exception_through_c",
    "genexpr_in_c",
    "lambdas",
    "with_statement",
)
# ... and those whose frame chain the stream shows: left out are programs where a frame not in
# the stream sits between two program frames, which ``depth`` counts but the stack rebuilt
# from the stream cannot: asyncio's event loop and contextlib's ``__enter__``/``__exit__``
# (stdlib frames), and a ``throw()`` into a generator suspended in ``yield from``/``await``,
# which runs the inner generator with the delegating one (which gets no event) as its f_back.
DEPTH_PROGRAMS = tuple(
    p
    for p in PROGRAMS
    if not p.startswith(("asyncio_", "async_"))
    and p not in ("with_statement", "yield_from", "coroutines")
)


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, dict]:
    cache: dict[str, dict] = {}
    base = tmp_path_factory.mktemp("restricted-sys")

    def get(program: str) -> dict:
        if program not in cache:
            data = run_program(PROGRAMS_DIR / f"{program}.py", "sys", base)
            assert "failure" not in data, data["failure"]
            check_reference(data, program)
            cache[program] = data
        return cache[program]

    return get


def run_filtered(program: str, spec: dict, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = run_program(
        PROGRAMS_DIR / f"{program}.py",
        "tracer",
        out_dir,
        extra_env={"FERROTRACE_TEST_FILTER": json.dumps(spec)},
    )
    assert "failure" not in data, data["failure"]
    return data


def called_qualnames(data: dict) -> Counter:
    return Counter(
        entry[1] for stream in data["streams"].values() for entry in stream if entry[0] == "call"
    )


def most_called(data: dict) -> str:
    """The qualname with the most ``call`` events (ties: alphabetical), a deterministic pick."""
    counts = called_qualnames(data)
    return min(counts, key=lambda q: (-counts[q], q))


def first_called(data: dict) -> str:
    for stream in data["streams"].values():
        for entry in stream:
            if entry[0] == "call":
                return entry[1]
    raise AssertionError("no call event")


def function_matcher(pattern: str) -> Callable[[str], bool]:
    """The ``functions=`` rule: a dotted pattern matches ``co_qualname``, else ``co_name``."""
    if "." in pattern:
        return lambda qualname: fnmatch.fnmatchcase(qualname, pattern)
    return lambda qualname: fnmatch.fnmatchcase(qualname.rsplit(".", 1)[-1], pattern)


def restrict(
    data: dict,
    matches: Callable[[str], bool],
    depth: int = 0,
    events: frozenset[str] | None = None,
) -> dict:
    """The reference's event entries of the frames in scope: frames whose code ``matches``,
    and frames at most ``depth`` calls below their nearest matching ancestor; only the
    ``events`` kinds if given. Notes are the program's own and are all kept."""
    streams = {}
    for thread, stream in data["streams"].items():
        # Per frame: (matches, in scope).
        stack: list[tuple[bool, bool]] = []
        kept = []
        for entry in stream:
            kind = entry[0]
            if kind == "note":
                kept.append(entry)
                continue
            if kind == "call":
                matched = matches(entry[1])
                in_scope = matched
                if not matched and depth:
                    for distance, (ancestor_matched, _) in enumerate(reversed(stack), 1):
                        if ancestor_matched:
                            in_scope = distance <= depth
                            break
                        if distance >= depth:
                            break
                stack.append((matched, in_scope))
            assert stack, f"{kind} event outside any frame in {thread}: {entry}"
            if stack[-1][1] and (events is None or kind in events):
                kept.append(entry)
            if kind == "return":
                stack.pop()
        streams[thread] = kept
    return comparable(data | {"streams": streams})


def comparable(data: dict) -> dict:
    """What the Tracer promises (as in ``test_tracer.compared``): event entries without the
    ``on`` field, notes, result and error. A thread that recorded nothing has no stream."""
    streams = {
        thread: [e if e[0] == "note" else e[:5] for e in stream]
        for thread, stream in data["streams"].items()
        if stream
    }
    return {"streams": streams, "result": data["result"], "error": data["error"]}


def assert_same(expected: dict, actual: dict, what: str) -> None:
    if expected == actual:
        return

    def lines(data: dict) -> list[str]:
        out = [f"result: {json.dumps(data['result'])}", f"error: {json.dumps(data['error'])}"]
        for thread, stream in sorted(data["streams"].items()):
            out.extend(f"[{thread}] {json.dumps(entry)}" for entry in stream)
        return out

    diff = "\n".join(
        difflib.unified_diff(lines(expected), lines(actual), "sys (restricted)", what, lineterm="")
    )
    pytest.fail(f"{what}: streams differ:\n{diff}")


def has_events(restricted: dict) -> bool:
    return any(e[0] != "note" for stream in restricted["streams"].values() for e in stream)


@pytest.mark.parametrize("program", PROGRAMS)
def test_functions_filter_by_name(program: str, references, tmp_path) -> None:
    reference = references(program)
    qualname = most_called(reference)
    pattern = qualname.rsplit(".", 1)[-1]
    expected = restrict(reference, function_matcher(pattern))
    assert has_events(expected)
    actual = comparable(run_filtered(program, {"functions": [pattern]}, tmp_path))
    assert_same(expected, actual, f"Tracer(functions=[{pattern!r}])")


@pytest.mark.parametrize("program", QUALNAME_PROGRAMS)
def test_functions_filter_by_qualname(program: str, references, tmp_path) -> None:
    reference = references(program)
    dotted = sorted(q for q in called_qualnames(reference) if "." in q)
    assert dotted, f"{program} calls no nested function or method"
    pattern = dotted[0]
    expected = restrict(reference, function_matcher(pattern))
    assert has_events(expected)
    actual = comparable(run_filtered(program, {"functions": [pattern]}, tmp_path))
    assert_same(expected, actual, f"Tracer(functions=[{pattern!r}])")


@pytest.mark.parametrize("program", PROGRAMS)
def test_modules_filter(program: str, references, tmp_path) -> None:
    # The runner loads each program as module ``program_<stem>``.
    reference = references(program)
    expected = restrict(reference, lambda qualname: True)
    actual = comparable(run_filtered(program, {"modules": [f"program_{program}"]}, tmp_path))
    assert_same(expected, actual, "Tracer(modules=[program module])")
    nothing = comparable(run_filtered(program, {"modules": ["program_other"]}, tmp_path))
    assert_same(restrict(reference, lambda qualname: False), nothing, "Tracer(other module)")


@pytest.mark.parametrize("program", PROGRAMS)
def test_file_glob_and_user_code(program: str, references, tmp_path) -> None:
    reference = references(program)
    expected = restrict(reference, lambda qualname: True)
    glob = comparable(run_filtered(program, {"files": [f"**/programs/{program}.py"]}, tmp_path))
    assert_same(expected, glob, "Tracer(files=[glob])")
    user = comparable(run_filtered(program, {"user_code": True}, tmp_path / "user"))
    assert_same(expected, user, "Tracer(user_code=True)")


@pytest.mark.parametrize("events", ["call,return", "line", "exception,return", "call,line"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_event_kinds(program: str, events: str, references, tmp_path) -> None:
    reference = references(program)
    wanted = frozenset(events.split(","))
    expected = restrict(reference, lambda qualname: True, events=wanted)
    spec = {"files": [str(PROGRAMS_DIR / f"{program}.py")], "events": events}
    actual = comparable(run_filtered(program, spec, tmp_path))
    assert_same(expected, actual, f"Tracer(events={events!r})")


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("program", DEPTH_PROGRAMS)
def test_depth_below_a_function(program: str, depth: int, references, tmp_path) -> None:
    reference = references(program)
    pattern = first_called(reference)
    expected = restrict(reference, function_matcher(pattern), depth=depth)
    assert has_events(expected)
    spec = {"functions": [pattern], "depth": depth}
    actual = comparable(run_filtered(program, spec, tmp_path))
    assert_same(expected, actual, f"Tracer(functions=[{pattern!r}], depth={depth})")
