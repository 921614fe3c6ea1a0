def depth(n):
    if n == 0:
        raise ValueError("bottom reached")
    return depth(n - 1)


def guarded():
    try:
        depth(3)
    except ValueError as error:
        message = str(error)
    return message


def main():
    text = guarded()
    print("caught", text)
    depth(2)


if __name__ == "__main__":
    main()
