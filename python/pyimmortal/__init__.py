"""pyimmortal: immortal objects and deferred reference counting for CPython
C extensions.

As a build dependency, the package holds the header and the static library
built for this interpreter, with the files that CMake, pkg-config, meson and
setuptools use to find them:

    get_include()        the directory of pyimmortal.h
    get_library()        libpyimmortal-<tag>.a for this interpreter
    get_link_args()      what an extension links besides the archive
    cmake_dir()          the directory of pyimmortalConfig.cmake
    get_pkgconfig_dir()  the directory of pyimmortal.pc

and the `pyimmortal-config` command. At run time it offers the library's
calls to Python code (from the extension module pyimmortal._pyimmortal, which
links the library):

    is_immortal(obj), immortalize(obj), enable_deferred_refcount(obj),
    immortalize_heap(), registry_count()

`python -m pyimmortal` shows what each call does on this interpreter.
"""

import os
import sys
import sysconfig

from ._pyimmortal import (enable_deferred_refcount, immortalize, immortalize_heap, is_immortal,
                          registry_count)

__all__ = [
    "get_include",
    "get_library",
    "get_link_args",
    "cmake_dir",
    "get_pkgconfig_dir",
    "library_tag",
    "is_immortal",
    "immortalize",
    "enable_deferred_refcount",
    "immortalize_heap",
    "registry_count",
]

_HERE = os.path.dirname(os.path.abspath(__file__))


def library_tag():
    """The tag of the library this interpreter needs: "cp314t" for a
    free-threaded 3.14, "cp312" for 3.12. Free-threaded builds are told apart
    by Py_GIL_DISABLED (3.13 and 3.13t share sys.implementation.cache_tag); a
    debug build uses the release build's library, whose layout is the same."""
    t = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return "cp%d%d%s" % (sys.version_info[0], sys.version_info[1], t)


def get_include():
    """The directory that holds pyimmortal.h."""
    return os.path.join(_HERE, "include")


def _libdir():
    return os.path.join(_HERE, "lib")


def available_tags():
    """The tags of the libraries this package holds."""
    try:
        names = os.listdir(_libdir())
    except FileNotFoundError:
        return []
    return sorted(n[len("libpyimmortal-"):-2] for n in names
                  if n.startswith("libpyimmortal-") and n.endswith(".a"))


def get_library(tag=None):
    """The path of the static library for `tag` (default: this interpreter's,
    see library_tag()). Raises LookupError, naming the interpreter and what
    to install, when the package holds no library for it."""
    want = tag or library_tag()
    path = os.path.join(_libdir(), "libpyimmortal-%s.a" % want)
    if not os.path.exists(path):
        have = ", ".join(available_tags()) or "none"
        who = ("this interpreter (%s, CPython %s, which needs %s)"
               % (sys.executable, sys.version.split()[0], want) if tag is None else want)
        raise LookupError(
            "pyimmortal: this package holds no library for %s; it holds: %s. "
            "Install pyimmortal with the interpreter you build for (each wheel holds its own "
            "interpreter's library), or build it from the source distribution for that "
            "interpreter (needs Rust and libclang)." % (who, have))
    return path


def get_link_args(tag=None):
    """What an extension links besides get_library(): --exclude-libs for the
    archive, so the extension exports only its PyInit_*, and the system
    libraries that the archive names (read from pyimmortal.pc, which the
    build writes from the library's own list)."""
    name = os.path.basename(get_library(tag))
    libs = []
    with open(os.path.join(get_pkgconfig_dir(), "pyimmortal.pc")) as pc:
        for line in pc:
            if line.startswith("Libs:"):
                libs = [a for a in line.split()[1:] if a.startswith("-l")]
    return ["-Wl,--exclude-libs,%s" % name] + libs


def cmake_dir():
    """The directory of pyimmortalConfig.cmake, for -Dpyimmortal_DIR=...
    (scikit-build-core finds it without this, through the cmake.root entry
    point)."""
    return os.path.join(_libdir(), "cmake", "pyimmortal")


def get_pkgconfig_dir():
    """The directory of pyimmortal.pc, for PKG_CONFIG_PATH."""
    return os.path.join(_libdir(), "pkgconfig")
