"""Module-level code run through exec() with the program's file name: the '<module>' frame gets
call/line/return events, class and function definitions and a comprehension inside it, with a
dict f_locals that the tracer can read (and edit: the edit sticks)."""

EXPECT = ["call", "line", "return", "note:module locals"]

SOURCE = """
x = 1
def f(v):
    return v + x
class K:
    attr = f(1)
values = [f(i) for i in range(2)]
y = x + 1
"""


def run(tr, rec):
    code = compile("\n" * 100 + SOURCE, __file__, "exec")
    namespace = {}

    @rec.recording
    def tracer(frame, event, arg):
        if frame.f_code is code and event == "line":
            f_locals = frame.f_locals
            rec.note("module locals", sorted(k for k in f_locals if k != "__builtins__"))
            if f_locals.get("x") == 1 and "values" in f_locals:
                f_locals["x"] = 10
        return tracer

    tr.settrace(tracer)
    try:
        exec(code, namespace)
    finally:
        tr.settrace(None)
    return namespace["x"], namespace["y"], namespace["values"], namespace["K"].attr
