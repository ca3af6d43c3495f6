"""pyimmortal-config: the flags that build an extension with pyimmortal.

    pyimmortal-config [--cflags] [--libs] [--cmakedir] [--pkgconfigdir]
                      [--library] [--tag]

--cflags  -I for pyimmortal.h and for this interpreter's Python.h
--libs    the archive for this interpreter, --exclude-libs for it, and the
          system libraries it names
Each option prints its own line, in the order given.
"""

import argparse
import sys
import sysconfig

import pyimmortal


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pyimmortal-config", description=__doc__.splitlines()[0])
    ap.add_argument("--cflags", action="append_const", dest="what", const="cflags",
                    help="compiler flags: pyimmortal.h and Python.h")
    ap.add_argument("--libs", action="append_const", dest="what", const="libs",
                    help="linker arguments: the archive and what it needs")
    ap.add_argument("--cmakedir", action="append_const", dest="what", const="cmakedir",
                    help="the directory of pyimmortalConfig.cmake")
    ap.add_argument("--pkgconfigdir", action="append_const", dest="what", const="pkgconfigdir",
                    help="the directory of pyimmortal.pc")
    ap.add_argument("--library", action="append_const", dest="what", const="library",
                    help="the archive for this interpreter")
    ap.add_argument("--tag", action="append_const", dest="what", const="tag",
                    help="this interpreter's library tag, such as cp314t")
    args = ap.parse_args(argv)
    if not args.what:
        ap.print_help()
        return 2
    try:
        for what in args.what:
            if what == "cflags":
                paths = sysconfig.get_paths()
                dirs = [pyimmortal.get_include(), paths["include"], paths["platinclude"]]
                print(" ".join("-I" + d for d in dict.fromkeys(dirs)))
            elif what == "libs":
                print(" ".join([pyimmortal.get_library()] + pyimmortal.get_link_args()))
            elif what == "cmakedir":
                print(pyimmortal.cmake_dir())
            elif what == "pkgconfigdir":
                print(pyimmortal.get_pkgconfig_dir())
            elif what == "library":
                print(pyimmortal.get_library())
            elif what == "tag":
                print(pyimmortal.library_tag())
    except LookupError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
