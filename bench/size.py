#!/usr/bin/env python3
"""What linking pyimmortal adds to the size of an extension module.

    python3 bench/size.py --python /path/to/python [--python ...]
        [--build-root DIR] [--library LIB] [--out DIR] [--jobs N]

For every interpreter: builds the four size targets of bench/CMakeLists.txt
into <build-root>/<tag> (the C module bench/size_ext.c and the C++ module
bench/size_ext.cpp, each without pyimmortal, -DSIZE_WITHOUT_PYIMMORTAL, and
with it), strips a copy of each module (strip --strip-all) and prints, per
language, the stripped size without and with pyimmortal and the difference,
next to the size of the libpyimmortal.a used. It also lists the dynamic
symbols that each module defines (nm -D --defined-only), which should be its
PyInit_* only (a warning line otherwise), and imports each module in that
interpreter and calls its exercise(), which in the "with" modules calls every
function the library exports.

Writes <out>/size.json. Sizes are printed, never checked: the exit status is
non-zero only when a build fails or a module does not import and run. Needs
CMake, cargo (unless --library), a C and C++ compiler, and binutils (strip,
nm, size).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
import run  # noqa: E402  (probe_interpreter, build)

LANGS = [("C", "c"), ("C++", "cpp")]
VARIANTS = ["without", "with"]

# Run in the interpreter under test: import one module from one directory,
# call exercise() and print what it returned.
EXERCISE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
print(json.dumps(importlib.import_module(sys.argv[2]).exercise()))
"""


def log(msg=""):
    print(msg, flush=True)


def tool(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout


def stripped_size(path):
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, os.path.basename(path))
        shutil.copyfile(path, copy)
        tool(["strip", "--strip-all", copy])
        return os.path.getsize(copy)


def loaded_size(path):
    """text + data + bss, as size(1) counts them: the allocated sections,
    without the padding between segments that the file size includes."""
    return int(tool(["size", path]).splitlines()[1].split()[3])


def exports(path):
    return [line.split()[-1] for line in tool(["nm", "-D", "--defined-only", path]).splitlines()
            if line.strip()]


def exercise(info, directory, name):
    out = subprocess.run([info["python"], "-I", "-c", EXERCISE, directory, name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["exit status %d" % out.returncode])[-1]
    return json.loads(out.stdout), None


def measure(info, args):
    """Builds and measures one interpreter's modules; returns (record,
    number of failures)."""
    targets = ["size_ext_%s_%s" % (lang, variant) for _, lang in LANGS for variant in VARIANTS]
    bdir = run.build(info, args.build_root, args.jobs, args.library, targets)
    with open(os.path.join(bdir, "pyimmortal-library.txt")) as f:
        library = f.read().strip()
    rec = {"python": info["python"], "version": info["version"], "tag": info["tag"],
           "library": {"path": library, "bytes": os.path.getsize(library)},
           "modules": [], "languages": []}
    failures = 0
    for label, lang in LANGS:
        name = "size_ext_" + lang
        sizes = {}
        for variant in VARIANTS:
            directory = os.path.join(bdir, "size", variant)
            path = os.path.join(directory, name + info["ext_suffix"])
            mod = {"language": label, "variant": variant, "path": path,
                   "bytes": os.path.getsize(path), "stripped_bytes": stripped_size(path),
                   "loaded_bytes": loaded_size(path), "exports": exports(path)}
            mod["exercise"], error = exercise(info, directory, name)
            if error:
                mod["error"] = error
                failures += 1
            rec["modules"].append(mod)
            sizes[variant] = mod
        rec["languages"].append({
            "language": label,
            "stripped_without": sizes["without"]["stripped_bytes"],
            "stripped_with": sizes["with"]["stripped_bytes"],
            "added_bytes": sizes["with"]["stripped_bytes"] - sizes["without"]["stripped_bytes"],
            "loaded_added_bytes": sizes["with"]["loaded_bytes"] - sizes["without"]["loaded_bytes"],
        })
    return rec, failures


def print_record(rec):
    lib = rec["library"]
    log("libpyimmortal.a used: {:,} bytes ({:.1f} KiB), {}".format(
        lib["bytes"], lib["bytes"] / 1024.0, lib["path"]))
    log("%-6s %-4s %17s %14s %8s %9s %22s" % (
        "tag", "lang", "stripped without", "stripped with", "added B", "added KiB",
        "text+data+bss added B"))
    for row in rec["languages"]:
        log("%-6s %-4s %17d %14d %8d %9.2f %22d"
            % (rec["tag"], row["language"], row["stripped_without"], row["stripped_with"],
               row["added_bytes"], row["added_bytes"] / 1024.0, row["loaded_added_bytes"]))
    for mod in rec["modules"]:
        where = "%s %-3s %-7s" % (rec["tag"], mod["language"], mod["variant"])
        others = [s for s in mod["exports"] if not s.startswith("PyInit_")]
        log("%s exports %d symbol(s): %s" % (where, len(mod["exports"]), " ".join(mod["exports"])))
        if others:
            log("WARNING: %s exports more than PyInit_*: %s" % (where, " ".join(others)))
        if mod.get("error"):
            log("FAILED: %s does not import and run: %s" % (where, mod["error"]))
        elif mod["variant"] == "with":
            results = dict(mod["exercise"])
            results["target_version_hex"] = "0x%08X" % results["target_version_hex"]
            log("%s exercise() -> %s" % (where, " ".join(
                "%s=%s" % kv for kv in sorted(results.items()))))


def main():
    ap = argparse.ArgumentParser(
        description="what pyimmortal adds to an extension module's size",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--python", action="append", default=[],
                    help="interpreter to build for (repeatable; default: this one)")
    ap.add_argument("--build-root", default=os.path.join(run.REPO, "_build", "bench"),
                    help="CMake builds go to BUILD_ROOT/<tag> (default: _build/bench)")
    ap.add_argument("--library", metavar="LIB",
                    help="use this libpyimmortal.a (built for the one --python) instead of cargo")
    ap.add_argument("--out", default=os.path.join(run.REPO, "_build", "bench"),
                    help="where size.json goes (default: _build/bench)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="parallel build jobs")
    args = ap.parse_args()
    pythons = args.python or [sys.executable]
    if args.library and len(pythons) != 1:
        ap.error("--library needs exactly one --python")

    records, failures = [], 0
    for python in pythons:
        info = run.probe_interpreter(python)
        log("== %s (%s): building" % (info["tag"], info["version"]))
        try:
            rec, failed = measure(info, args)
        except SystemExit as e:  # run.build's message for a failed build
            log(str(e))
            failures += 1
            continue
        failures += failed
        print_record(rec)
        records.append(rec)
        log()

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "size.json")
    with open(path, "w") as f:
        json.dump({"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                   "host": platform.node(), "interpreters": records}, f, indent=1)
        f.write("\n")
    log("wrote %s" % path)
    if failures:
        log("size: %d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
