#!/usr/bin/env python3
"""Makes the shipped libpyimmortal.a out of the one cargo builds.

    python3 build/finish_archive.py CARGO_ARCHIVE OUTPUT

A Rust static library bundles, besides the crate's own object, the C
objects of the toolchain's compiler_builtins (compiler-rt helpers such as
`__mulvti3`), each with global symbols. The crate's object, built with
link-time optimization, defines only the `pyimmortal_*` functions and the
`pyimmortal_abi_cpython_*` marker, and references none of those helpers.
This keeps the members that define `pyimmortal_*` symbols, drops the rest,
and checks that:

- no kept member needs a symbol that only a dropped member defines;
- every global symbol that the result defines starts with `pyimmortal_`;
- the result contains no Rust panic or formatting code (a sign that some
  code path can panic, which the library's code is written never to do).

Used by CMakeLists.txt (after cargo) and scripts/runtests.py. Needs `ar` and
`nm` from binutils, or the tools named by the environment variables AR and
NM.
"""

import os
import shutil
import subprocess
import sys
import tempfile

PREFIX = "pyimmortal_"
# Demangled names that only appear when panic or formatting code is linked.
PANIC_MARKERS = ("core::panicking", "core::fmt", "rust_begin_unwind", "core::result::unwrap_failed",
                 "core::option::expect_failed", "slice_index_fail", "panic_bounds_check")


def tool(name):
    return os.environ.get(name.upper(), name)


def symbols(archive, *flags):
    """{member: [(type, name)]} from `nm -A`."""
    out = subprocess.run([tool("nm"), "-A", *flags, archive], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit("finish_archive: nm failed on %s:\n%s" % (archive, out.stderr))
    table = {}
    for line in out.stdout.splitlines():
        # ARCHIVE:MEMBER:[ADDRESS] TYPE NAME
        if not line.startswith(archive + ":"):
            continue
        member, _, rest = line[len(archive) + 1:].partition(":")
        fields = rest.split()
        if len(fields) >= 2:
            table.setdefault(member, []).append((fields[-2], fields[-1]))
    return table


def finish(src, dst):
    src, dst = str(src), str(dst)
    defined = symbols(src, "-g", "--defined-only")
    undefined = symbols(src, "-u")
    members = subprocess.run([tool("ar"), "t", src], capture_output=True, text=True,
                             check=True).stdout.split()
    keep = {m for m, syms in defined.items() if any(n.startswith(PREFIX) for _, n in syms)}
    if not keep:
        raise SystemExit("finish_archive: %s defines no %s* symbol" % (src, PREFIX))
    drop = [m for m in members if m not in keep]
    dropped_defs = {n for m in drop for _, n in defined.get(m, [])}
    needed = {n for m in keep for _, n in undefined.get(m, [])} & dropped_defs
    if needed:
        raise SystemExit("finish_archive: pyimmortal's object needs %s, defined only by the toolchain's "
                         "objects that the shipped archive leaves out" % ", ".join(sorted(needed)))

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dst)), suffix=".a")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        if drop:
            subprocess.run([tool("ar"), "d", tmp, *drop], check=True)
        subprocess.run([tool("ar"), "s", tmp], check=True)
        problems = check(tmp)
        if problems:
            raise SystemExit("finish_archive: %s:\n  %s" % (src, "\n  ".join(problems)))
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check(archive):
    """What is wrong with a finished archive: globals without the prefix, and
    panic or formatting code."""
    archive = str(archive)
    problems = []
    for member, syms in symbols(archive, "-g", "--defined-only").items():
        for kind, name in syms:
            if not name.startswith(PREFIX):
                problems.append("%s defines the global symbol %s (%s)" % (member, name, kind))
    every = subprocess.run([tool("nm"), "-C", archive], capture_output=True, text=True).stdout
    for line in every.splitlines():
        if any(marker in line for marker in PANIC_MARKERS):
            problems.append("panic or formatting code: %s" % line.strip())
    return problems


def main(argv):
    if len(argv) == 3 and argv[1] == "--check":
        problems = check(argv[2])
        for p in problems:
            print(p)
        return 1 if problems else 0
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    finish(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
