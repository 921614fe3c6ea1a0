import sys


def compute(values):
    total = 0
    for value in values:
        total += value
    breakpoint()
    doubled = total * 2
    return doubled


def fail(divisor):
    ratio = 10 / divisor
    return ratio


def main(debugger):
    result = compute([1, 2, 3])
    print("result", result)
    try:
        fail(0)
    except ZeroDivisionError:
        debugger.post_mortem()
    print("done")


if __name__ == "__main__":
    import importlib

    main(importlib.import_module(sys.argv[1]))
