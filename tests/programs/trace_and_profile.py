"""sys.settrace together with sys.setprofile: the profile function gets call/return and
c_call/c_return/c_exception events (recorded as P:<event>), the trace function gets
call/line/return/exception; the interleaving of the two streams must be the same."""

import sys

EXPECT = ["call", "line", "return", "exception", "P:call", "P:return", "P:c_call", "P:c_return",
          "P:c_exception"]


def work(items):
    total = sum(items)
    try:
        divmod(len(items), 0)
    except ZeroDivisionError:
        total += len(items)
    return total


def run(tr, rec):
    sys.setprofile(rec.profiler)
    tr.settrace(rec.tracer)
    try:
        result = work([1, 2, 3])
    finally:
        tr.settrace(None)
        sys.setprofile(None)
    return result
