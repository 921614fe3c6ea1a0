#!/usr/bin/env python3
"""Instructions executed by a workload's ``run()`` under each trace mode, counted by callgrind.

The deterministic complement of ``run.py``: for every interpreter (``--python``) and workload,
each mode (untraced, ``sys.settrace(noop)``, ``ferrotrace.settrace(noop)``) runs the workload
once in a fresh process under ``valgrind --tool=callgrind``. The same binary on the same input
executes the same instructions whatever the load of the machine, so one run per mode settles
differences far below the noise of wall time.

    .venv/bin/python benchmarks/instructions.py --python .venv/bin/python \\
        --python .venv313/bin/python

Only ``run()`` is counted, not start-up and imports, by subtraction: a *measured* process
imports every selected workload, installs the mode's trace function, calls ``run()``, removes
the trace function and exits with ``os._exit``; its *baseline* process does exactly the same
but skips the call. run() = measured - baseline. Both have the same arguments apart from the
workload's name and the same environment (``PYTHONHASHSEED=0``, no bytecode writing), so their
start-up is the same instruction for instruction; one baseline per interpreter and mode serves
every workload (with ``--warmup``, one per workload). Callgrind's own
``--toggle-collect``/``callgrind_control`` would need a C function that marks the call, or a
race with a running process; the subtraction needs neither and works with any build.

Valgrind is some 50 times slower than native, so the workloads run at ``--scale`` (default
0.5) of their normal size: ``run(scale)``, see ``workloads/__init__.py``. Processes run
``--jobs`` (default 2) at a time. ferrotrace is imported from a copy of its installed package
taken at the start (its native module's fingerprint is printed), so that a reinstall while
this runs cannot mix two builds in one table.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import checked_workloads, format_table  # the same layout and checks as run.py

HERE = Path(__file__).resolve().parent
BASELINE = "untraced"
MODES = [BASELINE, "sys.settrace", "ferrotrace.settrace"]
# (column title, numerator mode, denominator mode)
RATIOS = [
    ("sys/untraced", "sys.settrace", BASELINE),
    ("ferro/untraced", "ferrotrace.settrace", BASELINE),
    ("ferro/sys", "ferrotrace.settrace", "sys.settrace"),
]
DEFAULT_SCALE = 0.5
DEFAULT_JOBS = 2
CALLGRIND_OPTIONS = ["--tool=callgrind", "--dump-line=no", "--compress-strings=no"]
# Environment of the processes under valgrind: a fixed hash seed (set and dict layouts, hence
# instruction counts, would otherwise change from process to process) and no .pyc writing (a
# process that compiles and writes bytecode would count more than one that reads it).
CHILD_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}

# The program run under valgrind. argv: benchmarks dir, directory holding the snapshot of
# ferrotrace (or ""), workloads to import (comma-separated), workload to warm up or "",
# workload to run or "" (a baseline), mode, scale, output file.
# A measured process and its baseline differ only in the workload to run.
CHILD = """\
import gc, importlib, os, sys
here, snapshot, names, warm, name, mode, scale, output = sys.argv[1:]
scale = float(scale)
sys.path[:0] = [here, snapshot] if snapshot else [here]
modules = {n: importlib.import_module("workloads." + n) for n in names.split(",")}
def noop(frame, event, arg):
    return noop
if mode == "untraced":
    settrace = lambda function: None
elif mode == "sys.settrace":
    settrace = sys.settrace
else:
    import ferrotrace
    if not ferrotrace.__file__.startswith(snapshot):
        sys.exit(f"ferrotrace imported from {ferrotrace.__file__}, not from {snapshot}")
    settrace = ferrotrace.settrace
run = modules[name].run if name else None
if warm:
    gc.collect()
    settrace(noop)
    modules[warm].run(scale)
    settrace(None)
gc.collect()
settrace(noop)
result = run(scale) if run is not None else None
settrace(None)
with open(output, "w") as f:
    f.write(repr(result))
os._exit(0)
"""

PROBE = """\
import importlib, json, platform, sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2].split(","):
    importlib.import_module("workloads." + name)
try:
    import ferrotrace
    ferro, why = ferrotrace.__version__, None
except ImportError as exc:
    ferro, why = None, str(exc)
package = None if ferro is None else str(ferrotrace.__path__[0])
print(json.dumps({
    "ferrotrace_package": package,
    "executable": sys.executable,
    "implementation": platform.python_implementation(),
    "version": platform.python_version(),
    "ferrotrace_version": ferro,
    "ferrotrace_error": why,
}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def available_workloads() -> list[str]:
    return sorted(p.stem for p in (HERE / "workloads").glob("*.py") if not p.stem.startswith("_"))


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def probe(python: str, workloads: list[str]) -> dict:
    """Version information and ferrotrace availability; also imports every workload natively,
    so that any .pyc the interpreter writes exists before the counted processes start."""
    completed = subprocess.run(
        [python, "-c", PROBE, str(HERE), ",".join(workloads)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{python} failed: {completed.stderr.strip()}")
    return json.loads(completed.stdout)


def snapshot_ferrotrace(report: dict, tmp: Path) -> None:
    """Copy the interpreter's ferrotrace package for the counted processes to import: the
    project rebuilds and reinstalls it often, and all the counts of one run must come from one
    build. Records the copy's directory and a fingerprint of its native module(s)."""
    report["snapshot"] = ""
    report["ferrotrace_build"] = None
    if not report["ferrotrace_package"]:
        return
    site = tmp / f"ferrotrace-{report['index']}"
    copy = shutil.copytree(
        report["ferrotrace_package"],
        site / "ferrotrace",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    natives = sorted(p for p in Path(copy).iterdir() if p.suffix in (".so", ".pyd"))
    if natives:
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in natives)).hexdigest()[:12]
        stamp = datetime.datetime.fromtimestamp(
            max(p.stat().st_mtime for p in natives), datetime.UTC
        )
        report["ferrotrace_build"] = (
            f"native module sha256 {digest}, installed {stamp:%Y-%m-%d %H:%M:%S} UTC"
        )
    report["snapshot"] = str(site)


def read_total(callgrind_out: Path) -> int:
    total = None
    for line in callgrind_out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    if total is None:
        raise RuntimeError(f"no instruction total in {callgrind_out}")
    return total


def count(job: dict, valgrind: str, tmp: Path) -> dict:
    """Run one process under callgrind: its instruction count and the repr of run()'s result."""
    stem = tmp / job["id"]
    command = [
        valgrind,
        *CALLGRIND_OPTIONS,
        f"--callgrind-out-file={stem}.callgrind",
        job["python"],
        "-c",
        CHILD,
        str(HERE),
        job["snapshot"],
        ",".join(job["workloads"]),
        job["warm"],
        job["workload"],
        job["mode"],
        repr(job["scale"]),
        f"{stem}.result",
    ]
    started = time.monotonic()
    completed = subprocess.run(
        command,
        env={**os.environ, **CHILD_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"exit {completed.returncode}\n{completed.stderr[-3000:]}")
    return {
        "instructions": read_total(Path(f"{stem}.callgrind")),
        "result": Path(f"{stem}.result").read_text(),
        "seconds": elapsed,
    }


# --------------------------------------------------------------------------------------------
# Planning and running the processes


def plan(reports: list[dict], workloads: list[str], scale: float, warmup: bool) -> list[dict]:
    """Every process to run, longest first (traced, then untraced, then baselines), so that the
    ``--jobs`` slots end at about the same time."""
    measured, baselines = [], []
    for index, report in enumerate(reports):
        for mode in report["modes"]:
            common = {
                "python": report["python_argument"],
                "snapshot": report["snapshot"],
                "index": index,
                "mode": mode,
                "workloads": workloads,
                "scale": scale,
            }
            for name in workloads:
                warm = name if warmup else ""
                measured.append({**common, "workload": name, "warm": warm})
                if warmup:
                    baselines.append({**common, "workload": "", "warm": warm})
            if not warmup:
                baselines.append({**common, "workload": "", "warm": ""})
    measured.sort(key=lambda job: job["mode"] == BASELINE)
    jobs = measured + baselines
    for job in jobs:
        job["id"] = f"{job['index']}-{job['mode']}-{job['warm'] or '_'}-{job['workload'] or '_'}"
    return jobs


def run_jobs(
    jobs: list[dict], valgrind: str, parallel: int, reports: list[dict], tmp: Path
) -> None:
    """Run every job, ``parallel`` at a time; the outcome goes into ``job["outcome"]``."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(count, job, valgrind, tmp): job for job in jobs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            job = futures[future]
            what = job["workload"] or f"baseline {job['warm']}".rstrip()
            label = f"[{done}/{len(jobs)}] {reports[job['index']]['version']} {job['mode']} {what}"
            try:
                job["outcome"] = future.result()
            except Exception as exc:  # reported in the table, the others still run
                job["outcome"] = {"error": str(exc)}
                log(f"{label}: FAILED {exc}")
                continue
            log(
                f"{label}: {job['outcome']['instructions']:,} instructions, "
                f"{job['outcome']['seconds']:.0f} s"
            )


def collect(report: dict, jobs: list[dict]) -> None:
    """Fill ``report["results"]``: per workload, the instructions of run() per mode (measured
    minus baseline), the results, and errors."""
    mine = [job for job in jobs if job["index"] == report["index"]]
    baselines = {(job["mode"], job["warm"]): job["outcome"] for job in mine if not job["workload"]}
    report["baselines"] = {
        mode: outcome.get("instructions") for (mode, warm), outcome in baselines.items() if not warm
    }
    results: dict[str, dict] = {}
    for job in mine:
        if not job["workload"]:
            continue
        entry = results.setdefault(
            job["workload"], {"instructions": {}, "results": {}, "errors": []}
        )
        outcome = job["outcome"]
        baseline = baselines[job["mode"], job["warm"]]
        if "error" in outcome or "error" in baseline:
            entry["errors"].append(f"{job['mode']}: {outcome.get('error') or baseline['error']}")
            continue
        difference = outcome["instructions"] - baseline["instructions"]
        if difference <= 0:
            entry["errors"].append(f"{job['mode']}: measured {difference:,} instructions")
            continue
        entry["instructions"][job["mode"]] = difference
        entry["results"][job["mode"]] = outcome["result"]
    for entry in results.values():
        entry["checksum_ok"] = len(set(entry["results"].values())) <= 1
    report["results"] = results


# --------------------------------------------------------------------------------------------
# Tables


def millions(count: int) -> str:
    return f"{count / 1e6:,.1f}M"


def instruction_table(report: dict, workloads: list[str]) -> tuple[list[str], list[list[str]]]:
    modes = report["modes"]
    ratios = [r for r in RATIOS if r[1] in modes and r[2] in modes]
    header = ["workload", *modes, *(title for title, _, _ in ratios)]
    rows = []
    columns: list[list[float]] = [[] for _ in ratios]
    for name in workloads:
        entry = report["results"][name]
        if entry["errors"]:
            rows.append([name, "FAILED: " + "; ".join(e.splitlines()[0] for e in entry["errors"])])
            continue
        counts = entry["instructions"]
        row = [name if entry["checksum_ok"] else f"{name} (CHECKSUM MISMATCH)"]
        row += [millions(counts[mode]) for mode in modes]
        for i, (_, numerator, denominator) in enumerate(ratios):
            ratio = counts[numerator] / counts[denominator]
            columns[i].append(ratio)
            row.append(f"{ratio:.4f}" if denominator != BASELINE else f"{ratio:.3f}x")
        rows.append(row)
    if rows and all(len(row) == len(header) for row in rows):
        mean = ["geometric mean"] + [""] * len(modes)
        for (_, _, denominator), column in zip(ratios, columns, strict=True):
            value = geometric_mean(column)
            mean.append(f"{value:.4f}" if denominator != BASELINE else f"{value:.3f}x")
        rows.append(mean)
    return header, rows


def describe(report: dict) -> str:
    ferro = report["ferrotrace_version"] or "not importable"
    lines = [
        f"{report['implementation']} {report['version']} ({report['executable']}), "
        f"ferrotrace {ferro}"
    ]
    if report["ferrotrace_build"]:
        lines.append(f"ferrotrace {report['ferrotrace_build']}")
    if report["baselines"]:
        subtracted = ", ".join(
            f"{mode} {millions(n)}" if n is not None else f"{mode} FAILED"
            for mode, n in report["baselines"].items()
        )
        lines.append(f"start-up and imports, subtracted: {subtracted}")
    if report["ferrotrace_error"]:
        lines.append(f"mode 'ferrotrace.settrace' skipped: {report['ferrotrace_error']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Instructions executed by each workload's run() untraced, under "
        "sys.settrace and under ferrotrace.settrace, counted by valgrind's callgrind "
        "(deterministic, unlike wall time).",
    )
    parser.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        help="interpreter to measure (repeatable; default: the one running this script)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help="only this workload (repeatable; default: all of benchmarks/workloads)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        help=f"fraction of each workload's normal size, passed to run(scale) "
        f"(default {DEFAULT_SCALE}; valgrind is some 50 times slower than native)",
    )
    parser.add_argument(
        "--warmup",
        action="store_true",
        help="run the workload once under the mode before the counted run (in the baseline "
        "process too, so it is not counted); doubles the time",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"processes under valgrind at a time (default {DEFAULT_JOBS})",
    )
    parser.add_argument("--valgrind", default="valgrind", help="valgrind executable")
    parser.add_argument("--json", metavar="FILE", help="also save the raw counts here")
    parser.add_argument("--list", action="store_true", help="list workloads and modes, then exit")
    args = parser.parse_args(argv)
    args.workload = list(dict.fromkeys(checked_workloads(parser, args.workload)))
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.python = args.python or [sys.executable]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("workloads:", " ".join(available_workloads()))
        print("modes:", " ".join(MODES))
        return 0
    valgrind = shutil.which(args.valgrind)
    if valgrind is None:
        print(f"valgrind not found ({args.valgrind!r})", file=sys.stderr)
        return 1
    valgrind_version = subprocess.run(
        [valgrind, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    started = datetime.datetime.now().astimezone()
    clock = time.monotonic()

    reports = []
    ok = True
    for python in args.python:
        try:
            report = probe(python, args.workload)
        except (OSError, RuntimeError) as exc:
            print(f"cannot use {python}: {exc}", file=sys.stderr)
            ok = False
            continue
        report["python_argument"] = python
        report["index"] = len(reports)
        report["modes"] = [
            m for m in MODES if m != "ferrotrace.settrace" or report["ferrotrace_version"]
        ]
        reports.append(report)

    with tempfile.TemporaryDirectory(prefix="ferrotrace-callgrind-") as tmp:
        for report in reports:
            snapshot_ferrotrace(report, Path(tmp))
        jobs = plan(reports, args.workload, args.scale, args.warmup)
        log(f"{len(jobs)} processes under callgrind, {args.jobs} at a time")
        run_jobs(jobs, valgrind, args.jobs, reports, Path(tmp))
    for report in reports:
        collect(report, jobs)
        for entry in report["results"].values():
            ok = ok and not entry["errors"] and entry["checksum_ok"]

    print()
    print(
        f"{started:%Y-%m-%d %H:%M %Z} | {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs | {valgrind_version} | command: {' '.join(sys.argv)}"
    )
    print(
        f"Instructions of one run() call (callgrind Ir; process with the call minus the same "
        f"process without it), scale {args.scale:g}, "
        f"{'after a warm-up run' if args.warmup else 'no warm-up'}; "
        "ratios of those counts."
    )
    for report in reports:
        print()
        print(describe(report))
        print(format_table(*instruction_table(report, args.workload)))
    print(f"\n{len(jobs)} processes in {time.monotonic() - clock:.0f} s", file=sys.stderr)

    if args.json:
        payload = {
            "started": started.isoformat(),
            "argv": sys.argv,
            "valgrind": valgrind_version,
            "scale": args.scale,
            "warmup": args.warmup,
            "reports": reports,
            "processes": jobs,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
