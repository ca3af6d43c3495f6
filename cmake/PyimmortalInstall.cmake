# The install tree of pyimmortal, relocatable, for one target per install
# (several targets may be installed into one prefix, one after another):
#
#   include/pyimmortal.h
#   lib/libpyimmortal-<tag>.a               tag: cp312, cp314t, ... (probe key library_tag)
#   lib/cmake/pyimmortal/pyimmortalConfig.cmake, pyimmortalConfigVersion.cmake
#   lib/pkgconfig/pyimmortal.pc             the library of the last target installed
#
# The Python package's wheel is this tree inside site-packages/pyimmortal/.
# CMake cannot install an IMPORTED target, so the package file is written by
# hand (cmake/pyimmortalConfig.cmake.in) rather than with install(EXPORT).

include(CMakePackageConfigHelpers)

set(PYIMMORTAL_LIBRARY_TAG "${PYIMMORTAL_PY_LIBRARY_TAG}")
set(_archive "libpyimmortal-${PYIMMORTAL_LIBRARY_TAG}.a")

install(FILES "${CMAKE_CURRENT_SOURCE_DIR}/include/pyimmortal.h" DESTINATION include)
install(FILES "${PYIMMORTAL_STATIC_LIB}" DESTINATION lib RENAME "${_archive}")

set(_config_dir "${CMAKE_CURRENT_BINARY_DIR}/pyimmortal-config")
string(JOIN " " PYIMMORTAL_CONFIG_NATIVE_LIBS ${PYIMMORTAL_NATIVE_LIBS})
configure_package_config_file(
  "${CMAKE_CURRENT_SOURCE_DIR}/cmake/pyimmortalConfig.cmake.in"
  "${_config_dir}/pyimmortalConfig.cmake"
  INSTALL_DESTINATION lib/cmake/pyimmortal)
# 0.x: a new minor version may change the ABI. Not ARCH_INDEPENDENT: a
# consumer with another pointer width is refused.
write_basic_package_version_file("${_config_dir}/pyimmortalConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}" COMPATIBILITY SameMinorVersion)
install(FILES "${_config_dir}/pyimmortalConfig.cmake" "${_config_dir}/pyimmortalConfigVersion.cmake"
  DESTINATION lib/cmake/pyimmortal)

list(TRANSFORM PYIMMORTAL_NATIVE_LIBS PREPEND "-l" OUTPUT_VARIABLE _libs)
string(JOIN " " PYIMMORTAL_PC_LIBS
  "\${libdir}/${_archive}" "-Wl,--exclude-libs,${_archive}" ${_libs})
configure_file("${CMAKE_CURRENT_SOURCE_DIR}/cmake/pyimmortal.pc.in"
  "${_config_dir}/pyimmortal.pc" @ONLY)
install(FILES "${_config_dir}/pyimmortal.pc" DESTINATION lib/pkgconfig)
