#!/usr/bin/env python3
"""pyimmortal's free-threaded scaling benchmark.

    python3 bench/run.py --python /path/to/python3.14t [--python ...]
        [--threads N] [--repeats R] [--inner P] [--iterations K] [--min-time S]
        [--wait-idle S] [--max-foreign F] [--retries K] [--no-paired]
        [--out DIR] [--build-root DIR] [--plain-png] [--smoke]

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

Writes <out>/results.json, <out>/table.txt and <out>/speedup.png. --smoke
builds and runs every configuration once with a tiny iteration count and 2
threads, checks what the pyimmortal calls returned, and never looks at
timings.

This runner needs Python 3.6+ and CMake; the interpreters under test may be
any CPython 3.9-3.15, GIL or free-threaded.
"""

import argparse
import datetime
import json
import math
import os
import platform
try:
    import resource
except ImportError:  # not on Windows
    resource = None
import struct
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "worker.py")

MAIN_KERNELS = ["capsule", "callable", "singleton"]
MODES = ["mortal", "immortal", "deferred"]
GC_KERNELS = {"capsule-gc", "callable", "singleton"}

PROBE_SCRIPT = r"""
import json, os, sys, sysconfig
ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
debug = hasattr(sys, "gettotalrefcount")
tag = "%d.%d%s%s" % (sys.version_info[0], sys.version_info[1],
                     "t" if ft else "", "d" if debug else "")
print(json.dumps({
    "version": sys.version.replace("\n", " "),
    "version_info": list(sys.version_info[:3]),
    "tag": tag,
    "free_threaded": ft,
    "debug": debug,
    "cpu_count": os.cpu_count(),
    "executable": sys.executable,
}))
"""


def log(msg):
    print(msg, flush=True)


# ---- Interpreters and builds ---------------------------------------------

def probe_interpreter(python):
    out = subprocess.run([python, "-I", "-c", PROBE_SCRIPT],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if out.returncode != 0:
        raise SystemExit("cannot run %s:\n%s" % (python, out.stderr))
    info = json.loads(out.stdout)
    info["python"] = python
    return info


def build(info, build_root, jobs, library=None):
    bdir = os.path.join(build_root, info["tag"])
    os.makedirs(bdir, exist_ok=True)
    logfile = os.path.join(bdir, "build.log")
    cmds = [
        ["cmake", "-S", HERE, "-B", bdir,
         "-DPYIMMORTAL_PYTHON=" + info["python"],
         "-DCMAKE_BUILD_TYPE=Release",
         "-DPYIMMORTAL_LIBRARY=" + (library or "")],
        ["cmake", "--build", bdir, "-j", str(jobs)],
    ]
    with open(logfile, "w") as f:
        for cmd in cmds:
            f.write("$ %s\n" % " ".join(cmd))
            f.flush()
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
            if rc != 0:
                f.close()
                with open(logfile) as g:
                    tail = g.read().splitlines()[-60:]
                raise SystemExit("build failed for %s (%s):\n%s"
                                 % (info["tag"], logfile, "\n".join(tail)))
    return bdir


# ---- Configurations and expectations -------------------------------------

def configurations(info, bench_info):
    """(kernel, mode, section) triples for this interpreter."""
    cfgs = [(k, m, "main") for k in MAIN_KERNELS for m in MODES]
    cfgs.append(("ceiling", "-", "main"))
    if info["free_threaded"]:
        # Kernel 1 with a GC handle instead of a capsule: shows what deferred
        # reference counting does for explicit Py_INCREF/Py_DECREF.
        cfgs += [("capsule-gc", m, "extra") for m in MODES]
    if bench_info.get("experiment"):
        # Set before any thread starts (3.13t then immortalizes the object at
        # the first thread start) and after one has (it stays deferred).
        cfgs += [(k, m, "experiment") for k in ("capsule-gc", "callable")
                 for m in ("internal-deferred", "internal-deferred-late")]
    return cfgs


def expected_result(info, bench_info, kernel, mode):
    """What the pyimmortal call must return for this configuration (None:
    no call is made)."""
    minor = info["version_info"][1]
    if kernel == "ceiling" or mode in ("mortal", "-"):
        return None
    if mode == "immortal":
        return 1 if minor >= 12 else 0
    if mode == "deferred":
        ok = info["free_threaded"] and minor >= 14 and kernel in GC_KERNELS
        return 1 if ok else 0
    if mode in ("internal-deferred", "internal-deferred-late"):
        return 1 if bench_info.get("experiment") and kernel in GC_KERNELS else 0
    raise ValueError(mode)


def check_run(info, bench_info, rec):
    """Problems with what a worker reported (empty list: fine)."""
    problems = []
    kernel, mode = rec["kernel"], rec["mode"]
    want = expected_result(info, bench_info, kernel, mode)
    if rec["result"] != want:
        problems.append("call returned %r, expected %r" % (rec["result"], want))
    if kernel != "ceiling":
        minor = info["version_info"][1]
        imm = rec.get("is_immortal_created")
        want_imm = (mode == "immortal" and minor >= 12)
        if imm != want_imm:
            problems.append("PyUnstable_IsImmortal gave %r, expected %r"
                            % (imm, want_imm))
    return problems


def probes_for(info, bench_info):
    """(mode, when, expected_collected) for the collectability probes."""
    if not info["free_threaded"]:
        return []
    out = [("mortal", "setup-then-thread", True),
           ("immortal", "setup-then-thread", False)]
    if info["version_info"][1] >= 14:
        out += [("deferred", "setup-then-thread", True),
                ("deferred", "no-thread", True)]
    if bench_info.get("experiment"):
        # Observations only: this state is not pyimmortal's.
        out += [("internal-deferred", "setup-then-thread", None),
                ("internal-deferred", "thread-then-setup", None),
                ("internal-deferred", "no-thread", None)]
    return out


# ---- Workers ---------------------------------------------------------------

def run_worker(info, bdir, argv):
    cmd = [info["python"], WORKER, "--build-dir", bdir] + argv
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
    return (["--kernel", kernel, "--mode", "mortal" if mode == "-" else mode,
             "--threads", str(threads), "--iterations", str(iterations)]
            + list(extra))


def nice_round(n):
    """Rounds n up to two significant digits."""
    if n <= 10:
        return max(1, int(n))
    p = 10 ** (int(math.floor(math.log10(n))) - 1)
    return int(math.ceil(n / float(p))) * p


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval` seconds (Linux /proc/stat;
    None elsewhere)."""
    def sample():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:8]]
        return sum(vals), vals[3] + vals[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / float(max(1, t1 - t0))


def cpu_accounting():
    """(wall, busy CPU seconds of the whole machine, CPU seconds of finished
    children), or None where /proc/stat is missing. Steal time counts as
    busy: on a VM it is the host's other tenants."""
    if resource is None:
        return None
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        tick = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (sum(v) - v[3] - v[4]) / tick  # all but idle and iowait
    return time.time(), busy, ru.ru_utime + ru.ru_stime


def foreign_load(before, after):
    """Fraction of the machine that processes other than our worker used
    between two cpu_accounting() samples."""
    if before is None or after is None:
        return None
    wall = max(1e-3, after[0] - before[0])
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other) / (wall * (os.cpu_count() or 1))


def wait_idle(limit, threshold=0.2):
    """Waits up to `limit` seconds for the machine to be mostly idle; returns
    the last busy fraction seen (None if it cannot be measured)."""
    deadline = time.time() + limit
    busy = cpu_busy()
    while busy is not None and busy > threshold and time.time() < deadline:
        busy = cpu_busy()
    return busy


def calibrate(info, bdir, kernel, mode, min_time, wait):
    """Iterations per thread so that one thread takes about min_time: scaled
    up until the best of three 1-thread runs takes at least a tenth of a
    second, then checked once at the estimated count itself (short runs
    tend to run slower per iteration than long ones)."""
    iters = 100000
    final = False
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
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ---- Smoke -----------------------------------------------------------------

def smoke(info, bdir):
    """Every configuration once, tiny and with 2 threads; returns the number
    of failures. Timings are printed, never checked."""
    failures = 0
    bench_info = None
    rec, err = run_worker(info, bdir, worker_args("ceiling", "-", 2, 200))
    if rec is None:
        log("%-6s ceiling   -                  CRASH %s" % (info["tag"], err))
        return 1
    bench_info = rec["bench_info"]
    for kernel, mode, _section in configurations(info, bench_info):
        rec, err = run_worker(info, bdir, worker_args(kernel, mode, 2, 200))
        if rec is None:
            log("%-6s %-10s %-22s CRASH %s" % (info["tag"], kernel, mode, err))
            failures += 1
            continue
        problems = check_run(info, bench_info, rec)
        failures += bool(problems)
        log("%-6s %-10s %-22s call=%-4s immortal=%-5s after-thread=%-5s "
            "t1=%.4fs tN=%.4fs %s"
            % (info["tag"], kernel, mode, fmt_result(rec["result"]),
               rec.get("is_immortal_created", "-"),
               rec.get("is_immortal_after_thread", "-"), rec["t1"][0], rec["tN"][0],
               "ok" if not problems else "FAIL: " + "; ".join(problems)))
    for mode, when, want in probes_for(info, bench_info):
        rec, err = run_worker(info, bdir, ["--probe", when, "--mode", mode])
        if rec is None:
            log("%-6s probe %-17s %-17s CRASH %s" % (info["tag"], mode, when, err))
            failures += 1
            continue
        problems = []
        want_call = expected_result(info, bench_info, "callable", mode)
        if rec["result"] != want_call:
            problems.append("call returned %r, expected %r" % (rec["result"], want_call))
        if want is not None and rec["collected"] != want:
            problems.append("expected collected=%s" % want)
        failures += bool(problems)
        log("%-6s probe %-17s %-17s call=%-4s immortal=%-5s collected=%-5s %s"
            % (info["tag"], mode, when, fmt_result(rec["result"]),
               rec["is_immortal"], rec["collected"],
               ("FAIL: " + "; ".join(problems)) if problems
               else ("ok" if want is not None else "ok (collected: observation only)")))
    return failures


def fmt_result(r):
    return "-" if r is None else str(r)


# ---- Full benchmark --------------------------------------------------------

def benchmark(info, bdir, threads, repeats, inner, iterations, min_time, wait,
              max_foreign, max_retries, paired):
    rec, err = run_worker(info, bdir, worker_args("ceiling", "-", 2, 200))
    if rec is None:
        raise SystemExit("%s: worker failed: %s" % (info["tag"], err))
    bench_info = rec["bench_info"]
    gil = rec.get("gil_enabled")
    cfgs = configurations(info, bench_info)
    entries = []
    for kernel, mode, section in cfgs:
        entries.append({"kernel": kernel, "mode": mode, "section": section,
                        "expected": expected_result(info, bench_info, kernel, mode),
                        "t1": [], "tN": [], "speedups": []})

    # One untimed pass: what each pyimmortal call returns. A call that
    # returns 0 leaves the object as it was, so that configuration is "n/a".
    for e in entries:
        rec, err = run_worker(info, bdir, worker_args(e["kernel"], e["mode"], 2, 200))
        if rec is None:
            raise SystemExit("%s %s %s crashed: %s"
                             % (info["tag"], e["kernel"], e["mode"], err))
        problems = check_run(info, bench_info, rec)
        if problems:
            raise SystemExit("%s %s %s: %s" % (info["tag"], e["kernel"],
                                               e["mode"], "; ".join(problems)))
        e["result"] = rec["result"]
        e["na"] = rec["result"] == 0
        for k in ("fields_created", "fields_after_thread",
                  "is_immortal_created", "is_immortal_after_thread"):
            if k in rec:
                e[k] = rec[k]

    # Fixed work per kernel: from the command line, or calibrated on the
    # kernel's first configuration with one thread.
    iters = {}
    for e in entries:
        if e["kernel"] not in iters:
            iters[e["kernel"]] = iterations or calibrate(
                info, bdir, e["kernel"], e["mode"], min_time, wait)
    log("  iterations per thread: " + ", ".join(
        "%s=%d" % kv for kv in sorted(iters.items())))

    timed = [e for e in entries if not e["na"]]
    reruns = 0
    for r in range(repeats):
        # Interleaved, rotated: load from elsewhere spreads over all rows.
        order = timed[r % len(timed):] + timed[:r % len(timed)]
        for e in order:
            extra = ["--order", "1N" if r % 2 == 0 else "N1", "--repeats", str(inner)]
            if paired and e["kernel"] != "ceiling":
                extra += ["--paired-ceiling", str(iters["ceiling"])]
            argv = worker_args(e["kernel"], e["mode"], threads, iters[e["kernel"]], extra)
            for attempt in range(max_retries + 1):
                if wait:
                    wait_idle(wait)
                before = cpu_accounting()
                rec, err = run_worker(info, bdir, argv)
                foreign = foreign_load(before, cpu_accounting())
                if rec is None:
                    raise SystemExit("%s %s %s crashed: %s"
                                     % (info["tag"], e["kernel"], e["mode"], err))
                if foreign is None or foreign <= max_foreign:
                    break
                reruns += 1
            # Noise only ever adds time: each process's sample is the best
            # 1-thread time over the best N-thread time.
            t1, tn = min(rec["t1"]), min(rec["tN"])
            e["t1"].append(t1)
            e["tN"].append(tn)
            e.setdefault("raw", []).append({"t1": rec["t1"], "tN": rec["tN"]})
            e["speedups"].append(threads * t1 / tn)
            if "ceiling_t1" in rec:
                cs = threads * min(rec["ceiling_t1"]) / min(rec["ceiling_tN"])
                e.setdefault("paired_ceiling", []).append(cs)
                e.setdefault("paired_fractions", []).append(threads * t1 / tn / cs)
                e["raw"][-1]["ceiling_t1"] = rec["ceiling_t1"]
                e["raw"][-1]["ceiling_tN"] = rec["ceiling_tN"]
            e.setdefault("foreign_load", []).append(foreign)
        log("  repeat %d/%d done" % (r + 1, repeats))

    ceiling = next(e for e in entries if e["kernel"] == "ceiling")
    ceil_med = median(ceiling["speedups"])
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
    for mode, when, want in probes_for(info, bench_info):
        rec, err = run_worker(info, bdir, ["--probe", when, "--mode", mode])
        if rec is None:
            raise SystemExit("%s probe %s/%s crashed: %s" % (info["tag"], mode, when, err))
        rec["expected_collected"] = want
        probes.append(rec)

    return {
        "python": info["python"], "version": info["version"], "tag": info["tag"],
        "free_threaded": info["free_threaded"], "debug": info["debug"],
        "cpu_count": info["cpu_count"], "gil_enabled": gil,
        "bench_info": bench_info, "threads": threads, "repeats": repeats,
        "inner": inner,
        "ceiling_median": ceil_med, "iterations": iters, "reruns": reruns,
        "max_foreign": max_foreign, "entries": entries,
        "probes": probes,
    }


def table(res, date):
    lines = []
    lines.append("%s | os.cpu_count()=%s | threads=%d | repeats=%d | %s"
                 % (res["version"], res["cpu_count"], res["threads"],
                    res["repeats"], date))
    lines.append("timed processes run again because other load exceeded %.0f%% "
                 "of the machine: %d" % (100 * res["max_foreign"], res["reruns"]))
    if res["free_threaded"] and res["gil_enabled"]:
        lines.append("NOTE: the GIL was enabled at run time")
    lines.append("speedup = %d * t1 / tN (best of %d pairs per process), median "
                 "and min-max over %d processes; call = what the pyimmortal call "
                 "returned" % (res["threads"], res["inner"], res["repeats"]))
    lines.append("iterations per thread: " + ", ".join(
        "%s=%d" % kv for kv in sorted(res["iterations"].items())))
    lines.append("of ceiling = speedup median / ceiling median; paired = median over "
                 "processes of speedup / ceiling speedup timed in the same process")
    hdr = "%-11s %-22s %-5s %-8s %-8s %-13s %-8s %-11s %s" % (
        "kernel", "mode", "call", "t1", "speedup", "spread", "ceiling",
        "of ceiling", "paired")
    sections = [("main", None), ("extra", "extra: kernel 1 on a GC handle "
                 "(PyCapsule is not a GC type)"),
                ("experiment", "3.13t experiment: internal deferred state set "
                 "by hand (bench-only helper, not pyimmortal)")]
    for section, title in sections:
        rows = [e for e in res["entries"] if e["section"] == section]
        if not rows:
            continue
        lines.append("")
        if title:
            lines.append(title)
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for e in rows:
            call = fmt_result(e["result"])
            if e["na"]:
                lines.append("%-11s %-22s %-5s %-8s %-8s" % (
                    e["kernel"], e["mode"], call, "-", "n/a"))
                continue
            pf = e.get("paired_fraction")
            lines.append("%-11s %-22s %-5s %-8s %-8s %-13s %-8s %-11s %s" % (
                e["kernel"], e["mode"], call, "%.3fs" % e["t1_median"],
                "%.2fx" % e["median"],
                "%.2f-%.2fx" % (e["min"], e["max"]),
                "%.2fx" % res["ceiling_median"],
                "%.0f%%" % (100 * e["fraction_of_ceiling"]),
                "-" if pf is None else "%.0f%%" % (100 * pf)))
    if res["probes"]:
        lines.append("")
        lines.append("collectability probes: a Callable built in each mode, a weakref, "
                     "then del + gc.collect()")
        lines.append("(fields read after the thread, if any, has been joined)")
        lines.append("%-18s %-18s %-5s %-13s %-20s %-11s %s" % (
            "mode", "order", "call", "ob_ref_local", "ob_ref_shared",
            "IsImmortal", "collected"))
        for p in res["probes"]:
            f = p["fields_after_thread"] or {}
            lines.append("%-18s %-18s %-5s %-13s %-20s %-11s %s" % (
                p["mode"], p["probe"], fmt_result(p["result"]),
                f.get("ob_ref_local", "-"), f.get("ob_ref_shared", "-"),
                p["is_immortal"], p["collected"]))
    return "\n".join(lines)


# ---- Chart -------------------------------------------------------------------

COLORS = {
    "mortal": (110, 110, 120),
    "immortal": (40, 150, 70),
    "deferred": (230, 140, 30),
    "internal-deferred": (140, 80, 180),
    "internal-deferred-late": (190, 160, 220),
}
CEILING_COLOR = (210, 40, 40)


def chart_groups(res):
    """[(group label, [(mode, entry)])] in display order."""
    groups = []
    for kernel, label in (("capsule", "capsule"), ("callable", "callable"),
                          ("singleton", "singleton"), ("capsule-gc", "capsule-gc")):
        bars = [(e["mode"], e) for e in res["entries"] if e["kernel"] == kernel]
        if bars:
            groups.append((label, bars))
    return groups


def draw_matplotlib(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.6 * n), squeeze=False)
    for ax, res in zip(axes[:, 0], results):
        groups = chart_groups(res)
        width = 0.85 / max(3, max(len(b) for _, b in groups))
        for gi, (label, bars) in enumerate(groups):
            for bi, (mode, e) in enumerate(bars):
                x = gi + (bi - (len(bars) - 1) / 2.0) * width
                if e["na"]:
                    ax.text(x, 0.05, "n/a", ha="center", va="bottom",
                            rotation=90, fontsize=8)
                    continue
                c = tuple(v / 255.0 for v in COLORS[mode])
                ax.bar(x, e["median"], width * 0.9, color=c,
                       label=mode,
                       yerr=[[e["median"] - e["min"]], [e["max"] - e["median"]]],
                       capsize=3)
                ax.text(x, e["max"] + 0.03, "%.2f" % e["median"], ha="center",
                        va="bottom", fontsize=7)
        ax.axhline(res["ceiling_median"], color=tuple(v / 255.0 for v in CEILING_COLOR),
                   linestyle="--", label="ceiling %.2fx" % res["ceiling_median"])
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g[0] for g in groups])
        ax.set_ylabel("speedup, %d threads" % res["threads"])
        ax.set_title("CPython %s, os.cpu_count()=%s" % (
            res["version"].split(" (")[0], res["cpu_count"]), fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, l in zip(handles, labels):
            seen.setdefault(l, h)
        ax.legend(list(seen.values()), list(seen.keys()), fontsize=7,
                  loc="upper left", ncol=3)
        ax.set_ylim(0, max(res["threads"], max_value(res)) * 1.45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def max_value(res):
    vals = [e["max"] for e in res["entries"] if not e["na"]]
    return max(vals + [res["ceiling_median"], 1.0])


# A 5x7 bitmap font for the fallback chart: each glyph is seven rows, five
# bits each (most significant bit leftmost). Text is drawn in capitals, except
# a small "x" or "t" right after a digit.
FONT = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14), "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14), "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14), "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "x": (0, 0, 17, 10, 4, 10, 17), "t": (8, 8, 28, 8, 8, 9, 6),
    ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    ":": (0, 12, 12, 0, 12, 12, 0), "-": (0, 0, 0, 31, 0, 0, 0),
    "+": (0, 4, 4, 31, 4, 4, 0), "%": (24, 25, 2, 4, 8, 19, 3),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    "/": (0, 1, 2, 4, 8, 16, 0), "=": (0, 0, 31, 0, 31, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 31), "[": (14, 8, 8, 8, 8, 8, 14),
    "]": (14, 2, 2, 2, 2, 2, 14), "|": (4, 4, 4, 4, 4, 4, 4),
    "?": (14, 17, 1, 2, 4, 0, 4),
}


class Canvas:
    """An RGB raster that can save itself as PNG (zlib + struct only)."""

    def __init__(self, width, height, bg=(255, 255, 255)):
        self.w, self.h = width, height
        self.px = bytearray(bytes(bg) * (width * height))

    def rect(self, x0, y0, x1, y1, color):
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        if x0 >= x1:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def hline(self, x0, x1, y, color, dash=0, thick=1):
        if dash:
            for x in range(x0, x1, 2 * dash):
                self.rect(x, y, min(x + dash, x1), y + thick, color)
        else:
            self.rect(x0, y, x1, y + thick, color)

    def vline(self, x, y0, y1, color, thick=1):
        self.rect(x, y0, x + thick, y1, color)

    @staticmethod
    def text_width(s, scale=1):
        return len(s) * 6 * scale

    def text(self, x, y, s, color=(0, 0, 0), scale=1, vertical=False):
        prev = ""
        for ch in s:
            # "x" and "t" stay small only right after a digit ("1.5x", "3.14t").
            key = ch if (ch in "xt" and prev.isdigit()) else ch.upper()
            prev = ch
            glyph = FONT.get(key) or FONT["?"]
            for r, bits in enumerate(glyph):
                for c in range(5):
                    if bits & (16 >> c):
                        if vertical:  # reads bottom to top
                            px, py = x + r * scale, y - c * scale
                        else:
                            px, py = x + c * scale, y + r * scale
                        self.rect(px, py, px + scale, py + scale, color)
            if vertical:
                y -= 6 * scale
            else:
                x += 6 * scale

    def save_png(self, path):
        raw = bytearray()
        stride = self.w * 3
        for y in range(self.h):
            raw.append(0)
            raw += self.px[y * stride:(y + 1) * stride]

        def chunk(kind, data):
            c = struct.pack(">I", len(data)) + kind + data
            return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        png = b"\x89PNG\r\n\x1a\n"
        png += chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
        png += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        png += chunk(b"IEND", b"")
        with open(path, "wb") as f:
            f.write(png)


def draw_plain(results, path):
    W, PH = 1000, 380
    left, right, top, bottom = 70, 20, 56, 50
    c = Canvas(W, PH * len(results) + 10)
    for pi, res in enumerate(results):
        oy = pi * PH
        short = res["version"].split(" (")[0].replace(" experimental", "")
        title = "CPython %s  os.cpu_count()=%s  %d threads" % (
            short.replace(" build", ""), res["cpu_count"], res["threads"])
        tscale = 2 if Canvas.text_width(title, 2) <= W - left - right else 1
        c.text(left, oy + 10, title, scale=tscale)
        x0, x1 = left, W - right
        y0, y1 = oy + top, oy + PH - bottom  # plot top, plot bottom
        vmax = max(res["threads"], max_value(res)) * 1.15
        step = 0.25 if vmax <= 2.5 else (0.5 if vmax <= 5 else 1.0)
        vmax = math.ceil(vmax / step) * step

        def ypix(v):
            return int(round(y1 - (y1 - y0) * v / vmax))

        v = 0.0
        while v <= vmax + 1e-9:
            y = ypix(v)
            c.hline(x0, x1, y, (225, 225, 225))
            c.hline(x0 - 5, x0, y, (0, 0, 0))
            label = "%.2fx" % v
            c.text(x0 - 8 - Canvas.text_width(label), y - 3, label)
            v += step
        c.vline(x0, y0, y1 + 1, (0, 0, 0))
        c.hline(x0, x1, y1, (0, 0, 0))
        c.hline(x0, x1, ypix(1.0), (60, 60, 60))
        c.text(12, (y0 + y1) // 2 + 40, "SPEEDUP", scale=1, vertical=True)

        groups = chart_groups(res)
        gw = (x1 - x0) / float(max(1, len(groups)))
        bw = int(gw * 0.85 / max(3, max(len(b) for _, b in groups)))
        for gi, (label, bars) in enumerate(groups):
            gx = x0 + gw * gi + gw / 2.0
            for bi, (mode, e) in enumerate(bars):
                bx = int(gx + (bi - len(bars) / 2.0) * bw) + 2
                if e["na"]:
                    c.text(bx + bw // 2 - 4, y1 - 8, "N/A", color=COLORS[mode], vertical=True)
                    continue
                c.rect(bx, ypix(e["median"]), bx + bw - 4, y1, COLORS[mode])
                mid = bx + (bw - 4) // 2
                c.vline(mid, ypix(e["max"]), ypix(e["min"]) + 1, (0, 0, 0))
                c.hline(mid - 4, mid + 5, ypix(e["max"]), (0, 0, 0))
                c.hline(mid - 4, mid + 5, ypix(e["min"]), (0, 0, 0))
                lab = "%.2f" % e["median"]
                c.text(mid - Canvas.text_width(lab) // 2, ypix(e["max"]) - 10, lab)
            c.text(int(gx - Canvas.text_width(label, 2) / 2), y1 + 12, label, scale=2)
        c.hline(x0, x1, ypix(res["ceiling_median"]), CEILING_COLOR, dash=8, thick=2)

        lx = left
        for mode in COLORS:
            if not any(e["mode"] == mode for e in res["entries"]):
                continue
            c.rect(lx, oy + 34, lx + 12, oy + 46, COLORS[mode])
            c.text(lx + 16, oy + 37, mode.upper())
            lx += 16 + Canvas.text_width(mode) + 24
        c.hline(lx, lx + 24, oy + 39, CEILING_COLOR, dash=4, thick=2)
        c.text(lx + 28, oy + 37, "CEILING %.2fx (SHARES NOTHING)" % res["ceiling_median"],
               color=CEILING_COLOR)
    c.save_png(path)


def draw(results, path, plain):
    if not plain:
        try:
            draw_matplotlib(results, path)
            return "matplotlib"
        except ImportError:
            pass
    draw_plain(results, path)
    return "built-in PNG writer"


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
                    help="calibration target for one thread, seconds "
                         "(default: %(default)s)")
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
    ap.add_argument("--plain-png", action="store_true",
                    help="draw the chart without matplotlib even if it is there")
    ap.add_argument("--smoke", action="store_true",
                    help="build and run every configuration once, tiny, 2 threads")
    ap.add_argument("--library", metavar="LIB",
                    help="use this libpyimmortal.a (built for the one --python) instead of cargo")
    args = ap.parse_args()

    pythons = args.python or [sys.executable]
    if args.library and len(pythons) != 1:
        ap.error("--library needs exactly one --python")
    infos = [probe_interpreter(p) for p in pythons]
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")

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

    threads = args.threads or max(2, os.cpu_count() or 2)
    results = []
    for info in infos:
        log("== %s: building" % info["tag"])
        bdir = build(info, args.build_root, args.jobs, args.library)
        log("== %s: running (%d threads, %d repeats)" % (info["tag"], threads, args.repeats))
        res = benchmark(info, bdir, threads, args.repeats, args.inner, args.iterations,
                        args.min_time, args.wait_idle, args.max_foreign,
                        args.retries, not args.no_paired)
        results.append(res)
        log("")
        log(table(res, date))
        log("")

    os.makedirs(args.out, exist_ok=True)
    doc = {
        "date": date, "host": platform.node(), "cpu_count": os.cpu_count(),
        "threads": threads, "repeats": args.repeats,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "interpreters": results,
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write("\n\n".join(table(r, date) for r in results) + "\n")
    how = draw(results, os.path.join(args.out, "speedup.png"), args.plain_png)
    log("wrote %s, %s and %s (%s)" % (
        os.path.join(args.out, "results.json"), os.path.join(args.out, "table.txt"),
        os.path.join(args.out, "speedup.png"), how))
    return 0


if __name__ == "__main__":
    sys.exit(main())
