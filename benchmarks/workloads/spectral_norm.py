"""Spectral norm: the largest singular value of the matrix A(i, j) = 1/((i+j)(i+j+1)/2+i+1).

Power iteration on A^T A with small helper functions called from comprehensions.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "entry"

N = 80
ITERATIONS = 10


def entry(i, j):
    ij = i + j
    return 1.0 / ((ij * (ij + 1) >> 1) + i + 1)


def times(u):
    n = len(u)
    return [sum(entry(i, j) * u_j for j, u_j in enumerate(u)) for i in range(n)]


def times_transposed(u):
    n = len(u)
    return [sum(entry(j, i) * u_j for j, u_j in enumerate(u)) for i in range(n)]


def times_ata(u):
    return times_transposed(times(u))


def run(scale=1.0):
    u = [1.0] * N
    v = u
    for _ in range(max(1, round(ITERATIONS * scale))):
        v = times_ata(u)
        u = times_ata(v)
    vbv = sum(a * b for a, b in zip(u, v, strict=True))
    vv = sum(b * b for b in v)
    return round((vbv / vv) ** 0.5, 12)
