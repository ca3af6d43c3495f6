"""python -m pyimmortal: the interpreter, the library's target, and what
each call does on this interpreter (each one tried on a fresh object)."""

import sys
import sysconfig

import pyimmortal
from pyimmortal import _pyimmortal


def tried(call, *args):
    try:
        return repr(call(*args))
    except Exception as e:  # the C contract's exceptions, shown as such
        return "%s: %s" % (type(e).__name__, e)


def main():
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print("interpreter  %s" % sys.executable)
    print("             CPython %s%s%s" % (sys.version.split()[0], ", free-threaded" if ft else "",
                                          (", GIL " + ("enabled" if gil else "disabled")) if ft else ""))
    print("library      built for CPython %s (%s), at %s" % (
        _pyimmortal.target, pyimmortal.library_tag(), pyimmortal.get_library()))
    print("build flags  pyimmortal-config --cflags --libs; CMake: %s" % pyimmortal.cmake_dir())
    print()

    class Probe:
        pass

    fresh = [object()]
    print("immortalize(obj)               %s" % tried(pyimmortal.immortalize, fresh))
    print("is_immortal(obj) afterwards    %s" % tried(pyimmortal.is_immortal, fresh))
    print("immortalize(a mortal str)      %s" % tried(pyimmortal.immortalize, "".join(["mortal ", "str"])))
    print("enable_deferred_refcount(obj)  %s" % tried(pyimmortal.enable_deferred_refcount, Probe()))
    print("registry_count()               %s" % tried(pyimmortal.registry_count))
    print()
    print("immortalize_heap() makes every object of this process immortal, so it is not")
    print("run here; on this interpreter it %s." % (
        "raises NotImplementedError (no immortal objects before 3.12)" if sys.version_info < (3, 12) else
        "works while this is the only thread, and refuses with RuntimeError otherwise" if ft else
        "works: call it, and gc.freeze(), in a pre-fork server's parent before forking"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
