"""Reporting for bench/run.py: the text table, results.json, table.txt and,
when matplotlib is installed, speedup.png.

Everything here works on the result dictionaries that run.benchmark()
returns (one per interpreter) and never runs anything itself.
"""

import json
import os

COLORS = {"mortal": "#6e6e78", "immortal": "#289646", "deferred": "#e68c1e"}
CEILING_COLOR = "#d22828"
ROW = "%-11s %-22s %-5s %-8s %-8s %-13s %-8s %-11s %s"
PROBE_ROW = "%-18s %-18s %-5s %-20s %-11s %s"


def fmt_result(r):
    return "-" if r is None else str(r)


def table(res, date):
    lines = [
        "%s | os.cpu_count()=%s | threads=%d | repeats=%d | %s"
        % (res["version"], res["cpu_count"], res["threads"], res["repeats"], date),
        "timed processes run again because other load exceeded %.0f%% of the machine: %d"
        % (100 * res["max_foreign"], res["reruns"]),
    ]
    if res["free_threaded"] and res["gil_enabled"]:
        lines.append("NOTE: the GIL was enabled at run time")
    lines += [
        "speedup = %d * t1 / tN (best of %d pairs per process), median and min-max over "
        "%d processes; call = what the pyimmortal call returned"
        % (res["threads"], res["inner"], res["repeats"]),
        "iterations per thread: " + ", ".join("%s=%d" % kv for kv in sorted(res["iterations"].items())),
        "of ceiling = speedup median / ceiling median; paired = median over "
        "processes of speedup / ceiling speedup timed in the same process",
    ]
    hdr = ROW % ("kernel", "mode", "call", "t1", "speedup", "spread", "ceiling",
                 "of ceiling", "paired")
    for section, title in (("main", None),
                           ("extra", "extra: kernel 1 on a GC handle (PyCapsule is not a GC type)")):
        rows = [e for e in res["entries"] if e["section"] == section]
        if not rows:
            continue
        lines += [""] + ([title] if title else []) + [hdr, "-" * len(hdr)]
        for e in rows:
            if e["na"]:
                lines.append("%-11s %-22s %-5s %-8s %-8s" % (
                    e["kernel"], e["mode"], fmt_result(e["result"]), "-", "n/a"))
                continue
            pf = e.get("paired_fraction")
            lines.append(ROW % (
                e["kernel"], e["mode"], fmt_result(e["result"]), "%.3fs" % e["t1_median"],
                "%.2fx" % e["median"], "%.2f-%.2fx" % (e["min"], e["max"]),
                "%.2fx" % res["ceiling_median"], "%.0f%%" % (100 * e["fraction_of_ceiling"]),
                "-" if pf is None else "%.0f%%" % (100 * pf)))
    if res["probes"]:
        lines += ["", "collectability probes: a Callable built in each mode, a weakref, "
                  "then del + gc.collect()",
                  "(getrefcount and IsImmortal read after the thread, if any, has been joined)",
                  PROBE_ROW % ("mode", "order", "call", "getrefcount", "IsImmortal", "collected")]
        for p in res["probes"]:
            lines.append(PROBE_ROW % (p["mode"], p["probe"], fmt_result(p["result"]),
                                      p["getrefcount"], p["is_immortal"], p["collected"]))
    return "\n".join(lines)


def draw(results, path):
    """speedup.png: one panel per interpreter, grouped bars per kernel (one
    per mode, median with min-max whisker), the ceiling as a dashed line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 3.6 * len(results)), squeeze=False)
    for ax, res in zip(axes[:, 0], results):
        kernels = [k for k in ("capsule", "callable", "singleton", "capsule-gc")
                   if any(e["kernel"] == k for e in res["entries"])]
        width = 0.85 / len(COLORS)
        top = max([res["threads"], res["ceiling_median"]]
                  + [e["max"] for e in res["entries"] if not e["na"]])
        for gi, kernel in enumerate(kernels):
            bars = [e for e in res["entries"] if e["kernel"] == kernel]
            for bi, e in enumerate(bars):
                x = gi + (bi - (len(bars) - 1) / 2.0) * width
                if e["na"]:
                    ax.text(x, 0.05, "n/a", ha="center", va="bottom", rotation=90, fontsize=8)
                    continue
                ax.bar(x, e["median"], width * 0.9, color=COLORS[e["mode"]], label=e["mode"],
                       yerr=[[e["median"] - e["min"]], [e["max"] - e["median"]]], capsize=3)
                ax.text(x, e["max"] + 0.03, "%.2f" % e["median"], ha="center",
                        va="bottom", fontsize=7)
        ax.axhline(res["ceiling_median"], color=CEILING_COLOR, linestyle="--",
                   label="ceiling %.2fx (shares nothing)" % res["ceiling_median"])
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(kernels)))
        ax.set_xticklabels(kernels)
        ax.set_ylabel("speedup, %d threads" % res["threads"])
        ax.set_ylim(0, top * 1.45)
        ax.set_title("CPython %s, os.cpu_count()=%s"
                     % (res["version"].split(" (")[0], res["cpu_count"]), fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))  # one legend entry per mode
        ax.legend(list(unique.values()), list(unique.keys()), fontsize=7, loc="upper left", ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(doc, out):
    """Writes results.json, table.txt and (with matplotlib) speedup.png to
    `out`; returns lines saying what was written."""
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, name) for name in ("results.json", "table.txt", "speedup.png")]
    with open(paths[0], "w") as f:
        json.dump(doc, f, indent=1)
    with open(paths[1], "w") as f:
        f.write("\n\n".join(table(r, doc["date"]) for r in doc["interpreters"]) + "\n")
    try:
        draw(doc["interpreters"], paths[2])
    except ImportError:
        return ["wrote %s and %s" % tuple(paths[:2]),
                "did not draw %s: matplotlib is not installed" % paths[2]]
    return ["wrote %s, %s and %s" % tuple(paths)]
