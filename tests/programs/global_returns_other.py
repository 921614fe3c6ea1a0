"""The global trace function returns a different local function from 'call': that function (not
the global one) gets the frame's line/return/exception events, and different frames can get
different local functions."""

EXPECT = ["call", "line", "return", "exception"]


def alpha():
    x = 1
    try:
        raise ValueError("a")
    except ValueError:
        x += 1
    return x


def beta():
    y = 2
    return y


def body():
    return alpha() + beta()


def run(tr, rec):
    @rec.recording
    def local_a(frame, event, arg):
        return local_a

    @rec.recording
    def local_b(frame, event, arg):
        return local_b

    @rec.recording
    def global_(frame, event, arg):
        if frame.f_code.co_name == "alpha":
            return local_a
        if frame.f_code.co_name == "beta":
            return local_b
        return global_

    tr.settrace(global_)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
