"""ferrotrace's debugger against stock pdb: the same scripted session gives the same output.

Each session runs ``python -m pdb PROGRAM`` and ``python -m ferrotrace.debugger PROGRAM`` in
fresh processes with the same commands on stdin, in an empty directory with HOME pointing
there (no .pdbrc unless the test writes one). Programs are in ``tests/debugger_programs/``.
"""

from __future__ import annotations

import bdb
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import ferrotrace
from ferrotrace import debugger

PROGRAMS = Path(__file__).parent / "debugger_programs"


def _run(args: list[str], commands: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FERROTRACE"))}
    env["HOME"] = str(cwd)
    env["NO_COLOR"] = "1"
    proc = subprocess.run(
        [sys.executable, *args],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    return proc.stdout + proc.stderr


def _differential(tmp_path: Path, program: str, commands: list[str]) -> str:
    target = tmp_path / program
    shutil.copyfile(PROGRAMS / program, target)
    stock = _run(["-m", "pdb", str(target)], commands, tmp_path)
    ours = _run(["-m", "ferrotrace.debugger", str(target)], commands, tmp_path)
    assert ours == stock
    assert "Traceback" not in ours.split("Uncaught exception")[0] or "Uncaught" in ours
    return ours


def test_every_command_as_stock_pdb(tmp_path: Path) -> None:
    out = _differential(
        tmp_path,
        "fibsum.py",
        [
            "b compute",
            "c",
            "p limit",
            "n",
            "n",
            "s",
            "where",
            "bt",
            "up",
            "down",
            "retval",
            "b 12",
            "c",
            "p total",
            "pp [total] * 3",
            "!total = 1000",
            "p total",
            "n",
            "p value",
            "args",
            "whatis total",
            "display value",
            "undisplay value",
            "source fib",
            "alias pt p total",
            "pt",
            "list 10, 12",
            "longlist",
            "r",
            "retval",
            "until",
            "tbreak fib",
            "condition 2 total > 0",
            "disable 2",
            "enable 2",
            "ignore 2 1",
            "clear 2",
            "commands 1",
            "p 'from commands'",
            "end",
            "c",
            "q",
        ],
    )
    assert "1000" in out and "2000" in out and "--Return--" in out


def test_assignment_to_a_local_sticks(tmp_path: Path) -> None:
    out = _differential(
        tmp_path, "fibsum.py", ["b 12", "c", "!total = 5", "n", "p value", "c", "q"]
    )
    assert "(Pdb) 10\n" in out


def test_jump_and_until_with_a_line(tmp_path: Path) -> None:
    _differential(
        tmp_path,
        "fibsum.py",
        ["b 10", "c", "until 12", "p total", "jump 12", "p i", "n", "p value", "c", "q"],
    )


def test_generators_and_asyncio_step_over_await(tmp_path: Path) -> None:
    out = _differential(
        tmp_path,
        "gen_async.py",
        [
            "b 6",
            "c",
            "p i",
            "n",
            "n",
            "r",
            "clear 1",
            "b 16",
            "c",
            "n",
            "p first",
            "n",
            "p second",
            "s",
            "c",
            "q",
        ],
    )
    assert "pipeline()" in out


def test_recursion_exceptions_and_post_mortem(tmp_path: Path) -> None:
    out = _differential(
        tmp_path,
        "errors_recursion.py",
        [
            "b depth, n == 0",
            "c",
            "p n",
            "bt",
            "n",
            "n",
            "c",
            "p n",
            "c",
            "p n",
            "up",
            "p n",
            "q",
        ],
    )
    assert "Uncaught exception. Entering post mortem debugging" in out


def test_interact(tmp_path: Path) -> None:
    # The console reads the rest of stdin; its end of file returns to pdb, which then ends.
    out = _differential(tmp_path, "fibsum.py", ["b 12", "c", "interact", "total * 3"])
    assert "99" in out


def test_restart_and_run(tmp_path: Path) -> None:
    out = _differential(tmp_path, "fibsum.py", ["b 13", "c", "restart", "c", "p value", "run", "q"])
    assert "Restarting" in out


def test_pdbrc_and_dash_c(tmp_path: Path) -> None:
    (tmp_path / ".pdbrc").write_text("b 12\nalias pv p value\n")
    target = tmp_path / "fibsum.py"
    shutil.copyfile(PROGRAMS / "fibsum.py", target)
    commands = ["p total", "n", "pv", "q"]
    args = ["-c", "continue", str(target)]
    stock = _run(["-m", "pdb", *args], commands, tmp_path)
    ours = _run(["-m", "ferrotrace.debugger", *args], commands, tmp_path)
    assert ours == stock
    assert "(Pdb) 33\n" in ours


def test_module_target(tmp_path: Path) -> None:
    shutil.copyfile(PROGRAMS / "fibsum.py", tmp_path / "fibmod.py")
    commands = ["b fibmod.compute", "c", "p limit", "q"]
    stock = _run(["-m", "pdb", "-m", "fibmod"], commands, tmp_path)
    ours = _run(["-m", "ferrotrace.debugger", "-m", "fibmod"], commands, tmp_path)
    assert ours == stock
    assert "(Pdb) 8\n" in ours


def test_breakpoint_builtin_and_post_mortem(tmp_path: Path) -> None:
    """``breakpoint()`` with PYTHONBREAKPOINT=ferrotrace.set_trace and ferrotrace.post_mortem()
    against pdb.set_trace and pdb.post_mortem."""
    target = tmp_path / "entry_points.py"
    shutil.copyfile(PROGRAMS / "entry_points.py", target)
    commands = ["p total", "!total = 10", "until 10", "p doubled", "c", "p divisor", "up", "q"]
    outputs = {}
    for debugger_module, hook in (("pdb", "pdb.set_trace"), ("ferrotrace", "ferrotrace.set_trace")):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FERROTRACE"))}
        env.update(HOME=str(tmp_path), NO_COLOR="1", PYTHONBREAKPOINT=hook)
        proc = subprocess.run(
            [sys.executable, str(target), debugger_module],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        outputs[debugger_module] = proc.stdout + proc.stderr
    assert outputs["ferrotrace"] == outputs["pdb"]
    out = outputs["ferrotrace"]
    assert "(Pdb) 6\n" in out and "(Pdb) 20\n" in out and "result 20" in out
    assert "(Pdb) 0\n" in out and "done" in out


# -- in-process: the native core really decides ---------------------------------------------


def _session(cls, program: str, commands: list[str], **options):
    bdb.Breakpoint.clearBreakpoints()  # numbers are global: each session starts at 1
    path = str(PROGRAMS / program)
    source = Path(path).read_text()
    out = io.StringIO()
    pdb_ = cls(stdin=io.StringIO("\n".join(commands) + "\n"), stdout=out, readrc=False, **options)
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    with redirect_stdout(out):
        try:
            pdb_.run(compile(source, path, "exec"), namespace)
        except bdb.BdbQuit:
            pass
    bdb.Breakpoint.clearBreakpoints()
    return out.getvalue(), pdb_


@pytest.fixture
def dispatch_calls(monkeypatch) -> list[str]:
    """The events bdb's own Python dispatch runs for, in either debugger (ferrotrace's also
    calls it through its breakpoint-line shortcut)."""
    calls: list[str] = []
    original = debugger.StockBdb.trace_dispatch
    shortcut = debugger._NativeCore._ferrotrace_breakpoint_line

    def counted(self, frame, event, arg):
        calls.append(event)
        return original(self, frame, event, arg)

    def counted_shortcut(self, frame, event, arg):
        calls.append(event)
        return shortcut(self, frame, event, arg)

    monkeypatch.setattr(debugger.StockBdb, "trace_dispatch", counted)
    monkeypatch.setattr(debugger._NativeCore, "_ferrotrace_breakpoint_line", counted_shortcut)
    return calls


@pytest.fixture
def installed():
    was = ferrotrace.is_installed()
    ferrotrace.install()
    yield
    if not was:
        ferrotrace.uninstall()


@pytest.mark.parametrize("engine", ["ferrotrace", "sys.settrace"])
def test_continue_decides_natively(engine: str, request, dispatch_calls) -> None:
    if engine == "ferrotrace":
        request.getfixturevalue("installed")
    calls = dispatch_calls
    commands = ["b 12", "c", "p total", "c"]
    stock_out, _ = _session(debugger.StockPdb, "fibsum.py", commands)
    stock_calls = len(calls)
    calls.clear()
    out, ours = _session(debugger.Pdb, "fibsum.py", commands)
    assert out == stock_out
    assert "(Pdb) 33\n" in out
    # Stock bdb's Python dispatch ran for every line of fib and compute; ferrotrace's only
    # around the stops (the first line, the breakpoint, the call that records the bottom frame).
    assert stock_calls > 300
    assert len(calls) < 10, calls


# -- threads, coexistence --------------------------------------------------------------------


def test_a_breakpoint_in_another_thread_stops_in_that_thread(tmp_path: Path) -> None:
    # Stock pdb does not trace threads started while it runs, so this is not differential.
    target = tmp_path / "threads.py"
    shutil.copyfile(PROGRAMS / "threads.py", target)
    commands = [
        "b 5",
        "c",
        "p index",
        "p threading.current_thread().name",
        "n",
        "p square",
        "c",
        "q",
    ]
    out = _run(["-m", "ferrotrace.debugger", str(target)], commands, tmp_path)
    assert f"> {target}(5)worker()" in out
    assert "(Pdb) 7\n" in out
    assert "(Pdb) 'Thread-1 (worker)'\n" in out
    assert "(Pdb) 49\n" in out
    assert "results [49]" in out
    assert "Traceback" not in out


def test_beside_a_ferrotrace_tracer(installed) -> None:
    events: list[tuple[str, int]] = []

    def callback(frame, event, arg):
        events.append((event, frame.f_lineno))
        return callback

    commands = ["b 12", "c", "p total", "n", "c"]
    try:
        with ferrotrace.Tracer(callback, functions=["fib"]):
            stock_out, _ = _session(debugger.StockPdb, "fibsum.py", commands)
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    alone = list(events)
    events.clear()
    with ferrotrace.Tracer(callback, functions=["fib"]):
        out, _ = _session(debugger.Pdb, "fibsum.py", commands)
    assert out == stock_out
    assert "(Pdb) 33\n" in out
    assert events == alone
    assert ("call", 3) in events


@pytest.mark.parametrize("core", ["ctrace", "sysmon"])
def test_beside_coverage(core: str, tmp_path: Path) -> None:
    if core == "sysmon" and sys.version_info < (3, 12):
        pytest.skip("coverage's sys.monitoring core needs 3.12+")
    script = tmp_path / "observe.py"
    script.write_text(
        "import io, json, sys, bdb, coverage\n"
        "import ferrotrace, ferrotrace.debugger as d\n"
        "ferrotrace.install()\n"
        "cls = d.Pdb if sys.argv[1] == 'ferrotrace' else d.StockPdb\n"
        f"path = {str(PROGRAMS / 'fibsum.py')!r}\n"
        "cov = coverage.Coverage(data_file=None)\n"
        "cov.start()\n"
        "out = io.StringIO()\n"
        "dbg = cls(stdin=io.StringIO('b 12\\nc\\np total\\nc\\n'), stdout=out, readrc=False)\n"
        "ns = {'__name__': '__main__', '__file__': path}\n"
        "dbg.run(compile(open(path).read(), path, 'exec'), ns)\n"
        "cov.stop()\n"
        "print(json.dumps({'pdb': out.getvalue(),\n"
        "                  'lines': sorted(cov.get_data().lines(path) or [])}))\n"
    )
    env = {**os.environ, "COVERAGE_CORE": core}
    seen = {}
    for engine in ("stock", "ferrotrace"):
        proc = subprocess.run(
            [sys.executable, str(script), engine], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
        seen[engine] = json.loads(proc.stdout.splitlines()[-1])
    assert seen["ferrotrace"] == seen["stock"]
    assert "(Pdb) 33\n" in seen["ferrotrace"]["pdb"]
    if core == "sysmon":
        # On its own tool id coverage sees every line run, the debugger's stops included.
        assert {5, 6, 11, 12, 13, 21} <= set(seen["ferrotrace"]["lines"])
    # (With the C tracer, pdb's sys.settrace replaces coverage's, stock and ferrotrace alike.)


# -- end to end, in a terminal ---------------------------------------------------------------


class _Terminal:
    """A program on a pseudo-terminal: send a line, read up to the next prompt."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        import pty

        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FERROTRACE"))}
        env.update(HOME=str(cwd), TERM="dumb", NO_COLOR="1")
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True
        )
        os.close(slave)
        self.transcript = ""

    def read_until(self, marker: str, timeout: float = 60) -> str:
        import select
        import time

        deadline = time.monotonic() + timeout
        start = len(self.transcript)
        while marker not in self.transcript[start:]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {marker!r} in:\n{self.transcript}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the program exited (EIO)
                    break
                if not chunk:
                    break
                self.transcript += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.transcript[start:]

    def send(self, line: str, until: str = "(Pdb) ") -> str:
        os.write(self.master, line.encode() + b"\n")
        return self.read_until(until)

    def close(self) -> int:
        code = self.proc.wait(timeout=60)
        os.close(self.master)
        return code


def test_ferrotrace_debug_in_a_terminal(tmp_path: Path) -> None:
    target = tmp_path / "fibsum.py"
    shutil.copyfile(PROGRAMS / "fibsum.py", target)
    command = Path(sys.executable).parent / "ferrotrace"
    term = _Terminal([str(command), "debug", str(target)], tmp_path)
    try:
        assert "-> import sys" in term.read_until("(Pdb) ")
        assert f"Breakpoint 1 at {target}:12" in term.send("break 12")
        assert "-> value = total * 2" in term.send("continue")
        assert "33" in term.send("p total")
        assert "-> return value" in term.send("step")
        assert "66" in term.send("p value")
        term.send("!value = 500")
        assert "500" in term.send("p value")
        out = term.send("continue")
        assert "result 500" in out
        assert "The program finished and will be restarted" in out
        term.send("quit", until="")
    finally:
        code = term.close()
    assert code == 0, term.transcript


@pytest.mark.usefixtures("installed")
def test_stepping_over_skipped_modules_decides_natively(monkeypatch, dispatch_calls) -> None:
    monkeypatch.syspath_prepend(str(PROGRAMS))
    calls = dispatch_calls
    commands = ["b encode", "c", "s", "s", "p digest", "s", "c"]
    skip = ["skipped_*"]
    stock_out, _ = _session(debugger.StockPdb, "uses_helper.py", commands, skip=skip)
    stock_calls = len(calls)
    calls.clear()
    out, _ = _session(debugger.Pdb, "uses_helper.py", commands, skip=skip)
    assert out == stock_out
    assert "uses_helper.py(6)encode()" in out
    # Stock bdb ran its Python dispatch on every line of the skipped module; ferrotrace's core
    # answered those natively (bdb's is_skipped_module asked once per module).
    assert len(calls) * 5 < stock_calls, (len(calls), stock_calls)


# -- conditional breakpoints (bdb's `effective`, done natively at the breakpoint line) -------


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        # The condition becomes true once; the listing shows the hit count.
        (["b 5, i == 7", "c", "p i", "break", "c"], "already hit 8 times"),
        # An ignore count applies to the hits where the condition is true.
        (["b 5, i % 3 == 0", "ignore 1 2", "c", "p i", "break", "c"], "(Pdb) 6\n"),
        # A condition that raises stops, every time, and keeps counting.
        (
            ["b 5, undefined_name > 1", "c", "p i", "c", "p i", "break", "clear 1", "c"],
            "already hit 2 times",
        ),
        # A temporary conditional breakpoint is deleted when its condition stops.
        (["tbreak 5, i == 4", "c", "p i", "break", "c"], "Deleted breakpoint 1"),
        # A condition with an effect runs once per hit, in the program's frame.
        (["b 5, seen.append(-i) or i == 9", "c", "p seen", "break", "c"], "done 24"),
        # By function name; a disabled breakpoint beside an enabled one on the same line.
        (
            ["b step, i == 3", "b 5", "disable 2", "b 5, i == 10", "c", "p i", "c", "p i"]
            + ["break", "c"],
            "already hit 11 times",
        ),
        # The condition edited while stopped.
        (
            ["b 5, i == 2", "c", "condition 1 i == 6", "c", "p i", "condition 1", "c", "p i"]
            + ["clear 1", "c"],
            "(Pdb) 7\n",
        ),
    ],
)
def test_conditional_breakpoints_as_stock_pdb(
    tmp_path: Path, commands: list[str], expected: str
) -> None:
    out = _differential(tmp_path, "conditions.py", [*commands, "q"])
    assert expected in out


@pytest.mark.parametrize("engine", ["ferrotrace", "sys.settrace"])
def test_a_false_condition_is_decided_natively(engine: str, request, dispatch_calls) -> None:
    if engine == "ferrotrace":
        request.getfixturevalue("installed")
    calls = dispatch_calls
    commands = ["b 5, i == 11", "c", "p i", "break", "c"]
    stock_out, _ = _session(debugger.StockPdb, "conditions.py", commands)
    stock_calls = len(calls)
    calls.clear()
    out, _ = _session(debugger.Pdb, "conditions.py", commands)
    assert out == stock_out
    assert "(Pdb) 11\n" in out and "breakpoint already hit 12 times" in out
    # Stock bdb evaluated the condition in Python at each of the 12 hits (and dispatched every
    # other line); ferrotrace's core evaluated the false ones natively.
    assert stock_calls > 50
    assert len(calls) < 8, calls
