#!/usr/bin/env python3
"""Overhead of trace hooks on CPU workloads: traced time / untraced time.

Every interpreter given with ``--python`` runs in a subprocess of its own (a *worker*: this
same file with ``--worker``). Inside one worker, for each workload: one warm-up run per mode,
then ``--rounds`` rounds in which every mode runs once, the order of the modes rotating from
round to round so that slow drifts of the machine hit every mode alike. A mode's time is the
median over its rounds; its overhead ratio is that median divided by the median of the
untraced runs of the same worker. Only ratios are printed, never an absolute time.

    .venv/bin/python benchmarks/run.py --python .venv/bin/python --python .venv313/bin/python

A mode is an entry of ``MODES``: a name and a factory that returns ``(setup, teardown)``
callables, or raises ``ModeUnavailable`` (for instance when the tool it measures cannot be
imported in that interpreter; the mode is then skipped with a message). New rows go there.
"""

import argparse
import datetime
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
WORKLOADS_PACKAGE = "workloads"
BASELINE = "untraced"
DEFAULT_ROUNDS = 9
# What a run's time is: "cpu", the process's CPU time (time.process_time), or "wall"
# (time.perf_counter). CPU time leaves out the time the process waits for a core, which on a
# shared machine halved the spread of repeated untraced runs (richards, 25 runs at a load
# average of 4.6 on 2 cores: standard deviation 1.5 % of the median against 3.0 % for wall time).
CLOCKS = ("cpu", "wall")
DEFAULT_CLOCK = "cpu"

# --------------------------------------------------------------------------------------------
# Modes (worker side)


class ModeUnavailable(Exception):
    """The mode cannot run in this interpreter; the message says why."""


Hooks = tuple[Callable[[], None], Callable[[], None]]
# A mode's factory gets the workload's module (for its HOT_FUNCTION) and returns the callables
# run just before and just after every timed run of that mode.
Factory = Callable[[ModuleType], Hooks]
INSTALL_HINT = "pip install -r benchmarks/requirements.txt"


def noop(frame, event, arg):
    """The no-op Python trace function every tracing mode installs."""
    return noop


def _import_ferrotrace():
    try:
        import ferrotrace
    except ImportError as exc:
        raise ModeUnavailable(f"ferrotrace is not importable here ({exc})") from None
    return ferrotrace


def _untraced(workload: ModuleType) -> Hooks:
    return (lambda: None), (lambda: None)


def _sys_settrace(workload: ModuleType) -> Hooks:
    return (lambda: sys.settrace(noop)), (lambda: sys.settrace(None))


def _ferrotrace_settrace(workload: ModuleType) -> Hooks:
    ferrotrace = _import_ferrotrace()
    return (lambda: ferrotrace.settrace(noop)), (lambda: ferrotrace.settrace(None))


def _empty_profile_hook(workload: ModuleType) -> Hooks:
    """The floor of any profile-hook tool: an empty C function as the thread's profile hook."""
    native = _import_ferrotrace()._native
    return (
        (lambda: native._set_empty_profile_hook(True)),
        (lambda: native._set_empty_profile_hook(False)),
    )


def _filtered_tracer(**filters) -> Hooks:
    """A started-and-stopped-per-run ``ferrotrace.Tracer`` with the no-op callback."""
    tracer = _import_ferrotrace().Tracer(noop, **filters)
    try:  # the backend may not exist on this interpreter yet
        tracer.start()
    except NotImplementedError as exc:
        raise ModeUnavailable(str(exc)) from None
    tracer.stop()
    return tracer.start, tracer.stop


def _tracer_matching_nothing(workload: ModuleType) -> Hooks:
    """A filtered Tracer whose filter selects no code of the workload."""
    return _filtered_tracer(functions=["ferrotrace_benchmark_matches_nothing"])


def _tracer_on_hot_function(workload: ModuleType) -> Hooks:
    """A filtered Tracer selecting the workload's HOT_FUNCTION, no-op Python callback."""
    return _filtered_tracer(functions=[workload.HOT_FUNCTION])


def _hunter_noop(event) -> None:
    """hunter's action: called with every event the query matches, does nothing."""


def _hunter_on_hot_function(workload: ModuleType) -> Hooks:
    """hunter with the same query as the Tracer row: ``hunter.trace(function=HOT_FUNCTION,
    action=no-op)``, built the way ``hunter.trace`` builds it (minus its atexit hook), on the
    calling thread only as the Tracer row."""
    try:
        import hunter
    except ImportError:
        raise ModeUnavailable(f"hunter is not installed here ({INSTALL_HINT})") from None
    tracer = hunter.Tracer(threading_support=False)
    predicate = hunter.Q(function=workload.HOT_FUNCTION, action=_hunter_noop)
    return (lambda: tracer.trace(predicate)), tracer.stop


# name -> factory. The factory runs once per workload, before any timing of it.
MODES: dict[str, Factory] = {
    BASELINE: _untraced,
    "sys.settrace": _sys_settrace,
    "ferrotrace.settrace": _ferrotrace_settrace,
    "empty C profile hook": _empty_profile_hook,
    "Tracer matching nothing": _tracer_matching_nothing,
    "Tracer on hot function": _tracer_on_hot_function,
    "hunter on hot function": _hunter_on_hot_function,
}

# Modes measured in a worker process of their own (with an untraced baseline of their own):
# claiming and freeing a sys.monitoring tool on every run was seen to slow the settrace rows
# measured after it in the same worker on 3.13 (ferro/sys 1.036 against 0.993 without it), and
# a tool that leaves state behind must not tax the modes after it either.
ISOLATED_MODES = {"Tracer matching nothing", "Tracer on hot function", "hunter on hot function"}

# Isolated modes too slow for the full treatment: their worker runs every workload at this
# scale (its untraced baseline too) and at most this many rounds. hunter costs 40-80x; at full
# size and 9 rounds its worker alone would take about 25 minutes per interpreter, and the noise
# of 3 rounds is small against such a ratio.
SLOW_MODES = {"hunter on hot function": {"scale": 0.25, "rounds": 3}}


@dataclass(frozen=True)
class Comparison:
    """An extra column: numerator against denominator. ``kind`` "time" divides their medians
    (ratio of the overhead ratios); "overhead" divides what they add, (a - 1) / (b - 1)."""

    title: str
    numerator: str
    denominator: str
    kind: str = "time"


@dataclass(frozen=True)
class Table:
    """One printed table: some modes side by side with what a user would use instead."""

    title: str
    modes: list[str]
    comparisons: list[Comparison] = field(default_factory=list)


TABLES = [
    Table(
        "a no-op Python trace function on every event",
        ["sys.settrace", "ferrotrace.settrace"],
        [Comparison("ferro/sys", "ferrotrace.settrace", "sys.settrace")],
    ),
    Table(
        "code that nothing wants: a filter matching nothing",
        ["empty C profile hook", "Tracer matching nothing"],
    ),
    Table(
        "one hot function (HOT_FUNCTION of the workload), no-op Python callback",
        ["Tracer on hot function", "hunter on hot function"],
        [
            Comparison(
                "Tracer/hunter overhead",
                "Tracer on hot function",
                "hunter on hot function",
                kind="overhead",
            )
        ],
    ),
]


# --------------------------------------------------------------------------------------------
# Worker


def available_workloads() -> list[str]:
    return sorted(
        p.stem for p in (HERE / WORKLOADS_PACKAGE).glob("*.py") if not p.stem.startswith("_")
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(run: Callable[[], object], setup: Callable[[], None], teardown: Callable[[], None]):
    """One timed run of the workload under one mode: ({clock: seconds}, checksum as repr)."""
    gc.collect()
    setup()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        result = run()
        elapsed = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    finally:
        teardown()
    if sys.gettrace() is not None:
        raise RuntimeError("a mode's teardown left a trace function installed")
    return elapsed, repr(result)


def run_workload(
    module: ModuleType, hooks: dict[str, Hooks], rounds: int, scale: float, clock: str
) -> dict:
    def run():
        return module.run(scale)

    modes = list(hooks)
    times: dict[str, dict[str, list[float]]] = {c: {mode: [] for mode in modes} for c in CLOCKS}
    checksums: dict[str, set[str]] = {mode: set() for mode in modes}
    orders = []
    for mode in modes:  # warm-up, not timed
        _, checksum = measure(run, *hooks[mode])
        checksums[mode].add(checksum)
    for r in range(rounds):
        order = modes[r % len(modes) :] + modes[: r % len(modes)]
        orders.append(order)
        for mode in order:
            elapsed, checksum = measure(run, *hooks[mode])
            for c in CLOCKS:
                times[c][mode].append(elapsed[c])
            checksums[mode].add(checksum)
    distinct = set().union(*checksums.values())
    return {
        "times": times[clock],  # what the tables use
        "times_by_clock": times,
        "orders": orders,
        "checksum": sorted(distinct)[0] if len(distinct) == 1 else None,
        "checksums": {mode: sorted(values) for mode, values in checksums.items()},
        "checksum_ok": len(distinct) == 1,
    }


def load_average() -> float | None:
    """The 1-minute load average, a hint of how much else the machine was doing."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def workload_hooks(module: ModuleType, modes: list[str], unavailable: dict[str, str], label: str):
    """Each mode's (setup, teardown) for this workload; a mode that cannot run is noted in
    ``unavailable`` once and left out from then on."""
    hooks: dict[str, Hooks] = {}
    for mode in modes:
        if mode in unavailable:
            continue
        try:
            hooks[mode] = MODES[mode](module)
        except ModeUnavailable as exc:
            unavailable[mode] = str(exc)
            log(f"[{label}] skipping mode {mode!r}: {exc}")
    return hooks


def worker(config: dict) -> dict:
    sys.path.insert(0, str(HERE))
    load_before = load_average()
    label = f"{platform.python_implementation()} {platform.python_version()}"
    unavailable: dict[str, str] = {}
    try:
        import ferrotrace

        ferrotrace_version = ferrotrace.__version__
    except ImportError:
        ferrotrace_version = None
    results: dict[str, dict] = {}
    measured: list[str] = []
    for name in config["workloads"]:
        try:
            module = importlib.import_module(f"{WORKLOADS_PACKAGE}.{name}")
            hooks = workload_hooks(module, config["modes"], unavailable, label)
            if set(hooks) == {BASELINE} and len(config["modes"]) > 1:
                continue  # every traced mode of this worker is unavailable
            log(f"[{label}] {name}: warm-up + {config['rounds']} rounds of {', '.join(hooks)}")
            results[name] = run_workload(
                module, hooks, config["rounds"], config["scale"], config["clock"]
            )
        except Exception:
            results[name] = {"error": traceback.format_exc()}
            log(f"[{label}] {name} failed:\n{results[name]['error']}")
            continue
        measured += [mode for mode in hooks if mode not in measured]
        if not results[name]["checksum_ok"]:
            log(f"[{label}] {name}: CHECKSUM MISMATCH {results[name]['checksums']}")
    return {
        "executable": sys.executable,
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "sys_version": sys.version,
        "ferrotrace_version": ferrotrace_version,
        "modes": measured,
        "unavailable": unavailable,
        "rounds": config["rounds"],
        "scale": config["scale"],
        "load_average": [load_before, load_average()],
        "results": results,
    }


def worker_groups(modes: list[str]) -> list[list[str]]:
    """The modes of each worker process: the shared modes together, each isolated mode alone;
    every worker also measures the untraced baseline its ratios are taken against."""
    shared = [m for m in modes if m not in ISOLATED_MODES and m != BASELINE]
    groups = [[BASELINE, *shared]] if shared else []
    return groups + [[BASELINE, m] for m in modes if m in ISOLATED_MODES]


# --------------------------------------------------------------------------------------------
# Parent: run the workers, print the tables


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def mode_results(report: dict) -> dict[str, dict[str, dict]]:
    """workload -> mode -> the result of the worker that measured that mode."""
    found: dict[str, dict[str, dict]] = {}
    for worker_report in report["workers"]:
        for name, result in worker_report["results"].items():
            for mode in result.get("times", {}):
                found.setdefault(name, {})[mode] = result
    return found


def overhead_table(report: dict, table: Table) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one table: workload, one overhead ratio per mode (against the
    untraced runs of the same worker), then the comparisons."""
    modes = [m for m in table.modes if m in report["modes"] or m in report["unavailable"]]
    comparisons = [
        c
        for c in table.comparisons
        if c.numerator in report["modes"] and c.denominator in report["modes"]
    ]
    header = ["workload", *modes]
    for c in comparisons:
        header += [c.title] + ([f"{c.title} per round"] if c.kind == "time" else [])
    by_mode = mode_results(report)
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    rows = []
    for name in report["workloads"]:
        row, ratio_of = [name], {}
        for mode in modes:
            result = by_mode.get(name, {}).get(mode)
            if mode in report["unavailable"]:
                row.append("unsupported")
            elif result is None:
                row.append("FAILED (see log)")
            else:
                times = result["times"]
                ratio_of[mode] = statistics.median(times[mode]) / statistics.median(times[BASELINE])
                ratios[mode].append(ratio_of[mode])
                row.append(
                    f"{ratio_of[mode]:.2f}x"
                    + ("" if result["checksum_ok"] else " (CHECKSUM MISMATCH)")
                )
        for c in comparisons:
            a, b = ratio_of.get(c.numerator), ratio_of.get(c.denominator)
            if c.kind == "overhead":
                row.append(format_overhead_share(a, b))
                continue
            row.append("" if a is None or b is None else f"{a / b:.3f}")
            same_worker = by_mode[name].get(c.numerator) is by_mode[name].get(c.denominator)
            if a is not None and b is not None and same_worker:
                times = by_mode[name][c.numerator]["times"]
                per_round = [
                    x / y for x, y in zip(times[c.numerator], times[c.denominator], strict=True)
                ]
                row.append(f"{min(per_round):.2f}-{max(per_round):.2f}")
            else:
                row.append("")
        rows.append(row)
    if rows:
        means = {m: geometric_mean(v) for m, v in ratios.items() if len(v) == len(rows)}
        mean = ["geometric mean"]
        mean += [
            "unsupported"
            if m in report["unavailable"]
            else f"{means[m]:.2f}x"
            if m in means
            else ""
            for m in modes
        ]
        for c in comparisons:
            a, b = means.get(c.numerator), means.get(c.denominator)
            if c.kind == "overhead":
                mean.append(format_overhead_share(a, b))
            else:
                mean += ["" if a is None or b is None else f"{a / b:.3f}", ""]
        rows.append(mean)
    return header, rows


def format_overhead_share(a: float | None, b: float | None) -> str:
    """What mode a adds to the untraced time as a share of what mode b adds: (a-1)/(b-1)."""
    if a is None or b is None:
        return ""
    if b <= 1.0:
        return "n/a"
    return f"{(a - 1) / (b - 1):.3f}"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows] if i < len(r)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=False)]
        return "  ".join(parts).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for i, row in enumerate(rows):
        if row[0] == "geometric mean" and i == len(rows) - 1:
            out.append(line(["-" * w for w in widths]))
        out.append(line(row))
    return "\n".join(out)


def describe(report: dict) -> str:
    ferro = report["ferrotrace_version"] or "not importable"
    lines = [
        f"{report['implementation']} {report['version']} ({report['executable']}), "
        f"ferrotrace {ferro}, {report['rounds']} interleaved rounds, {report['clock']} time, "
        f"{len(report['workers'])} worker processes",
    ]
    loads = [w.get("load_average", (None, None)) for w in report["workers"]]
    loads = [
        f"{before:.2f}/{after:.2f}"
        for before, after in loads
        if before is not None and after is not None
    ]
    if loads:
        lines.append(f"1-minute load average before/after each worker: {', '.join(loads)}")
    for w in report["workers"]:
        if w["scale"] != 1.0 or w["rounds"] != report["rounds"]:
            modes = ", ".join(repr(m) for m in w["modes"] if m != BASELINE)
            lines.append(f"{modes} (and its baseline): run({w['scale']:g}), {w['rounds']} rounds")
    for mode, why in report["unavailable"].items():
        lines.append(f"mode {mode!r} unsupported: {why}")
    return "\n".join(lines)


def checked_workloads(parser: argparse.ArgumentParser, given: list[str] | None) -> list[str]:
    """The workloads given (repeatable option), or all of them; an unknown name is a usage
    error."""
    known = available_workloads()
    if unknown := [w for w in given or [] if w not in known]:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return given or known


def selected(
    parser: argparse.ArgumentParser,
    given: list[str] | None,
    known: list[str],
    what: str,
    first: str,
) -> list[str]:
    """The names given (repeatable option, comma-separated) or all known ones, checked, without
    repeats, ``first`` (the baseline) always first."""
    names = [n.strip() for group in given or [",".join(known)] for n in group.split(",")]
    if unknown := [n for n in names if n and n not in known]:
        parser.error(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [first] + [n for n in dict.fromkeys(names) if n and n != first]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Overhead ratios (traced / untraced, medians of interleaved runs) of trace "
        "hooks on CPU workloads, one worker process per interpreter.",
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
        "--modes",
        action="append",
        metavar="MODE[,MODE...]",
        help="traced modes to measure (repeatable or comma-separated; default: all). "
        f"{BASELINE!r} is always measured. Known: {', '.join(MODES)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"timed rounds per workload, each running every mode once (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default=DEFAULT_CLOCK,
        help="time of a run: the process's CPU time or wall time (both are saved by --json; "
        f"default {DEFAULT_CLOCK})",
    )
    parser.add_argument("--json", metavar="FILE", help="also save the raw results here")
    parser.add_argument("--list", action="store_true", help="list workloads and modes, then exit")
    parser.add_argument("--worker", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    args.workload = checked_workloads(parser, args.workload)
    args.modes = selected(parser, args.modes, list(MODES), "mode", BASELINE)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.python = args.python or [sys.executable]
    return args


def run_worker(python: str, config: dict) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp, "config.json")
        output_path = Path(tmp, "result.json")
        config_path.write_text(json.dumps(config))
        command = [
            python,
            str(Path(__file__).resolve()),
            "--worker",
            str(config_path),
            "--worker-output",
            str(output_path),
        ]
        try:
            completed = subprocess.run(command, check=False)
        except OSError as exc:
            print(f"cannot run {python}: {exc}", file=sys.stderr)
            return None
        if completed.returncode != 0 or not output_path.exists():
            print(f"the worker for {python} failed (exit {completed.returncode})", file=sys.stderr)
            return None
        return json.loads(output_path.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        config = json.loads(Path(args.worker).read_text())
        Path(args.worker_output).write_text(json.dumps(worker(config)))
        return 0
    if args.list:
        print("workloads:", " ".join(available_workloads()))
        print("modes:", ", ".join(MODES))
        return 0

    started = datetime.datetime.now().astimezone()
    reports = []
    ok = True
    for python in args.python:
        report = run_interpreter(python, args)
        ok = ok and report is not None and report["ok"]
        if report is not None:
            reports.append(report)

    print()
    print(
        f"{started:%Y-%m-%d %H:%M %Z} | {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs | command: {' '.join(sys.argv)}"
    )
    print(
        "Overhead ratio = median traced time / median untraced time, same worker process; "
        "a/b = ratio of two modes' medians; 'overhead' columns = (a - 1) / (b - 1), "
        "the share of b's added time that a adds."
    )
    for report in reports:
        print()
        print(describe(report))
        for table in TABLES:
            header, rows = overhead_table(report, table)
            if len(header) > 1:
                print(f"\n{table.title}:")
                print(format_table(header, rows))

    if args.json:
        payload = {"started": started.isoformat(), "argv": sys.argv, "reports": reports}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if ok else 1


def run_interpreter(python: str, args: argparse.Namespace) -> dict | None:
    """All the worker processes of one interpreter, merged into one report."""
    workers = []
    for modes in worker_groups(args.modes):
        slow = [SLOW_MODES[m] for m in modes if m in SLOW_MODES]
        config = {
            "workloads": args.workload,
            "modes": modes,
            "rounds": min([args.rounds] + [s["rounds"] for s in slow]),
            "scale": min([1.0] + [s["scale"] for s in slow]),
            "clock": args.clock,
        }
        report = run_worker(python, config)
        if report is None:
            return None
        workers.append(report)
    first = workers[0]
    return {
        **{key: first[key] for key in ("executable", "implementation", "version", "sys_version")},
        "ferrotrace_version": first["ferrotrace_version"],
        "python_argument": python,
        "rounds": args.rounds,
        "clock": args.clock,
        "workloads": args.workload,
        "modes": [m for w in workers for m in w["modes"] if m != BASELINE],
        "unavailable": {k: v for w in workers for k, v in w["unavailable"].items()},
        "workers": workers,
        "ok": all(r.get("checksum_ok") for w in workers for r in w["results"].values()),
    }


if __name__ == "__main__":
    sys.exit(main())
