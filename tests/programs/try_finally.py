"""try/except/else/finally: finally on the normal path, on an exception path, a return in
finally overriding an exception, break and continue through finally, and nested handlers."""

EXPECT = ["call", "line", "return", "exception"]


def normal():
    try:
        x = 1
    except Exception:
        x = 2
    else:
        x += 10
    finally:
        x += 100
    return x


def finally_overrides():
    try:
        raise KeyError("dropped")
    finally:
        return "from finally"


def loop_with_finally():
    out = []
    for i in range(4):
        try:
            if i == 1:
                continue
            if i == 3:
                break
            out.append(i)
        finally:
            out.append(-i)
    return out


def nested():
    try:
        try:
            raise ValueError("inner")
        except ValueError:
            raise KeyError("outer")
        finally:
            marker = "inner finally"
    except KeyError as exc:
        return marker, exc.__context__.__class__.__name__


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = (normal(), finally_overrides(), loop_with_finally(), nested())
    finally:
        tr.settrace(None)
    return result
