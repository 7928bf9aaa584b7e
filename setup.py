"""The build: the atomics extension, and the compiled engine.

Every module with a `.pxd` beside its `.py` is compiled by Cython in
pure-Python mode: the `.py` stays the readable source (and runs as it is
under the interpreted engine, percpu/__init__.py); the `.pxd` adds the C
types. Everything else is configured in pyproject.toml.
"""
import os
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

# Types come from the .pxd files alone (annotation_typing off: a .py annotation
# `mm: int` is documentation, not the exact Python int type).
# -O2 -g0: optimised, no debug info (a small wheel), symbols kept so that
# py-spy --native names the compiled kernel functions
FLAGS = ["-O2", "-g0"]
SHARED_UTILITY = "percpu._cyutility"


def compiled_modules() -> list[Extension]:
    modules = []
    for pxd in sorted(glob("percpu/**/*.pxd", recursive=True)):
        source = pxd[:-4] + ".py"
        if os.path.exists(source):
            name = source[:-3].replace(os.sep, ".")
            modules.append(Extension(name, [source], include_dirs=["percpu/machine"],
                                     depends=[pxd, "percpu/machine/atomics.h"], extra_compile_args=FLAGS))
    return modules


setup(
    # the C compiles in parallel, one per core (the build is mostly gcc)
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
    ext_modules=[
        Extension("percpu.machine._atomic", ["percpu/machine/_atomic.c"],
                  depends=["percpu/machine/atomics.h", "percpu/machine/_words.h"], extra_compile_args=["-O2"]),
        Extension("percpu.machine._futex", ["percpu/machine/_futex.c"], depends=["percpu/machine/_words.h"],
                  extra_compile_args=["-O2"]),
        # the typed memoryviews' runtime, once in a shared module instead of in every module (a third of the build)
        *cythonize([*compiled_modules(), Extension(SHARED_UTILITY, sources=["percpu/_cyutility.c"], extra_compile_args=FLAGS)],
                   language_level=3, nthreads=os.cpu_count() or 1, build_dir="build/cython",
                   shared_utility_qualified_name=SHARED_UTILITY, compiler_directives={"annotation_typing": False}),
    ],
)
