"""Imports the demo extension and prints what pyimmortal did."""
import gc
import sys
import sysconfig
import weakref

import pyimmortal_demo as demo

ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
print("pyimmortal demo on CPython %s%s; library built for %s" % (
    sys.version.split()[0], " (free-threaded)" if ft else "", demo.target()))

made, capsule = demo.make_capsule()
print("PyUnstable_SetImmortal(fresh capsule)   -> %d" % made)
print("PyUnstable_IsImmortal(capsule)          -> %d" % demo.is_immortal(capsule))
before = sys.getrefcount(capsule)
refs = [capsule] * 100000
print("sys.getrefcount(capsule) with 100000 more references: %d -> %d" % (
    before, sys.getrefcount(capsule)))
del refs


class Thing:
    pass


print("PyUnstable_SetImmortal(fresh object)    -> %d"
      % demo.set_immortal_new(Thing))
print("PyUnstable_SetImmortal(fresh str)       -> %d (a str must be interned instead)"
      % demo.set_immortal_new(lambda: "".join(["x"] * 64)))
print("PyUnstable_Object_EnableDeferredRefcount(fresh object) -> %d (%s)" % (
    demo.enable_deferred_new(Thing),
    "free-threaded 3.14+ only" if not (ft and sys.version_info >= (3, 14)) else "deferred"))
if made:
    ids = id(capsule)
    del capsule
    gc.collect()
    print("the capsule outlived its last reference: a new make_capsule() call gives a new "
          "object, the old one (id %#x) stays valid forever" % ids)
else:
    print("CPython %d.%d has no immortal objects: the calls return 0 and change nothing"
          % sys.version_info[:2])
