"""JSON: serialise and parse a handful of documents, mostly through the C accelerator.

Like pyperformance's json_dumps/json_loads, the bulk of the time is in C, so a trace
function has few Python frames to report; one round trip per document goes through a
Python ``default``/``object_hook`` pair, as real code that (de)serialises its own types does.
"""

import json

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "decode_point"

REPEAT = 220


class Point:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y


def encode_point(obj):
    if isinstance(obj, Point):
        return {"__point__": [obj.x, obj.y]}
    raise TypeError(type(obj).__name__)


def decode_point(obj):
    if "__point__" in obj:
        return Point(*obj["__point__"])
    return obj


def documents():
    flat = {
        "key1": 0,
        "key2": True,
        "key3": "value",
        "key4": "foo",
        "key5": "string with \u00e9 and \u4e2d\u6587",
        "key6": 1.5e-7,
        "key7": None,
    }
    nested = {"name": "root", "children": [dict(flat, index=i) for i in range(40)]}
    table = [[i * j for j in range(30)] for i in range(30)]
    text = [f"line {i}: " + "lorem ipsum dolor sit amet " * 3 for i in range(60)]
    return [flat, nested, table, text]


def run(scale=1.0):
    docs = documents()
    total = 0
    for _ in range(max(1, round(REPEAT * scale))):
        for doc in docs:
            encoded = json.dumps(doc)
            decoded = json.loads(encoded)
            total += len(encoded) + len(decoded)
    shapes = [Point(i, -i) for i in range(150)]
    encoded = json.dumps({"shapes": shapes}, default=encode_point)
    decoded = json.loads(encoded, object_hook=decode_point)
    total += sum(p.x - p.y for p in decoded["shapes"])
    return total
