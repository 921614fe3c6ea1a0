#!/usr/bin/env python3
"""Whole-process overhead of recording every call: a workload run as a program under a
recorder, against the same program under plain ``python``.

For every interpreter (``--python``) and workload, each tool runs ``workload_main.py NAME`` as
a subprocess: once each as a warm-up, then ``--rounds`` interleaved rounds in which every tool
runs once, the order rotating from round to round. A tool's time is the median of its runs
(of the whole subprocess: start-up, the traced run, writing the trace file, exit), as CPU time
of the child (all threads) and as wall time; its ratio is that median over the median of plain
``python``. Only ratios are printed.

    .venv/bin/python benchmarks/whole_process.py --python .venv/bin/python \\
        --python .venv313/bin/python

Tools (a tool that is missing in an interpreter is reported unsupported, not failed):

- ``ferrotrace trace``: ``python -m ferrotrace trace --format perfetto --file '**' -o FILE``:
  every call of every Python function (``--file '**'`` selects all code, the standard library
  included, as the other two record; the default would be only the user's own code), all kept
  in native buffers, Perfetto protobuf;
- ``viztracer``: ``python -m viztracer --quiet --ignore_c_function --tracer_entries N -o
  FILE.json``: Python calls only (as the other two record) and a ring buffer large enough that
  no call of these workloads is dropped (its default keeps only the last 1,000,000);
- ``trace0``: ``python -m trace0 run --no-trace-subprocesses --output FILE.pb``, a Rust
  ``sys.monitoring`` recorder writing Perfetto protobuf (3.13+ only).

Each run's checksum line must equal plain ``python``'s, and its trace file must exist and not
be empty; otherwise the exit status is 1. A trace file is removed before each run, unless
``--over-existing``: then every run writes over the file its tool's previous run wrote, as a
user re-running a command does (the warm-up run writes the first).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from run import (
    checked_workloads,
    format_table,
    geometric_mean,
    load_average,
    log,
    selected,
)

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "workload_main.py"
PLAIN = "python"
DEFAULT_ROUNDS = 5
# Both are measured in every run: CPU time of the child process (all its threads, from
# getrusage; what the machine spends, and less disturbed by a busy machine) and wall time (what
# a user waits; a recorder's background thread can overlap with the program here).
CLOCKS = {"cpu": "CPU time (user + system, all threads)", "wall": "wall time"}
# viztracer's ring buffer, in entries (one per call): above the calls of every workload here
# (deltablue, the largest, makes about 0.96 million), so nothing is dropped.
VIZTRACER_ENTRIES = 5_000_000


class ToolUnavailable(Exception):
    """The tool cannot run under this interpreter; the message says why."""


# A tool: (python, output file stem) -> the command up to the script, and the trace file it writes.
Command = Callable[[str, Path], tuple[list[str], Path | None]]


def _probe(python: str, code: str) -> bool:
    completed = subprocess.run([python, "-c", code], capture_output=True, check=False)
    return completed.returncode == 0


def _plain(python: str, stem: Path) -> tuple[list[str], Path | None]:
    return [python], None


def _ferrotrace(python: str, stem: Path) -> tuple[list[str], Path | None]:
    out = stem.with_suffix(".perfetto-trace")
    command = [python, "-m", "ferrotrace", "trace", "--format", "perfetto", "--file", "**"]
    return [*command, "-o", str(out)], out


def _viztracer(python: str, stem: Path) -> tuple[list[str], Path | None]:
    out = stem.with_suffix(".json")
    command = [python, "-m", "viztracer", "--quiet", "--ignore_c_function"]
    return command + ["--tracer_entries", str(VIZTRACER_ENTRIES), "-o", str(out)], out


def _trace0(python: str, stem: Path) -> tuple[list[str], Path | None]:
    out = stem.with_suffix(".pb")
    return [python, "-m", "trace0", "run", "--no-trace-subprocesses", "--output", str(out)], out


TOOLS: dict[str, Command] = {
    PLAIN: _plain,
    "ferrotrace trace --format perfetto": _ferrotrace,
    "viztracer": _viztracer,
    "trace0": _trace0,
}

# How to tell whether a tool exists in an interpreter (exit status 0 = it does).
PROBES = {
    "ferrotrace trace --format perfetto": (
        "import subprocess, sys; "
        "sys.exit(subprocess.run([sys.executable, '-m', 'ferrotrace', 'trace', '--help'], "
        "capture_output=True).returncode)"
    ),
    "viztracer": "import viztracer",
    "trace0": "import trace0",
}
WHY_MISSING = {
    "ferrotrace trace --format perfetto": "this ferrotrace has no `trace` command yet",
    "viztracer": "viztracer is not installed (pip install -r benchmarks/requirements.txt)",
    "trace0": "trace0 is not installed here (it is for Python 3.13+ only)",
}


def run_once(
    python: str, tool: str, workload: str, tmp: Path, over_existing: bool = False
) -> tuple[dict, str, int | None]:
    """One run: ({clock: seconds}, checksum line, size of the trace file or None). With
    ``over_existing`` the tool's trace file of its previous run is left in place, so that this
    run writes over it (as re-running a command does)."""
    prefix, out = TOOLS[tool](python, tmp / f"{workload}-trace")
    if out is not None and out.exists() and not over_existing:
        out.unlink()
    command = [*prefix, str(DRIVER), workload]
    cpu = children_cpu_time()
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = {"wall": time.perf_counter() - start, "cpu": children_cpu_time() - cpu}
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-2000:]}"
        )
    checksums = [ln for ln in completed.stdout.splitlines() if ln.startswith("checksum: ")]
    size = None
    if out is not None:
        size = out.stat().st_size if out.exists() else 0
        if out.exists() and not over_existing:
            out.unlink()
    return elapsed, (checksums[-1] if checksums else "no checksum line"), size


def children_cpu_time() -> float:
    """CPU time (user + system) of every child process waited for so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_workload(
    python: str, tools: list[str], workload: str, rounds: int, over_existing: bool = False
) -> dict:
    times: dict[str, dict[str, list[float]]] = {c: {tool: [] for tool in tools} for c in CLOCKS}
    checksums: dict[str, set[str]] = {tool: set() for tool in tools}
    sizes: dict[str, list[int | None]] = {tool: [] for tool in tools}
    with tempfile.TemporaryDirectory(prefix="ferrotrace-bench-") as tmp:
        for tool in tools:  # warm-up: page cache, .pyc files
            _, checksum, size = run_once(python, tool, workload, Path(tmp), over_existing)
            checksums[tool].add(checksum)
            sizes[tool].append(size)
        for r in range(rounds):
            for tool in tools[r % len(tools) :] + tools[: r % len(tools)]:
                elapsed, checksum, size = run_once(python, tool, workload, Path(tmp), over_existing)
                for c in CLOCKS:
                    times[c][tool].append(elapsed[c])
                checksums[tool].add(checksum)
                sizes[tool].append(size)
    distinct = set().union(*checksums.values())
    empty = [t for t in tools if any(s == 0 for s in sizes[t])]
    return {
        "times": times,
        "checksums": {t: sorted(c) for t, c in checksums.items()},
        "trace_file_bytes": sizes,
        "ok": len(distinct) == 1 and not empty,
        "problem": None
        if len(distinct) == 1 and not empty
        else f"checksums {sorted(distinct)}, empty trace files from {empty}",
    }


def interpreter_info(python: str) -> dict:
    code = (
        "import json, platform, sys; print(json.dumps({'executable': sys.executable, "
        "'implementation': platform.python_implementation(), "
        "'version': platform.python_version()}))"
    )
    completed = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


def measure_interpreter(
    python: str, tools: list[str], workloads: list[str], rounds: int, over_existing: bool = False
) -> dict:
    info = interpreter_info(python)
    label = f"{info['implementation']} {info['version']}"
    unavailable = {
        t: WHY_MISSING[t] for t in tools if t in PROBES and not _probe(python, PROBES[t])
    }
    for tool, why in unavailable.items():
        log(f"[{label}] {tool}: unsupported ({why})")
    measured = [t for t in tools if t not in unavailable]
    load_before = load_average()
    results = {}
    for workload in workloads:
        log(f"[{label}] {workload}: warm-up + {rounds} rounds of {', '.join(measured)}")
        try:
            results[workload] = measure_workload(python, measured, workload, rounds, over_existing)
        except RuntimeError as exc:
            results[workload] = {"error": str(exc), "ok": False}
            log(f"[{label}] {workload} failed: {exc}")
            continue
        if not results[workload]["ok"]:
            log(f"[{label}] {workload}: {results[workload]['problem']}")
    return {
        **info,
        "python_argument": python,
        "rounds": rounds,
        "tools": tools,
        "unavailable": unavailable,
        "load_average": [load_before, load_average()],
        "results": results,
    }


def ratio_table(report: dict, clock: str) -> tuple[list[str], list[list[str]]]:
    tools = [t for t in report["tools"] if t != PLAIN]
    header = ["workload", *tools]
    columns: dict[str, list[float]] = {t: [] for t in tools}
    rows = []
    for workload, result in report["results"].items():
        row = [workload if result["ok"] else f"{workload} (FAILED, see log)"]
        for tool in tools:
            if tool in report["unavailable"]:
                row.append("unsupported")
            elif "error" in result:
                row.append("")
            else:
                times = result["times"][clock]
                ratio = statistics.median(times[tool]) / statistics.median(times[PLAIN])
                columns[tool].append(ratio)
                row.append(f"{ratio:.2f}x")
        rows.append(row)
    if rows:
        mean = ["geometric mean"]
        for tool in tools:
            if tool in report["unavailable"]:
                mean.append("unsupported")
            else:
                ok = len(columns[tool]) == len(rows)
                mean.append(f"{geometric_mean(columns[tool]):.2f}x" if ok else "")
        rows.append(mean)
    return header, rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Whole-process overhead ratios of recording every call (recorder / plain "
        "python, medians of interleaved subprocess runs)."
    )
    parser.add_argument("--python", action="append", metavar="PATH", help="repeatable")
    parser.add_argument("--workload", action="append", metavar="NAME", help="repeatable")
    parser.add_argument(
        "--tools",
        action="append",
        metavar="TOOL[,TOOL...]",
        help=f"recorders to measure (default: all; plain python always). Known: {', '.join(TOOLS)}",
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"default {DEFAULT_ROUNDS}"
    )
    parser.add_argument(
        "--over-existing",
        action="store_true",
        help="leave each tool's trace file of its previous run in place, so that every run "
        "writes over an existing file (as re-running a command does)",
    )
    parser.add_argument("--json", metavar="FILE", help="also save the raw results here")
    args = parser.parse_args(argv)
    args.workload = checked_workloads(parser, args.workload)
    args.tools = selected(parser, args.tools, list(TOOLS), "tool", PLAIN)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.python = args.python or [sys.executable]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()
    reports = [
        measure_interpreter(p, args.tools, args.workload, args.rounds, args.over_existing)
        for p in args.python
    ]
    print()
    print(
        f"{started:%Y-%m-%d %H:%M %Z} | {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs | command: {' '.join(sys.argv)}"
    )
    print(
        "Whole-process ratio = median time of the program under the recorder / median under "
        "plain python (start-up, run, writing the trace, exit), interleaved runs."
    )
    if args.over_existing:
        print("Every traced run writes over the trace file its tool's previous run wrote.")
    for report in reports:
        print()
        print(f"{report['implementation']} {report['version']} ({report['executable']}), ", end="")
        load = "/".join("?" if v is None else f"{v:.2f}" for v in report["load_average"])
        print(f"{report['rounds']} interleaved rounds, 1-minute load average before/after {load}")
        for tool, why in report["unavailable"].items():
            print(f"{tool}: unsupported ({why})")
        for clock, what in CLOCKS.items():
            print(f"\n{what}:")
            print(format_table(*ratio_table(report, clock)))
    if args.json:
        payload = {"started": started.isoformat(), "argv": sys.argv, "reports": reports}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if all(r["ok"] for rep in reports for r in rep["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
