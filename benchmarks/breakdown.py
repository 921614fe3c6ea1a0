#!/usr/bin/env python3
"""Where a mode's overhead goes: callgrind instruction counts of one ``run()`` under a mode of
run.py, minus the same untraced, split by where the instructions execute.

    .venv313/bin/python benchmarks/breakdown.py --workload richards \\
        --mode "Tracer on hot function" --mode sys.settrace

For the workload and each mode (run.py's ``MODES``, so exactly what its tables time), four
processes run under ``valgrind --tool=callgrind``: the mode with a counted ``run(scale)``, the
mode without it, and the same two untraced. Every process first runs the workload once under
its mode, uncounted by the subtraction (so one-off costs such as instrumenting code objects
are left out; ``--no-warmup`` keeps them in). For every function, its own instructions (self
cost, callgrind's exclusive ``Ir``) in the counted run are (with call - without call) under
the mode minus the same untraced: what the mode adds to one run. Those are summed by where the
function lives (the ``GROUPS`` below) and the largest functions are listed.

With ``--tool`` instead of ``--mode``, a recorder of whole_process.py: the whole program
(``workload_main.py``, full size) under the recorder against the same under plain python.

    .venv313/bin/python benchmarks/breakdown.py --workload richards \\
        --tool "ferrotrace trace --format perfetto" --tool trace0

``--events N`` divides by the number of events the mode delivered (for instance from
check_hot_events.py at the same ``--scale``) to print instructions per event.
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import BASELINE, MODES, available_workloads, format_table, log
from whole_process import DRIVER, PLAIN, TOOLS

HERE = Path(__file__).resolve().parent
CALLGRIND_OPTIONS = ["--tool=callgrind", "--dump-line=no", "--compress-strings=no"]
CHILD_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}

# argv: benchmarks dir, workload, mode, scale, "warm" or "", "count" or "".
CHILD = """\
import gc, importlib, os, sys
here, name, mode, scale, warm, counted = sys.argv[1:]
sys.path.insert(0, here)
import run as runner
module = importlib.import_module("workloads." + name)
setup, teardown = runner.MODES[mode](module)
if warm:
    gc.collect(); setup(); module.run(float(scale)); teardown()
gc.collect()
setup()
if counted:
    module.run(float(scale))
teardown()
os._exit(0)
"""

# (group, test on "object file", test on "source file:function"), first match wins.
GROUPS = [
    ("trace0 native module (Rust)", lambda obj, fn: "trace0/" in obj),
    ("viztracer (C)", lambda obj, fn: "viztracer/" in obj or "viztracer/" in fn),
    (
        "ferrotrace native module (Rust)",
        lambda obj, fn: "ferrotrace/_native" in obj or "::" in fn or "/rustc/" in fn,
    ),
    ("hunter (Cython)", lambda obj, fn: "/hunter/" in obj or "/hunter/" in fn),
    ("libc (malloc, memcpy, ...)", lambda obj, fn: "libc.so" in obj or "ld-linux" in obj),
    (
        "CPython: sys.monitoring and legacy tracing",
        lambda obj, fn: re.search(r"instrumentation\.c|legacy_tracing\.c|sysmodule\.c:.*trace", fn),
    ),
    (
        "CPython: frames (push, pop, frame objects)",
        lambda obj, fn: re.search(r"frameobject\.c|/frame\.c|pystate\.c:.*Frame", fn),
    ),
    (
        "CPython: str objects (creating, hashing, interning)",
        lambda obj, fn: re.search(r"unicodeobject|pyhash\.c|hashtable\.c", fn),
    ),
    ("CPython: int objects", lambda obj, fn: re.search(r"longobject\.c|longintrepr\.h", fn)),
    ("CPython: dict objects", lambda obj, fn: "dictobject.c" in fn),
    ("CPython: memory (obmalloc, gc)", lambda obj, fn: re.search(r"obmalloc\.c|gc\.c", fn)),
    (
        "CPython: calls and the eval loop",
        lambda obj, fn: re.search(r"ceval\.c|generated_cases|call\.c|methodobject\.c|pycore_", fn),
    ),
    ("CPython: other", lambda obj, fn: True),
]
LINE = re.compile(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*?)(?:\s+\[(.*)\])?$")


def self_costs(callgrind_out: Path) -> dict[tuple[str, str], int]:
    """(object file, file:function) -> exclusive Ir, from callgrind_annotate."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(callgrind_out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs: dict[tuple[str, str], int] = collections.Counter()
    for line in text.splitlines():
        match = LINE.match(line)
        if match and "PROGRAM TOTALS" not in line:
            count, function, obj = match.groups()
            # f'2 is callgrind's name for f called recursively: the same function
            function = re.sub(r"'\d+$", "", function)
            costs[obj or "", function] += int(count.replace(",", ""))
    return costs


def run_process(command: list[str], out: Path) -> dict[tuple[str, str], int]:
    """Self cost per function of ``command`` run under callgrind."""
    command = ["valgrind", *CALLGRIND_OPTIONS, f"--callgrind-out-file={out}", *command]
    completed = subprocess.run(
        command, env={**os.environ, **CHILD_ENV}, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)}: exit {completed.returncode}\n{completed.stderr[-2000:]}"
        )
    return self_costs(out)


def run_cost(python: str, workload: str, mode: str, scale: float, warm: bool, tmp: Path):
    """Per function: the instructions of one counted run() under ``mode``."""
    common = [python, "-c", CHILD, str(HERE), workload, mode, repr(scale), "warm" if warm else ""]
    stem = tmp / re.sub(r"\W+", "_", f"{workload}-{mode}")
    with_call = run_process([*common, "count"], Path(f"{stem}-call.out"))
    without = run_process([*common, ""], Path(f"{stem}-nocall.out"))
    return difference(with_call, without)


def process_cost(python: str, workload: str, tool: str, tmp: Path):
    """Per function: the instructions of the whole program under a tool of whole_process.py."""
    stem = tmp / re.sub(r"\W+", "_", f"{workload}-{tool}")
    prefix, _ = TOOLS[tool](python, stem)
    return run_process([*prefix, str(DRIVER), workload], Path(f"{stem}.out"))


def difference(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)}


def group_of(obj: str, function: str) -> str:
    return next(name for name, test in GROUPS if test(obj, function))


def short(function: str) -> str:
    """'???:ferrotrace::hook::x' -> 'ferrotrace::hook::x', '/.../Python-3.13.5/Python/a.c:f'
    -> 'Python/a.c:f'."""
    name = function.removeprefix("???:")
    return re.sub(r"^.*/Python-[\d.]+/", "", name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this)")
    parser.add_argument("--workload", required=True, choices=available_workloads())
    parser.add_argument(
        "--mode", action="append", default=[], choices=[m for m in MODES if m != BASELINE]
    )
    parser.add_argument(
        "--tool",
        action="append",
        default=[],
        choices=[t for t in TOOLS if t != PLAIN],
        help="instead of a mode, a recorder of whole_process.py: the whole program under it "
        "against plain python (start-up, run(), writing the trace, exit), full size",
    )
    parser.add_argument("--scale", type=float, default=0.25, help="run(scale), default 0.25")
    parser.add_argument(
        "--no-warmup", action="store_true", help="count the first run under the mode"
    )
    parser.add_argument("--events", type=int, action="append", help="events delivered, per --mode")
    parser.add_argument(
        "--top", type=int, default=12, help="functions listed per mode (default 12)"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        parser.error("needs valgrind and callgrind_annotate")
    if bool(args.mode) == bool(args.tool):
        parser.error("give --mode (repeatable) or --tool (repeatable)")
    labels = args.mode or args.tool
    if args.events and len(args.events) != len(labels):
        parser.error("give --events once per --mode or --tool, in the same order")

    warm = not args.no_warmup
    added = {}
    with tempfile.TemporaryDirectory(prefix="ferrotrace-breakdown-") as tmp:
        log(f"{args.workload}: untraced")
        if args.mode:
            base = run_cost(args.python, args.workload, BASELINE, args.scale, warm, Path(tmp))
        else:
            base = process_cost(args.python, args.workload, PLAIN, Path(tmp))
        for label in labels:
            log(f"{args.workload}: {label}")
            if args.mode:
                cost = run_cost(args.python, args.workload, label, args.scale, warm, Path(tmp))
            else:
                cost = process_cost(args.python, args.workload, label, Path(tmp))
            added[label] = difference(cost, base)

    untraced_total = sum(base.values())
    if args.mode:
        what = f"run({args.scale:g}), {'after a warm-up run' if warm else 'first run'}"
        print(f"{args.workload}, {what}, {args.python}: instructions added to one run")
        print(
            f"untraced run(): {untraced_total / 1e6:,.1f}M instructions (callgrind Ir, self cost)"
        )
    else:
        print(f"{args.workload} as a program, {args.python}: instructions added to the process")
        print(f"plain python: {untraced_total / 1e6:,.1f}M instructions (callgrind Ir, self cost)")
    for i, mode in enumerate(labels):
        events = args.events[i] if args.events else None
        by_group: dict[str, int] = collections.Counter()
        for (obj, function), n in added[mode].items():
            by_group[group_of(obj, function)] += n
        total = sum(by_group.values())
        print(f"\n{mode}: +{total / 1e6:,.1f}M ({(untraced_total + total) / untraced_total:.2f}x)")
        header = ["where", "added", "share"] + (["per event"] if events else [])
        rows = []
        for name, _ in GROUPS:
            n = by_group.get(name, 0)
            if abs(n) < untraced_total * 0.001:  # under 0.1 % of the untraced run
                continue
            row = [name, f"{n / 1e6:,.2f}M", f"{n / total:.0%}"]
            rows.append(row + ([f"{n / events:,.0f}"] if events else []))
        rows.append(
            ["total", f"{total / 1e6:,.2f}M", "100%"]
            + ([f"{total / events:,.0f}"] if events else [])
        )
        print(format_table(header, rows))
        top = sorted(added[mode].items(), key=lambda kv: -kv[1])[: args.top]
        print("largest functions:")
        for (_, function), n in top:
            tail = f", {n / events:,.0f} per event" if events else ""
            print(f"  {n / 1e6:9,.2f}M  {short(function)}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
