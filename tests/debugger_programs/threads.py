import threading


def worker(results, index):
    square = index * index
    results.append(square)


def main():
    results = []
    thread = threading.Thread(target=worker, args=(results, 7))
    thread.start()
    thread.join()
    print("results", results)


if __name__ == "__main__":
    main()
