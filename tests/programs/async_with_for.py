"""async with and async for on hand-written classes (__aenter__/__aexit__ suppressing an error,
__aiter__/__anext__ raising StopAsyncIteration), run under asyncio.run."""

import asyncio

EXPECT = ["call", "line", "return", "exception"]


class Resource:
    async def __aenter__(self):
        await asyncio.sleep(0)
        return "resource"

    async def __aexit__(self, kind, value, tb):
        await asyncio.sleep(0)
        return kind is KeyError


class Ticker:
    def __init__(self, n):
        self.n = n

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        await asyncio.sleep(0)
        return self.n


async def main():
    async with Resource() as r:
        raise KeyError("suppressed by __aexit__")
    ticks = [t async for t in Ticker(3)]
    return r, ticks


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = asyncio.run(main())
    finally:
        tr.settrace(None)
    return result
