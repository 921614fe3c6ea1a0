"""Special methods called from C: property getters/setters, __getattr__ fallback, __len__,
__getitem__ driving iteration until IndexError, __iter__/__next__, __add__/__radd__,
__contains__, __bool__ and __repr__ via repr()."""

EXPECT = ["call", "line", "return", "exception"]


class Box:
    def __init__(self, items):
        self._items = list(items)

    @property
    def size(self):
        return len(self._items)

    @size.setter
    def size(self, n):
        self._items = self._items[:n]

    def __getattr__(self, name):
        return f"missing {name}"

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]

    def __add__(self, other):
        return Box(self._items + list(other))

    def __radd__(self, other):
        return Box(list(other) + self._items)

    def __contains__(self, item):
        return item in self._items

    def __bool__(self):
        return bool(self._items)

    def __repr__(self):
        return f"Box({self._items})"


class Countdown:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return self

    def __next__(self):
        if self.n <= 0:
            raise StopIteration
        self.n -= 1
        return self.n


def use():
    box = Box([1, 2, 3])
    box.size = 2
    listed = list(box)
    combined = box + [9]
    reverse = [0] + box
    return (box.size, box.whatever, listed, len(combined), repr(reverse), 2 in box,
            bool(Box([])), list(Countdown(2)))


def run(tr, rec):
    tr.settrace(rec.tracer)
    try:
        result = use()
    finally:
        tr.settrace(None)
    return result
