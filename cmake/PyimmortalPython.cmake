# Reads what pyimmortal needs from the target interpreter, with the
# repository's one interpreter probe, build/probe.py (its docstring lists the
# keys; each key becomes PYIMMORTAL_PY_<KEY>, such as PYIMMORTAL_PY_TARGET).
# FindPython is not used: the free-threaded ("t") and debug ("d") builds of
# 3.13+ are not known to the CMake versions that Debian stable ships.
#
# In:  PYIMMORTAL_PYTHON (an interpreter path)
# Out: PYIMMORTAL_PY_* variables, target pyimmortal::python_module (compile
#      flags for an extension module) and pyimmortal::python_embed (compile
#      and link flags for a program that embeds the interpreter).

set(_pyimmortal_probe "${CMAKE_CURRENT_LIST_DIR}/../build/probe.py")
execute_process(
  COMMAND "${PYIMMORTAL_PYTHON}" -I "${_pyimmortal_probe}"
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _err
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "pyimmortal: cannot run ${PYIMMORTAL_PYTHON}: ${_err}")
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_pyimmortal_probe}")
# Line by line without turning the output into a CMake list, which would
# split a value at ';' and mind its '[' and ']'.
while(_out MATCHES "^([a-z_]+)=([^\n]*)\n(.*)$")
  string(TOUPPER "${CMAKE_MATCH_1}" _key)
  set(_value "${CMAKE_MATCH_2}")
  set(_out "${CMAKE_MATCH_3}")
  # Cached so that projects using add_subdirectory() see them too.
  set(PYIMMORTAL_PY_${_key} "${_value}" CACHE INTERNAL "")
endwhile()
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
