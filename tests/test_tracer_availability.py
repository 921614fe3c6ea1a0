"""``ferrotrace.Tracer`` has a backend on every supported version: ``sys.monitoring`` on 3.12+,
the PEP 523 frame-evaluation hook on 3.11. Starting and stopping works and touches neither the
trace nor the profile function."""

import sys

import ferrotrace


def test_start_and_stop_on_every_version() -> None:
    def callback(frame, event, arg):
        return callback

    before = (sys.gettrace(), sys.getprofile())
    tracer = ferrotrace.Tracer(callback, functions=["no_such_function_xyz"])
    tracer.start()
    try:
        assert tracer.running
        assert (sys.gettrace(), sys.getprofile()) == before
    finally:
        tracer.stop()
    assert not tracer.running
    assert (sys.gettrace(), sys.getprofile()) == before
