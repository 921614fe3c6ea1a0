"""Calls: nothing but small Python calls, the worst case for a per-call trace hook.

Plain functions, positional and keyword arguments, closures, bound and static methods,
``super()`` chains, properties, and deep recursion.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "combine"

LOOPS = 30000
FIB = 22


def add(a, b):
    return a + b


def scaled(value, *, factor=2, offset=0):
    return value * factor + offset


def make_counter():
    count = 0

    def bump(step=1):
        nonlocal count
        count += step
        return count

    return bump


class Base:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value

    def combine(self, other):
        return self.get() + other

    @staticmethod
    def twice(x):
        return x + x

    @property
    def half(self):
        return self.value // 2


class Derived(Base):
    def get(self):
        return super().get() + 1

    def combine(self, other):
        return super().combine(other) - 1


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)


def run(scale=1.0):
    bump = make_counter()
    objects = [Base(3), Derived(7)]
    total = 0
    for i in range(max(1, round(LOOPS * scale))):
        total = add(total, i)
        total = scaled(total, factor=1, offset=i & 3) - (i & 3)
        bump()
        for obj in objects:
            total += obj.combine(i) + obj.twice(1) + obj.half
        total &= 0xFFFFFFF
    total += fib(FIB) + sum(depth(100) for _ in range(max(1, round(300 * scale))))
    return total, bump(0)
