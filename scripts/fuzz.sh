#!/usr/bin/env bash
# Builds the libFuzzer target over the standalone runtime
# (ops_cc/fuzz/training_session_fuzzer.cc) with clang 14 under
# AddressSanitizer + UndefinedBehaviorSanitizer (float-cast-overflow and
# float-divide-by-zero included, every finding fatal) and runs it from the
# committed seed corpus for a fixed number of executions.
#
#   bash scripts/fuzz.sh              # 20000 executions (the test suite's run)
#   bash scripts/fuzz.sh 1000000 7    # a longer run for developers, seed 7
#
# New inputs go to a temporary directory; crashes to fuzz-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-20000}"
SEED="${2:-1}"
CXX=clang++-14
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (apt-get install clang-14 libfuzzer-14-dev)" >&2; exit 1; }

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
SANITIZE="-fsanitize=fuzzer,address,undefined,float-cast-overflow,float-divide-by-zero -fno-sanitize-recover=all"
# The same sources as the library (ops_cc/BUILD), without tests, TFLM adapter
# and Python binding.
mapfile -t SOURCES < <(find ops_cc/core ops_cc/kernels ops_cc/ops ops_cc/runtime \
                          -name '*.cc' ! -name '*_test.cc' | sort)
"$CXX" -std=c++17 -O1 -g -ffp-contract=off -I. $SANITIZE \
  ops_cc/fuzz/training_session_fuzzer.cc "${SOURCES[@]}" -o "$BUILD/fuzzer"

# Inputs that once found a bug (ops_cc/fuzz/regressions/) run first, once each.
"$BUILD/fuzzer" ops_cc/fuzz/regressions/* 2> "$BUILD/regressions.log" || {
  tail -40 "$BUILD/regressions.log" >&2; echo "fuzz: 0 passed, 1 failed (a regression input)"; exit 1; }

mkdir -p "$BUILD/corpus" fuzz-artifacts
cp ops_cc/fuzz/corpus/*.tflite "$BUILD/corpus/"
start=$(date +%s)
# -rss_limit_mb: the 1 MiB arena and ASan's shadow stay far below it.
"$BUILD/fuzzer" "$BUILD/corpus" -runs="$RUNS" -seed="$SEED" -max_len=65536 -timeout=20 \
  -rss_limit_mb=2048 -artifact_prefix=fuzz-artifacts/ -print_final_stats=1 2> "$BUILD/log" || {
  tail -40 "$BUILD/log" >&2; echo "fuzz: 0 passed, 1 failed (see fuzz-artifacts/)"; exit 1; }
# Coverage at the start (seeds) and at the end, and the execution count.
grep -E "INITED" "$BUILD/log"
grep -E "^#[0-9]+.*cov:" "$BUILD/log" | tail -1
grep -E "stat::number_of_executed_units" "$BUILD/log"
echo "fuzz: $RUNS executions in $(( $(date +%s) - start )) s without a finding"
rmdir fuzz-artifacts 2>/dev/null || true
