"""N-queens: every placement of N non-attacking queens, by recursive generators.

Backtracking search with ``yield from`` at every level and set membership tests.
"""

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


def solutions(n):
    return list(place(n, 0, set(), set(), set(), []))


def run():
    found = solutions(N)
    assert len(found) == KNOWN.get(N, len(found)), len(found)
    return len(found), sum(hash(s) & 0xFFFF for s in found), found[0]
