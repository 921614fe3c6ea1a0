"""sys.settrace alongside a sys.monitoring tool (Python 3.12+; on 3.11 only the trace function
runs): PY_START, LINE and PY_RETURN callbacks of the tool interleave with the trace events
(recorded as M:<event>), and freeing the tool leaves tracing intact."""

import sys

EXPECT = ["call", "line", "return"]


def work(a):
    b = a + 1
    return b * 2


def run(tr, rec):
    monitoring = getattr(sys, "monitoring", None)
    tool = None
    if monitoring is not None:
        tool = monitoring.PROFILER_ID
        monitoring.use_tool_id(tool, "differential")
        events = monitoring.events

        def start(code, offset):
            if code.co_filename == rec.filename:
                rec.note("M:start", code.co_qualname)

        def line(code, lineno):
            if code.co_filename == rec.filename:
                rec.note("M:line", code.co_qualname, lineno - code.co_firstlineno)

        def ret(code, offset, value):
            if code.co_filename == rec.filename:
                rec.note("M:return", code.co_qualname, value)

        monitoring.register_callback(tool, events.PY_START, start)
        monitoring.register_callback(tool, events.LINE, line)
        monitoring.register_callback(tool, events.PY_RETURN, ret)
        monitoring.set_events(tool, events.PY_START | events.LINE | events.PY_RETURN)
    tr.settrace(rec.tracer)
    try:
        first = work(1)
        if tool is not None:
            monitoring.set_events(tool, 0)
            monitoring.free_tool_id(tool)
        second = work(2)
    finally:
        tr.settrace(None)
    return first, second
