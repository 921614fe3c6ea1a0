"""N-queens: every placement of N non-attacking queens, by recursive generators.

Backtracking search with ``yield from`` at every level and set membership tests.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "place"

N = 10
KNOWN = {8: 92, 9: 352, 10: 724}


def place(n, row, columns, diagonals, antidiagonals, placed):
    if row == n:
        yield tuple(placed)
        return
    for col in range(n):
        if col in columns or row + col in diagonals or row - col in antidiagonals:
            continue
        columns.add(col)
        diagonals.add(row + col)
        antidiagonals.add(row - col)
        placed.append(col)
        yield from place(n, row + 1, columns, diagonals, antidiagonals, placed)
        placed.pop()
        columns.remove(col)
        diagonals.remove(row + col)
        antidiagonals.remove(row - col)


def solutions(n, first_columns=None):
    """All solutions; only those with the first queen in `first_columns` if given."""
    if first_columns is None:
        return list(place(n, 0, set(), set(), set(), []))
    found = []
    for col in first_columns:
        found += place(n, 1, {col}, {col}, {-col}, [col])
    return found


def run(scale=1.0):
    if scale >= 1:
        found = solutions(N)
        assert len(found) == KNOWN.get(N, len(found)), len(found)
    else:
        found = solutions(N, range(max(1, round(N * scale))))
    return len(found), sum(hash(s) & 0xFFFF for s in found), found[0]
