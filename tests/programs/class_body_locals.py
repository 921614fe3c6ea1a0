"""A tracer that reads frame.f_locals in class bodies (including one whose methods use super(),
so the body has a __class__ cell) and methods: on 3.11 the trampoline's snapshot/write-back
of fast locals must not leak or drop names in the class namespace."""

EXPECT = ["call", "line", "return", "note:f_locals"]


def build():
    class Plain:
        a = 1
        b = a + 1

    class WithCell(Plain):
        c = 3

        def method(self):
            return super().__class__.__name__ + str(__class__.c)

    return Plain, WithCell


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        rec.note("f_locals", event, sorted(k for k in frame.f_locals if k != "__module__"))
        return tracer

    tr.settrace(tracer)
    try:
        Plain, WithCell = build()
        text = WithCell().method()
    finally:
        tr.settrace(None)
    rec.note("namespace", sorted(vars(WithCell)))
    return text
