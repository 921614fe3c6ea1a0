"""A small program to demo `ferrotrace trace`: a class, a generator, a handled exception and a
worker thread. Usage: python examples/checkout.py [NUMBER_OF_ORDERS]

    ferrotrace trace examples/checkout.py 2
    ferrotrace trace --function 'Cart.*' examples/checkout.py
    ferrotrace trace --format perfetto -o checkout.pftrace examples/checkout.py 200
"""

import sys
import threading

PRICES = {"apple": 3, "pear": 4, "plum": 2}


class Cart:
    def __init__(self):
        self.items = []

    def add(self, name, count):
        if name not in PRICES:
            raise KeyError(name)
        self.items.append((name, count))

    def total(self):
        return sum(PRICES[name] * count for name, count in self.items)


def orders(count):
    for number in range(count):
        yield ["apple", "pear", "kiwi"][number % 3], number + 1


def checkout(count):
    cart = Cart()
    for name, quantity in orders(count):
        try:
            cart.add(name, quantity)
        except KeyError:
            pass
    return cart.total()


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    results = []
    worker = threading.Thread(target=lambda: results.append(checkout(count)), name="worker")
    worker.start()
    results.append(checkout(count))
    worker.join()
    print("totals:", results)


if __name__ == "__main__":
    main()
