#!/usr/bin/env python3
"""pyimmortal's test command: every suite on every interpreter, then a table.

    scripts/runtests.py [--python NAME|PATH ...] [--suite SUITE ...] [--list]

Interpreters (c_tests/interpreters.py): pyenv's, PATH's, free-threaded ones
built from the CPython source tarballs in PYIMMORTAL_CPYTHON_SOURCES, and
Debian sid's (provisioned on first use; PYIMMORTAL_SKIP_SID=1 leaves them
out). --python selects rows by name (a regular expression) or adds an
interpreter by path. Suites, per interpreter:

  layout   the library built against the interpreter's own headers (the
           bindgen oracle checks every size, offset and constant); GIL 3.13+
           also checks the free-threaded layout read from the same headers
  rust     cargo test (unit tests), and ctest 0.5 (systest/) on the header
  embed    C programs that embed the interpreter, one per API area
  ext      a real extension module, run under -X showrefcount (also imported in
           isolated subinterpreters with their own GIL, 3.12+); a
           nanobind-shaped extension whose types, enum and functions are
           made immortal at import and used from 4 threads; finalization
           with 100,000 immortal objects of every kind; two extensions with a
           copy of the library each, also loaded with RTLD_GLOBAL
  fuzz     random sequences of every exported function on many kinds of
           objects, some from several threads at once, each result checked
           against the contract (c_tests/fuzz/run.py --ci: 10,000 calls with
           a fixed seed and 10,000 with a random one, both printed;
           Hypothesis's stateful testing where it installs, else the seeded
           generator); the interpreter must then finalize cleanly. With
           --fuzz-long: 1,000,000 calls (ten random seeds of 100,000)
  headers  pyimmortal.h as C99, C11, C++11, C++20, -Wall -Wextra -Werror -pedantic
  sanitize the embed and ext tests again, built with
           -fsanitize=address,undefined (ASan preloaded into the interpreter,
           PYTHONMALLOC=malloc on GIL builds), LeakSanitizer told about the
           intended immortals through the registry (c_tests/leakcheck.h) and
           CPython's own exit leaks suppressed per version
           (c_tests/sanitize/); any report fails
  abi      a library built for another target fails to import (and is refused
           at run time when the header is bypassed); the header's names match
           the library's symbols; GIL 3.13+: code compiled for the
           free-threaded flavor does not link
  bench    every benchmark kernel built and run once, briefly (no timing)
  wheel    the Python package's wheel built for the interpreter, installed
           into a fresh venv whose PATH has no cargo, rustc or libclang, and
           the consumer examples (CMake, setuptools, meson, scikit-build-core,
           vendored) built there and imported (c_tests/wheel/test_wheel.py);
           on interpreters that run on this host
  prefork  gunicorn serving examples/prefork from a venv with that wheel, 4
           workers reading a 200 MiB data set (100 MiB on debug builds): the
           when_ready hook (gc.freeze() and pyimmortal.immortalize_heap())
           divides the workers' private dirty memory by at least 5 (by 2
           where CPython 3.14+ keeps the data's dicts mortal); skipped on
           3.9-3.11, where the hook's NotImplementedError is checked
           (c_tests/prefork/test_prefork.py); on interpreters that run on
           this host

and once: `repo` (fmt, clippy, header freshness, the system libraries linked
everywhere equal to rustc's native-static-libs, unverified targets refused),
and, after the rows, `tsan`: from the newest 3.14+ tarball of
PYIMMORTAL_CPYTHON_SOURCES, a free-threaded CPython built with
--with-thread-sanitizer (cached like the rows' builds, never a row itself:
every suite under TSan would be slow and noisy), the library built against
its headers, and c_tests/tsan/ (a CMake project of its own) built with
-fsanitize=thread: threads immortalizing, querying, increfing, deferring
and using the registry at once, run with halt_on_error=1 and
c_tests/tsan/suppressions.txt, so any report fails. It runs in every run
that is given the sources (with --python patterns, only if one matches its
name, src-<release>t-tsan); without them it shows as skipped.
A suite whose every ctest test was skipped (exit 77: it does not apply to
that interpreter) shows as skipped with the tests' reason. A free-threaded
row built from a given source passes or fails: a skip there fails the run.
Exits 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "c_tests"))
import interpreters as interp  # noqa: E402

REPO = interp.REPO
OUT = REPO / "_build" / "tests"
SUITES = ["layout", "rust", "embed", "ext", "fuzz", "headers", "abi", "sanitize", "bench", "wheel", "prefork"]
# Calls per seed of the fuzz suite (two seeds: the fixed one and a random one).
FUZZ_CALLS = 10_000
# --fuzz-long: the suite runs the documented long run instead.
FUZZ_LONG = False
# The system libraries that libpyimmortal.a needs: rustc's native-static-libs
# minus -lc, as CMakeLists.txt and the README list them (repo_checks compares).
NATIVE_LIBS = ["m", "rt", "pthread"]
JOBS = str(os.cpu_count() or 2)


class Row:
    def __init__(self, it):
        self.it = it
        self.dir = OUT / it.name
        self.results = {}      # suite -> (status, detail)
        self.library = None    # this row's libpyimmortal.a
        self.cmake_ok = None   # whether its CMake build succeeded, once tried
        self.wheel = None      # the package's wheel for it, once built

    def record(self, suite, status, detail=""):
        self.results[suite] = (status, detail)
        print("[%s] %s: %s%s" % (self.it.name, suite, status, " (%s)" % detail if detail else ""),
              flush=True)


def run_logged(row, name, cmd, env=None, cwd=REPO):
    """Runs cmd where the row's interpreter lives; output goes to <row>/<name>.log."""
    log = row.dir / (name + ".log")
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(str(c) for c in cmd))
        f.flush()
        full_env = dict(os.environ, **(env or {}))
        rc = row.it.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=full_env, cwd=cwd).returncode
    if rc:
        print("\n".join(log.read_text(errors="replace").splitlines()[-50:]))
    return rc == 0


def cargo_dir(row):
    # One target directory per environment: the build dependencies (bindgen)
    # compile once, and the library is rebuilt when PYIMMORTAL_PYTHON changes.
    return REPO / "_build" / ("cargo-" + row.it.where)


# --- suites ------------------------------------------------------------------


def suite_layout(row):
    env = {"PYIMMORTAL_PYTHON": row.it.python}
    cmd = ["cargo", "build", "--locked", "--release", "--lib", "--message-format=json-render-diagnostics",
           "--target-dir", cargo_dir(row)]
    out = row.it.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env), cwd=REPO)
    (row.dir / "layout.log").write_text(out.stderr)
    if out.returncode:
        print("\n".join(out.stderr.splitlines()[-40:]))
        return "failed", "build against the interpreter's headers"
    built = []
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "pyimmortal":
            built = [f for f in msg["filenames"] if f.endswith(".a")]
    if not built:
        return "failed", "cargo reported no libpyimmortal.a"
    row.library = row.dir / "libpyimmortal.a"
    finish = subprocess.run([sys.executable, REPO / "build" / "finish_archive.py", built[0], row.library],
                            capture_output=True, text=True)
    if finish.returncode:
        print(finish.stdout + finish.stderr)
        return "failed", "build/finish_archive.py: " + (finish.stdout + finish.stderr).strip()[-200:]
    if row.it.has_free_threaded_flavor:
        env["PYIMMORTAL_ASSUME_FREE_THREADED"] = "1"
        if not run_logged(row, "layout", ["cargo", "check", "--locked", "--lib", "--target-dir",
                                          cargo_dir(row)], env):
            return "failed", "free-threaded layout read from these headers"
        return "passed", "own headers, and with Py_GIL_DISABLED"
    return "passed", "own headers"


def suite_rust(row):
    env = {"PYIMMORTAL_PYTHON": row.it.python}
    for manifest in ("Cargo.toml", "systest/Cargo.toml"):
        if not run_logged(row, "rust", ["cargo", "test", "--locked", "--quiet", "--manifest-path",
                                        REPO / manifest, "--target-dir", cargo_dir(row)], env):
            return "failed", manifest
    return "passed", ""


def cmake_build(row):
    if row.library is None:
        return False
    if row.cmake_ok is None:
        configure = ["cmake", "-S", REPO, "-B", row.dir / "cmake", "-DPYIMMORTAL_PYTHON=" + row.it.python,
                     "-DPYIMMORTAL_LIBRARY=%s" % row.library]
        row.cmake_ok = (run_logged(row, "cmake", configure) and
                        run_logged(row, "cmake", ["cmake", "--build", row.dir / "cmake", "-j", JOBS]))
    return row.cmake_ok


def ctest(row, label):
    if not cmake_build(row):
        return "failed", "no build (see cmake.log)" if row.library else "no library (layout failed)"
    return run_ctest(row, row.dir / "cmake", label, "ctest-" + label)


def run_ctest(row, build, label, name, jobs=("-j", "1")):
    """Runs the tests of build whose label matches ^(label)$; output goes to
    <row>/<name>.log and <name>.xml. Returns (status, detail)."""
    labels = "^(%s)$" % label
    listing = row.it.run(["ctest", "--test-dir", build, "-N", "-L", labels],
                         capture_output=True, text=True).stdout
    count = int(re.search(r"Total Tests: (\d+)", listing).group(1))
    if count == 0:
        return "skipped", "no %s tests for %s" % (label, row.it.tag)
    junit = row.dir / ("%s.xml" % name)
    ok = run_logged(row, name, ["ctest", "--test-dir", build, "-L", labels, *jobs,
                                "--output-on-failure", "-V", "--output-junit", junit])
    if not ok:
        return "failed", "%d tests" % count
    # A test that does not apply exits 77 (SKIP_RETURN_CODE) after printing
    # "skipped (reason)"; ctest lists it as skipped, not failed.
    skipped = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            reasons = re.findall(r"skipped \((.*)\)\s*$", case.findtext("system-out") or "", re.M)
            skipped.append(reasons[-1] if reasons else case.find("skipped").get("message", ""))
    if len(skipped) == count:
        return "skipped", "; ".join(sorted(set(skipped)))
    return "passed", "%d tests%s" % (count, ", %d skipped" % len(skipped) if skipped else "")


# What the sanitizers print when they find something; the tests fail on it
# (c_tests/CMakeLists.txt), and the suite looks again in the whole log.
SANITIZERS = "address,undefined"
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                              r"UndefinedBehaviorSanitizer|SUMMARY: \w+Sanitizer")


def suite_sanitize(row):
    """The embed and ext tests of a second build of the row, made with
    -DPYIMMORTAL_SANITIZE=address,undefined: the C programs and the test
    extensions instrumented, the interpreter and libpyimmortal.a as they are
    (ASan preloaded for the extensions, PYTHONMALLOC=malloc on GIL builds),
    leaks checked. Fails on any sanitizer report."""
    if row.library is None:
        return "failed", "no library (layout failed)"
    build = row.dir / "cmake-sanitize"
    configure = ["cmake", "-S", REPO, "-B", build, "-DPYIMMORTAL_PYTHON=" + row.it.python,
                 "-DPYIMMORTAL_LIBRARY=%s" % row.library, "-DPYIMMORTAL_SANITIZE=" + SANITIZERS]
    if not (run_logged(row, "sanitize-build", configure) and
            run_logged(row, "sanitize-build", ["cmake", "--build", build, "-j", JOBS])):
        return "failed", "no sanitized build (see sanitize-build.log)"
    status, detail = run_ctest(row, build, "embed|ext", "sanitize", jobs=("-j", JOBS))
    # (ctest echoes a test's FAIL_REGULAR_EXPRESSION as "Regex=[...]".)
    lines = [line for line in (row.dir / "sanitize.log").read_text(errors="replace").splitlines()
             if "Regex=[" not in line]
    reports = sorted(set(m.group(0) for line in lines for m in SANITIZER_REPORT.finditer(line)))
    if reports:
        return "failed", "sanitizer reports: %s (see sanitize.log)" % ", ".join(reports)
    if status != "passed":
        return status, detail
    what = "ASan+UBSan, leaks checked, %s" % (
        "objects in mimalloc (no PYTHONMALLOC=malloc on free-threaded builds)"
        if row.it.free_threaded else "PYTHONMALLOC=malloc")
    return status, "%s; %s" % (detail, what)


def suite_fuzz(row):
    if not cmake_build(row):
        return "failed", "no build (see cmake.log)" if row.library else "no library (layout failed)"
    if FUZZ_LONG:
        # The documented long run: 1,000,000 calls in ten processes.
        runs = ["--calls", "100000", "--runs", "10", "--engine", "plain"]
    else:
        runs = ["--ci", "--calls", str(FUZZ_CALLS)]
    cmd = [row.it.python, REPO / "c_tests" / "fuzz" / "run.py", "--python", row.it.python, *runs,
           "--build-dir", row.dir / "cmake", "-j", JOBS]
    if row.it.where != "host":
        # Interpreters without pip of their own (Debian's, unless
        # python3.X-venv is installed) get Hypothesis installed for their
        # version by this host's pip; run.py falls back to its seeded
        # generator if that fails too.
        site = REPO / "_build" / "fuzz" / "site" / row.it.name
        with open(row.dir / "fuzz.log", "a") as f:
            subprocess.run([sys.executable, REPO / "c_tests" / "fuzz" / "run.py", "--install-site", site,
                            "--python-version", "3.%d" % row.it.minor], stdout=f, stderr=subprocess.STDOUT)
        cmd += ["--site", site]
    ok = run_logged(row, "fuzz", cmd)
    log = (row.dir / "fuzz.log").read_text(errors="replace")
    seeds = re.findall(r"^run\.py: \S+ seed (\d+) \((\w+)\): passed, (\d+) calls", log, re.M)
    if not ok:
        failed = re.findall(r"^run\.py: replay: (.*)$", log, re.M)
        return "failed", "replay: " + failed[0] if failed else "see fuzz.log"
    calls = sum(int(c) for _, _, c in seeds)
    engine = seeds[0][1] if seeds else "?"
    if FUZZ_LONG:
        return "passed", "%d calls in %d processes, %s" % (calls, len(seeds), engine)
    return "passed", "%d calls, seeds %s, %s" % (calls, " and ".join(s for s, _, _ in seeds), engine)


def suite_bench(row):
    if row.library is None:
        return "failed", "no library (layout failed)"
    ok = run_logged(row, "bench", [row.it.python, REPO / "bench" / "run.py", "--python", row.it.python,
                                   "--smoke", "--library", row.library, "--out", row.dir / "bench",
                                   "--build-root", row.dir / "bench"])
    return ("passed" if ok else "failed"), "smoke, no timing"


def build_wheel(row, log):
    """Builds the package's wheel for the row's interpreter into
    <row>/wheel/dist (emptied first), as pip builds it: in a venv of the
    interpreter, with cargo on PATH. Returns (wheel, None) or (None, why);
    the wheel is kept as row.wheel for the suites after."""
    work = row.dir / "wheel"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    builder = work / "build-venv"
    if not (run_logged(row, log, [row.it.python, "-m", "venv", builder]) and
            run_logged(row, log, [builder / "bin" / "pip", "wheel", "--disable-pip-version-check",
                                  "--no-deps", "-w", work / "dist", REPO])):
        return None, "building the wheel"
    wheels = sorted((work / "dist").glob("pyimmortal-*.whl"))
    if len(wheels) != 1:
        return None, "pip wheel made %d wheels" % len(wheels)
    row.wheel = wheels[0]
    return row.wheel, None


def suite_wheel(row):
    if row.it.where != "host":
        return "skipped", "the wheel is tested on this host's interpreters"
    # The driver uses the wheel where no Rust toolchain is reachable.
    wheel, problem = build_wheel(row, "wheel")
    if problem:
        return "failed", problem
    work = row.dir / "wheel"
    # An install tree of the row's CMake build, for find_package without the wheel.
    if not (cmake_build(row) and
            run_logged(row, "wheel", ["cmake", "--install", row.dir / "cmake", "--prefix", work / "install"])):
        return "failed", "cmake --install"
    ok = run_logged(row, "wheel", [sys.executable, REPO / "c_tests" / "wheel" / "test_wheel.py",
                                   "--python", row.it.python, "--wheel", wheel,
                                   "--work", work / "consumer", "--installed-prefix", work / "install"])
    return ("passed" if ok else "failed"), wheel.name


def suite_prefork(row):
    if row.it.where != "host":
        return "skipped", "gunicorn is run on this host's interpreters"
    wheel = row.wheel
    if wheel is None:
        wheel, problem = build_wheel(row, "prefork")
        if problem:
            return "failed", problem
    # Debug builds run the data set's build and reads 3 to 4 times slower.
    heap_mb = "100" if row.it.debug else "200"
    log = row.dir / "prefork.log"
    cmd = [sys.executable, REPO / "c_tests" / "prefork" / "test_prefork.py", "--python", row.it.python,
           "--wheel", wheel, "--work", row.dir / "prefork", "--heap-mb", heap_mb]
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(str(c) for c in cmd))
        f.flush()
        rc = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT).returncode
    text = log.read_text(errors="replace")
    if rc == 77:
        reasons = re.findall(r"^skipped \((.*)\)\s*$", text, re.M)
        return "skipped", reasons[-1] if reasons else "does not apply"
    if rc:
        print("\n".join(text.splitlines()[-50:]))
        return "failed", "see prefork.log"
    summary = re.findall(r"^prefork: workers' mean Private_Dirty (.*)$", text, re.M)
    return "passed", "%s MiB heap: %s" % (heap_mb, summary[-1] if summary else "")


def cross_target(row, lib):
    """An extension for row's interpreter linked with lib (another target's library)."""
    work = row.dir / "cross"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    facts = row.it.facts
    inc, platinc, suffix = facts["include"], facts["platinclude"], facts["ext_suffix"]
    symbol = "pyimmortal_abi_cpython_%s" % row.it.target.replace(".", "_")

    def build_and_import(*defines):
        so = work / ("cross_target" + suffix)
        if so.exists():
            so.unlink()
        if not run_logged(row, "abi", ["cc", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                                       "-I", REPO / "include", "-isystem", inc, "-isystem", platinc,
                                       *defines, REPO / "c_tests" / "cross" / "cross_target.c", lib,
                                       *["-l" + name for name in NATIVE_LIBS], "-o", so]):
            return None
        return row.it.run([row.it.python, "-c", "import cross_target; print(cross_target.is_immortal(None))"],
                          capture_output=True, text=True, cwd=work)

    out = build_and_import()
    if out is None:
        return "could not build the extension"
    if out.returncode == 0 or "undefined symbol: " + symbol not in out.stderr:
        return "import did not fail naming %s: %s" % (symbol, (out.stdout + out.stderr).strip()[-300:])
    out = build_and_import("-DCROSS_TARGET_BYPASS")
    if out is None:
        return "could not build the bypassing extension"
    if out.stdout.strip()[-1:] != "0" or "pyimmortal: this library was built for CPython" not in out.stderr:
        return "the run-time check did not refuse: %s" % (out.stdout + out.stderr).strip()[-300:]
    return None


def suite_abi(row, rows):
    if row.library is None:
        return "failed", "no library (layout failed)"
    others = [r for r in rows if r.library and r.it.target != row.it.target]
    # The same version's other flavor first, then the nearest version built
    # where this interpreter lives (one C library), then any.
    others.sort(key=lambda r: (r.it.minor != row.it.minor, r.it.where != row.it.where,
                               abs(r.it.minor - row.it.minor), r.it.debug))
    details = []
    if others:
        partner = others[0]
        problem = cross_target(row, partner.library)
        if problem:
            return "failed", "with %s's library: %s" % (partner.it.name, problem)
        details.append("%s's library refused" % partner.it.name)
    status, detail = ctest(row, "abi")
    if status == "failed":
        return status, detail
    if status == "passed":
        details.append("header matches library")
        if row.it.has_free_threaded_flavor:
            details.append("%st code does not link" % row.it.target)
    if not details:
        return "skipped", "no library for another target in this run"
    return "passed", "; ".join(details)


# Every suite but abi, which runs once all rows are built.
ROW_SUITES = {
    "layout": suite_layout,
    "rust": suite_rust,
    "embed": lambda row: ctest(row, "embed"),
    "ext": lambda row: ctest(row, "ext"),
    "fuzz": suite_fuzz,
    "headers": lambda row: ctest(row, "headers"),
    "sanitize": suite_sanitize,
    "bench": suite_bench,
    "wheel": suite_wheel,
    "prefork": suite_prefork,
}


# --- the thread sanitizer -----------------------------------------------------------

TSAN_DIR = REPO / "c_tests" / "tsan"


def step_tsan(args, sources):
    """The tsan step: (name, status, detail), or None when --python patterns
    leave it out. Builds (once, cached) the TSan interpreter, the library
    against its headers, and c_tests/tsan/ with -fsanitize=thread, then runs
    its ctest label tsan."""
    if not sources:
        return ("no interpreter", "skipped",
                "give the CPython source releases in PYIMMORTAL_CPYTHON_SOURCES")
    build = interp.tsan_build(sources)
    patterns = [p for p in args.python if os.sep not in p]
    if build is None:
        if patterns:
            return None
        return ("no interpreter", "failed", "no 3.%d+ source release in %s to build it from"
                % (interp.TSAN_MIN_MINOR, sources))
    m = interp.TARBALL.match(build[0].name)
    name = "src-3.%s.%s%st-tsan" % (m.group(2), m.group(3), m.group(4) or "")
    if patterns and not any(re.search(p, name) for p in patterns):
        return None
    it, error = interp.from_source(*build)
    if error:
        return (name, "failed", error)
    row = Row(it)
    shutil.rmtree(row.dir, ignore_errors=True)
    row.dir.mkdir(parents=True)
    print("=== %s: %s (%s; the tsan step)" % (it.name, it.python, it.why), flush=True)
    t0 = time.time()
    status, detail = suite_layout(row)
    if status != "passed":
        return (name, "failed", "layout: " + detail)
    build_dir = row.dir / "cmake"
    if not (run_logged(row, "cmake", ["cmake", "-S", TSAN_DIR, "-B", build_dir,
                                      "-DPYIMMORTAL_PYTHON=" + it.python,
                                      "-DPYIMMORTAL_LIBRARY=%s" % row.library]) and
            run_logged(row, "cmake", ["cmake", "--build", build_dir, "-j", JOBS])):
        return (name, "failed", "building c_tests/tsan (see cmake.log)")
    # The program must really be instrumented: a build without
    # -fsanitize=thread would pass without checking anything.
    symbols = subprocess.run(["nm", build_dir / "test_tsan"], capture_output=True, text=True).stdout
    if "__tsan_init" not in symbols:
        return (name, "failed", "test_tsan is not built with -fsanitize=thread")
    ok = run_logged(row, "ctest-tsan", ["ctest", "--test-dir", build_dir, "-L", "^tsan$",
                                        "--output-on-failure", "-V"])
    # ctest -V prefixes each line of a test's output with its number.
    output = (row.dir / "ctest-tsan.log").read_text(errors="replace")
    reports = re.findall(r"^\d+: SUMMARY: ThreadSanitizer: (.*)$", output, re.M)
    figures = re.findall(r"^\d+: test_tsan: (\d+ threads x \d+ rounds, \d+ thread states come and gone): "
                         r"(\d+) calls", output, re.M)
    suppressed = {}
    for hits, entry in re.findall(r"^\d+: (\d+) (\w+:\S+)$", output, re.M):
        suppressed[entry] = suppressed.get(entry, 0) + int(hits)
    detail = "%s; %d report%s%s; suppressed: %s; %ds" % (
        "%s: %s calls" % (figures[0][0], " and ".join(n for _, n in figures)) if figures else "no figures",
        len(reports), "" if len(reports) == 1 else "s", " (%s)" % reports[0] if reports else "",
        ", ".join("%s x%d" % kv for kv in sorted(suppressed.items())) or "none", time.time() - t0)
    return (name, "passed" if ok and not reports and len(figures) == 2 else "failed", detail)


# --- the repository ------------------------------------------------------------


def native_libs_mismatches(log):
    """The places (CMakeLists.txt, this script, the Markdown docs) whose list
    of system libraries differs from rustc's native-static-libs for the crate
    minus -lc, each with a line that says how."""
    out = subprocess.run(["cargo", "rustc", "--locked", "--release", "--lib", "--crate-type", "staticlib",
                          "--target-dir", REPO / "_build" / "cargo-host", "--",
                          "--print", "native-static-libs"], cwd=REPO, capture_output=True, text=True)
    log.write(out.stderr)
    printed = re.findall(r"native-static-libs: (.*)", out.stderr)
    if out.returncode or not printed:
        return {"cargo rustc": "cargo rustc --print native-static-libs printed no list"}
    want = [a[2:] for a in printed[-1].split() if a.startswith("-l") and a != "-lc"]
    places = {"scripts/runtests.py": NATIVE_LIBS}
    cmake = (REPO / "CMakeLists.txt").read_text()
    m = re.search(r"set\(PYIMMORTAL_NATIVE_LIBS\s+([^)]*)\)", cmake)
    places["CMakeLists.txt"] = m.group(1).split() if m else []
    if not re.search(r"target_link_libraries\(pyimmortal INTERFACE[^)]*\$\{PYIMMORTAL_NATIVE_LIBS\}", cmake):
        places["CMakeLists.txt target_link_libraries(pyimmortal)"] = []
    docs = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True).stdout.split()
    for doc in docs:
        for n, line in enumerate((REPO / doc).read_text().splitlines(), 1):
            for libs in re.findall(r"-l\w+(?:\s+-l\w+)+", line):
                places["%s:%d" % (doc, n)] = [a[2:] for a in libs.split()]
    return {where: "%s links %s, rustc says %s" % (where, " ".join("-l" + x for x in libs),
                                                   " ".join("-l" + x for x in want))
            for where, libs in places.items() if set(libs) != set(want)}


def repo_checks():
    log = OUT / "repo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    steps = [
        ("fmt", ["cargo", "fmt", "--all", "--", "--check"]),
        ("clippy", ["cargo", "clippy", "--locked", "--all-targets", "--target-dir",
                    REPO / "_build" / "cargo-host", "--", "-D", "warnings"]),
        ("header", [REPO / "scripts" / "regen-header.sh", "--check"]),
    ]
    with open(log, "a") as f:
        for name, cmd in steps:
            if subprocess.run([str(c) for c in cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode:
                return "failed", name
    # An unverified target must be refused with a message, never built: the
    # first version after the table's range, through a stand-in interpreter.
    unverified = "3.%d" % (interp.SUPPORTED.max_minor + 1)
    fake = REPO / "c_tests" / "unverified" / ("fake-python" + unverified)
    if not fake.is_file():
        return "failed", "no stand-in %s for CPython %s, the first version after the range" % (
            fake.relative_to(REPO), unverified)
    out = subprocess.run(["cargo", "build", "--locked", "--lib", "--target-dir", REPO / "_build" / "unverified"],
                         cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYIMMORTAL_PYTHON=str(fake)))
    with open(log, "a") as f:
        f.write(out.stderr)
    if out.returncode == 0:
        return "failed", "building for CPython %s succeeded" % unverified
    for want in ("cannot be built for CPython " + unverified, "outside the verified range", "unverified"):
        if want not in out.stderr:
            return "failed", "the %s refusal does not say %r" % (unverified, want)
    with open(log, "a") as f:
        mismatches = native_libs_mismatches(f)
    if mismatches:
        print("\n".join(mismatches.values()))
        return "failed", "system libraries other than rustc's native-static-libs in " + ", ".join(mismatches)
    return "passed", "fmt, clippy, header, %s refused, link libraries" % unverified


# --- main --------------------------------------------------------------------------


def gather(args, sources):
    found, problems = [], []
    found += interp.from_pyenv() + interp.from_path()
    if sources:
        built, errors = interp.from_sources(sources, build=not args.list)
        found += built
        problems += ["%s: %s" % (interp.describe(t, v), e) for t, v, e in errors]
    if os.environ.get("PYIMMORTAL_SKIP_SID") != "1":
        if not interp.sid_provisioned():
            print("provisioning the Debian sid root (once)", flush=True)
            if not interp.provision_sid(OUT / "provision-sid.log"):
                problems.append("provisioning the Debian sid root failed: see %s" % (OUT / "provision-sid.log"))
        found += interp.from_sid()
    for p in args.python:
        if os.sep in p:
            it = interp.make("given", p, "host", "given with --python")
            if it is None:
                problems.append("cannot run %s" % p)
                continue
            found.append(it)
    found = interp.dedupe(found)
    patterns = [p for p in args.python if os.sep not in p]
    if patterns:
        found = [it for it in found if it.name.startswith("given-")
                 or any(re.search(p, it.name) for p in patterns)]
    return found, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", action="append", default=[], help="row name regex, or an interpreter path")
    ap.add_argument("--suite", action="append", default=[], choices=SUITES + ["repo", "tsan"])
    ap.add_argument("--list", action="store_true", help="list the interpreters and exit")
    ap.add_argument("--fuzz-long", action="store_true", help="the fuzz suite runs 1,000,000 calls per "
                    "interpreter (ten random seeds of 100,000, seeded generator) instead of the short run")
    args = ap.parse_args()
    global FUZZ_LONG
    FUZZ_LONG = args.fuzz_long
    start = time.time()
    interp.add_tool_dirs_to_path()
    sources = interp.default_sources_dir()
    sid = os.environ.get("PYIMMORTAL_SKIP_SID") != "1"
    OUT.mkdir(parents=True, exist_ok=True)
    interp.setup_host(sid=sid, cpython_sources=bool(sources), rust_lints=True)

    suites = args.suite or SUITES + ["repo", "tsan"]
    failed = False
    repo = None
    if "repo" in suites and not args.list:
        repo = repo_checks()
        print("[repository] %s (%s)" % repo, flush=True)
        failed |= repo[0] == "failed"
    if not args.list and not set(suites) & set(SUITES + ["tsan"]):
        print("runtests: %s" % ("FAILURES" if failed else "no failures"))
        return 1 if failed else 0

    its, problems = gather(args, sources) if set(suites) & set(SUITES) or args.list else ([], [])
    if args.list:
        for it in its:
            print("%-22s %-6s %s  (%s)" % (it.name, it.tag, it.python, it.why))
        tsan = interp.from_source(*interp.tsan_build(sources), build=False)[0] \
            if sources and interp.tsan_build(sources) else None
        if tsan:
            print("%-22s %-6s %s  (%s; the tsan step only)" % (tsan.name, tsan.tag, tsan.python, tsan.why))
        return 0
    rows = [Row(it) for it in its]
    todo = [s for s in SUITES if s in suites and s != "abi"]
    if "layout" not in todo and set(suites) & {"embed", "ext", "fuzz", "headers", "abi", "sanitize", "bench",
                                                "wheel", "prefork"}:
        todo.insert(0, "layout")   # it builds the library the others use
    for row in rows:
        shutil.rmtree(row.dir, ignore_errors=True)
        row.dir.mkdir(parents=True)
        print("=== %s: %s (%s)" % (row.it.name, row.it.python, row.it.why), flush=True)
        for suite in todo:
            t0 = time.time()
            status, detail = ROW_SUITES[suite](row)
            row.record(suite, status, "%s%s%ds" % (detail, ", " if detail else "", time.time() - t0))
    if "abi" in suites:
        for row in rows:
            row.record("abi", *suite_abi(row, rows))
    tsan = step_tsan(args, sources) if "tsan" in suites else None
    if tsan:
        print("[thread sanitizer] %s (%s)" % tsan[1:], flush=True)

    # --- table
    shown = [s for s in SUITES if s in suites]
    lines = ["| interpreter | %s |" % " | ".join(shown or ["result"]),
             "|---|%s" % ("---|" * max(1, len(shown)))]
    if repo:
        lines.append("| repository | %s (%s) |" % repo)
    if tsan:
        lines.append("| thread sanitizer (%s) | %s (%s) |" % tsan)
        failed |= tsan[1] == "failed"
    notes = []
    for row in rows:
        cells = []
        for s in shown:
            status, detail = row.results.get(s, ("failed", "did not run"))
            if status == "skipped" and row.it.free_threaded and row.it.name.startswith("src-"):
                status, detail = "failed", "skipped on a free-threaded row built from source: " + detail
            failed |= status == "failed"
            cells.append(status)
            if status != "passed":
                notes.append("%s %s: %s %s" % (row.it.name, s, status, detail))
        lines.append("| %s | %s |" % (row.it.name, " | ".join(cells)))
    covered = {r.it.target for r in rows}
    for t in interp.SUPPORTED.free_threaded_targets():
        if t not in covered and shown and not args.python:
            lines.append("| %s (no interpreter; give its source release in PYIMMORTAL_CPYTHON_SOURCES) | %s |"
                         % (t, " | ".join("skipped" for _ in shown)))
    for p in problems:
        failed = True
        notes.append("error: " + p)
    table = "\n".join(lines)
    (OUT / "table.md").write_text(table + "\n")
    print("\n" + table + "\n")
    for n in notes:
        print(n)
    for row in rows:
        log = row.dir / "ctest-ext.log"
        seen = set()
        for line in log.read_text().splitlines() if log.exists() else []:
            if "showrefcount:" in line and line.split("showrefcount:", 1)[1] not in seen:
                seen.add(line.split("showrefcount:", 1)[1])
                print("%s: showrefcount:%s" % (row.it.name, line.split("showrefcount:", 1)[1]))
    print("runtests: %ds; %s" % (time.time() - start, "FAILURES" if failed else "no failures"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
