"""ferrotrace demo: trace the bundled example with ferrotrace's native engine, then run the
stdlib's unmodified `trace` module on top of it through ferrotrace.install()."""

import io
import linecache
import os
import sys
import trace
from contextlib import redirect_stdout

import ferrotrace
from ferrotrace import _native

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import inventory  # noqa: E402 - needs the path above

EXAMPLE = inventory.__file__


def show_events():
    depth = 0

    def tracer(frame, event, arg):
        nonlocal depth
        if frame.f_code.co_filename != EXAMPLE:
            return None
        where = f"{frame.f_code.co_name}:{frame.f_lineno}"
        if event == "call":
            print(f"{'  ' * depth}call      {where}")
            depth += 1
        elif event == "line":
            source = linecache.getline(EXAMPLE, frame.f_lineno).strip()
            print(f"{'  ' * depth}line      {where:<14} {source}")
        elif event == "return":
            depth -= 1
            print(f"{'  ' * depth}return    {where:<14} -> {arg!r}")
        elif event == "exception":
            print(f"{'  ' * depth}exception {where:<14} {arg[0].__name__}: {arg[1]}")
        return tracer

    before = _native._dispatch_count()
    with ferrotrace.tracing(tracer):
        result = inventory.main()
    print(f"\nresult: {result}")
    dispatched = _native._dispatch_count() - before
    print(f"events dispatched by ferrotrace's native trampoline: {dispatched}")


def show_stdlib_trace_module():
    ferrotrace.install()
    try:
        assert sys.settrace is ferrotrace.settrace
        tracer = trace.Trace(count=True, trace=False)
        before = _native._dispatch_count()
        with redirect_stdout(io.StringIO()):
            tracer.runfunc(inventory.main)
        dispatched = _native._dispatch_count() - before
    finally:
        ferrotrace.uninstall()
    counts = tracer.results().counts
    print(f"stdlib `trace` module on ferrotrace ({dispatched} events dispatched natively):")
    for (filename, lineno), hits in sorted(counts.items()):
        if filename == EXAMPLE:
            source = linecache.getline(filename, lineno).rstrip()
            print(f"  {hits:>4}x  line {lineno:<3} {source}")


def main():
    print(f"ferrotrace {ferrotrace.__version__} on Python {sys.version.split()[0]}\n")
    print(f"== events of {os.path.relpath(EXAMPLE)} under ferrotrace.settrace ==")
    show_events()
    print("\n== ferrotrace.install(): unmodified tools run on the native engine ==")
    show_stdlib_trace_module()


if __name__ == "__main__":
    main()
