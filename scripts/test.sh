#!/usr/bin/env bash
# README command 2: the whole test suite — pytest, a non-editable install in a
# fresh virtual environment running `tflm-train firmware`, a fixed libFuzzer
# run over the standalone runtime (ASan + UBSan), then the C++ tests under
# Bazel, plain and with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pytest -q
bash scripts/check_install.sh
bash scripts/fuzz.sh 20000
bazel test //...
bazel test --config=asan //...
n=$(bazel query 'kind(cc_test, //...)' 2>/dev/null | wc -l)
echo "bazel: $((2 * n)) passed, 0 failed"
