#!/usr/bin/env python3
"""Do the hot-function rows of run.py compare like with like? Count the events each one sees.

For every workload, ``run(scale)`` is executed three times with the same query, the
workload's ``HOT_FUNCTION``, and the events delivered are counted per kind:

- ``sys.settrace`` restricted to that function's frames (the global function returns the
  local one only for them): what the query should deliver;
- ``ferrotrace.Tracer(callback, functions=[HOT_FUNCTION])``, the row "Tracer on hot function";
- ``hunter.Q(function=HOT_FUNCTION, action=...)`` on ``hunter.Tracer``, the row "hunter on hot
  function".

Counting is kept out of run.py's timed runs, whose callbacks do nothing. The exit status is 1 if
the counts differ (a tool that is unsupported or not installed here is reported, not failed).

    .venv/bin/python benchmarks/check_hot_events.py
"""

import argparse
import importlib
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import available_workloads, format_table  # noqa: E402

KINDS = ("call", "line", "return", "exception", "opcode")


def with_settrace(run, function: str, scale: float) -> Counter:
    counts: Counter = Counter()

    def local(frame, event, arg):
        counts[event] += 1
        return local

    def global_function(frame, event, arg):
        if frame.f_code.co_name != function:
            return None
        return local(frame, event, arg)

    sys.settrace(global_function)
    try:
        run(scale)
    finally:
        sys.settrace(None)
    return counts


def with_tracer(run, function: str, scale: float) -> Counter | str:
    try:
        import ferrotrace
    except ImportError as exc:
        return f"ferrotrace not importable ({exc})"
    counts: Counter = Counter()

    def callback(frame, event, arg):
        counts[event] += 1
        return callback

    tracer = ferrotrace.Tracer(callback, functions=[function])
    try:
        tracer.start()
    except NotImplementedError as exc:
        return f"unsupported: {exc}"
    try:
        run(scale)
    finally:
        tracer.stop()
    return counts


def with_hunter(run, function: str, scale: float) -> Counter | str:
    try:
        import hunter
    except ImportError:
        return "hunter not installed (pip install -r benchmarks/requirements.txt)"
    counts: Counter = Counter()

    def action(event):
        counts[event.kind] += 1

    tracer = hunter.Tracer(threading_support=False)
    tracer.trace(hunter.Q(function=function, action=action))
    try:
        run(scale)
    finally:
        tracer.stop()
    return counts


def describe(counts: Counter | str) -> str:
    if isinstance(counts, str):
        return counts
    return " ".join(f"{kind}={counts[kind]}" for kind in KINDS if counts[kind])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", metavar="NAME", help="repeatable")
    parser.add_argument(
        "--scale", type=float, default=0.25, help="fraction of each workload (default 0.25)"
    )
    args = parser.parse_args(argv)
    workloads = args.workload or available_workloads()

    rows, notes, ok = [], {}, True
    for name in workloads:
        module = importlib.import_module(f"workloads.{name}")
        function = module.HOT_FUNCTION
        expected = with_settrace(module.run, function, args.scale)
        verdicts = []
        row = [name, function, describe(expected)]
        for counts in (
            with_tracer(module.run, function, args.scale),
            with_hunter(module.run, function, args.scale),
        ):
            if isinstance(counts, str):
                verdict, _, why = counts.partition(": ")
                verdicts.append(verdict if why else "unavailable")
                notes[why or counts] = None
            elif counts == expected:
                verdicts.append("same")
            else:
                verdicts.append(describe(counts))
                ok = False
        rows.append(row + verdicts)
        print(f"{name}: done", file=sys.stderr, flush=True)
    header = ["workload", "HOT_FUNCTION", "sys.settrace, its frames only", "Tracer", "hunter"]
    print(f"Python {sys.version.split()[0]}, scale {args.scale}")
    print(format_table(header, rows))
    for note in notes:
        print(note)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
