"""Async generators: async for, asend(), athrow() caught inside, aclose() running the finally
block, driven by a small hand-written loop so no event loop code is involved."""

EXPECT = ["call", "line", "return", "exception", "note:finally"]


class Pause:
    def __await__(self):
        yield "pause"


async def agen(rec):
    try:
        for i in range(3):
            try:
                received = yield i
                if received:
                    await Pause()
            except ValueError as exc:
                yield f"caught {exc}"
    finally:
        rec.note("finally")


async def consumer(rec):
    seen = []
    async for value in agen(rec):
        seen.append(value)
    gen = agen(rec)
    seen.append(await gen.asend(None))
    seen.append(await gen.asend("go"))
    seen.append(await gen.athrow(ValueError("x")))
    await gen.aclose()
    return seen


def drive(coro):
    pauses = 0
    while True:
        try:
            coro.send(None)
            pauses += 1
        except StopIteration as stop:
            return stop.value, pauses


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = drive(consumer(rec))
    finally:
        tr.settrace(None)
    return result
