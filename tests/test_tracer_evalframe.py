"""The 3.11 route of ``ferrotrace.Tracer``: its PEP 523 frame-evaluation hook is installed only
while a tracer runs, calls through to a hook that was there before and puts it back, and refuses
to remove itself from under a hook another tool installed on top of it."""

from __future__ import annotations

import sys

import pytest

import ferrotrace
from ferrotrace import _native

if sys.version_info >= (3, 12):
    pytest.skip(
        "the frame-evaluation route is 3.11's (3.12+ uses sys.monitoring)",
        allow_module_level=True,
    )


def leaf(x):
    return x * 2


def target(n):
    return sum(leaf(i) for i in range(n))


def recorder(log: list):
    def callback(frame, event, arg):
        log.append((event, frame.f_code.co_name))
        return callback

    return callback


def expected_events() -> list:
    log: list = []
    with ferrotrace.Tracer(recorder(log), functions=["target"]):
        target(3)
    assert log and {name for _, name in log} == {"target"}
    return log


def test_installed_only_while_a_tracer_runs() -> None:
    assert _native._eval_frame_hook() == "default"
    first = ferrotrace.Tracer(recorder([]), functions=["target"])
    second = ferrotrace.Tracer(recorder([]), functions=["leaf"])
    with first:
        assert _native._eval_frame_hook() == "ferrotrace"
        with second:
            target(2)
        assert _native._eval_frame_hook() == "ferrotrace"
    assert _native._eval_frame_hook() == "default"


def test_a_hook_installed_before_is_called_through_and_put_back() -> None:
    expected = expected_events()
    _native._set_other_eval_frame_hook(True)
    try:
        assert _native._eval_frame_hook() == "other"
        seen_before = _native._set_other_eval_frame_hook(True)
        log: list = []
        with ferrotrace.Tracer(recorder(log), functions=["target"]):
            assert _native._eval_frame_hook() == "ferrotrace"
            target(3)
        assert log == expected
        # Every frame went through ferrotrace's hook to the other tool's.
        assert _native._set_other_eval_frame_hook(True) > seen_before
        assert _native._eval_frame_hook() == "other"
    finally:
        _native._set_other_eval_frame_hook(False)
    assert _native._eval_frame_hook() == "default"


def test_stop_refuses_to_pull_the_hook_from_under_another_tool() -> None:
    log: list = []
    tracer = ferrotrace.Tracer(recorder(log), functions=["target"])
    tracer.start()
    _native._set_other_eval_frame_hook(True)
    try:
        with pytest.raises(ferrotrace.FerrotraceError, match="another tool installed its own"):
            tracer.stop()
        assert not tracer.running
        target(3)
        assert log == [], "the tracer kept delivering after stop()"
        assert _native._eval_frame_hook() == "other"
    finally:
        _native._set_other_eval_frame_hook(False)
    # ferrotrace's hook stayed underneath; the next tracer to stop removes it.
    assert _native._eval_frame_hook() == "ferrotrace"
    with ferrotrace.Tracer(recorder(log), functions=["target"]):
        target(3)
    assert log == expected_events()
    assert _native._eval_frame_hook() == "default"


def recurse(n):
    return 0 if n == 0 else 1 + recurse(n - 1)


def test_recursion_limit_still_raises_recursion_error() -> None:
    """Every Python call takes a C frame under the hook: at the default recursion limit the
    interpreter still raises RecursionError rather than running out of C stack."""
    assert sys.getrecursionlimit() <= 1000
    log: list = []
    with ferrotrace.Tracer(recorder(log), functions=["recurse"]):
        assert recurse(sys.getrecursionlimit() - 50) == sys.getrecursionlimit() - 50
        with pytest.raises(RecursionError):
            recurse(10 * sys.getrecursionlimit())
    assert log.count(("call", "recurse")) > sys.getrecursionlimit()
