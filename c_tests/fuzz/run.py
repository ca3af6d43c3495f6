#!/usr/bin/env python3
"""Fuzzes random sequences of pyimmortal's exported functions on one interpreter.

    c_tests/fuzz/run.py --python PY [--calls N] [--seed N ...] [--ci]
                        [--engine auto|plain|hypothesis] [--build-dir DIR]

Builds the pyimmortal_fuzzext extension for PY (CMake target of
c_tests/CMakeLists.txt, linking pyimmortal::pyimmortal; cargo builds the
library unless --library or --build-dir gives one), then runs
c_tests/fuzz/fuzz.py in a child interpreter, once per seed:

    PY -X showrefcount -X faulthandler fuzz.py --seed N --calls N --engine E

A run passes when the child exits 0 after its "fuzz: done" line (every
object dropped and collected, the interpreter finalized normally) and its
output holds no crash, debug-build assertion or sanitizer report. Each seed
is printed before its run; a failing one replays with --seed N (and the
same --calls and --engine).

Engines: `hypothesis` drives the operations as the rules of a Hypothesis
RuleBasedStateMachine (installed with pip into a venv under
_build/fuzz/venv/, or taken from --site); `plain` chooses the same
operations with a seeded random.Random and runs about a hundred times
faster. `auto` (the default) uses hypothesis for runs of at most 100,000
calls when it can be installed, plain otherwise. --ci runs a fixed seed
and a random one (the test command's suite `fuzz`).

The long run of the documentation, 1,000,000 calls per interpreter in ten
processes of 100,000 (the model checks after each call grow with the
registry, so one process of a million calls takes about ten minutes):

    python3 c_tests/fuzz/run.py --python PY --calls 100000 --runs 10 --engine plain
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXED_SEED = 20240229
HYPOTHESIS_MAX_CALLS = 100_000
# Hypothesis 6.155 is the last release of pure Python wheels: later ones
# are compiled, for released GIL interpreters only (3.13t, 3.15 and
# pre-releases would build from source, with Rust, and fail).
HYPOTHESIS_REQUIREMENT = "hypothesis>=6.100,<6.156"
# What the interpreter, a sanitizer or the C library print when something
# broke (the ext suite's list, plus the sanitizers').
FAILURE = re.compile(r"Assertion|negative ref|Fatal Python error|Segmentation fault|"
                     r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|"
                     r"runtime error: ")
SHOWREFCOUNT = re.compile(r"\[(-?\d+) refs, (-?\d+) blocks\]")
DONE = re.compile(r"^fuzz: done: .* (\d+) calls in ([\d.]+)s \((\d+) calls/s\)", re.M)

PROBE = r"""
import sys, sysconfig
print(sys.version_info[0], sys.version_info[1], int(bool(sysconfig.get_config_var("Py_GIL_DISABLED"))),
      int(hasattr(sys, "gettotalrefcount")), sysconfig.get_config_var("EXT_SUFFIX"))
"""


def log(msg):
    print(msg, flush=True)


def probe(python):
    out = subprocess.run([python, "-I", "-c", PROBE], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit("run.py: cannot run %s: %s" % (python, out.stderr.strip()))
    major, minor, ft, debug, suffix = out.stdout.split()
    tag = "%s.%s%s%s" % (major, minor, "t" if ft == "1" else "", "d" if debug == "1" else "")
    # Directories are per interpreter: two interpreters may share a tag
    # (pyenv's 3.13 and Debian's, which runs in the sid root).
    key = "%s-%s" % (tag, hashlib.sha1(os.path.realpath(python).encode()).hexdigest()[:8])
    return {"minor": int(minor), "ft": ft == "1", "debug": debug == "1", "suffix": suffix, "tag": tag,
            "key": key}


def build(python, facts, build_dir, library, jobs):
    """The extension module's directory: built in build_dir (configured here
    unless it is a CMake build of this repository already)."""
    build_dir = Path(build_dir)
    if not (build_dir / "CMakeCache.txt").exists():
        cmd = ["cmake", "-S", str(REPO), "-B", str(build_dir), "-DPYIMMORTAL_PYTHON=" + python]
        if library:
            cmd.append("-DPYIMMORTAL_LIBRARY=" + str(Path(library).resolve()))
        log("run.py: configuring %s" % build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        with open(build_dir / "fuzz-build.log", "w") as f:
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode:
                print((build_dir / "fuzz-build.log").read_text()[-3000:])
                raise SystemExit("run.py: cmake configure failed")
    log("run.py: building pyimmortal_fuzzext in %s" % build_dir)
    with open(build_dir / "fuzz-build.log", "w") as f:
        built = subprocess.run(["cmake", "--build", str(build_dir), "--target", "pyimmortal_fuzzext",
                                "-j", str(jobs)], stdout=f, stderr=subprocess.STDOUT).returncode == 0
    if not built:
        print("\n".join((build_dir / "fuzz-build.log").read_text().splitlines()[-30:]))
        raise SystemExit("run.py: building pyimmortal_fuzzext failed (%s)" % (build_dir / "fuzz-build.log"))
    ext_dir = build_dir / "c_tests" / "fuzz"
    if not (ext_dir / ("pyimmortal_fuzzext" + facts["suffix"])).exists():
        raise SystemExit("run.py: no pyimmortal_fuzzext%s in %s" % (facts["suffix"], ext_dir))
    return ext_dir


def has_hypothesis(python, site=None):
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([python, "-c", "import hypothesis"], env=env,
                          capture_output=True).returncode == 0


def hypothesis_python(python, facts, venv_root):
    """A venv of python with Hypothesis installed (made once), or None and why."""
    venv = Path(venv_root) / ("%s-%s" % (facts["key"], hashlib.sha1(HYPOTHESIS_REQUIREMENT.encode()).hexdigest()[:6]))
    vpy = venv / "bin" / "python"
    if vpy.exists() and has_hypothesis(str(vpy)):
        return str(vpy), None
    shutil.rmtree(venv, ignore_errors=True)
    made = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode:
        shutil.rmtree(venv, ignore_errors=True)
        return None, "no venv with pip for this interpreter (%s)" % (
            made.stderr.strip().splitlines() or ["python -m venv failed"])[-1][:160]
    pip = subprocess.run([str(vpy), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                          HYPOTHESIS_REQUIREMENT], capture_output=True, text=True)
    if pip.returncode or not has_hypothesis(str(vpy)):
        return None, "pip could not install hypothesis: %s" % (pip.stderr.strip()[-200:])
    return str(vpy), None


def install_site(site, version):
    """Installs Hypothesis (pure Python) for CPython `version` into `site`
    with this interpreter's pip (or a venv's made here), for interpreters
    that have no pip of their own (Debian's without python3.X-venv)."""
    site = Path(site)
    marker = site / ".complete"
    if marker.exists() and marker.read_text() == "%s %s\n" % (version, HYPOTHESIS_REQUIREMENT):
        return True
    shutil.rmtree(site, ignore_errors=True)
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run(pip + ["--version"], capture_output=True).returncode:
        helper = REPO / "_build" / "fuzz" / "pip-venv"
        if not (helper / "bin" / "pip").exists():
            if subprocess.run([sys.executable, "-m", "venv", str(helper)], capture_output=True).returncode:
                return False
        pip = [str(helper / "bin" / "pip")]
    out = subprocess.run(pip + ["install", "--disable-pip-version-check", "-q", "--target", str(site),
                                "--python-version", version, "--only-binary=:all:", "--implementation", "cp",
                                HYPOTHESIS_REQUIREMENT], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-500:], file=sys.stderr)
        return False
    marker.write_text("%s %s\n" % (version, HYPOTHESIS_REQUIREMENT))
    return True


def run_seed(python, ext_dir, site, seed, calls, engine, threads, timeout):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (ext_dir, site) if p)
    env.pop("PYTHONHOME", None)
    cmd = [python, "-X", "showrefcount", "-X", "faulthandler", str(HERE / "fuzz.py"),
           "--seed", str(seed), "--calls", str(calls), "--engine", engine, "--threads", str(threads)]
    log("run.py: seed %d: %s" % (seed, " ".join(cmd[:1] + cmd[1:])))
    t0 = time.time()
    lines = []
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    deadline = t0 + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            sys.stdout.write("  " + line)
            sys.stdout.flush()
            if time.time() > deadline:
                proc.kill()
                lines.append("run.py: killed after %ds (hung?)\n" % timeout)
                break
        rc = proc.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        lines.append("run.py: killed after %ds (hung?)\n" % timeout)
    out = "".join(lines)
    result = {"seed": seed, "rc": rc, "seconds": time.time() - t0, "engine": engine}
    problems = []
    if rc != 0:
        problems.append("exit status %d" % rc)
    m = DONE.search(out)
    if m is None:
        problems.append("no 'fuzz: done' line")
    else:
        result["calls"], result["fuzz_seconds"], result["rate"] = int(m.group(1)), float(m.group(2)), int(m.group(3))
    bad = FAILURE.search(out)
    if bad:
        line = out[out.rfind("\n", 0, bad.start()) + 1:out.find("\n", bad.start())]
        problems.append("output reports: %s" % line.strip()[:200])
    totals = SHOWREFCOUNT.findall(out)
    if totals:
        refs, blocks = map(int, totals[-1])
        result["refs"], result["blocks"] = refs, blocks
        if refs < 0:
            problems.append("negative total refcount at exit: %d" % refs)
    result["problems"] = problems
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable, help="the interpreter to fuzz (default: this one)")
    ap.add_argument("--calls", type=int, default=20000, help="exported-function calls per seed (default 20000)")
    ap.add_argument("--seed", type=int, action="append", default=[], help="seed to run (repeatable); "
                    "default: one random seed")
    ap.add_argument("--runs", type=int, default=1, help="random seeds to run when no --seed is given "
                    "(default 1)")
    ap.add_argument("--ci", action="store_true", help="the fixed seed %d and a random one" % FIXED_SEED)
    ap.add_argument("--engine", choices=("auto", "plain", "hypothesis"), default="auto")
    ap.add_argument("--threads", type=int, default=4, help="threads per burst, at most (0: none)")
    ap.add_argument("--build-dir", help="a CMake build of this repository for PY (default: "
                    "_build/fuzz/<tag>-<hash of PY's path>, configured here)")
    ap.add_argument("--library", help="a libpyimmortal.a already built for PY (passed to CMake)")
    ap.add_argument("--venv-dir", default=str(REPO / "_build" / "fuzz" / "venv"),
                    help="where the venvs with Hypothesis go")
    ap.add_argument("--site", help="a directory holding Hypothesis for PY, used when no venv can be made")
    ap.add_argument("--install-site", metavar="DIR", help="install Hypothesis for --python-version "
                    "into DIR with this interpreter's pip, and exit")
    ap.add_argument("--python-version", help="with --install-site: the target's X.Y")
    ap.add_argument("--timeout", type=int, help="seconds per seed (default: scaled to --calls)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    if args.install_site:
        ok = install_site(args.install_site, args.python_version)
        log("run.py: hypothesis for %s in %s: %s" % (args.python_version, args.install_site,
                                                      "ready" if ok else "FAILED"))
        return 0 if ok else 1

    python = args.python
    facts = probe(python)
    seeds = list(args.seed)
    if args.ci:
        seeds = [FIXED_SEED, random.SystemRandom().randrange(1, 2 ** 31)] + seeds
    if not seeds:
        seeds = [random.SystemRandom().randrange(1, 2 ** 31) for _ in range(max(1, args.runs))]
    build_dir = args.build_dir or REPO / "_build" / "fuzz" / facts["key"]
    ext_dir = build(python, facts, build_dir, args.library, args.jobs)

    engine, runner, site, why = args.engine, python, None, None
    if engine in ("auto", "hypothesis"):
        if engine == "auto" and args.calls > HYPOTHESIS_MAX_CALLS:
            engine, why = "plain", "more than %d calls" % HYPOTHESIS_MAX_CALLS
        else:
            vpy, why = hypothesis_python(python, facts, args.venv_dir)
            if vpy:
                engine, runner = "hypothesis", vpy
            elif args.site and has_hypothesis(python, args.site):
                engine, site, why = "hypothesis", args.site, None
            elif engine == "hypothesis":
                raise SystemExit("run.py: hypothesis is not available for %s: %s" % (python, why))
            else:
                engine = "plain"
    log("run.py: CPython %s, engine %s%s, %d calls per seed, seeds %s" % (
        facts["tag"], engine, " (%s)" % why if why and engine == "plain" else "", args.calls,
        " ".join(map(str, seeds))))
    timeout = args.timeout or max(900, args.calls // (20 if engine == "plain" else 2))
    results = [run_seed(runner, ext_dir, site, s, args.calls, engine, args.threads, timeout) for s in seeds]

    failed = False
    for r in results:
        status = "FAILED (%s)" % "; ".join(r["problems"]) if r["problems"] else "passed"
        figures = ""
        if "calls" in r:
            figures = ", %d calls in %.1fs, %d calls/s" % (r["calls"], r["fuzz_seconds"], r["rate"])
        if "refs" in r:
            figures += ", exit totals [%d refs, %d blocks]" % (r["refs"], r["blocks"])
        log("run.py: %s seed %d (%s): %s%s" % (facts["tag"], r["seed"], r["engine"], status, figures))
        if r["problems"]:
            failed = True
            log("run.py: replay: %s %s --python %s --seed %d --calls %d --engine %s" % (
                "python3", Path(__file__).relative_to(REPO) if Path(__file__).is_relative_to(REPO)
                else __file__, python, r["seed"], args.calls, r["engine"]))
    total = sum(r.get("calls", 0) for r in results)
    log("run.py: %s: %d calls fuzzed over %d seeds, engine %s; %s" % (
        facts["tag"], total, len(results), engine, "FAILED" if failed else "no failures"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
