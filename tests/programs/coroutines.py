"""Coroutines driven by hand (no event loop): send() into an async def awaiting a custom
awaitable, throw() into a suspended coroutine, close(), and the StopIteration carrying the
result."""

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


class Pause:
    def __init__(self, label):
        self.label = label

    def __await__(self):
        value = yield self.label
        return value


async def child(x):
    got = await Pause(f"child {x}")
    return got * 2


async def parent():
    a = await child(1)
    try:
        await Pause("parent waits")
    except KeyError:
        a += 100
    return a


async def doomed():
    await Pause("doomed")


def drive(rec):
    coro = parent()
    steps = [coro.send(None), coro.send(5)]
    try:
        coro.throw(KeyError("k"))
    except StopIteration as stop:
        steps.append(stop.value)
    c2 = doomed()
    c2.send(None)
    c2.close()
    c3 = doomed()
    c3.send(None)
    try:
        c3.throw(OSError("io"))
    except OSError as exc:
        rec.escaped(exc)
    return steps


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = drive(rec)
    finally:
        tr.settrace(None)
    return result
