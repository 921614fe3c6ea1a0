"""Fannkuch: the maximum number of pancake flips over all permutations of 1..n.

List slicing and reversal in a tight loop, permutations generated in a counting order.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "fannkuch"

N = 8


def fannkuch(n):
    perm_init = list(range(n))
    count = [0] * n
    max_flips = 0
    checksum = 0
    index = 0
    perm1 = perm_init[:]
    remaining = n
    while True:
        while remaining > 1:
            count[remaining - 1] = remaining
            remaining -= 1
        perm = perm1[:]
        flips = 0
        first = perm[0]
        while first:
            perm[: first + 1] = perm[first::-1]
            flips += 1
            first = perm[0]
        if flips > max_flips:
            max_flips = flips
        checksum += flips if index % 2 == 0 else -flips
        index += 1
        # Next permutation: rotate the first `remaining + 1` elements until a counter is left.
        while True:
            if remaining == n:
                return max_flips, checksum, index
            head = perm1[0]
            perm1[:remaining] = perm1[1 : remaining + 1]
            perm1[remaining] = head
            count[remaining] -= 1
            if count[remaining] > 0:
                break
            remaining += 1


def run(scale=1.0):
    if scale >= 1:
        return fannkuch(N)
    # n has no fine steps: below full size, repeat n - 1 (about 1/9 of the work each time).
    return [fannkuch(N - 1) for _ in range(max(1, round(scale * 9)))]
