"""Chaos: a chaos game whose attractors are Bezier curves, rendered into a pixel grid.

A small vector class with operator overloading, curve evaluation by de Casteljau's
algorithm, and a seeded random walk: many short method and dunder calls.
"""

import random

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "lerp"

SEED = 1234
POINTS = 8000
WIDTH = HEIGHT = 64


class Vec:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __add__(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def __sub__(self, other):
        return Vec(self.x - other.x, self.y - other.y)

    def __mul__(self, k):
        return Vec(self.x * k, self.y * k)

    def lerp(self, other, t):
        return self + (other - self) * t


class Bezier:
    def __init__(self, *points):
        self.points = [Vec(x, y) for x, y in points]

    def at(self, t):
        points = self.points
        while len(points) > 1:
            points = [a.lerp(b, t) for a, b in zip(points, points[1:], strict=False)]
        return points[0]


class ChaosGame:
    def __init__(self, curves, seed):
        self.curves = curves
        self.rng = random.Random(seed)
        self.lo = Vec(-0.1, -0.1)
        self.hi = Vec(1.1, 1.1)

    def step(self, point):
        rng = self.rng
        curve = self.curves[int(rng.random() * len(self.curves))]
        target = curve.at(rng.random())
        return point.lerp(target, 0.5 + 0.1 * rng.random())

    def pixel(self, point):
        lo, hi = self.lo, self.hi
        px = int((point.x - lo.x) / (hi.x - lo.x) * WIDTH)
        py = int((point.y - lo.y) / (hi.y - lo.y) * HEIGHT)
        return min(max(px, 0), WIDTH - 1), min(max(py, 0), HEIGHT - 1)

    def play(self, n):
        grid = [[0] * WIDTH for _ in range(HEIGHT)]
        point = Vec(0.5, 0.5)
        for _ in range(n):
            point = self.step(point)
            x, y = self.pixel(point)
            grid[y][x] += 1
        return grid


def run(scale=1.0):
    curves = [
        Bezier((0.0, 0.0), (0.5, 1.2), (1.0, 0.0)),
        Bezier((0.0, 1.0), (0.3, 0.2), (0.7, 0.8), (1.0, 0.1)),
        Bezier((0.2, 0.0), (0.2, 0.5), (0.9, 0.9)),
    ]
    grid = ChaosGame(curves, SEED).play(max(1, round(POINTS * scale)))
    lit = sum(1 for row in grid for cell in row if cell)
    weighted = sum((x * 31 + y) * cell for y, row in enumerate(grid) for x, cell in enumerate(row))
    return lit, weighted
