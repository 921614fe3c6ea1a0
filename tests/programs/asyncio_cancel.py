"""asyncio cancellation: a task cancelled while suspended at sleep(0) gets CancelledError thrown
in ('exception' event), runs its finally block and re-raises; wait_for with a timeout of 0 on
a never-finishing future; a task swallowing one cancellation."""

import asyncio

EXPECT = ["call", "line", "return", "exception", "note:cancelled"]


async def sleeper(rec, name):
    try:
        for _ in range(100):
            await asyncio.sleep(0)
    finally:
        rec.note("finally", name)


async def stubborn(rec):
    try:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        rec.note("swallowed")
    return "survived"


async def main(rec):
    task = asyncio.create_task(sleeper(rec, "a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        rec.note("cancelled", task.cancelled())
    s = asyncio.create_task(stubborn(rec))
    await asyncio.sleep(0)
    s.cancel()
    survived = await s
    return survived


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = asyncio.run(main(rec))
    finally:
        tr.settrace(None)
    return result
