"""A WSGI app that holds a data set built at import, as a loaded
application holds its records (records.py: dicts, lists, tuples, ints,
floats and strings), PREFORK_HEAP_MB MiB of them (default 200).

    GET /read   reads the whole data set (every value of every record) and
                returns JSON: the worker's pid, the records read, the
                checksum, and what a full read gives (computed at import)
    GET /mortal counts, by type, the objects of the data set that are not
                immortal in this worker, values and dict keys apart (needs
                pyimmortal)
    GET /       the same facts as /read, without reading

Run it with gunicorn and gunicorn.conf.py (see README.md).
"""

import json
import os
import sys
import time

import records

HEAP_MB = float(os.environ.get("PREFORK_HEAP_MB", "200"))

_start = time.perf_counter()
RECORDS, HEAP_BYTES = records.build(HEAP_MB)
BUILD_SECONDS = time.perf_counter() - _start
# What a full read gives; a worker's read must give the same.
EXPECTED_RECORDS, EXPECTED_CHECKSUM = records.read_all(RECORDS)


def facts():
    return {"pid": os.getpid(), "python": sys.version.split()[0], "heap_bytes": HEAP_BYTES,
            "build_seconds": round(BUILD_SECONDS, 3), "expected_records": EXPECTED_RECORDS,
            "expected_checksum": EXPECTED_CHECKSUM}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/read":
        start = time.perf_counter()
        count, checksum = records.read_all(RECORDS)
        body = dict(facts(), records=count, checksum=checksum,
                    read_seconds=round(time.perf_counter() - start, 3))
    elif path == "/mortal":
        try:
            from pyimmortal import is_immortal
        except ImportError as exc:
            start_response("501 Not Implemented", [("Content-Type", "text/plain")])
            return [("%s\n" % exc).encode()]
        mortal, mortal_keys, references = records.mortal_objects(RECORDS, is_immortal)
        body = dict(facts(), references=references, mortal=mortal, mortal_keys=mortal_keys)
    elif path == "/":
        body = facts()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    data = json.dumps(body).encode() + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
