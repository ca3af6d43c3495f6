#!/usr/bin/env python3
"""pyimmortal's free-threaded scaling benchmark.

    python3 bench/run.py --python /path/to/python3.14t [--python ...]
        [--threads N] [--repeats R] [--inner P] [--iterations K] [--min-time S]
        [--wait-idle S] [--max-foreign F] [--retries K] [--no-paired]
        [--out DIR] [--build-root DIR] [--library LIB] [--smoke]

For every interpreter: builds bench/ with CMake into <build-root>/<tag>
(tag such as 3.14t), then runs every kernel x mode configuration in a fresh
process of that interpreter (bench/worker.py). Each process times the same
fixed work per thread with 1 thread and with N threads, P times in
alternating order; its sample is N * best t1 / best tN. Every configuration
gets R such processes (interleaved with the other configurations, each run
again if other processes loaded the machine meanwhile) and is reported as
median and min-max, next to the median of the shared-nothing "ceiling"
kernel from the same run ("of ceiling" = median / ceiling median). Unless
--no-paired is given, every process also times the ceiling kernel right
after each of its pairs; "paired" is the median over processes of the
speedup divided by that same-process ceiling speedup, which cancels
machine-wide drift (other tenants of a VM host, frequency changes).

Writes <out>/results.json and <out>/table.txt, and <out>/speedup.png when
matplotlib is installed (bench/report.py). --smoke builds and runs every
configuration once with a tiny iteration count and 2 threads, checks what the
pyimmortal calls returned, and never looks at timings.

Runs on every CPython target that pyimmortal builds for (GIL, free-threaded
or debug; Cargo.toml's [package.metadata.cpython]); needs CMake.
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time

try:
    import resource
except ImportError:  # not on Windows
    resource = None

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
import report  # noqa: E402

REPO = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "worker.py")
MODES = ["mortal", "immortal", "deferred"]
GC_KERNELS = {"capsule-gc", "callable", "singleton"}

PROBE = os.path.join(REPO, "build", "probe.py")


def log(msg=""):
    print(msg, flush=True)


# ---- Interpreters and builds ---------------------------------------------

def probe_interpreter(python):
    """What the benchmark needs to know about python, from build/probe.py."""
    out = subprocess.run([python, "-I", PROBE], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    if out.returncode != 0:
        raise SystemExit("cannot run %s:\n%s" % (python, out.stderr))
    facts = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    hexversion = int(facts["version_hex"])
    return {
        "python": python,
        "version": facts["sys_version"],
        "version_info": [hexversion >> 24, (hexversion >> 16) & 0xFF, (hexversion >> 8) & 0xFF],
        "tag": facts["tag"],
        "free_threaded": facts["free_threaded"] == "1",
        "debug": facts["debug"] == "1",
        "cpu_count": int(facts["cpu_count"]) or None,
        "executable": facts["executable"],
        "ext_suffix": facts["ext_suffix"],
    }


def build(info, build_root, jobs, library=None, targets=()):
    """Configures bench/ for info's interpreter in <build_root>/<tag> and
    builds `targets` there (default: the targets built by default); returns
    that directory. Other bench commands build their own targets with it."""
    bdir = os.path.join(build_root, info["tag"])
    os.makedirs(bdir, exist_ok=True)
    logfile = os.path.join(bdir, "build.log")
    with open(logfile, "w") as f:
        for cmd in (["cmake", "-S", HERE, "-B", bdir, "-DPYIMMORTAL_PYTHON=" + info["python"],
                     "-DCMAKE_BUILD_TYPE=Release", "-DPYIMMORTAL_LIBRARY=" + (library or "")],
                    ["cmake", "--build", bdir, "-j", str(jobs)]
                    + (["--target"] + list(targets) if targets else [])):
            f.write("$ %s\n" % " ".join(cmd))
            f.flush()
            if subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT) != 0:
                f.close()
                with open(logfile) as g:
                    tail = g.read().splitlines()[-60:]
                raise SystemExit("build failed for %s (%s):\n%s"
                                 % (info["tag"], logfile, "\n".join(tail)))
    return bdir


# ---- Configurations and expectations -------------------------------------

def configurations(info):
    """(kernel, mode, section) triples for this interpreter."""
    cfgs = [(k, m, "main") for k in ("capsule", "callable", "singleton") for m in MODES]
    cfgs.append(("ceiling", "-", "main"))
    if info["free_threaded"]:
        # Kernel 1 with a GC handle instead of a capsule: shows what deferred
        # reference counting does for explicit Py_INCREF/Py_DECREF.
        cfgs += [("capsule-gc", m, "extra") for m in MODES]
    return cfgs


def expected_result(info, kernel, mode):
    """What the pyimmortal call must return (None: no call is made)."""
    minor = info["version_info"][1]
    if mode == "immortal":
        return 1 if minor >= 12 else 0
    if mode == "deferred":
        return int(info["free_threaded"] and minor >= 14 and kernel in GC_KERNELS)
    return None


def check_run(info, rec):
    """Problems with what a timing worker reported (empty list: fine)."""
    problems = []
    want = expected_result(info, rec["kernel"], rec["mode"])
    if rec["result"] != want:
        problems.append("call returned %r, expected %r" % (rec["result"], want))
    if rec["kernel"] != "ceiling":
        want_imm = rec["mode"] == "immortal" and info["version_info"][1] >= 12
        if rec.get("is_immortal_created") != want_imm:
            problems.append("PyUnstable_IsImmortal gave %r, expected %r"
                            % (rec.get("is_immortal_created"), want_imm))
    return problems


def check_probe(info, rec, want_collected):
    problems = []
    want = expected_result(info, "callable", rec["mode"])
    if rec["result"] != want:
        problems.append("call returned %r, expected %r" % (rec["result"], want))
    if rec["collected"] != want_collected:
        problems.append("expected collected=%s" % want_collected)
    if rec["sys_is_immortal"] not in (None, rec["is_immortal"]):
        problems.append("sys._is_immortal disagrees with PyUnstable_IsImmortal")
    return problems


def probes_for(info):
    """(mode, order, expected collected) for the collectability probes."""
    if not info["free_threaded"]:
        return []
    out = [("mortal", "setup-then-thread", True), ("immortal", "setup-then-thread", False)]
    if info["version_info"][1] >= 14:
        out += [("deferred", "setup-then-thread", True), ("deferred", "no-thread", True)]
    return out


# ---- Workers and the machine ---------------------------------------------

def run_worker(info, bdir, argv):
    out = subprocess.run([info["python"], WORKER, "--build-dir", bdir] + argv,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if out.returncode != 0:
        return None, "exit status %d: %s" % (
            out.returncode, (out.stderr.strip().splitlines() or ["?"])[-1])
    try:
        return json.loads(out.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return None, "bad worker output: %r" % out.stdout[-200:]


def worker_args(kernel, mode, threads, iterations, extra=()):
    """Command line of one worker; mode "-" (the ceiling) runs as mortal."""
    return ["--kernel", kernel, "--mode", "mortal" if mode == "-" else mode,
            "--threads", str(threads), "--iterations", str(iterations)] + list(extra)


def cpu_ticks():
    """(all, busy) CPU ticks of the whole machine since boot from /proc/stat,
    or None. Steal time counts as busy: on a VM it is the host's other
    tenants."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(v), sum(v) - v[3] - v[4]  # all but idle and iowait


def wait_idle(limit, threshold=0.2):
    """Waits up to `limit` seconds for the machine to be less than
    `threshold` busy (checked over half a second at a time)."""
    deadline = time.time() + limit
    while True:
        a = cpu_ticks()
        time.sleep(0.5)
        b = cpu_ticks()
        if a is None or b is None or time.time() >= deadline:
            return
        if (b[1] - a[1]) / float(max(1, b[0] - a[0])) <= threshold:
            return


def cpu_accounting():
    """(wall, busy CPU seconds of the machine, CPU seconds of finished
    children), or None where that cannot be measured."""
    ticks = cpu_ticks()
    if resource is None or ticks is None:
        return None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time(), ticks[1] / float(os.sysconf("SC_CLK_TCK")), ru.ru_utime + ru.ru_stime


def foreign_load(before, after):
    """Fraction of the machine that processes other than our worker used
    between two cpu_accounting() samples."""
    if before is None or after is None:
        return None
    wall = max(1e-3, after[0] - before[0])
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other) / (wall * (os.cpu_count() or 1))


def nice_round(n):
    """Rounds n up to two significant digits."""
    if n <= 10:
        return max(1, int(n))
    p = 10 ** (int(math.floor(math.log10(n))) - 1)
    return int(math.ceil(n / float(p))) * p


def calibrate(info, bdir, kernel, mode, min_time, wait):
    """Iterations per thread so that one thread takes about min_time: scaled
    up until the best of three 1-thread runs takes at least a tenth of a
    second, then checked once at the estimated count itself (short runs
    tend to run slower per iteration than long ones)."""
    iters, final = 100000, False
    for _ in range(8):
        if wait:
            wait_idle(wait)
        rec, err = run_worker(info, bdir, worker_args(
            kernel, mode, 1, iters, ["--calibrate", "--repeats", "3"]))
        if rec is None:
            raise SystemExit("calibration of %s failed: %s" % (kernel, err))
        t = min(rec["t1"])
        if final:
            break
        if t >= 0.1:
            final = True
            iters = nice_round(int(min_time / (t / iters)) + 1)
        else:
            iters = int(iters * min(100.0, 0.15 / max(t, 1e-6)))
    return nice_round(int(min_time / (t / iters)) + 1)


def median(xs):
    s, n = sorted(xs), len(xs)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ---- Smoke -----------------------------------------------------------------

def smoke(info, bdir):
    """Every configuration and probe once, tiny and with 2 threads; returns
    the number of failures. Timings are printed, never checked."""
    failures = 0
    tag = info["tag"]
    for kernel, mode, _ in configurations(info):
        rec, err = run_worker(info, bdir, worker_args(kernel, mode, 2, 200))
        problems = check_run(info, rec) if rec else ["CRASH " + err]
        failures += bool(problems)
        if rec is None:
            log("%-6s %-10s %-9s %s" % (tag, kernel, mode, problems[0]))
            continue
        log("%-6s %-10s %-9s call=%-4s immortal=%-5s after-thread=%-5s "
            "t1=%.4fs tN=%.4fs %s"
            % (tag, kernel, mode, report.fmt_result(rec["result"]),
               rec.get("is_immortal_created", "-"), rec.get("is_immortal_after_thread", "-"),
               rec["t1"][0], rec["tN"][0], "FAIL: " + "; ".join(problems) if problems else "ok"))
    for mode, order, want in probes_for(info):
        rec, err = run_worker(info, bdir, ["--probe", order, "--mode", mode])
        problems = check_probe(info, rec, want) if rec else ["CRASH " + err]
        failures += bool(problems)
        if rec is None:
            log("%-6s probe %-9s %-17s %s" % (tag, mode, order, problems[0]))
            continue
        log("%-6s probe %-9s %-17s call=%-4s immortal=%-5s collected=%-5s %s"
            % (tag, mode, order, report.fmt_result(rec["result"]), rec["is_immortal"],
               rec["collected"], "FAIL: " + "; ".join(problems) if problems else "ok"))
    return failures


# ---- Full benchmark --------------------------------------------------------

def benchmark(info, bdir, threads, repeats, inner, iterations, min_time, wait,
              max_foreign, max_retries, paired):
    tag = info["tag"]
    entries = []
    # One untimed pass: what each pyimmortal call returns. A call that
    # returns 0 leaves the object as it was, so that configuration is "n/a".
    for kernel, mode, section in configurations(info):
        rec, err = run_worker(info, bdir, worker_args(kernel, mode, 2, 200))
        if rec is None:
            raise SystemExit("%s %s %s crashed: %s" % (tag, kernel, mode, err))
        problems = check_run(info, rec)
        if problems:
            raise SystemExit("%s %s %s: %s" % (tag, kernel, mode, "; ".join(problems)))
        e = {"kernel": kernel, "mode": mode, "section": section,
             "expected": expected_result(info, kernel, mode), "t1": [], "tN": [],
             "speedups": [], "result": rec["result"], "na": rec["result"] == 0}
        for k in ("is_immortal_created", "is_immortal_after_thread"):
            if k in rec:
                e[k] = rec[k]
        entries.append(e)
    bench_info, gil = rec["bench_info"], rec["gil_enabled"]

    # Fixed work per kernel: from the command line, or calibrated on the
    # kernel's first configuration with one thread.
    iters = {}
    for e in entries:
        if e["kernel"] not in iters:
            iters[e["kernel"]] = iterations or calibrate(
                info, bdir, e["kernel"], e["mode"], min_time, wait)
    log("  iterations per thread: " + ", ".join("%s=%d" % kv for kv in sorted(iters.items())))

    timed = [e for e in entries if not e["na"]]
    reruns = 0
    for r in range(repeats):
        # Interleaved, rotated: load from elsewhere spreads over all rows.
        for e in timed[r % len(timed):] + timed[:r % len(timed)]:
            extra = ["--order", "1N" if r % 2 == 0 else "N1", "--repeats", str(inner)]
            if paired and e["kernel"] != "ceiling":
                extra += ["--paired-ceiling", str(iters["ceiling"])]
            argv = worker_args(e["kernel"], e["mode"], threads, iters[e["kernel"]], extra)
            for _ in range(max_retries + 1):
                if wait:
                    wait_idle(wait)
                before = cpu_accounting()
                rec, err = run_worker(info, bdir, argv)
                foreign = foreign_load(before, cpu_accounting())
                if rec is None:
                    raise SystemExit("%s %s %s crashed: %s" % (tag, e["kernel"], e["mode"], err))
                if foreign is None or foreign <= max_foreign:
                    break
                reruns += 1
            # Noise only ever adds time: each process's sample is the best
            # 1-thread time over the best N-thread time.
            t1, tn = min(rec["t1"]), min(rec["tN"])
            e["t1"].append(t1)
            e["tN"].append(tn)
            e["speedups"].append(threads * t1 / tn)
            raw = {k: rec[k] for k in ("t1", "tN", "ceiling_t1", "ceiling_tN") if k in rec}
            e.setdefault("raw", []).append(raw)
            if "ceiling_t1" in rec:
                cs = threads * min(rec["ceiling_t1"]) / min(rec["ceiling_tN"])
                e.setdefault("paired_ceiling", []).append(cs)
                e.setdefault("paired_fractions", []).append(threads * t1 / tn / cs)
            e.setdefault("foreign_load", []).append(foreign)
        log("  repeat %d/%d done" % (r + 1, repeats))

    ceil_med = median(next(e for e in entries if e["kernel"] == "ceiling")["speedups"])
    for e in entries:
        e["iterations"] = iters[e["kernel"]]
        if e["na"]:
            continue
        s = e["speedups"]
        e["median"], e["min"], e["max"] = median(s), min(s), max(s)
        e["fraction_of_ceiling"] = e["median"] / ceil_med
        if e.get("paired_fractions"):
            e["paired_fraction"] = median(e["paired_fractions"])
        e["t1_median"] = median(e["t1"])

    probes = []
    for mode, order, want in probes_for(info):
        rec, err = run_worker(info, bdir, ["--probe", order, "--mode", mode])
        if rec is None:
            raise SystemExit("%s probe %s/%s crashed: %s" % (tag, mode, order, err))
        problems = check_probe(info, rec, want)
        if problems:
            raise SystemExit("%s probe %s/%s: %s" % (tag, mode, order, "; ".join(problems)))
        probes.append(dict(rec, expected_collected=want))

    return {
        "python": info["python"], "version": info["version"], "tag": tag,
        "free_threaded": info["free_threaded"], "debug": info["debug"],
        "cpu_count": info["cpu_count"], "gil_enabled": gil, "bench_info": bench_info,
        "threads": threads, "repeats": repeats, "inner": inner, "ceiling_median": ceil_med,
        "iterations": iters, "reruns": reruns, "max_foreign": max_foreign,
        "entries": entries, "probes": probes,
    }


# ---- Main ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description="pyimmortal free-threaded scaling benchmark",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--python", action="append", default=[],
                    help="interpreter to benchmark (repeatable; default: this one)")
    ap.add_argument("--threads", type=int, default=None,
                    help="N threads (default: os.cpu_count(), at least 2)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="processes per configuration (default: %(default)s)")
    ap.add_argument("--inner", type=int, default=3,
                    help="1-thread/N-thread pairs timed inside each process; "
                         "the sample uses the best of each (default: %(default)s)")
    ap.add_argument("--no-paired", action="store_true",
                    help="do not time the ceiling kernel inside every other "
                         "configuration's process (halves the run time; the "
                         "'paired' column is then empty)")
    ap.add_argument("--iterations", type=int, default=0,
                    help="iterations per thread (default: calibrated per kernel)")
    ap.add_argument("--min-time", type=float, default=0.25,
                    help="calibration target for one thread, seconds (default: %(default)s)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each timed process, wait up to S seconds for "
                         "the machine to be mostly idle (Linux; default: off)")
    ap.add_argument("--max-foreign", type=float, default=0.05, metavar="F",
                    help="a timed process during which other processes used "
                         "more than this fraction of the machine is run again "
                         "(Linux; default: %(default)s)")
    ap.add_argument("--retries", type=int, default=3,
                    help="how many times such a process is run again "
                         "(default: %(default)s; the last try is kept)")
    ap.add_argument("--out", default=os.path.join(REPO, "_build", "bench"),
                    help="where results.json, table.txt and speedup.png go "
                         "(default: _build/bench)")
    ap.add_argument("--build-root", default=os.path.join(REPO, "_build", "bench"),
                    help="CMake builds go to BUILD_ROOT/<tag> (default: _build/bench)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="parallel build jobs")
    ap.add_argument("--smoke", action="store_true",
                    help="build and run every configuration once, tiny, 2 threads")
    ap.add_argument("--library", metavar="LIB",
                    help="use this libpyimmortal.a (built for the one --python) instead of cargo")
    args = ap.parse_args()

    pythons = args.python or [sys.executable]
    if args.library and len(pythons) != 1:
        ap.error("--library needs exactly one --python")
    infos = [probe_interpreter(p) for p in pythons]

    if args.smoke:
        failures = 0
        for info in infos:
            log("== smoke %s (%s)" % (info["tag"], info["version"]))
            try:
                bdir = build(info, args.build_root, args.jobs, args.library)
            except SystemExit as e:
                log(str(e))
                failures += 1
                continue
            failures += smoke(info, bdir)
        log("smoke: %s" % ("ok" if not failures else "%d failure(s)" % failures))
        return 1 if failures else 0

    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    threads = args.threads or max(2, os.cpu_count() or 2)
    results = []
    for info in infos:
        log("== %s: building" % info["tag"])
        bdir = build(info, args.build_root, args.jobs, args.library)
        log("== %s: running (%d threads, %d repeats)" % (info["tag"], threads, args.repeats))
        results.append(benchmark(info, bdir, threads, args.repeats, args.inner,
                                 args.iterations, args.min_time, args.wait_idle,
                                 args.max_foreign, args.retries, not args.no_paired))
        log()
        log(report.table(results[-1], date))
        log()

    doc = {
        "date": date, "host": platform.node(), "cpu_count": os.cpu_count(),
        "threads": threads, "repeats": args.repeats,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "interpreters": results,
    }
    for line in report.write(doc, args.out):
        log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
