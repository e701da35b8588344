#!/usr/bin/env bash
# README command 2: the whole test suite — pytest, then the C++ tests under
# Bazel, plain and with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pytest -q
bazel test //...
bazel test --config=asan //...
