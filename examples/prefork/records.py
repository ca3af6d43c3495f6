"""The example's data set: records built at import, as a loaded application
holds them, and a reader that touches every value.

Each record is a dict of ints, floats, strings, tuples, lists and a nested
dict. Unique values (ids, SKUs, names, prices) are new objects per record;
repeated values (categories, tags, colours) are shared strings from tables,
as an application that deduplicates its strings holds them. Standard
library only; used by app.py and by bench/prefork.py.
"""

import os

WORDS = ("amber", "birch", "cedar", "delta", "ember", "fable", "grove", "harbor",
         "iris", "juniper", "kestrel", "lumen", "maple", "nova", "onyx", "pine",
         "quartz", "raven", "sierra", "tundra", "umber", "vale", "willow", "zephyr")
CATEGORIES = tuple("category-%02d" % i for i in range(40))
TAGS = tuple("tag-%03d" % i for i in range(256))
COLORS = ("black", "white", "red", "green", "blue", "yellow", "grey", "orange")


def rss():
    """The resident memory of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def record(i):
    """Record number i: 31 objects, about 1.5 KB on a 64-bit CPython."""
    n = len(WORDS)
    return {
        "id": 1000000 + i,
        "sku": "SKU-%08d" % i,
        "name": "%s %s no. %d" % (WORDS[i % n].capitalize(), WORDS[i * 7 % n], i),
        "category": CATEGORIES[i % len(CATEGORIES)],
        "price": round(1.0 + i * 37 % 100000 / 100.0, 2),
        "stock": 1000 + i * 13 % 5000,
        "tags": (TAGS[i % 256], TAGS[i * 11 % 256], TAGS[i * 17 % 256]),
        "ratings": [(i * k) % 50 / 10.0 for k in range(1, 9)],
        "size": (10.0 + i % 90, 5.0 + i % 45, 1.0 + i % 9),
        "attrs": {"color": COLORS[i % len(COLORS)], "weight": 0.1 * (i % 1000), "rank": 3 * i + 1000},
        "history": [(2000000 + i + d, 1.5 * d + i % 100) for d in range(3)],
    }


def build(megabytes):
    """Builds records until this process's resident memory has grown by
    `megabytes` MiB. Returns (records, heap_bytes), heap_bytes being that
    growth."""
    start = rss()
    target = int(megabytes * (1 << 20))
    records = []
    i = 0
    while True:
        for i in range(i, i + 2000):
            records.append(record(i))
        i += 1
        grown = rss() - start
        if grown >= target:
            return records, grown


def read_all(records):
    """Touches every value of every record: adds up the numbers and the
    lengths of the strings. Returns (records read, checksum)."""
    total = 0.0
    count = 0
    for r in records:
        total += r["id"] + len(r["sku"]) + len(r["name"]) + len(r["category"]) + r["price"] + r["stock"]
        for tag in r["tags"]:
            total += len(tag)
        total += sum(r["ratings"]) + sum(r["size"])
        attrs = r["attrs"]
        total += len(attrs["color"]) + attrs["weight"] + attrs["rank"]
        for day, amount in r["history"]:
            total += day + amount
        count += 1
    return count, total


def objects(records):
    """Every object of the data set, once per reference to it, as pairs
    (object, is_key): the list, each record, and every key and value
    inside, nested containers included."""
    stack = [records]
    while stack:
        obj = stack.pop()
        yield obj, False
        if type(obj) is dict:
            for key, value in obj.items():
                yield key, True
                stack.append(value)
        elif type(obj) in (list, tuple):
            stack.extend(obj)


def mortal_objects(records, is_immortal):
    """The distinct objects of the data set that `is_immortal` says are
    mortal, counted by type: ({type name: values}, {type name: dict keys},
    references walked)."""
    seen = set()
    counts = ({}, {})
    references = 0
    for obj, is_key in objects(records):
        references += 1
        if id(obj) not in seen and not is_immortal(obj):
            seen.add(id(obj))
            name = type(obj).__name__
            counts[is_key][name] = counts[is_key].get(name, 0) + 1
    return counts[0], counts[1], references
