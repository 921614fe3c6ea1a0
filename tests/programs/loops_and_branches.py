"""Control flow: for/else, while with break and continue, nested loops, if/elif/else chains and
a match statement; a 'line' event each time a line starts executing (loop headers again on
every iteration)."""

EXPECT = ["call", "line", "return"]


def loops(n):
    out = []
    for i in range(n):
        if i == 1:
            continue
        out.append(i)
    else:
        out.append("for-else")
    j = 0
    while True:
        j += 1
        if j > 2:
            break
    for a in range(2):
        for b in range(2):
            out.append((a, b))
    return out, j


def branches(x):
    if x < 0:
        kind = "neg"
    elif x == 0:
        kind = "zero"
    else:
        kind = "pos"
    match x:
        case 0:
            shape = "nothing"
        case int() if x > 5:
            shape = "big"
        case _:
            shape = "other"
    return kind, shape


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = (loops(3), branches(-1), branches(0), branches(9))
    finally:
        tr.settrace(None)
    return result
