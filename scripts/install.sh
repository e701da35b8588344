#!/usr/bin/env bash
# Installs everything tflm-train needs on Debian 12 with Python 3.11:
# system packages (Bazel, GoogleTest, the Arm toolchain, QEMU, valgrind,
# clang 14 with libFuzzer and its sanitizer runtimes) and
# the Python package with its test extras, built from source in place.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  g++ make
  bazel-bootstrap bazel-bootstrap-source googletest
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev
  qemu-system-arm
  valgrind
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== pip install -e .[test]"
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
