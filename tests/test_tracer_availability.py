"""Runs on every version (``tests/test_tracer.py`` is skipped on 3.11): ``ferrotrace.Tracer``
has no 3.11 backend yet, so ``start()`` raises NotImplementedError there; on 3.12+ it works."""

import sys

import pytest

import ferrotrace


def test_start_needs_python_312() -> None:
    def callback(frame, event, arg):
        return callback

    tracer = ferrotrace.Tracer(callback, functions=["no_such_function_xyz"])
    if sys.version_info < (3, 12):
        with pytest.raises(NotImplementedError, match="3.11 backend"):
            tracer.start()
        assert not tracer.running
        return
    tracer.start()
    try:
        assert tracer.running
    finally:
        tracer.stop()
    assert not tracer.running
