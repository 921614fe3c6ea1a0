"""A small program to trace: a recursive function, a generator and a handled exception."""


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def restock(items):
    for name, count in items:
        if count < 0:
            raise ValueError(f"negative count for {name}")
        yield name, count * 2


def main():
    stock = dict(restock([("apples", 3), ("pears", 1)]))
    try:
        dict(restock([("plums", -1)]))
    except ValueError as error:
        stock["error"] = str(error)
    stock["fib"] = fib(3)
    return stock


if __name__ == "__main__":
    print(main())
