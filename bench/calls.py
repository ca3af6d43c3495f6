#!/usr/bin/env python3
"""What one call of pyimmortal's queries costs, against a plain exported C
function that makes the same check.

    python3 bench/calls.py --python /path/to/python [--python ...]
        [--calls N] [--repeats R] [--build-root DIR] [--library LIB]
        [--out DIR] [--jobs N]

For every interpreter: builds the module calls_ext (bench/calls_ext.c,
bench/calls_plain.c) into <build-root>/<tag>, then, in one process of that
interpreter, times N calls (default 20,000,000) in a C loop for each of:

  pyimmortal  pyimmortal_PyUnstable_IsImmortal and
              pyimmortal_PyUnstable_Object_IsUniquelyReferenced;
  plain       the same check in a plain exported function of another
              translation unit (calls_plain.c), never inlined;
  cpython     CPython's own exported PyUnstable_IsImmortal and
              PyUnstable_Object_IsUniquelyReferenced, where the headers
              declare them (3.14+);
  inline      the check inlined into the loop: the floor;

each on Py_None (immortal on 3.12+) and on a new list (mortal, uniquely
referenced). Every combination is timed R times (default 5), interleaved and
in rotated order; the table gives the best time per call and its ratio to the
plain call on the same object. All functions must give the same answer on
the same object (otherwise the run fails). Timings are printed, never
checked. Writes <out>/calls.json.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
import run  # noqa: E402  (probe_interpreter, build)

OBJECTS = [("None", "None"), ("list", "new list")]


def log(msg=""):
    print(msg, flush=True)


# ---- Worker: runs in the interpreter under test ---------------------------

def worker(bdir, calls, repeats):
    sys.path.insert(0, bdir)
    import calls_ext

    info = calls_ext.info()
    configs = [(q, v, o) for q, v, _ in info["variants"] for o, _ in OBJECTS]
    for cfg in configs:  # warm-up, untimed
        calls_ext.time_calls(*cfg, max(1, calls // 100))
    samples = {cfg: [] for cfg in configs}
    answers = {}
    for r in range(repeats):
        # Interleaved and rotated, every other round backwards, so that load
        # from elsewhere spreads over all rows.
        k = r * len(configs) // repeats
        order = configs[k:] + configs[:k]
        if r % 2:
            order.reverse()
        for cfg in order:
            ns, total = calls_ext.time_calls(*cfg, calls)
            samples[cfg].append(ns / calls)
            answers[cfg] = total // calls if total % calls == 0 else None
    rows = []
    for q, v, name in info["variants"]:
        rows.append({"query": q, "variant": v, "name": name,
                     "ns": {o: min(samples[(q, v, o)]) for o, _ in OBJECTS},
                     "samples": {o: samples[(q, v, o)] for o, _ in OBJECTS},
                     "answer": {o: answers[(q, v, o)] for o, _ in OBJECTS}})
    return {"target": info["target"], "version": sys.version.replace("\n", " "),
            "rows": rows}


# ---- Driver -----------------------------------------------------------------

def measure(info, args):
    bdir = run.build(info, args.build_root, args.jobs, args.library, ["calls_ext"])
    out = subprocess.run([info["python"], "-I", os.path.abspath(__file__), "--worker", bdir,
                          "--calls", str(args.calls), "--repeats", str(args.repeats)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if out.returncode != 0:
        raise SystemExit("%s: the worker failed: %s" % (
            info["tag"], (out.stderr.strip().splitlines() or ["?"])[-1]))
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec.update(python=info["python"], tag=info["tag"], calls=args.calls, repeats=args.repeats)
    for q in sorted({row["query"] for row in rec["rows"]}):
        rows = [row for row in rec["rows"] if row["query"] == q]
        plain = next(row for row in rows if row["variant"] == "plain")
        for row in rows:
            row["ratio"] = {o: row["ns"][o] / plain["ns"][o] for o, _ in OBJECTS}
    return rec


def problems(rec):
    """Objects on which the functions of one query answered differently."""
    out = []
    for q in sorted({row["query"] for row in rec["rows"]}):
        for o, label in OBJECTS:
            seen = {row["name"]: row["answer"][o] for row in rec["rows"] if row["query"] == q}
            if len(set(seen.values())) != 1 or None in seen.values():
                out.append("%s on %s: the answers differ: %s" % (q, label, seen))
    return out


def print_record(rec):
    log("{:,} calls per loop, best of {}; ratio = ns / ns of the plain exported call"
        .format(rec["calls"], rec["repeats"]))
    head = "%-7s %-52s" % ("tag", "function")
    for _, label in OBJECTS:
        head += " %11s %7s %6s" % (label + " ns", "ratio", "answer")
    log(head)
    for row in rec["rows"]:
        line = "%-7s %-52s" % (rec["tag"], row["name"])
        for o, _ in OBJECTS:
            line += " %11.2f %6.2fx %6s" % (row["ns"][o], row["ratio"][o], row["answer"][o])
        log(line)
    for row in rec["rows"]:
        if row["variant"] != "pyimmortal":
            continue
        plain = next(r for r in rec["rows"]
                     if r["query"] == row["query"] and r["variant"] == "plain")
        overall = sum(row["ns"].values()) / sum(plain["ns"].values())
        log("%s %s: %.2fx a plain exported call (%s)" % (
            rec["tag"], row["name"], overall,
            ", ".join("%s %.2fx" % (label, row["ratio"][o]) for o, label in OBJECTS)))


def main():
    ap = argparse.ArgumentParser(
        description="what one call of pyimmortal's queries costs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--python", action="append", default=[],
                    help="interpreter to measure (repeatable; default: this one)")
    ap.add_argument("--calls", type=int, default=20000000,
                    help="calls per timed loop (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed loops per function and object; the best counts "
                         "(default: %(default)s)")
    ap.add_argument("--build-root", default=os.path.join(run.REPO, "_build", "bench"),
                    help="CMake builds go to BUILD_ROOT/<tag> (default: _build/bench)")
    ap.add_argument("--library", metavar="LIB",
                    help="use this libpyimmortal.a (built for the one --python) instead of cargo")
    ap.add_argument("--out", default=os.path.join(run.REPO, "_build", "bench"),
                    help="where calls.json goes (default: _build/bench)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="parallel build jobs")
    ap.add_argument("--worker", metavar="BUILD_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.calls < 1 or args.repeats < 1:
        ap.error("--calls and --repeats must be positive")
    if args.worker:
        print(json.dumps(worker(args.worker, args.calls, args.repeats)))
        return 0

    pythons = args.python or [sys.executable]
    if args.library and len(pythons) != 1:
        ap.error("--library needs exactly one --python")
    records, failures = [], 0
    for python in pythons:
        info = run.probe_interpreter(python)
        log("== %s (%s)" % (info["tag"], info["version"]))
        try:
            rec = measure(info, args)
        except SystemExit as e:  # a failed build or worker
            log(str(e))
            failures += 1
            continue
        print_record(rec)
        for p in problems(rec):
            log("FAILED: %s %s" % (rec["tag"], p))
            failures += 1
        records.append(rec)
        log()

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "calls.json")
    with open(path, "w") as f:
        json.dump({"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                   "host": platform.node(), "cpu_count": os.cpu_count(),
                   "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                   "interpreters": records}, f, indent=1)
        f.write("\n")
    log("wrote %s" % path)
    if failures:
        log("calls: %d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
