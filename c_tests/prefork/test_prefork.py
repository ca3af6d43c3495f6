#!/usr/bin/env python3
"""A pre-fork server keeps its memory shared: gunicorn with and without the
hook of examples/prefork.

    python3 c_tests/prefork/test_prefork.py --python PY --wheel WHEEL --work DIR
                                            [--heap-mb MB] [--workers N] [--time-limit S]

Makes a fresh venv of PY in DIR, installs WHEEL and gunicorn (from PyPI)
there, and copies examples/prefork. Then it runs gunicorn twice on
127.0.0.1 (port 0: the kernel picks a free one, read back from gunicorn's
log) with N workers (default 4) and a data set of MB MiB (default 200):

  hook     PREFORK_IMMORTALIZE=1: in the master, before the first fork,
           gc.collect(), pyimmortal.immortalize_heap() and gc.freeze()
  no hook  PREFORK_IMMORTALIZE=0: the same app, left as it is

Each time it sends GET /read from N client threads until every worker (a
child of the master) has answered at least once with a full read of the
data (the record count and checksum the master computed at import), at
most 20 requests per worker and within the time limit (default 180 s per
server). Then it reads each worker's Private_Dirty and Pss from
/proc/PID/smaps_rollup, and stops the server: SIGTERM to the master, and
SIGKILL to its process group if it has not exited after 30 s, or when
anything failed.

It prints every worker's figures and the mean private dirty memory of the
workers as a fraction of the data set's size (the growth of the master's
resident memory while it built the data). With the hook, GET /mortal (after
the figures are read) must find no mortal value in the data set, or only
dicts on CPython 3.14+, which the contract leaves mortal; the hook must
divide the mean by at least 5, or by 2 where the dicts stay mortal.

CPython 3.9-3.11 have no immortal objects: immortalize_heap() raises
NotImplementedError there. The test then checks that the hook's warning
names it and that the server still serves every worker, and exits 77
(skipped). On free-threaded builds the master is single-threaded when the
hook runs (when_ready, before the first fork), so the assertion applies as
on GIL builds.

Standard library only. One line per check; gunicorn's logs in DIR/logs.
Exits 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIP = ["-m", "pip", "--disable-pip-version-check"]
SKIP = 77
MIN_RATIO = 5.0
# Where the data set's dicts stay mortal (CPython 3.14+): see README.md of
# examples/prefork.
MIN_RATIO_MORTAL_DICTS = 2.0
REQUESTS_PER_WORKER = 20
STOP_WAIT = 30


class Failure(Exception):
    """A failed check; `printed` once its FAIL line is out."""

    def __init__(self, what, printed=False):
        super().__init__(what)
        self.printed = printed


def tail(text, n=20):
    return "\n".join(text.strip().splitlines()[-n:])


def check(ok, what, detail=""):
    print("%s %s%s" % ("ok  " if ok else "FAIL", what, ": " + detail if detail else ""), flush=True)
    if not ok:
        raise Failure(what, printed=True)


def smaps_rollup(pid):
    """Private_Dirty and Pss of a process, in bytes."""
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {"private_dirty": fields["Private_Dirty"], "pss": fields["Pss"]}


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            # The command name may hold spaces and parentheses: split after the last ')'.
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and parent_of(int(entry)) == pid:
            found.append(int(entry))
    return sorted(found)


class Server:
    """One gunicorn master of examples/prefork, started in its own process
    group so that stop() reaches every worker."""

    def __init__(self, venv, app, env, log):
        self.log = log
        self.logfile = open(log, "w")
        self.proc = subprocess.Popen([str(venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py"], cwd=str(app),
                                     env=env, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_ready(self, workers, deadline):
        """The port, once the master listens, has run its hook and every
        worker has booted."""
        while time.monotonic() < deadline:
            text = self.text()
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            hook_done = "prefork: gc.freeze()" in text or "prefork: PREFORK_IMMORTALIZE=0" in text
            booted = len(re.findall(r"Booting worker with pid", text))
            if m and hook_done and booted >= workers:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise Failure("gunicorn exited with %s before it was ready:\n%s" % (self.proc.returncode, tail(text)))
            time.sleep(0.2)
        raise Failure("gunicorn not ready in time:\n%s" % tail(self.text()))

    def stop(self):
        """SIGTERM, then SIGKILL to the whole group after STOP_WAIT seconds;
        every worker gets SIGKILL in any case. Returns how the master ended."""
        if self.proc.poll() is not None:
            how = "had exited with %s" % self.proc.returncode
        else:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_WAIT)
                how = "stopped"
            except subprocess.TimeoutExpired:
                how = "stopped with SIGKILL (SIGTERM was not enough in %d s)" % STOP_WAIT
        # The group is the master's own (start_new_session): it holds the
        # master and its workers and nothing else.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.logfile.close()
        return how


def traffic(port, master, workers, deadline):
    """GET /read from `workers` threads until every child of the master has
    answered with a full read. Returns {pid: answer}."""
    answers = {}
    errors = []
    budget = [REQUESTS_PER_WORKER * workers]
    lock = threading.Lock()

    def done():
        current = children(master)
        return len(current) >= workers and all(p in answers for p in current)

    def client():
        while True:
            with lock:
                if done() or errors or budget[0] <= 0 or time.monotonic() > deadline:
                    return
                budget[0] -= 1
            try:
                timeout = max(1.0, deadline - time.monotonic())
                with urllib.request.urlopen("http://127.0.0.1:%d/read" % port, timeout=timeout) as r:
                    answer = json.loads(r.read())
            except Exception as exc:  # noqa: BLE001: any failure ends the traffic
                with lock:
                    errors.append("%s: %s" % (type(exc).__name__, exc))
                return
            with lock:
                answers.setdefault(answer["pid"], answer)

    threads = [threading.Thread(target=client) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise Failure("a request failed: %s" % errors[0])
    return answers


def serve(venv, app, work, hook, args, expect_hook_failure=False):
    """Runs one server through its traffic; returns its figures."""
    name = "hook" if hook else "no-hook"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFORK_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "/usr/bin:/bin")]),
               VIRTUAL_ENV=str(venv), PYTHONDONTWRITEBYTECODE="1", PYTHONFAULTHANDLER="1", PREFORK_IMMORTALIZE="1" if hook else "0",
               PREFORK_BIND="127.0.0.1:0", PREFORK_WORKERS=str(args.workers), PREFORK_HEAP_MB=str(args.heap_mb))
    start = time.monotonic()
    deadline = start + args.time_limit
    server = Server(venv, app, env, work / "logs" / ("gunicorn-%s.log" % name))
    try:
        port = server.wait_ready(args.workers, deadline)
        text = server.text()
        hook_lines = [line.split("prefork: ", 1)[1] for line in text.splitlines() if "prefork: " in line]
        for line in hook_lines:
            print("     [%s] %s" % (name, line), flush=True)
        if expect_hook_failure:
            check(any("immortalize_heap() failed" in line and "NotImplementedError" in line for line in hook_lines),
                  "the hook reports that immortalize_heap() raised NotImplementedError",
                  "" if hook_lines else "no hook lines in the log")
        elif hook:
            check(any("immortalize_heap() made" in line for line in hook_lines),
                  "the hook made the heap immortal", "" if hook_lines else "no hook lines in the log")
        answers = traffic(port, server.pid, args.workers, deadline)
        current = children(server.pid)
        missing = [p for p in current if p not in answers]
        check(len(current) == args.workers and not missing,
              "[%s] every worker answered (%d workers, in %.1f s)" % (name, len(current), time.monotonic() - start),
              "workers %s, answered %s" % (current, sorted(answers)) if missing or len(current) != args.workers else "")
        partial = [p for p in current if (answers[p]["records"], answers[p]["checksum"])
                   != (answers[p]["expected_records"], answers[p]["expected_checksum"])]
        check(not partial, "[%s] every worker read all %d records" % (name, answers[current[0]]["expected_records"]),
              "partial reads by %s" % partial if partial else "")
        figures = {pid: smaps_rollup(pid) for pid in current}
        mortal = None
        if hook and not expect_hook_failure:
            # After the figures: this walk reads the data set once more.
            with urllib.request.urlopen("http://127.0.0.1:%d/mortal" % port,
                                        timeout=max(1.0, deadline - time.monotonic())) as r:
                answer = json.loads(r.read())
            mortal = answer["mortal"]
            print("     [%s] worker %d: of the data set (%d references), mortal values: %s; mortal dict keys: %s"
                  % (name, answer["pid"], answer["references"],
                     ", ".join("%s %d" % kv for kv in sorted(mortal.items())) or "none",
                     ", ".join("%s %d" % kv for kv in sorted(answer["mortal_keys"].items())) or "none"),
                  flush=True)
    finally:
        print("     [%s] server %s" % (name, server.stop()), flush=True)
    heap = answers[current[0]]["heap_bytes"]
    for pid in current:
        f = figures[pid]
        print("     [%s] worker %d: Private_Dirty %7.1f MiB (%5.1f%% of the heap), Pss %7.1f MiB, read in %.2f s"
              % (name, pid, f["private_dirty"] / 2**20, 100.0 * f["private_dirty"] / heap, f["pss"] / 2**20,
                 answers[pid]["read_seconds"]), flush=True)
    mean = sum(f["private_dirty"] for f in figures.values()) / len(figures)
    mean_pss = sum(f["pss"] for f in figures.values()) / len(figures)
    print("     [%s] heap %.1f MiB; workers' mean Private_Dirty %.1f MiB = %.1f%% of the heap, mean Pss %.1f MiB"
          % (name, heap / 2**20, mean / 2**20, 100.0 * mean / heap, mean_pss / 2**20), flush=True)
    return {"heap": heap, "mean_private_dirty": mean, "mean_pss": mean_pss, "workers": figures,
            "hook": hook_lines, "mortal": mortal}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="the interpreter to test")
    ap.add_argument("--wheel", required=True, type=Path, help="a pyimmortal wheel for that interpreter")
    ap.add_argument("--work", required=True, type=Path, help="a scratch directory (emptied)")
    ap.add_argument("--heap-mb", type=float, default=200, help="size of the data set in MiB (default 200)")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    ap.add_argument("--time-limit", type=float, default=180, help="seconds per server, start to last answer")
    args = ap.parse_args()
    # SIGTERM unwinds like an exception, so that a running server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    venv = work / "venv"
    vpy = venv / "bin" / "python"
    try:
        for step, cmd in (("venv", [args.python, "-m", "venv", venv]),
                          ("install", [vpy, *PIP, "install", args.wheel.resolve(), "gunicorn"])):
            out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
            (work / "logs" / (step + ".log")).write_text(out.stdout + out.stderr)
            check(out.returncode == 0, " ".join(str(c) for c in cmd[:1] + cmd[-3:]), tail(out.stdout + out.stderr)
                  if out.returncode else "")
        out = subprocess.run([str(vpy), "-c", "import json, sys, sysconfig, gunicorn, pyimmortal; print(json.dumps(dict("
                              "minor=sys.version_info[1], ft=bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
                              "version=sys.version.split()[0], gunicorn=gunicorn.__version__)))"],
                             capture_output=True, text=True)
        check(out.returncode == 0, "gunicorn and pyimmortal import", tail(out.stdout + out.stderr))
        facts = json.loads(out.stdout)
        print("     CPython %s%s, gunicorn %s, %d workers, heap %g MiB" % (
            facts["version"], " free-threaded" if facts["ft"] else "", facts["gunicorn"], args.workers, args.heap_mb),
            flush=True)
        app = work / "app"
        shutil.copytree(REPO / "examples" / "prefork", app, ignore=shutil.ignore_patterns("__pycache__"))

        if facts["minor"] < 12:
            result = serve(venv, app, work, True, args, expect_hook_failure=True)
            print("skipped (CPython %s has no immortal objects: the hook logs NotImplementedError and the "
                  "server runs without it; gc.freeze() alone leaves %.0f%% of the heap private per worker)"
                  % (facts["version"], 100.0 * result["mean_private_dirty"] / result["heap"]), flush=True)
            return SKIP
        with_hook = serve(venv, app, work, True, args)
        without = serve(venv, app, work, False, args)
    except Failure as exc:
        if not exc.printed:
            print("FAIL %s" % exc, flush=True)
        print("test_prefork: FAILED")
        return 1
    ratio = without["mean_private_dirty"] / max(with_hook["mean_private_dirty"], 1)
    print("prefork: workers' mean Private_Dirty %.1f MiB with the hook (%.1f%% of the heap), %.1f MiB without "
          "(%.1f%%): %.1fx less" % (with_hook["mean_private_dirty"] / 2**20,
                                    100.0 * with_hook["mean_private_dirty"] / with_hook["heap"],
                                    without["mean_private_dirty"] / 2**20,
                                    100.0 * without["mean_private_dirty"] / without["heap"], ratio), flush=True)
    # The contract (src/api/heap.rs): everything becomes immortal, except
    # dicts on 3.14+ (gh-153051). A worker that reads a mortal dict writes
    # its header, and the dicts' pages are copied; the bound drops there.
    mortal = with_hook["mortal"]
    allowed = {"dict"} if facts["minor"] >= 14 else set()
    min_ratio = MIN_RATIO if not mortal else MIN_RATIO_MORTAL_DICTS
    try:
        check(set(mortal) <= allowed, "the data set is immortal in the workers%s" % (
            ", but for its dicts (CPython 3.14+ keeps dicts mortal)" if allowed else ""),
            "mortal: %s" % mortal if not set(mortal) <= allowed else "")
        check(ratio >= min_ratio, "the hook divides the workers' private dirty memory by at least %g%s"
              % (min_ratio, " (its dicts stay mortal)" if mortal else ""), "%.1fx" % ratio)
    except Failure:
        print("test_prefork: FAILED")
        return 1
    print("test_prefork: no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
