# Reads what pyimmortal needs from the target interpreter's sysconfig.
# FindPython is not used: the free-threaded ("t") and debug ("d") builds of
# 3.13+ are not known to the CMake versions that Debian stable ships.
#
# In:  PYIMMORTAL_PYTHON (an interpreter path)
# Out: PYIMMORTAL_PY_* variables, target pyimmortal::python_module (compile
#      flags for an extension module) and pyimmortal::python_embed (compile
#      and link flags for a program that embeds the interpreter).

set(_probe [=[
import sys, sysconfig
v = sysconfig.get_config_var
p = sysconfig.get_paths()
out = {
    "VERSION": "%d.%d" % sys.version_info[:2],
    "VERSION_MINOR": str(sys.version_info[1]),
    "TARGET": "%d.%d%s" % (sys.version_info[0], sys.version_info[1], "t" if v("Py_GIL_DISABLED") else ""),
    "FREE_THREADED": "1" if v("Py_GIL_DISABLED") else "0",
    "DEBUG": "1" if hasattr(sys, "gettotalrefcount") else "0",
    "INCLUDE": p["include"],
    "PLATINCLUDE": p["platinclude"],
    "LIBDIR": v("LIBDIR") or "",
    "LDLIBRARY": v("LDLIBRARY") or "",
    "LIBS": " ".join(((v("LIBS") or "") + " " + (v("SYSLIBS") or "")).split()),
    "EXT_SUFFIX": v("EXT_SUFFIX") or ".so",
    "BASE_PREFIX": sys.base_prefix,
}
for k, val in out.items():
    print("%s=%s" % (k, val))
]=])

execute_process(
  COMMAND "${PYIMMORTAL_PYTHON}" -I -c "${_probe}"
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _err
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "pyimmortal: cannot run ${PYIMMORTAL_PYTHON}: ${_err}")
endif()
string(REPLACE "\n" ";" _lines "${_out}")
foreach(_line IN LISTS _lines)
  if(_line MATCHES "^([A-Z_]+)=(.*)$")
    # Cached so that projects using add_subdirectory() see them too.
    set(PYIMMORTAL_PY_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}" CACHE INTERNAL "")
  endif()
endforeach()
message(STATUS "pyimmortal: target CPython ${PYIMMORTAL_PY_TARGET} (${PYIMMORTAL_PYTHON})")

add_library(pyimmortal_python_module INTERFACE)
target_include_directories(pyimmortal_python_module SYSTEM INTERFACE
  "${PYIMMORTAL_PY_INCLUDE}" "${PYIMMORTAL_PY_PLATINCLUDE}")
add_library(pyimmortal::python_module ALIAS pyimmortal_python_module)

add_library(pyimmortal_python_embed INTERFACE)
target_link_libraries(pyimmortal_python_embed INTERFACE pyimmortal_python_module)
string(REGEX REPLACE "^lib(.*)\\.(so|a).*$" "\\1" _pylib "${PYIMMORTAL_PY_LDLIBRARY}")
separate_arguments(_pylibs UNIX_COMMAND "${PYIMMORTAL_PY_LIBS}")
target_link_options(pyimmortal_python_embed INTERFACE
  "-L${PYIMMORTAL_PY_LIBDIR}" "-Wl,-rpath,${PYIMMORTAL_PY_LIBDIR}")
target_link_libraries(pyimmortal_python_embed INTERFACE "-l${_pylib}" ${_pylibs})
add_library(pyimmortal::python_embed ALIAS pyimmortal_python_embed)
