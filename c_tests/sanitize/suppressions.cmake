# The LeakSanitizer suppressions for the target interpreter, written into
# one file in the build tree (LSAN_OPTIONS names one): lsan.supp, then each
# file below whose CPython versions and builds include the target.
#
# In:  PYIMMORTAL_PY_* (cmake/PyimmortalPython.cmake)
# Out: PYIMMORTAL_LSAN_SUPPRESSIONS, the file's path
set(_supp_dir "${CMAKE_CURRENT_LIST_DIR}")
set(_supp_files "${_supp_dir}/lsan.supp")
if(NOT PYIMMORTAL_PY_FREE_THREADED AND NOT PYIMMORTAL_PY_DEBUG
   AND PYIMMORTAL_PY_VERSION_MINOR GREATER_EQUAL 12 AND PYIMMORTAL_PY_VERSION_MINOR LESS 14)
  list(APPEND _supp_files "${_supp_dir}/lsan-interned-3.12-3.13.supp")
endif()
if(PYIMMORTAL_PY_FREE_THREADED AND PYIMMORTAL_PY_VERSION_MINOR EQUAL 13)
  list(APPEND _supp_files "${_supp_dir}/lsan-free-threaded-3.13.supp")
endif()
set(PYIMMORTAL_LSAN_SUPPRESSIONS "${CMAKE_CURRENT_BINARY_DIR}/lsan.supp")
set(_supp_text "# Written by c_tests/sanitize/suppressions.cmake for CPython ${PYIMMORTAL_PY_TAG}, from:\n")
foreach(_f IN LISTS _supp_files)
  file(RELATIVE_PATH _rel "${pyimmortal_SOURCE_DIR}" "${_f}")
  string(APPEND _supp_text "#   ${_rel}\n")
endforeach()
foreach(_f IN LISTS _supp_files)
  file(READ "${_f}" _content)
  file(RELATIVE_PATH _rel "${pyimmortal_SOURCE_DIR}" "${_f}")
  string(APPEND _supp_text "\n# --- ${_rel}\n${_content}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_f}")
endforeach()
file(WRITE "${PYIMMORTAL_LSAN_SUPPRESSIONS}" "${_supp_text}")
