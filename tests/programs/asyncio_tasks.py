"""asyncio: asyncio.run with gather, tasks interleaving at sleep(0), an awaited exception, and
a TaskGroup; only the program's coroutine frames are recorded, the event loop's are not."""

import asyncio

EXPECT = ["call", "line", "return", "exception", "note:escaped"]


async def worker(name, steps, log):
    for i in range(steps):
        log.append(f"{name}{i}")
        await asyncio.sleep(0)
    return name * steps


async def failing():
    await asyncio.sleep(0)
    raise LookupError("task failed")


async def main(rec):
    log = []
    results = await asyncio.gather(worker("a", 2, log), worker("b", 3, log))
    try:
        await failing()
    except LookupError as exc:
        rec.escaped(exc)
    async with asyncio.TaskGroup() as group:
        t1 = group.create_task(worker("c", 1, log))
        t2 = group.create_task(worker("d", 1, log))
    return results, log, t1.result(), t2.result()


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = asyncio.run(main(rec))
    finally:
        tr.settrace(None)
    return result
