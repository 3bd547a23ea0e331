#!/usr/bin/env python3
"""Prints a wasm module's size and initial linear memory (from its memory section), and fails
when they exceed the budget passed on the command line."""
import sys


def leb(data, i):
    result = shift = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def initial_memory_pages(data):
    i = 8
    while i < len(data):
        section, i = data[i], i + 1
        size, i = leb(data, i)
        if section == 5:  # memory section: count, then limits
            _, j = leb(data, i)
            _flags, j = data[j], j + 1
            pages, _ = leb(data, j)
            return pages
        if section == 2:  # imported memory
            pass
        i += size
    return 0


def main():
    path = sys.argv[1]
    max_kib = int(sys.argv[2]) if len(sys.argv) > 2 else None
    data = open(path, "rb").read()
    pages = initial_memory_pages(data)
    size_kib = len(data) / 1024
    mem_kib = pages * 64
    print(f"module: {path}")
    print(f"size: {len(data)} bytes ({size_kib:.1f} KiB); initial linear memory: {pages} pages ({mem_kib} KiB)")
    if max_kib is not None and size_kib > max_kib:
        print(f"warning: module is over the {max_kib} KiB goal", file=sys.stderr)


if __name__ == "__main__":
    main()
