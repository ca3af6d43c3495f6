#!/usr/bin/env python3
"""What forked workers keep private of a heap they only read, with and
without pyimmortal.immortalize_heap().

    python3 bench/prefork.py --python /path/to/python [--python ...]
        [--wheel WHEEL ...] [--heap-mb MB] [--workers K]
        [--build-root DIR] [--out DIR]

For every interpreter, three configurations, each in a fresh parent process
of that interpreter: the parent builds the data set of examples/prefork
(records.py: dicts, lists, tuples, ints, floats and strings, MB MiB of
resident memory, default 200), then

  nothing             forks as it is
  freeze              gc.collect(), gc.freeze()
  freeze+immortalize  gc.collect(), pyimmortal.immortalize_heap(), gc.freeze()

and forks K workers (default 4). Each worker reads every value of every
record once (the checksum must match the parent's), reports, and waits; the
parent then reads each worker's Private_Dirty and Pss from
/proc/PID/smaps_rollup and lets them exit. The table gives the workers'
private dirty memory as a fraction of the heap (the growth of the parent's
resident memory while it built the data set), the time immortalize_heap()
took, per million objects it made immortal, and the objects of the data set
it left mortal.

The interpreter needs the pyimmortal package: one that imports it is used
as is; otherwise a venv in <build-root>/prefork-<tag> gets the --wheel whose
tags match, or a wheel built there from this checkout (pip wheel; needs
cargo, as pip install . does). Writes <out>/prefork.json, and
<out>/prefork.png when the Python running this script has matplotlib.
Nothing is asserted: the exit status is non-zero only when a parent or a
worker fails. On CPython 3.9-3.11 immortalize_heap() raises
NotImplementedError; the row says so and keeps gc.freeze() alone.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXAMPLE = os.path.join(REPO, "examples", "prefork")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/ and examples/ free of __pycache__
CONFIGS = ["nothing", "freeze", "freeze+immortalize"]
MiB = float(1 << 20)


def log(msg=""):
    print(msg, flush=True)


# ---- The parent of the workers: runs in the interpreter under test ---------


def smaps_rollup(pid):
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {"private_dirty": fields["Private_Dirty"], "pss": fields["Pss"]}


def read_line(fd):
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def parent(config, heap_mb, workers):
    sys.path.insert(0, EXAMPLE)
    import records

    out = {"config": config, "version": sys.version.replace("\n", " ")}
    start = time.perf_counter()
    data, out["heap_bytes"] = records.build(heap_mb)
    out["build_seconds"] = time.perf_counter() - start
    out["records"] = len(data)
    expected = records.read_all(data)
    if config != "nothing":
        gc.collect()
    if config == "freeze+immortalize":
        import pyimmortal

        start = time.perf_counter()
        try:
            out["immortalized"] = pyimmortal.immortalize_heap()
            out["immortalize_seconds"] = time.perf_counter() - start
        except (NotImplementedError, RuntimeError) as exc:
            out["immortalize_error"] = "%s: %s" % (type(exc).__name__, exc)
        else:
            out["mortal"], out["mortal_keys"], out["references"] = records.mortal_objects(
                data, pyimmortal.is_immortal)
    if config != "nothing":
        gc.freeze()
        out["frozen"] = gc.get_freeze_count()

    children = []
    for _ in range(workers):
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(report_r)
                os.close(go_w)
                for _, other_r, other_go in children:  # the earlier workers' pipes
                    os.close(other_r)
                    os.close(other_go)
                start = time.perf_counter()
                count, checksum = records.read_all(data)
                seconds = time.perf_counter() - start
                full = (count, checksum) == expected
                os.write(report_w, (json.dumps({"full": full, "seconds": seconds}) + "\n").encode())
                os.read(go_r, 1)  # until the parent has read this process's figures
                status = 0
            finally:
                os._exit(status)
        os.close(report_w)
        os.close(go_r)
        children.append((pid, report_r, go_w))
    out["workers"] = []
    failed = False
    for pid, report_r, _ in children:
        line = read_line(report_r)
        os.close(report_r)
        if not line:
            failed = True
            continue
        out["workers"].append(dict(json.loads(line), pid=pid))
    for w in out["workers"]:
        w.update(smaps_rollup(w["pid"]))
    for pid, _, go_w in children:
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
        failed |= status != 0
    failed |= len(out["workers"]) != workers or not all(w["full"] for w in out["workers"])
    print(json.dumps(out))
    return 1 if failed else 0


# ---- The driver -----------------------------------------------------------------


def abi_tag(info):
    v = info["version_info"]
    return "cp%d%d%s%s" % (v[0], v[1], "t" if info["free_threaded"] else "", "d" if info["debug"] else "")


def imports_pyimmortal(python):
    return subprocess.run([python, "-c", "import pyimmortal"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def logged(cmd, logfile):
    with open(logfile, "a") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode == 0


def interpreter_with_pyimmortal(info, wheels, build_root):
    """A python of info's interpreter that imports pyimmortal: the
    interpreter itself, or a venv with the matching wheel (given or built)."""
    if imports_pyimmortal(info["python"]):
        return info["python"], "installed"
    tag = abi_tag(info)
    work = os.path.join(build_root, "prefork-" + info["tag"])
    os.makedirs(work, exist_ok=True)
    logfile = os.path.join(work, "setup.log")
    v = info["version_info"]
    wanted = "-cp%d%d-%s-" % (v[0], v[1], tag)
    matching = [w for w in wheels if wanted in os.path.basename(w)]
    if matching:
        wheel = os.path.abspath(matching[0])
    else:
        builder = os.path.join(work, "build-venv")
        dist = os.path.join(work, "dist")
        log("%s: building the pyimmortal wheel (log: %s)" % (info["tag"], logfile))
        if not (logged([info["python"], "-m", "venv", builder], logfile) and
                logged([os.path.join(builder, "bin", "pip"), "wheel", "--disable-pip-version-check",
                        "--no-deps", "-w", dist, REPO], logfile)):
            raise SystemExit("%s: building the wheel failed, see %s" % (info["tag"], logfile))
        built = sorted(f for f in os.listdir(dist) if wanted in f)
        if not built:
            raise SystemExit("%s: pip wheel made no %s wheel in %s" % (info["tag"], wanted, dist))
        wheel = os.path.join(dist, built[-1])
    venv = os.path.join(work, "venv")
    vpy = os.path.join(venv, "bin", "python")
    if not (logged([info["python"], "-m", "venv", "--clear", venv], logfile) and
            logged([vpy, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--no-index",
                    "--force-reinstall", wheel], logfile)):
        raise SystemExit("%s: installing %s failed, see %s" % (info["tag"], wheel, logfile))
    return vpy, os.path.basename(wheel)


def mean(values):
    return sum(values) / len(values)


def summarize(run):
    ws = run["workers"]
    heap = run["heap_bytes"]
    pd = [w["private_dirty"] for w in ws]
    run["mean_private_dirty"] = mean(pd)
    run["min_private_dirty"] = min(pd)
    run["max_private_dirty"] = max(pd)
    run["private_fraction"] = mean(pd) / heap
    run["mean_pss"] = mean([w["pss"] for w in ws])
    run["mean_read_seconds"] = mean([w["seconds"] for w in ws])


ROW = "%-7s %-19s %9s %8s %26s %10s %9s %7s"


def table(results):
    lines = ["workers' Private_Dirty and Pss from /proc/PID/smaps_rollup after each read the whole heap once;",
             "heap = growth of the parent's resident memory while it built the data set",
             "", ROW % ("python", "config", "heap MiB", "records", "Private_Dirty MiB (min-max)",
                        "% of heap", "Pss MiB", "read s")]
    lines.append("-" * len(lines[-1]))
    for res in results:
        for run in res["runs"]:
            lines.append(ROW % (res["tag"], run["config"], "%.1f" % (run["heap_bytes"] / MiB), run["records"],
                                "%.1f (%.1f-%.1f)" % (run["mean_private_dirty"] / MiB, run["min_private_dirty"] / MiB,
                                                      run["max_private_dirty"] / MiB),
                                "%.1f%%" % (100 * run["private_fraction"]), "%.1f" % (run["mean_pss"] / MiB),
                                "%.2f" % run["mean_read_seconds"]))
    lines.append("")
    for res in results:
        run = res["runs"][-1]
        if "immortalize_error" in run:
            lines.append("%s: immortalize_heap() raised %s" % (res["tag"], run["immortalize_error"]))
            continue
        n = run["immortalized"]
        lines.append("%s: immortalize_heap() made %d objects immortal in %.3f s = %.3f s per million objects;"
                     " mortal afterwards: %s; dict keys: %s (distinct objects; %d references in the data set)"
                     % (res["tag"], n, run["immortalize_seconds"], run["immortalize_seconds"] * 1e6 / max(n, 1),
                        ", ".join("%s %d" % kv for kv in sorted(run["mortal"].items())) or "none",
                        ", ".join("%s %d" % kv for kv in sorted(run["mortal_keys"].items())) or "none",
                        run["references"]))
    return "\n".join(lines)


def chart(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no chart: matplotlib is not installed for %s" % sys.executable)
        return
    colors = {"nothing": "#6e6e78", "freeze": "#e68c1e", "freeze+immortalize": "#289646"}
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results) + 1, 4), sharey=True, squeeze=False)
    for ax, res in zip(axes[0], results):
        runs = res["runs"]
        xs = range(len(runs))
        values = [100 * r["private_fraction"] for r in runs]
        errs = [[100 * (r["mean_private_dirty"] - r["min_private_dirty"]) / r["heap_bytes"] for r in runs],
                [100 * (r["max_private_dirty"] - r["mean_private_dirty"]) / r["heap_bytes"] for r in runs]]
        ax.bar(xs, values, yerr=errs, capsize=3, color=[colors[r["config"]] for r in runs])
        for x, v in zip(xs, values):
            ax.text(x, v + 1, "%.1f%%" % v, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(["freeze\n(immortalize_heap:\n%s)" % r["immortalize_error"].split(":")[0]
                            if "immortalize_error" in r else r["config"].replace("+", "+\n") for r in runs],
                           fontsize=8)
        ax.set_title("%s, %.0f MiB heap" % (res["tag"], runs[0]["heap_bytes"] / MiB), fontsize=9)
        ax.set_ylim(0, 110)
    axes[0][0].set_ylabel("workers' Private_Dirty, % of the heap")
    fig.suptitle("%d forked workers read the whole heap once" % len(results[0]["runs"][0]["workers"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log("wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", default=[], help="an interpreter to measure (repeatable)")
    ap.add_argument("--wheel", action="append", default=[], help="a pyimmortal wheel to install (repeatable)")
    ap.add_argument("--heap-mb", type=float, default=200, help="size of the data set in MiB (default 200)")
    ap.add_argument("--workers", type=int, default=4, help="forked workers (default 4)")
    ap.add_argument("--build-root", default=os.path.join(REPO, "_build", "bench"))
    ap.add_argument("--out", default=os.path.join(REPO, "_build", "bench"))
    ap.add_argument("--parent", choices=CONFIGS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.parent:
        return parent(args.parent, args.heap_mb, args.workers)
    if not args.python:
        ap.error("give at least one --python")
    # Imported here, not in the parents of the workers: their heap holds the
    # data set and what the measurement needs, no more.
    import datetime
    import platform

    import run  # probe_interpreter

    os.makedirs(args.out, exist_ok=True)
    results = []
    failed = False
    for python in args.python:
        info = run.probe_interpreter(python)
        vpy, source = interpreter_with_pyimmortal(info, args.wheel, args.build_root)
        log("== %s (%s), pyimmortal: %s" % (info["tag"], info["version"].split()[0], source))
        res = {"tag": info["tag"], "python": python, "version": info["version"], "pyimmortal": source, "runs": []}
        for config in CONFIGS:
            out = subprocess.run([vpy, os.path.abspath(__file__), "--parent", config, "--heap-mb", str(args.heap_mb),
                                  "--workers", str(args.workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True)
            if out.returncode or not out.stdout.strip():
                log("%s %s failed (exit %d):\n%s" % (info["tag"], config, out.returncode,
                                                    (out.stdout + out.stderr).strip()[-2000:]))
                failed = True
                continue
            run_ = json.loads(out.stdout.strip().splitlines()[-1])
            summarize(run_)
            res["runs"].append(run_)
            log("   %-19s Private_Dirty %6.1f MiB = %5.1f%% of the %.0f MiB heap (mean of %d workers)"
                % (config, run_["mean_private_dirty"] / MiB, 100 * run_["private_fraction"],
                   run_["heap_bytes"] / MiB, len(run_["workers"])))
        if len(res["runs"]) == len(CONFIGS):
            results.append(res)
    if not results:
        return 1
    text = table(results)
    log("\n" + text)
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    with open(os.path.join(args.out, "prefork.json"), "w") as f:
        json.dump({"date": date, "machine": platform.machine(), "cpu_count": os.cpu_count(),
                   "heap_mb": args.heap_mb, "workers": args.workers, "results": results}, f, indent=1)
    log("wrote %s" % os.path.join(args.out, "prefork.json"))
    chart(results, os.path.join(args.out, "prefork.png"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
