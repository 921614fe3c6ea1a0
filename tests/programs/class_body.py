"""Class bodies are frames too: their call/line/return events, a nested class, a class using
super() (a __class__ cell) and a metaclass; the namespaces must come out the same."""

EXPECT = ["call", "line", "return", "note:namespace"]


class Meta(type):
    def __new__(mcls, name, bases, ns):
        ns["tagged"] = name.lower()
        return super().__new__(mcls, name, bases, ns)


def build():
    class Base:
        x = 1

        def hello(self):
            return "base"

    class Child(Base, metaclass=Meta):
        y = x = 2

        class Inner:
            z = 3

        def hello(self):
            return "child+" + super().hello()

    return Base, Child


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        Base, Child = build()
        greeting = Child().hello()
    finally:
        tr.settrace(None)
    for cls in (Base, Child, Child.Inner):
        names = sorted(k for k in vars(cls) if not k.startswith("__"))
        rec.note("namespace", cls.__qualname__, names)
    rec.note("has __class__ key", "__class__" in vars(Child))
    return greeting
