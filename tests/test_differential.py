"""Differential event-stream tests: every program in ``tests/programs/`` is run under
``sys.settrace`` and under ferrotrace, each in a fresh subprocess of this interpreter, and
the recorded streams must be identical (see ``tests/differential/README.md``).

Two ferrotrace backends are compared with ``sys``: ``ferrotrace`` (``ferrotrace.settrace``
and friends) and ``installed`` (``ferrotrace.install()``, then the ``sys`` functions).
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import sysconfig
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS_DIR = ROOT / "tests" / "programs"
RUNNER = ROOT / "tests" / "differential" / "runner.py"
PROGRAMS = sorted(p for p in PROGRAMS_DIR.glob("*.py") if not p.name.startswith("_"))
FERROTRACE_BACKENDS = ("ferrotrace", "installed")
BACKENDS = ("sys", *FERROTRACE_BACKENDS)
SUBPROCESS_TIMEOUT = 120
TEST_NAME = "test_same_event_stream"
SITE_DIRS = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})

# program stem -> (applies on this interpreter, reason): a difference between sys.settrace and
# ferrotrace known to be a ferrotrace bug. Marked xfail(strict=True) where it applies, so the
# test starts failing (XPASS) as soon as the engine is fixed and the entry must go.
KNOWN_DIFFERENCES: dict[str, tuple[bool, str]] = {}

# The parts of a run that must be identical between backends.
COMPARED = ("streams", "result", "error", "final_on")


def run_program(
    program: Path, backend: str, out_dir: Path, extra_env: dict[str, str] | None = None
) -> dict:
    """Run ``program`` under ``backend`` in a fresh subprocess; ``extra_env`` is added to its
    environment (and must then name a fresh ``out_dir``)."""
    output = out_dir / f"{program.stem}.{backend}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra_env or {})
    # -S: no .pth file (such as the conformance tests' temporary hook) can load anything into
    # the run; the runner puts this venv's site-packages on sys.path itself.
    command = [sys.executable, "-I", "-S", "-B", str(RUNNER), str(program), backend, str(output)]
    command.extend(SITE_DIRS)
    try:
        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return {"failure": f"timed out after {exc.timeout}s: {' '.join(command)}"}
    if proc.returncode != 0 or not output.exists():
        return {
            "failure": f"exit status {proc.returncode}: {' '.join(command)}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        }
    data = json.loads(output.read_text(encoding="utf-8"))
    data["stdout"] = proc.stdout
    data["stderr"] = proc.stderr
    return data


class Runs:
    """(program, backend) subprocess runs on a thread pool, started up front for every test
    selected in this session, so that they run in parallel while the tests wait in turn."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
        self.futures: dict[tuple[str, str], Future] = {}

    def start(self, program: str, backend: str) -> Future:
        key = (program, backend)
        if key not in self.futures:
            path = PROGRAMS_DIR / f"{program}.py"
            self.futures[key] = self.pool.submit(run_program, path, backend, self.out_dir)
        return self.futures[key]

    def get(self, program: str, backend: str) -> dict:
        data = self.start(program, backend).result()
        if "failure" in data:
            pytest.fail(f"{program} under {backend}: {data['failure']}")
        return data


@pytest.fixture(scope="session")
def differential_runs(request, tmp_path_factory) -> Runs:
    runs = Runs(tmp_path_factory.mktemp("differential"))
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and getattr(item, "originalname", None) == TEST_NAME:
            runs.start(callspec.params["program"], "sys")
            runs.start(callspec.params["program"], callspec.params["backend"])
    yield runs
    runs.pool.shutdown(wait=True, cancel_futures=True)


def stream_lines(data: dict) -> list[str]:
    lines = [f"result: {json.dumps(data['result'])}", f"error: {json.dumps(data['error'])}"]
    lines.append(f"final_on: {data['final_on']}")
    for thread, stream in sorted(data["streams"].items()):
        lines.extend(f"[{thread}] {json.dumps(entry)}" for entry in stream)
    return lines


def event_tokens(data: dict) -> set[str]:
    """Event names and ``note:<label>`` for every entry of every stream."""
    tokens = set()
    for stream in data["streams"].values():
        for entry in stream:
            tokens.add(f"note:{entry[1]}" if entry[0] == "note" else entry[0])
    return tokens


def check_reference(data: dict, program: str) -> None:
    """Sanity checks on the ``sys.settrace`` run, so a program recording nothing can't pass."""
    assert not data["ferrotrace_imported"], "the sys run must not import ferrotrace"
    assert data["error"] is None, f"{program} raised under sys.settrace: {data['error']}"
    assert not data["final_on"], f"{program} left tracing on"
    assert data["stdout"] == "", f"{program} printed: {data['stdout']!r}"
    assert data["expect"], f"{program} declares no EXPECT tokens"
    assert any(entry[0] != "note" for stream in data["streams"].values() for entry in stream), (
        f"{program} recorded no trace event"
    )
    missing = set(data["expect"]) - event_tokens(data)
    assert not missing, f"{program}: expected {sorted(missing)} in the recorded streams"


def params():
    for program in PROGRAMS:
        for backend in FERROTRACE_BACKENDS:
            marks = []
            if program.stem in KNOWN_DIFFERENCES:
                applies, reason = KNOWN_DIFFERENCES[program.stem]
                marks.append(pytest.mark.xfail(applies, strict=True, reason=reason))
            yield pytest.param(program.stem, backend, marks=marks, id=f"{program.stem}-{backend}")


def test_enough_programs():
    assert len(PROGRAMS) >= 40, [p.name for p in PROGRAMS]


@pytest.mark.parametrize(("program", "backend"), list(params()))
def test_same_event_stream(differential_runs, program: str, backend: str) -> None:
    reference = differential_runs.get(program, "sys")
    check_reference(reference, program)
    candidate = differential_runs.get(program, backend)

    assert candidate["dispatched"], f"ferrotrace's trampoline dispatched no event ({backend})"
    assert candidate["stdout"] == reference["stdout"]

    expected = {key: reference[key] for key in COMPARED}
    actual = {key: candidate[key] for key in COMPARED}
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                stream_lines(reference),
                stream_lines(candidate),
                fromfile="sys.settrace",
                tofile=backend,
                lineterm="",
                n=4,
            )
        )
        pytest.fail(f"{program}: event streams differ (sys.settrace vs {backend}):\n{diff}")
