"""Builds the native host runtime (tflm_train._native) from ops_cc/ sources.

Everything else about the package is declared in pyproject.toml.
"""
import glob
import os
import shutil

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py

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


def firmware_files():
    """What `tflm-train firmware` compiles, as paths relative to the source
    tree: the C++ library (ops_cc/{core,kernels,ops,runtime}, any depth, no
    tests) and the Cortex-M platform (examples/cortex_m)."""
    files = [f for d in ("core", "kernels", "ops", "runtime") for ext in ("cc", "h", "inc")
             for f in glob.glob(f"ops_cc/{d}/**/*.{ext}", recursive=True)
             if not f.endswith("_test.cc")]
    files += [f for pattern in ("Makefile", "*.ld", "*.cc", "*.h", "README.md")
              for f in glob.glob(f"examples/cortex_m/{pattern}")]
    return sorted(files)


class build_py_with_firmware(build_py):
    """Also copies firmware_files() into the package as tflm_train/_firmware/
    (same layout as the source tree), so a non-editable install can build the
    firmware. The folder is rebuilt each time, so files deleted from the tree
    never linger in the wheel. An editable install reads the source tree."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = os.path.join(self.build_lib, "tflm_train", "_firmware")
        shutil.rmtree(root, ignore_errors=True)
        for src in firmware_files():
            dst = os.path.join(root, src)
            self.mkpath(os.path.dirname(dst))
            self.copy_file(src, dst, preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [os.path.join(self.build_lib, "tflm_train", "_firmware", f)
                          for f in firmware_files()]


setup(ext_modules=[native],
      cmdclass={"build_ext": build_ext, "build_py": build_py_with_firmware})
