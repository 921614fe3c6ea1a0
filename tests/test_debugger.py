"""ferrotrace's debugger against stock pdb: the same scripted session gives the same output.

Each session runs ``python -m pdb PROGRAM`` and ``python -m ferrotrace.debugger PROGRAM`` in
fresh processes with the same commands on stdin, in an empty directory with HOME pointing
there (no .pdbrc unless the test writes one). Programs are in ``tests/debugger_programs/``.
"""

from __future__ import annotations

import bdb
import io
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


# -- in-process: the native core really decides ---------------------------------------------


def _session(cls, program: str, commands: list[str]):
    bdb.Breakpoint.clearBreakpoints()  # numbers are global: each session starts at 1
    path = str(PROGRAMS / program)
    source = Path(path).read_text()
    out = io.StringIO()
    pdb_ = cls(stdin=io.StringIO("\n".join(commands) + "\n"), stdout=out, readrc=False)
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    with redirect_stdout(out):
        try:
            pdb_.run(compile(source, path, "exec"), namespace)
        except bdb.BdbQuit:
            pass
    bdb.Breakpoint.clearBreakpoints()
    return out.getvalue(), pdb_


@pytest.fixture
def installed():
    was = ferrotrace.is_installed()
    ferrotrace.install()
    yield
    if not was:
        ferrotrace.uninstall()


@pytest.mark.parametrize("engine", ["ferrotrace", "sys.settrace"])
def test_continue_decides_natively(engine: str, request, monkeypatch) -> None:
    if engine == "ferrotrace":
        request.getfixturevalue("installed")
    calls = []
    original = debugger.StockBdb.trace_dispatch

    def counted(self, frame, event, arg):
        calls.append(event)
        return original(self, frame, event, arg)

    monkeypatch.setattr(debugger.StockBdb, "trace_dispatch", counted)
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
