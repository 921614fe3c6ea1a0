#!/usr/bin/env python3
"""Overhead of a debugger that is *continuing*: ferrotrace's pdb beside stock pdb.

    .venv/bin/python benchmarks/debugger.py --python .venv/bin/python --python .venv313/bin/python

For each workload of ``benchmarks/workloads`` and each interpreter (a worker process each, as
``run.py`` does, with its rotation of modes over rounds and medians), the debugger is entered
the way a user enters it, ``pdb.set_trace()`` followed by the ``c`` command, and the workload
then runs under it:

- ``continue``: a breakpoint in the workload's file on line 1 (module code, never run again
  while the workload runs; to bdb the file has breakpoints, so stock pdb traces its every
  line) and one on a function the workload never calls (``json.tool.main``);
- ``cond false``: a conditional breakpoint on the first line of the body of the workload's
  ``HOT_FUNCTION`` (of each function of that name), whose condition (``False``) never holds.

Each mode runs once with stock ``pdb.Pdb`` and once with ``ferrotrace.debugger.Pdb``. Ratios =
median time under the debugger / median untraced time, same worker. ``cond share`` =
(ferrotrace - 1) / (stock - 1): the fraction of stock pdb's added time that ferrotrace adds.
"""

from __future__ import annotations

import argparse
import dis
import importlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as runner  # noqa: E402  (benchmarks/run.py: timing, medians, table format)

DEFAULT_SCALE = 0.3
DEFAULT_ROUNDS = 5
MODES = ["continue", "cond false"]
DEBUGGERS = ["pdb", "ferrotrace"]


def _hot_codes(module: ModuleType) -> list:
    """The code objects of the workload's HOT_FUNCTION (every function or method of that
    name: richards' ``step`` is a method of each task class)."""
    name, found = module.HOT_FUNCTION, []
    for value in vars(module).values():
        candidates = [value, *vars(value).values()] if isinstance(value, type) else [value]
        for candidate in candidates:
            code = getattr(candidate, "__code__", None)
            if code is not None and code.co_name == name and code not in found:
                found.append(code)
    if not found:
        raise LookupError(f"{module.__name__}: no function named {name}")
    return found


def _first_body_line(code) -> int:
    lines = sorted({line for _, line in dis.findlinestarts(code) if line is not None})
    later = [line for line in lines if line > code.co_firstlineno]
    return later[0] if later else code.co_firstlineno


def _breakpoints(module: ModuleType, mode: str) -> list[tuple[str, int, str | None]]:
    if mode == "continue":
        import json.tool

        never_called = json.tool.main.__code__
        return [
            (module.__file__, 1, None),
            (never_called.co_filename, never_called.co_firstlineno, None),
        ]
    return [(code.co_filename, _first_body_line(code), "False") for code in _hot_codes(module)]


def _debugger_hooks(module: ModuleType, mode: str, debugger: str) -> runner.Hooks:
    """(setup, teardown): enter the debugger at the caller's next line and type ``c``."""
    if debugger == "ferrotrace":
        import ferrotrace
        import ferrotrace.debugger

        ferrotrace.install()
        cls = ferrotrace.debugger.Pdb
    else:
        import pdb

        cls = getattr(pdb, "_ferrotrace_stock_Pdb", pdb.Pdb)
    state = {}

    def setup() -> None:
        import bdb

        bdb.Breakpoint.clearBreakpoints()
        dbg = cls(stdin=io.StringIO("c\n"), stdout=io.StringIO(), readrc=False, nosigint=True)
        for filename, line, cond in _breakpoints(module, mode):
            error = dbg.set_break(filename, line, cond=cond)
            if error:
                raise RuntimeError(error)
        state["debugger"] = dbg
        dbg.set_trace(sys._getframe(1))  # stops at the caller's next line: reads "c"

    def teardown() -> None:
        dbg = state.pop("debugger")
        dbg.set_quit()
        sys.settrace(None)
        frame = sys._getframe(1)
        while frame is not None:
            frame.f_trace = None
            frame = frame.f_back

    return setup, teardown


def worker(config: dict) -> dict:
    label = f"{platform.python_implementation()} {platform.python_version()}"
    results: dict[str, dict] = {}
    for name in config["workloads"]:
        try:
            module = importlib.import_module(f"{runner.WORKLOADS_PACKAGE}.{name}")
            hooks = {runner.BASELINE: (lambda: None, lambda: None)}
            for mode in MODES:
                for debugger in DEBUGGERS:
                    hooks[f"{debugger} {mode}"] = _debugger_hooks(module, mode, debugger)
            runner.log(f"[{label}] {name}: warm-up + {config['rounds']} rounds")
            results[name] = runner.run_workload(
                module, hooks, config["rounds"], config["scale"], "cpu"
            )
        except Exception:
            results[name] = {"error": traceback.format_exc()}
            runner.log(f"[{label}] {name} failed:\n{results[name]['error']}")
    return {"version": platform.python_version(), "results": results}


def _ratio(result: dict, mode: str) -> float:
    import statistics

    times = result["times"]
    return statistics.median(times[mode]) / statistics.median(times[runner.BASELINE])


def table(report: dict) -> str:
    header = ["workload"]
    for mode in MODES:
        header += [f"pdb {mode}", f"ferrotrace {mode}"]
    header.append("cond share")
    rows, columns = [], {h: [] for h in header[1:]}
    for name, result in report["results"].items():
        if "error" in result or not result.get("checksum_ok"):
            rows.append([name, "failed" if "error" in result else "checksum mismatch"])
            continue
        row = [name]
        for mode in MODES:
            for debugger in DEBUGGERS:
                ratio = _ratio(result, f"{debugger} {mode}")
                columns[f"{debugger} {mode}"].append(ratio)
                row.append(f"{ratio:.2f}x")
        share = (_ratio(result, "ferrotrace cond false") - 1) / (
            _ratio(result, "pdb cond false") - 1
        )
        columns["cond share"].append(share)
        row.append(f"{share:.3f}")
        rows.append(row)
    mean = ["geometric mean"]
    for h in header[1:-1]:
        mean.append(f"{runner.geometric_mean(columns[h]):.2f}x" if columns[h] else "-")
    shares = [max(s, 1e-6) for s in columns["cond share"]]
    mean.append(f"{runner.geometric_mean(shares):.3f}" if shares else "-")
    rows.append(mean)
    return runner.format_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="interpreter(s) to measure")
    parser.add_argument("--workloads", nargs="*", default=runner.available_workloads())
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE)
    parser.add_argument("--json", metavar="FILE", help="also save the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        config = json.loads(Path(args.worker).read_text())
        Path(args.worker_output).write_text(json.dumps(worker(config)))
        return 0
    config = {"workloads": args.workloads, "rounds": args.rounds, "scale": args.scale}
    reports = []
    for python in args.python or [sys.executable]:
        with tempfile.TemporaryDirectory() as tmp:
            config_path, output = Path(tmp, "config.json"), Path(tmp, "out.json")
            config_path.write_text(json.dumps(config))
            command = [python, __file__, "--worker", str(config_path), "--worker-output"]
            done = subprocess.run([*command, str(output)], check=False)
            if done.returncode != 0 or not output.exists():
                print(f"the worker for {python} failed", file=sys.stderr)
                return 1
            reports.append(json.loads(output.read_text()))
    print(f"command: {' '.join(sys.argv)} | {os.cpu_count()} CPUs, CPU time, medians")
    for report in reports:
        print(f"\nPython {report['version']} (scale {args.scale}, {args.rounds} rounds)")
        print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
