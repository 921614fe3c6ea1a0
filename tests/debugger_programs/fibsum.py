import sys

def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

def compute(limit):
    total = 0
    for i in range(limit):
        total += fib(i)
    value = total * 2
    return value

def main():
    result = compute(8)
    print("result", result)
    return result

if __name__ == "__main__":
    main()
