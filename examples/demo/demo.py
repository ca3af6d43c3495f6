"""Shows what pyimmortal does to a capsule shared by every caller."""
import gc
import sys
import sysconfig
import threading
import time

import pyimmortal_demo as demo

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
MORE = 100000


def show_refcount(cap, label):
    before = sys.getrefcount(cap)
    refs = [cap] * MORE
    after = sys.getrefcount(cap)
    del refs
    print("  %-9s sys.getrefcount: %d, with %d more references: %d (%s)" % (
        label, before, MORE, after, "moves" if after != before else "fixed"))


def speedup(cap, n):
    """2 * t(one thread) / t(two threads), each thread doing the same work."""
    def once(threads):
        barrier = threading.Barrier(threads)

        def work():
            barrier.wait()
            demo.fetch(cap, n)
        ts = [threading.Thread(target=work) for _ in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.perf_counter() - t0
    t1 = min(once(1) for _ in range(3))
    t2 = min(once(2) for _ in range(3))
    return 2 * t1 / t2


def main():
    print("pyimmortal demo on CPython %s%s; library built for %s\n" % (
        sys.version.split()[0], " (free-threaded)" if FREE_THREADED else "", demo.target()))

    print("1. A capsule's reference count")
    cap = demo.new_capsule()
    show_refcount(cap, "mortal")
    try:
        demo.immortalize(cap)
    except NotImplementedError as e:
        print("  pyimmortal_ImmortalizeChecked: NotImplementedError: %s" % e)
        print("\nCPython %d.%d has no immortal objects: immortality needs CPython 3.12 or later."
              % sys.version_info[:2])
        return
    print("  pyimmortal_ImmortalizeChecked(capsule) -> 0; PyUnstable_IsImmortal -> %d"
          % demo.is_immortal(cap))
    show_refcount(cap, "immortal")

    print("\n2. Dropping every reference")
    control = demo.new_capsule()
    del control
    gc.collect()
    print("  mortal control: destructor calls = %d (freed)" % demo.destroyed())
    del cap
    gc.collect()
    print("  immortal capsule, after del and gc.collect(): destructor calls = %d, and C code "
          "still reads its pointer: %d" % (demo.destroyed(), demo.read_last_immortal()))

    print("\n3. Two threads taking the capsule's reference (the capsule pattern)")
    if not FREE_THREADED:
        print("  skipped: on a GIL build threads take turns, so there is no contention to remove;"
              " run the demo on a free-threaded interpreter (3.13t, 3.14t) to see it")
        return
    mortal = demo.new_capsule()
    immortal = demo.new_capsule()
    demo.immortalize(immortal)
    n = 200000
    while True:   # about 0.2 s of work per thread
        t0 = time.perf_counter()
        demo.fetch(mortal, n)
        if time.perf_counter() - t0 > 0.1 or n > 10**8:
            break
        n *= 2
    results = {}
    for label, cap in (("mortal", mortal), ("immortal", immortal)):
        results[label] = speedup(cap, n)
        print("  %-8s speedup with 2 threads: %.2fx (2 x one-thread time / two-thread time)"
              % (label, results[label]))
    print("  immortal / mortal, same run: %.1fx" % (results["immortal"] / results["mortal"]))


if __name__ == "__main__":
    main()
