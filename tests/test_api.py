"""The Python API's contract: identity, restore, install, threads, errors."""

import subprocess
import sys
import textwrap
import threading
import types

import pytest

import ferrotrace
from ferrotrace import _native


def make_recorder():
    events = []

    def tracer(frame, event, arg):
        events.append((event, frame.f_code.co_name))
        return tracer

    return tracer, events


def target(x):
    y = x + 1
    return y * 2


def test_gettrace_returns_the_very_object():
    tracer, _ = make_recorder()
    ferrotrace.settrace(tracer)
    try:
        assert ferrotrace.gettrace() is tracer
        # One per-thread slot, shared with CPython's own functions.
        assert sys.gettrace() is tracer
    finally:
        ferrotrace.settrace(None)
    assert ferrotrace.gettrace() is None


def test_gettrace_sees_a_function_set_by_sys_settrace():
    tracer, _ = make_recorder()
    sys.settrace(tracer)
    try:
        assert ferrotrace.gettrace() is tracer
    finally:
        sys.settrace(None)


def test_events_go_through_ferrotraces_trampoline():
    tracer, events = make_recorder()
    before = _native._dispatch_count()
    ferrotrace.settrace(tracer)
    target(1)
    ferrotrace.settrace(None)
    assert events == [
        ("call", "target"),
        ("line", "target"),
        ("line", "target"),
        ("return", "target"),
    ]
    assert _native._dispatch_count() - before == 4


def test_api_functions_are_native_so_calling_them_is_not_traced():
    for function in (ferrotrace.settrace, ferrotrace.gettrace, ferrotrace.settrace_all_threads):
        assert isinstance(function, types.BuiltinFunctionType), function
    tracer, events = make_recorder()
    ferrotrace.settrace(tracer)
    ferrotrace.gettrace()
    with ferrotrace.tracing(tracer):
        pass
    ferrotrace.settrace(None)
    assert events == []


def call_target_traced_by(tracer):
    """Calls target(1) with `tracer` set; returns (exception or None, gettrace() after)."""
    ferrotrace.settrace(tracer)
    try:
        target(1)
    except Exception as exc:  # noqa: BLE001 - the point is to observe it
        return exc, ferrotrace.gettrace()
    finally:
        after = ferrotrace.gettrace()
        ferrotrace.settrace(None)
    return None, after


def test_non_callable_trace_function_raises_at_first_event_and_unsets():
    error, after = call_target_traced_by(42)
    assert isinstance(error, TypeError) and "not callable" in str(error)
    assert after is None


def test_error_in_trace_function_propagates_and_unsets_tracing():
    def tracer(frame, event, arg):
        if event == "line":
            raise KeyError("from the tracer")
        return tracer

    error, after = call_target_traced_by(tracer)
    assert isinstance(error, KeyError) and error.args == ("from the tracer",)
    assert after is None


def test_tracing_restores_previous_function_even_on_error():
    outer, outer_events = make_recorder()
    inner, inner_events = make_recorder()
    ferrotrace.settrace(outer)
    with pytest.raises(ZeroDivisionError):
        with ferrotrace.tracing(inner) as ctx:
            assert ferrotrace.gettrace() is inner
            assert ctx.function is inner
            target(1)
            1 / 0  # noqa: B018
    assert ferrotrace.gettrace() is outer
    ferrotrace.settrace(None)
    assert ("call", "target") in inner_events
    assert ("call", "target") not in outer_events


def test_tracing_nests_and_can_be_reentered():
    a, _ = make_recorder()
    b, _ = make_recorder()
    ctx = ferrotrace.tracing(a)
    with ctx:
        with ferrotrace.tracing(b):
            with ctx:
                assert ferrotrace.gettrace() is a
            assert ferrotrace.gettrace() is b
        assert ferrotrace.gettrace() is a
    assert ferrotrace.gettrace() is None
    assert "tracing(" in repr(ctx)


def test_install_replaces_and_uninstall_restores_exactly():
    originals = {name: getattr(sys, name) for name in ("settrace", "gettrace")}
    has_all_threads = hasattr(sys, "_settraceallthreads")
    if has_all_threads:
        originals["_settraceallthreads"] = sys._settraceallthreads
    ferrotrace.install()
    try:
        ferrotrace.install()  # idempotent
        assert ferrotrace.is_installed()
        assert sys.settrace is ferrotrace.settrace
        assert sys.gettrace is ferrotrace.gettrace
        if has_all_threads:
            assert sys._settraceallthreads is _native._settraceallthreads
        tracer, events = make_recorder()
        before = _native._dispatch_count()
        sys.settrace(tracer)
        target(1)
        sys.settrace(None)
        assert ("call", "target") in events
        assert _native._dispatch_count() > before
    finally:
        ferrotrace.uninstall()
    ferrotrace.uninstall()  # idempotent
    assert not ferrotrace.is_installed()
    for name, original in originals.items():
        assert getattr(sys, name) is original, name


def test_threading_settrace_runs_on_ferrotrace_when_installed():
    tracer, events = make_recorder()
    ferrotrace.install()
    try:
        threading.settrace(tracer)
        before = _native._dispatch_count()
        thread = threading.Thread(target=target, args=(1,))
        thread.start()
        thread.join()
    finally:
        threading.settrace(None)
        ferrotrace.uninstall()
    assert ("call", "target") in events
    assert _native._dispatch_count() > before


def test_settrace_all_threads_reaches_running_and_future_threads():
    records = []
    lock = threading.Lock()

    def tracer(frame, event, arg):
        if frame.f_code is target.__code__:
            with lock:
                records.append((threading.current_thread().name, event))
        return tracer

    go = threading.Event()

    def waiting():
        go.wait()
        target(1)

    running = threading.Thread(target=waiting, name="running")
    running.start()
    try:
        ferrotrace.settrace_all_threads(tracer)
        assert ferrotrace.gettrace() is tracer
        assert threading.gettrace() is tracer
        go.set()
        running.join()
        later = threading.Thread(target=target, args=(1,), name="later")
        later.start()
        later.join()
        target(1)
    finally:
        ferrotrace.settrace_all_threads(None)
    assert threading.gettrace() is None
    assert ferrotrace.gettrace() is None
    names = {name for name, event in records if event == "call"}
    assert names == {"running", "later", "MainThread"}


def test_audit_events_and_vetoes_match_sys_settrace():
    # Audit hooks cannot be removed, so this runs in its own interpreter.
    script = textwrap.dedent(
        """
        import sys, ferrotrace
        seen = []
        veto = False
        def hook(event, args):
            if event == "sys.settrace":
                seen.append(event)
                if veto:
                    raise RuntimeError("vetoed")
        sys.addaudithook(hook)
        results = []
        for setter in (sys.settrace, ferrotrace.settrace):
            seen.clear()
            setter(lambda *a: None)
            setter(None)
            results.append(len(seen))
        veto = True
        for setter in (sys.settrace, ferrotrace.settrace):
            try:
                setter(lambda *a: None)
            except RuntimeError as exc:
                results.append(str(exc))
            results.append(sys.gettrace())
        print(results)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[2, 2, 'vetoed', None, 'vetoed', None]"


def test_exception_class_is_exported():
    assert issubclass(ferrotrace.FerrotraceError, RuntimeError)
    from ferrotrace.exceptions import FerrotraceError

    assert FerrotraceError is ferrotrace.FerrotraceError


def test_version_is_a_string():
    assert isinstance(ferrotrace.__version__, str) and ferrotrace.__version__


def traceback_names_when_tracer_raises(settrace, event_kind):
    def tracer(frame, event, arg):
        if frame.f_code is target.__code__ and event == event_kind:
            raise LookupError(event_kind)
        return tracer

    settrace(tracer)
    try:
        target(1)
    except LookupError as exc:
        tb, names = exc.__traceback__, []
        while tb is not None:
            names.append(
                (tb.tb_frame.f_code.co_name, tb.tb_lineno - tb.tb_frame.f_code.co_firstlineno)
            )
            tb = tb.tb_next
        return names
    finally:
        settrace(None)
    raise AssertionError("the tracer's exception did not propagate")


@pytest.mark.parametrize("event_kind", ["call", "line", "return"])
def test_traceback_of_a_tracer_error_matches_sys_settrace(event_kind):
    stock = traceback_names_when_tracer_raises(sys.settrace, event_kind)
    ours = traceback_names_when_tracer_raises(ferrotrace.settrace, event_kind)
    assert ours == stock
    assert ("tracer", 2) in ours


def nested_settrace_from_a_destructor(settrace):
    """sys.settrace drops the old function; its __del__ sets another one. Which one stands?"""
    script = textwrap.dedent(
        f"""
        import sys, ferrotrace
        settrace = {settrace}
        def foo(*args): pass
        def bar(*args): pass
        class A:
            def __call__(self, *args): pass
            def __del__(self):
                settrace(bar)
        settrace(A())
        settrace(foo)
        print(sys.gettrace().__name__)
        settrace(None)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), "RuntimeError" in result.stderr


def test_settrace_from_a_destructor_during_settrace_matches_sys_settrace():
    # 3.11 refuses the nested call (RuntimeError, unraisable); 3.13 lets it win.
    stock = nested_settrace_from_a_destructor("sys.settrace")
    assert nested_settrace_from_a_destructor("ferrotrace.settrace") == stock
