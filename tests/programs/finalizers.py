"""Code run by the interpreter on its own while traced: __del__ when the last reference goes
(del, rebinding, end of scope), a weakref callback, and __init_subclass__/__set_name__ hooks
run during class creation."""

import weakref

EXPECT = ["call", "line", "return", "note:del"]


class Noisy:
    def __init__(self, rec, name):
        self.rec = rec
        self.name = name

    def __del__(self):
        self.rec.note("del", self.name)


class Plugin:
    registry = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Plugin.registry.append(cls.__name__)


class Field:
    def __set_name__(self, owner, name):
        self.name = name


def scope(rec):
    local = Noisy(rec, "scope-end")
    return "left scope"


def body(rec):
    a = Noisy(rec, "del-stmt")
    del a
    b = Noisy(rec, "rebind")
    b = None
    scope(rec)
    target = Noisy(rec, "weak")
    ref = weakref.ref(target, lambda r: rec.note("weakref callback"))
    target = None

    class Sub(Plugin):
        field = Field()

    return Plugin.registry, Sub.field.name, ref() is None


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = body(rec)
    finally:
        tr.settrace(None)
    return result
