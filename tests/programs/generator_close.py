"""generator.close(): GeneratorExit is raised at the yield ('exception' event), finally blocks
run, a generator that swallows GeneratorExit and yields again makes close() raise
RuntimeError, and close() of a never-started generator produces no events."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


def with_cleanup(rec):
    try:
        yield 1
        yield 2
    finally:
        rec.note("cleanup")


def stubborn():
    while True:
        try:
            yield "again"
        except GeneratorExit:
            pass


def drive(rec):
    gen = with_cleanup(rec)
    next(gen)
    gen.close()
    gen.close()
    unstarted = with_cleanup(rec)
    unstarted.close()
    bad = stubborn()
    next(bad)
    try:
        bad.close()
    except RuntimeError as exc:
        rec.escaped(exc)
    return gen.gi_frame is None


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = drive(rec)
    finally:
        tr.settrace(None)
    return result
