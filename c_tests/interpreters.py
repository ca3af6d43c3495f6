"""Host set-up and the interpreters that the test runner and the demo use.

Every interpreter is asked with the repository's one probe, build/probe.py,
and only the versions of the supported-version table, Cargo.toml's
[package.metadata.cpython], are looked for. Sources of interpreters, in the
order they are listed:

- pyenv's CPython, from the oldest supported version on;
- ``python3.X`` (also ``python3.Xt``, ``python3.Xd``) on ``PATH``, for
  versions pyenv does not already give;
- free-threaded interpreters built from CPython source release tarballs
  (``PYIMMORTAL_CPYTHON_SOURCES=dir``), cached under
  ``~/.cache/pyimmortal/cpython/`` by the tarball's SHA-256 and the variant
  (release, debug, and the thread-sanitizer build that only the runner's
  tsan step uses, never a row: VARIANTS);
- Debian sid's ``python3.13``, ``python3.14`` and ``python3.15`` with their
  debug builds, run inside the root made by ``scripts/provision-sid.sh``.

Standard library only: it runs on whatever ``python3`` the machine has.
"""

import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PYIMMORTAL_CACHE") or Path.home() / ".cache" / "pyimmortal")
SID_ROOT = CACHE / "sid-root"
SID_STAMP = SID_ROOT / ".pyimmortal-provisioned-v1"
SID_EXEC = REPO / "scripts" / "sid-exec.sh"
PROVISION_SID = REPO / "scripts" / "provision-sid.sh"

PROBE = REPO / "build" / "probe.py"
MANIFEST = REPO / "Cargo.toml"


@dataclass(frozen=True)
class Supported:
    """Cargo.toml's [package.metadata.cpython]: the supported minor versions of CPython 3."""
    min_minor: int                  # min-version
    max_minor: int                  # max-version, GIL and free-threaded
    min_free_threaded_minor: int    # min-free-threaded-version

    def free_threaded_targets(self):
        return ["3.%dt" % m for m in range(self.min_free_threaded_minor, self.max_minor + 1)]


def supported_versions(manifest=MANIFEST):
    """Reads the table the way build/python_config.rs does: `key = "3.N"` lines."""
    values, in_table = {}, False
    for line in Path(manifest).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            in_table = line == "[package.metadata.cpython]"
        elif in_table and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            m = re.fullmatch(r'"3\.(\d+)"', value)
            if not m:
                raise SystemExit('%s: [package.metadata.cpython] %s must be written "3.N"'
                                 % (manifest, key))
            values[key] = int(m.group(1))
    try:
        return Supported(values["min-version"], values["max-version"],
                         values["min-free-threaded-version"])
    except KeyError as e:
        raise SystemExit("%s: [package.metadata.cpython] lacks %s" % (manifest, e))


SUPPORTED = supported_versions()


def log(msg):
    print(msg, flush=True)


# --- host tools --------------------------------------------------------------

# Where clang-sys (bindgen's loader, `runtime` feature) looks on Linux, and the
# file names it accepts. libclang-cpp.so.* is a different library (the C++
# API); it does not export the C API that bindgen calls.
LIBCLANG_DIRS = ["/usr/lib/llvm-*/lib", "/usr/local/llvm*/lib", "/usr/lib/x86_64-linux-gnu",
                 "/usr/lib64", "/usr/lib", "/usr/local/lib"]
LIBCLANG_NAME = re.compile(r"^libclang(-[0-9.]+)?\.so(\.[0-9.]+)?$")


def find_libclang():
    """Returns a libclang that bindgen can load (it exports clang_createIndex), or None."""
    import ctypes

    dirs = []
    if os.environ.get("LIBCLANG_PATH"):
        dirs.append(os.environ["LIBCLANG_PATH"])
    llvm_config = shutil.which("llvm-config")
    if llvm_config:
        out = subprocess.run([llvm_config, "--libdir"], capture_output=True, text=True)
        dirs.append(out.stdout.strip())
    for pattern in LIBCLANG_DIRS:
        dirs.extend(sorted(glob.glob(pattern), reverse=True))
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d), reverse=True):
            if not LIBCLANG_NAME.match(name):
                continue
            try:
                lib = ctypes.CDLL(os.path.join(d, name))
                lib.clang_createIndex  # noqa: B018 -- raises if absent
            except (OSError, AttributeError):
                continue
            return os.path.join(d, name)
    return None


def missing_packages(sid=False, cpython_sources=False):
    """Debian packages for the tools that are missing, each found by use."""
    need = []
    if not shutil.which("cmake"):
        need.append("cmake")
    if not shutil.which("cc") or not shutil.which("make"):
        need += ["gcc", "make", "libc6-dev"]
    if not shutil.which("c++"):
        need.append("g++")
    if find_libclang() is None:
        need.append("libclang-dev")
    if not shutil.which("pkg-config"):
        need.append("pkg-config")  # the meson example of the wheel suite
    if sid and not shutil.which("debootstrap"):
        need.append("debootstrap")
    if cpython_sources and not shutil.which("xz"):
        need.append("xz-utils")
    return need


def setup_host(sid=False, cpython_sources=False, rust_lints=False):
    """Installs what is missing (Debian, apt-get); idempotent and quick when all is there."""
    need = missing_packages(sid, cpython_sources)
    if need:
        log("setup: installing %s" % " ".join(need))
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + need,
                       check=True, env=env, stdout=subprocess.DEVNULL)
        still = missing_packages(sid, cpython_sources)
        if still:
            raise SystemExit("setup: still missing after apt-get: %s" % " ".join(still))
    if not shutil.which("cargo"):
        raise SystemExit("setup: cargo not found; install Rust with rustup (https://rustup.rs)")
    if rust_lints:
        for sub, component in (("fmt", "rustfmt"), ("clippy", "clippy")):
            if subprocess.run(["cargo", sub, "--version"], capture_output=True).returncode:
                log("setup: rustup component add %s" % component)
                subprocess.run(["rustup", "component", "add", component], check=True)


def add_tool_dirs_to_path():
    """rustup's and pyenv's usual homes, for shells that have not added them."""
    for d in (Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin",
              Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "bin"):
        if d.is_dir() and str(d) not in os.environ["PATH"].split(os.pathsep):
            os.environ["PATH"] += os.pathsep + str(d)


# --- interpreters ---------------------------------------------------------------


@dataclass
class Interpreter:
    name: str            # row name, e.g. "pyenv-3.12.1", "sid-3.14d", "src-3.14.7t"
    python: str          # path as seen where it runs
    where: str           # "host" or "sid"
    why: str             # where it was found
    facts: dict = field(default_factory=dict)   # build/probe.py's key=value lines

    @property
    def minor(self):
        return int(self.facts["version_minor"])

    @property
    def version(self):
        """The release, such as "3.13.0rc2"."""
        return self.facts["release"]

    @property
    def free_threaded(self):
        return self.facts["free_threaded"] == "1"

    @property
    def debug(self):
        return self.facts["debug"] == "1"

    @property
    def has_free_threaded_flavor(self):
        """A GIL build of a version that also has a free-threaded build."""
        return not self.free_threaded and self.minor >= SUPPORTED.min_free_threaded_minor

    @property
    def prefix(self):
        """Command prefix that runs a command where this interpreter lives."""
        return command_prefix(self.where)

    @property
    def target(self):
        """The library target it needs: "3.14" or "3.14t" (debug builds share it)."""
        return self.facts["target"]

    @property
    def tag(self):
        """The target, plus "d" for a debug build."""
        return self.facts["tag"]

    def run(self, cmd, **kw):
        return subprocess.run(self.prefix + [str(c) for c in cmd], **kw)


def command_prefix(where):
    """What runs a command in `where`: the host, or the sid root."""
    return [str(SID_EXEC)] if where == "sid" else []


def probe(python, where="host"):
    """build/probe.py's facts about python as a dict, or None if it cannot run.

    The script goes in with -c: inside the sid root only the checkout that
    contains the current directory is mounted, and that need not be this one.
    """
    cmd = command_prefix(where) + [python, "-I", "-c", PROBE.read_text()]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    facts = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if not facts.get("version", "").startswith("3."):
        return None
    return facts


def make(source, python, where, why, name=None):
    """The interpreter at python, or None if it cannot run. Its row name is
    `name`, else `source-<release>[t][d]` (row_name)."""
    facts = probe(python, where)
    if facts is None:
        return None
    it = Interpreter(name, python, where, why, facts)
    it.name = name or row_name(source, it)
    return it


def from_pyenv():
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return []
    bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout
    found = []
    for v in bare.split():
        m = re.fullmatch(r"3\.(\d+)\.\d+(t?)", v)
        if not m or int(m.group(1)) < SUPPORTED.min_minor:
            continue
        prefix = subprocess.run([pyenv, "prefix", v], capture_output=True, text=True).stdout.strip()
        exe = Path(prefix) / "bin" / ("python3.%s%s" % (m.group(1), m.group(2)))
        if not exe.exists():
            exe = Path(prefix) / "bin" / "python3"
        it = make("pyenv", str(exe), "host", "pyenv version %s" % v, name="pyenv-" + v)
        if it:
            found.append(it)
    return found


def row_name(source, it):
    return "%s-%s%s%s" % (source, it.version, "t" if it.free_threaded else "", "d" if it.debug else "")


def from_path():
    found, seen = [], set()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d) or "pyenv" in d:
            continue
        for name in sorted(os.listdir(d)):
            exe = os.path.join(d, name)
            if not re.fullmatch(r"python3\.\d+[td]?", name) or os.path.realpath(exe) in seen:
                continue
            seen.add(os.path.realpath(exe))
            it = make("path", exe, "host", "%s on PATH" % name)
            if it and it.minor >= SUPPORTED.min_minor:
                found.append(it)
    return found


def sid_provisioned():
    return SID_STAMP.is_file()


def provision_sid(logfile):
    with open(logfile, "w") as f:
        return subprocess.run([str(PROVISION_SID)], stdout=f, stderr=subprocess.STDOUT).returncode == 0


def from_sid():
    if not sid_provisioned():
        return []
    found = []
    for minor in range(SUPPORTED.min_minor, SUPPORTED.max_minor + 1):
        for d in ("", "d"):
            exe = "/usr/bin/python3.%d%s" % (minor, d)
            if (SID_ROOT / exe.lstrip("/")).exists():
                it = make("sid", exe, "sid", "Debian sid's python3.%d%s (%s)" % (minor, d, SID_ROOT),
                          name="sid-3.%d%s" % (minor, d))
                if it:
                    found.append(it)
    return found


# --- free-threaded interpreters from source releases ----------------------------

TARBALL = re.compile(r"^Python-(3)\.(\d+)\.(\d+)((?:a|b|rc)\d+)?\.(tar\.xz|tgz|tar\.gz)$")


def tarballs(directory):
    """[(version tuple, path)] of the CPython source releases in directory, oldest first."""
    out = []
    for p in Path(directory).iterdir():
        m = TARBALL.match(p.name)
        if m:
            pre = m.group(4) or "z"   # a final release sorts after its pre-releases
            out.append(((3, int(m.group(2)), int(m.group(3)), pre), p))
    return sorted(out)


@functools.lru_cache(maxsize=None)
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# The free-threaded builds made from a source release, by variant: what
# configure is given besides the options every variant shares, and whether the
# variant is a row of the test command. The thread-sanitizer build is not: the
# runner runs only its own TSan step on it (scripts/runtests.py).
VARIANTS = {
    "release": {"configure": [], "row": True},
    "debug": {"configure": ["--with-pydebug"], "row": True},
    "tsan": {"configure": ["--with-thread-sanitizer"], "row": False},
}


def built_dir(tarball, variant):
    """CACHE/cpython/<sha256[:16]>-ft, -ft-debug, -ft-tsan."""
    suffix = "ft" if variant == "release" else "ft-" + variant
    return CACHE / "cpython" / ("%s-%s" % (sha256(tarball)[:16], suffix))


def describe(tarball, variant):
    """"Python-3.14.7.tar.xz", "Python-3.14.7.tar.xz (debug)", ... for messages."""
    return tarball.name + ("" if variant == "release" else " (%s)" % variant)


STAMP = ".pyimmortal-complete.json"


def read_stamp(prefix):
    """The stamp of a finished cache entry as a dict, or None if it is not finished.
    Stamps written before variants existed say only "debug"."""
    stamp = prefix / STAMP
    if not stamp.is_file():
        return None
    facts = json.loads(stamp.read_text())
    facts.setdefault("variant", "debug" if facts.get("debug") else "release")
    return facts


def finished_python(prefix):
    """The interpreter of a finished cache entry, or None if it is not finished."""
    facts = read_stamp(prefix)
    return facts["python"] if facts else None


def config_args(python):
    """The interpreter's configure command line (sysconfig's CONFIG_ARGS), or None."""
    out = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_config_var('CONFIG_ARGS'))"],
                         capture_output=True, text=True, timeout=120)
    return out.stdout if out.returncode == 0 else None


def build_free_threaded(tarball, variant="release"):
    """Builds (once) a free-threaded CPython from a source release; returns its python.

    variant is a key of VARIANTS. The cache entry is
    CACHE/cpython/<sha256[:16]>-ft[-<variant>]/ and counts as finished only
    when its stamp file exists. The stamp is written last, by an atomic
    rename, so an interrupted or failed build is started again from scratch by
    the next run.
    """
    extra = VARIANTS[variant]["configure"]
    prefix = built_dir(tarball, variant)
    if finished_python(prefix):
        return finished_python(prefix)
    with locked(prefix.with_name(prefix.name + ".lock")):
        if finished_python(prefix):
            return finished_python(prefix)
        shutil.rmtree(prefix, ignore_errors=True)
        work = prefix.with_name(prefix.name + ".build")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        logfile = prefix.with_name(prefix.name + ".log")
        log("cpython: building %s free-threaded into %s (log: %s)" % (
            describe(tarball, variant), prefix, logfile))
        configure = ["./configure", "--prefix=%s" % prefix, "--disable-gil", "--enable-shared",
                     "--without-ensurepip", "--disable-test-modules",
                     "LDFLAGS=-Wl,-rpath,%s/lib" % prefix] + extra
        jobs = str(os.cpu_count() or 2)
        steps = [["tar", "-xf", str(tarball), "-C", str(work), "--strip-components=1"],
                 configure, ["make", "-j", jobs], ["make", "install"]]
        with open(logfile, "w") as f:
            for cmd in steps:
                f.write("$ %s\n" % " ".join(cmd))
                f.flush()
                if subprocess.run(cmd, cwd=work, stdout=f, stderr=subprocess.STDOUT).returncode:
                    raise RuntimeError("building %s failed at `%s`; see %s" % (
                        describe(tarball, variant), cmd[0], logfile))
        exes = sorted(p for p in glob.glob(str(prefix / "bin" / "python3.*"))
                      if re.search(r"/python3\.\d+td?$", p))
        if not exes:
            raise RuntimeError("no python3.Xt in %s/bin; see %s" % (prefix, logfile))
        facts = probe(exes[0])
        args = config_args(exes[0]) or ""
        if (facts is None or facts["free_threaded"] != "1"
                or (facts["debug"] == "1") != ("--with-pydebug" in extra)
                or not all(option in args for option in extra)):
            raise RuntimeError("%s is not the %s build it should be" % (exes[0], variant))
        tmp = prefix / ".pyimmortal-complete.tmp"
        tmp.write_text(json.dumps({"python": exes[0], "tarball": str(tarball), "sha256": sha256(tarball),
                                   "variant": variant, "debug": variant == "debug"}))
        os.replace(tmp, prefix / STAMP)
        shutil.rmtree(work, ignore_errors=True)
        return exes[0]


def source_builds(directory):
    """[(tarball, variant)] of the rows: a free-threaded build of each 3.13+
    release, and a debug one of the newest."""
    found = tarballs(directory)
    wanted = [(p, "release") for version, p in found if version[1] >= SUPPORTED.min_free_threaded_minor]
    if wanted:
        wanted.append((wanted[-1][0], "debug"))
    return wanted


def from_sources(directory, build=True):
    """Free-threaded interpreters from the tarballs in directory, the rows of
    source_builds().

    With build=False only the finished cache entries are returned.
    Returns (interpreters, errors), each error (tarball, variant, message).
    """
    found, errors = [], []
    for tarball, variant in source_builds(directory):
        it, error = from_source(tarball, variant, build)
        if error:
            errors.append((tarball, variant, error))
        elif it:
            found.append(it)
    return found, errors


def from_source(tarball, variant, build=True):
    """(the interpreter built from tarball as variant, None), (None, a
    message) if it cannot be built or run, or (None, None) if it is not built
    and build is False. The row name is src-<release>t[d], plus -<variant>
    for a variant that is not a row (src-3.14.7t-tsan)."""
    try:
        exe = build_free_threaded(tarball, variant) if build else finished_python(built_dir(tarball, variant))
        if exe is None:
            return None, None
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    why = "built from %s" % describe(tarball, variant)
    it = make("src", exe, "host", why)
    if it is None:
        return None, "%s does not run" % exe
    if not VARIANTS[variant]["row"]:
        it.name += "-" + variant
    return it, None


# The TSan test (c_tests/tsan/) uses CPython's own deferred reference
# counting, which free-threaded CPython has from 3.14 on.
TSAN_MIN_MINOR = 14


def tsan_build(directory):
    """(tarball, "tsan"): the thread-sanitizer build is made from the newest
    release only, if it is 3.14 or later; None otherwise."""
    found = tarballs(directory)
    if not found or found[-1][0][1] < TSAN_MIN_MINOR:
        return None
    return found[-1][1], "tsan"


def cached_source_builds():
    """Finished free-threaded builds in the cache that are rows (no TSan
    build), whatever tarball they came from."""
    found = []
    for stamp in sorted(CACHE.glob("cpython/*/" + STAMP)):
        facts = read_stamp(stamp.parent)
        if not VARIANTS.get(facts["variant"], {"row": False})["row"]:
            continue
        it = make("src", facts["python"], "host", "built from source, cached in %s" % stamp.parent)
        if it:
            found.append(it)
    return found


def dedupe(interpreters):
    """Drops a PATH interpreter when an earlier host one has its version and flavor."""
    out, seen = [], set()
    for it in interpreters:
        key = (it.where, it.minor, it.free_threaded, it.debug)
        if it.name.startswith("path-") and key in seen:
            continue
        seen.add(key)
        out.append(it)
    return out


def default_sources_dir():
    d = os.environ.get("PYIMMORTAL_CPYTHON_SOURCES")
    return Path(d) if d else None


if __name__ == "__main__":
    add_tool_dirs_to_path()
    for it in dedupe(from_pyenv() + from_path() + cached_source_builds() + from_sid()):
        print("%-22s %-8s %s  (%s)" % (it.name, it.tag, it.python, it.why))
    sys.exit(0)
