import asyncio


def numbers(limit):
    for i in range(limit):
        doubled = i * 2
        yield doubled


async def fetch(delay, value):
    await asyncio.sleep(delay)
    return value + 1


async def pipeline():
    first = await fetch(0, 10)
    second = await fetch(0, first)
    total = first + second
    return total


def main():
    collected = [n for n in numbers(3)]
    result = asyncio.run(pipeline())
    print("collected", collected, "result", result)


if __name__ == "__main__":
    main()
