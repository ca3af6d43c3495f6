"""What pyimmortal needs to know about a CPython interpreter.

    python -I build/probe.py

Prints one ``key=value`` line per fact (values never contain a newline).
Every consumer reads this file: build.rs (through build/python_config.rs,
which embeds it), systest/build.rs, cmake/PyimmortalPython.cmake (each key
becomes ``PYIMMORTAL_PY_<KEY>``), c_tests/interpreters.py (the test runner
and the demo) and bench/run.py. Keys:

  version         "3.14": major.minor
  version_minor   14
  version_hex     PY_VERSION_HEX, in decimal
  release         "3.14.7", "3.13.0rc2": the release, as in sys.version
  sys_version     sys.version on one line
  target          "3.14" or "3.14t": the library target this interpreter needs
  tag             target plus "d" for a debug build: "3.14td"
  library_tag     "cp314t": the target as the installed package names its
                  library (libpyimmortal-cp314t.a); a debug build uses the
                  release build's library, whose layout is the same
  free_threaded   1 on a free-threaded build (Py_GIL_DISABLED), else 0
  debug           1 on a debug build (Py_DEBUG, sys.gettotalrefcount), else 0
  pointer_width   64 or 32
  byteorder       "little" or "big"
  include         directory of Python.h
  platinclude     directory of pyconfig.h
  libdir          directory of libpython (may be empty)
  ldlibrary       file name of libpython, "libpython3.14t.so" (may be empty)
  libs            what a program embedding libpython links besides it
  ext_suffix      file name suffix of an extension module
  executable      sys.executable
  base_prefix     sys.base_prefix
  cpu_count       os.cpu_count()

Runs on every CPython 3 from 3.9 on, with -I (isolated: no user site, no
PYTHON* variables, no script directory on sys.path), standard library only.
Whether pyimmortal supports the interpreter is not decided here: see
[package.metadata.cpython] in Cargo.toml.
"""

import os
import struct
import sys
import sysconfig


def facts():
    var = sysconfig.get_config_var
    paths = sysconfig.get_paths()
    major, minor = sys.version_info[:2]
    free_threaded = bool(var("Py_GIL_DISABLED"))
    debug = bool(var("Py_DEBUG")) or hasattr(sys, "gettotalrefcount")
    target = "%d.%d%s" % (major, minor, "t" if free_threaded else "")
    return [
        ("version", "%d.%d" % (major, minor)),
        ("version_minor", minor),
        ("version_hex", sys.hexversion),
        ("release", sys.version.split()[0]),
        ("sys_version", sys.version),
        ("target", target),
        ("tag", target + ("d" if debug else "")),
        ("library_tag", "cp%d%d%s" % (major, minor, "t" if free_threaded else "")),
        ("free_threaded", int(free_threaded)),
        ("debug", int(debug)),
        ("pointer_width", 8 * struct.calcsize("P")),
        ("byteorder", sys.byteorder),
        ("include", paths["include"]),
        ("platinclude", paths["platinclude"]),
        ("libdir", var("LIBDIR") or ""),
        ("ldlibrary", var("LDLIBRARY") or ""),
        ("libs", " ".join(((var("LIBS") or "") + " " + (var("SYSLIBS") or "")).split())),
        ("ext_suffix", var("EXT_SUFFIX") or ".so"),
        ("executable", sys.executable),
        ("base_prefix", sys.base_prefix),
        ("cpu_count", os.cpu_count() or 0),
    ]


for key, value in facts():
    print("%s=%s" % (key, str(value).replace("\n", " ")))
