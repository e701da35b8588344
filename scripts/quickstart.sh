#!/usr/bin/env bash
# README command 1: install, then convert the bundled int8 Keras model and
# train it on the host simulator (prints the loss falling).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 examples/digits_adaptation.py --quick
