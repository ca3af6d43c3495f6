"""Runs one benchmark configuration in a fresh interpreter and prints JSON.

Started by bench/run.py with the interpreter under test:

    python worker.py --build-dir DIR --kernel K --mode M --threads N \
        --iterations I [--repeats R] [--order 1N|N1] [--paired-ceiling I] [--calibrate]
    python worker.py --build-dir DIR --probe setup-then-thread|no-thread --mode M

A timing run builds the shared object in the requested mode before any thread
exists, runs a short warm-up in one thread, then times the same fixed work
per thread with 1 thread and with N threads, --repeats times (the order of
the two alternates; --order gives the first). With --paired-ceiling, each
pair is followed by a pair of the shared-nothing ceiling kernel in the same
process, so the two can be compared under the same machine conditions. Each
timed run starts its threads, lets each build its per-thread objects,
releases them all at once with a threading.Barrier and stops the clock when
the last one has been joined.

A probe builds a ``Callable`` in the requested mode, takes a weak reference,
optionally starts and joins a thread, then drops the last reference and runs
gc.collect(): it reports whether the object was collected.
"""

import argparse
import gc
import json
import os
import sys
import threading
import time
import weakref


def load(build_dir):
    sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.abspath(build_dir))
    import kernels
    import pyimmortal_bench
    return pyimmortal_bench, kernels


def setup(bench, kernels, kernel, mode):
    """Builds the kernel's shared object; returns (result, obj, loop,
    per_thread) where per_thread makes a thread's own loop argument."""
    if kernel in ("capsule", "capsule-gc"):
        result, obj = bench.make_capsule(mode, kernel == "capsule-gc")
        return result, obj, kernels.capsule_loop, bench.capsule_caller
    if kernel == "callable":
        result, obj = bench.make_callable(mode)
        kernels.CALLABLE = obj
        return result, obj, kernels.callable_loop, None
    if kernel == "singleton":
        result, kernels.SINGLETON_TYPE, obj = bench.make_singleton(mode)
        kernels.SINGLETON = obj
        return result, obj, kernels.singleton_loop, None
    if kernel == "ceiling":
        # Nothing shared: every thread builds its own capsule and function.
        return None, None, kernels.capsule_loop, bench.ceiling_caller
    raise SystemExit("unknown kernel %r" % kernel)


def run_threads(nthreads, iterations, loop, per_thread):
    """Runs loop(iterations, arg) in nthreads threads released together;
    returns the wall time from the release to the last join."""
    barrier = threading.Barrier(nthreads + 1)
    errors = []

    def body():
        try:
            arg = per_thread() if per_thread is not None else None
        except BaseException as e:  # reported by the main thread
            errors.append(e)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        try:
            loop(iterations, arg)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=body) for _ in range(nthreads)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def timing(args, bench, kernels):
    result, obj, loop, per_thread = setup(bench, kernels, args.kernel, args.mode)
    out = {"kernel": args.kernel, "mode": args.mode, "result": result,
           "threads": args.threads, "iterations": args.iterations}
    if obj is not None:
        out["is_immortal_created"] = bench.is_immortal(obj)
    # Warm-up (also the first thread start, which matters on 3.13t).
    run_threads(1, max(1, args.iterations // 10), loop, per_thread)
    if obj is not None:
        out["is_immortal_after_thread"] = bench.is_immortal(obj)
    paired = args.paired_ceiling and args.kernel != "ceiling"
    ceiling = (args.paired_ceiling, kernels.capsule_loop, bench.ceiling_caller)
    if paired:
        run_threads(1, max(1, ceiling[0] // 10), *ceiling[1:])
    gc.collect()
    gc.disable()
    t = {"t1": [], "tN": [], "ceiling_t1": [], "ceiling_tN": []}
    for i in range(args.repeats):
        if args.calibrate:
            t["t1"].append(run_threads(1, args.iterations, loop, per_thread))
            continue
        # Alternate the order from one pair to the next.
        first_one = (args.order == "1N") == (i % 2 == 0)
        order = (1, args.threads) if first_one else (args.threads, 1)
        for n in order:
            t["t1" if n == 1 else "tN"].append(
                run_threads(n, args.iterations, loop, per_thread))
        # The ceiling kernel right after, in the same process, so both see
        # the same machine.
        for n in order if paired else ():
            t["ceiling_t1" if n == 1 else "ceiling_tN"].append(run_threads(n, *ceiling))
    gc.enable()
    out.update(t if paired else {"t1": t["t1"], "tN": t["tN"]})
    f = getattr(sys, "_is_gil_enabled", None)
    out["gil_enabled"] = True if f is None else bool(f())
    return out


def probe(args, bench):
    result, obj = bench.make_callable(args.mode)
    ref = weakref.ref(obj)
    if args.probe == "setup-then-thread":
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    sys_is_immortal = getattr(sys, "_is_immortal", None)  # 3.14+
    out = {"probe": args.probe, "mode": args.mode, "result": result,
           "is_immortal": bench.is_immortal(obj),
           "sys_is_immortal": sys_is_immortal(obj) if sys_is_immortal else None,
           "getrefcount": sys.getrefcount(obj)}
    del obj
    gc.collect()
    out["collected"] = ref() is None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--kernel", default="ceiling")
    ap.add_argument("--mode", default="mortal", choices=["mortal", "immortal", "deferred"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--order", choices=["1N", "N1"], default="1N",
                    help="time 1 thread first (1N) or N threads first (N1); "
                         "with --repeats, the order alternates from there")
    ap.add_argument("--paired-ceiling", type=int, default=0, metavar="I",
                    help="after each pair, also time the ceiling kernel with I "
                         "iterations per thread in this same process")
    ap.add_argument("--calibrate", action="store_true", help="time 1 thread only")
    ap.add_argument("--probe", choices=["setup-then-thread", "no-thread"],
                    help="collectability probe: build the object, then start "
                         "a thread, or start none")
    args = ap.parse_args()
    bench, kernels = load(args.build_dir)
    out = probe(args, bench) if args.probe else timing(args, bench, kernels)
    out["bench_info"] = bench.info()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
