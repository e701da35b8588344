"""Builds the native host runtime (tflm_train._native) from ops_cc/ sources.

Everything else about the package is declared in pyproject.toml.
"""
import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# The runtime and kernels; the TFLM adapter (ops_cc/tflm) needs a TFLM tree
# and is never part of the wheel.
SOURCES = sorted(
    glob.glob("ops_cc/core/*.cc")
    + glob.glob("ops_cc/kernels/**/*.cc", recursive=True)
    + glob.glob("ops_cc/ops/**/*.cc", recursive=True)
    + glob.glob("ops_cc/runtime/*.cc")
    + glob.glob("ops_cc/python/*.cc")
)
SOURCES = [s for s in SOURCES if not s.endswith("_test.cc")]

native = Pybind11Extension(
    "tflm_train._native",
    SOURCES,
    include_dirs=["."],
    cxx_std=17,
    # Bit-exactness with the Cortex-M build: no fused multiply-add contraction.
    extra_compile_args=["-O2", "-ffp-contract=off", "-fvisibility=hidden"],
)

setup(ext_modules=[native], cmdclass={"build_ext": build_ext})
