"""Decorators: a plain wrapper, a decorator factory with functools.wraps (its stdlib frames are
not recorded), a class decorator, and stacked decorators; wrapper frames come and go around
the wrapped call."""

import functools

EXPECT = ["call", "line", "return"]


def logged(fn):
    def wrapper(*args):
        result = fn(*args)
        return ("logged", result)

    return wrapper


def times(n):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return [fn(*args) for _ in range(n)]

        return wrapper

    return deco


def register(cls):
    cls.registered = True
    return cls


def build():
    @logged
    @times(2)
    def square(x):
        return x * x

    @register
    class Thing:
        pass

    return square(3), Thing.registered, square.__name__


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = build()
    finally:
        tr.settrace(None)
    return result
