"""A ``ferrotrace.Tracer`` next to the tools users already run: coverage.py (its C tracer on
``sys.settrace``, and on 3.12+ its ``sys.monitoring`` core) and a bdb debugger. Each must get
exactly what it gets alone, and so must the Tracer: nothing lost, nothing duplicated.

Each combination runs in a fresh subprocess (coverage and bdb change interpreter-wide state),
which prints JSON: what each party observed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ferrotrace

pytest.importorskip("coverage")


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

TARGET = textwrap.dedent(
    """
    def leaf(x):
        if x % 2:
            return x * 3
        return x

    def gen(n):
        for i in range(n):
            yield leaf(i)

    def hot(n):
        total = 0
        for value in gen(n):
            try:
                if value > 4:
                    raise ValueError(value)
            except ValueError:
                total -= 1
            total += value
        return total

    def workload():
        return hot(6) + hot(3)
    """
)

DRIVER = textwrap.dedent(
    """
    import bdb, json, os, sys
    sys.path.insert(0, os.environ["TARGET_DIR"])
    import target

    parties = os.environ["PARTIES"].split(",")
    out = {}

    tracer_log = []
    def describe(frame, event, arg):
        code = frame.f_code
        if event == "exception":
            arg = arg[0].__name__
        elif event == "return":
            arg = repr(arg)
        else:
            arg = None
        return [event, code.co_qualname, frame.f_lineno - code.co_firstlineno, arg]

    def callback(frame, event, arg):
        tracer_log.append(describe(frame, event, arg))
        return callback

    class Stops(bdb.Bdb):
        def __init__(self):
            super().__init__()
            self.stops = []
        def user_line(self, frame):
            self.stops.append([frame.f_code.co_qualname, frame.f_lineno])
            self.set_continue()

    started = []
    if "coverage" in parties or "sysmon" in parties:
        if "sysmon" in parties:
            os.environ["COVERAGE_CORE"] = "sysmon"
        import coverage
        # coverage's sys.monitoring core measures branches only on 3.14+.
        branch = "sysmon" not in parties
        cov = coverage.Coverage(data_file=None, branch=branch, include=[target.__file__])
        cov.start()
        started.append(cov.stop)
    tracer = None
    if "tracer" in parties:
        import ferrotrace
        tracer = ferrotrace.Tracer(callback, functions=["leaf", "hot"])
        tracer.start()
    if "bdb" in parties:
        debugger = Stops()
        debugger.set_break(target.__file__, target.leaf.__code__.co_firstlineno + 2)
        debugger.set_break(target.__file__, target.hot.__code__.co_firstlineno + 6)
        result = debugger.runcall(target.workload)
        out["bdb"] = debugger.stops
    else:
        result = target.workload()
    if tracer is not None:
        tracer.stop()
        out["tracer"] = tracer_log
    for stop in reversed(started):
        stop()
    if started:
        data = cov.get_data()
        out["coverage"] = {
            "lines": sorted(data.lines(target.__file__) or []),
            "arcs": sorted(data.arcs(target.__file__) or []) if branch else None,
            "tracer_kind": cov._collector.tracer_name() if cov._collector else None,
        }
    out["result"] = result
    out["gettrace_after"] = sys.gettrace() is None
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("coexist")
    (directory / "target.py").write_text(TARGET, encoding="utf-8")
    (directory / "driver.py").write_text(DRIVER, encoding="utf-8")
    return directory


def observe(target_dir: Path, *parties: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COVERAGE"))}
    env.update(TARGET_DIR=str(target_dir), PARTIES=",".join(parties))
    proc = subprocess.run(
        [sys.executable, "-B", str(target_dir / "driver.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_alone_each_party_observes_something(target_dir: Path) -> None:
    tracer = observe(target_dir, "tracer")["tracer"]
    assert {entry[1] for entry in tracer} == {"leaf", "hot"}
    assert {entry[0] for entry in tracer} == {"call", "line", "return", "exception"}
    coverage = observe(target_dir, "coverage")["coverage"]
    assert coverage["lines"] and coverage["arcs"]
    assert coverage["tracer_kind"] == "CTracer"
    if sys.version_info >= (3, 12):
        sysmon = observe(target_dir, "sysmon")["coverage"]
        assert sysmon["lines"] == coverage["lines"]
        assert sysmon["tracer_kind"] == "SysMonitor"
    assert observe(target_dir, "bdb")["bdb"]


@pytest.mark.parametrize(
    "together",
    [
        ("coverage", "tracer"),
        ("bdb", "tracer"),
        pytest.param(
            ("sysmon", "tracer"),
            marks=pytest.mark.skipif(
                sys.version_info < (3, 12), reason="coverage's sys.monitoring core is 3.12+"
            ),
        ),
    ],
    ids=lambda parties: "+".join(parties),
)
def test_each_party_sees_what_it_sees_alone(target_dir: Path, together: tuple[str, ...]) -> None:
    combined = observe(target_dir, *together)
    for party in together:
        alone = observe(target_dir, party)
        key = "coverage" if party == "sysmon" else party
        assert combined[key] == alone[key], f"{party} differs when run with {together}"
    assert combined["result"] == observe(target_dir)["result"]
    assert combined["gettrace_after"]
