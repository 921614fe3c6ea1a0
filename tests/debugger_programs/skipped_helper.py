def checksum(values):
    total = 0
    for value in values:
        total = (total * 31 + value) % 1000003
    return total
