"""example_setuptools: a C extension module built by setuptools, with the
header and the static library that the pyimmortal package holds for the
interpreter running the build."""

import pyimmortal
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "example_setuptools",
            ["example_setuptools.c"],
            include_dirs=[pyimmortal.get_include()],
            # libpyimmortal-<tag>.a for this interpreter; LookupError if the
            # installed package holds none for it.
            extra_objects=[pyimmortal.get_library()],
            # --exclude-libs for the archive (the module then exports only
            # PyInit_example_setuptools) and the system libraries it needs.
            extra_link_args=pyimmortal.get_link_args(),
            extra_compile_args=["-Wall", "-Wextra", "-Werror"],
        )
    ],
)
