#!/usr/bin/env bash
# A non-editable install works on its own: `pip install .` (not -e) into a
# fresh virtual environment, then, from a directory outside the source tree,
# `tflm-train convert` a tiny model and train it for a few steps on the
# Cortex-M4 firmware under QEMU; the firmware's weights_sha256 must equal the
# host simulator's. The venv reuses the machine's site-packages (TensorFlow,
# numpy, ...), so nothing is downloaded; the native module is compiled again.
# Called by scripts/test.sh; about 1-2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d /tmp/tflm-train-install-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 -m venv --system-site-packages "$work/venv"
# --ignore-installed: a tflm-train in the base interpreter (e.g. an editable
# install) stays as it is; the venv's own copy comes first on sys.path.
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
  --no-deps --no-build-isolation --ignore-installed "$repo"

cd "$work"
py="$work/venv/bin/python"
tflm="$work/venv/bin/tflm-train"
"$py" - "$repo" <<'EOF'
import pathlib, sys
import tflm_train, tflm_train.firmware as fw
repo = pathlib.Path(sys.argv[1]).resolve()
pkg = pathlib.Path(tflm_train.__file__).resolve().parent
assert repo not in pkg.parents, f"imported from the source tree: {pkg}"
assert fw._ROOT == pkg / "_firmware", f"firmware sources from {fw._ROOT}"
print(f"installed package: {pkg}")
EOF

# A tiny int8 inference model: the inference half of the C++ tests' CNN.
"$tflm" export "$repo/ops_cc/tests/data/cnn_train.tflite" --out inference.tflite
echo '{"preset": "last-k:2"}' > scheme.json
"$tflm" convert inference.tflite --scheme scheme.json --out train.tflite
"$py" - <<'EOF'
import numpy as np, tflm_train
t = tflm_train.Trainer(open("train.tflite", "rb").read())
rng = np.random.default_rng(0)
np.savez("data.npz", x=rng.normal(0, 1, (8,) + t.input_shape[1:]).astype(np.float32),
         y=rng.integers(0, t.num_classes, 8))
EOF
"$tflm" train train.tflite --data data.npz --steps 6 --seed 1 --json > host.json
"$tflm" firmware train.tflite --data data.npz --steps 6 --seed 1 --json > device.json
"$py" - <<'EOF'
import json
host, device = json.load(open("host.json")), json.load(open("device.json"))
assert device["weights_sha256"] == host["weights_sha256"], (device, host)
print(f"non-editable install: firmware weights_sha256 {device['weights_sha256'][:16]}... "
      "equals the host's")
EOF
