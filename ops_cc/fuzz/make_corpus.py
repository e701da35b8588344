"""Writes the fuzzer's seed corpus (ops_cc/fuzz/corpus/): training models
converted from tests/models.py that cover every training op — conv,
depthwise, FC (per-channel and per-tensor), ADD, pooling, MEAN, PAD,
RESHAPE, float input/output, stochastic and nearest rounding, partial
channels (channel-sliced CONV_2D / FULLY_CONNECTED), the three losses, a fresh imprinted head, momentum, mini-batch
accumulators, a learning-rate schedule, and the gradients of HARD_SWISH,
LOGISTIC, TANH, LEAKY_RELU, MUL, TRANSPOSE, STRIDED_SLICE and CONCATENATION,
and the fused expand -> depthwise op. Run from the repository root:

    python ops_cc/fuzz/make_corpus.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import models  # noqa: E402  (tests/models.py)

import tflm_train  # noqa: E402

OUT = Path(__file__).resolve().parent / "corpus"
SPARSE = {"bias_update_layers": 3, "weight_update": {"-2": 0.5}}
CASES = {
    "cnn_sparse": (models.plain_cnn, SPARSE),
    "cnn_float_io_bias_nearest": (lambda: models.plain_cnn(float_io=True),
                                  {"preset": "bias-only", "optimizer": {"rounding": "nearest"}}),
    "mobilenet_last2": (models.mobilenet_like, {"preset": "last-k:2"}),
    "residual_sparse": (models.residual, SPARSE),
    "mlp_per_tensor_classifier": (lambda: models.tflite_model("mlp", per_tensor_dense=True),
                                  {"preset": "classifier"}),
    "sine_mse": (lambda: models.regression_model("sine"), {"preset": "last-k:2", "loss": "mse"}),
    "autoencoder_mae": (lambda: models.regression_model("autoencoder"),
                        {"preset": "classifier", "loss": "mae"}),
    "cnn_imprint_momentum_batch": (models.plain_cnn, dict(
        SPARSE, head={"num_classes": 3, "init": "imprint", "shots": 2},
        optimizer={"momentum": 0.9, "batch_size": 4, "schedule": "cosine",
                   "warmup_steps": 2, "decay_steps": 10})),
    "new_ops_last6": (lambda: _every_new_op_int8(), {"preset": "last-k:6"}),
    "mlp_sliced_momentum": (models.mlp, {"bias_update_layers": 3,
                                         "weight_update": {"fc1": 0.25, "fc2": 0.5},
                                         "optimizer": {"momentum": 0.9}}),
    # Frozen expand -> depthwise pairs: TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D.
    "inverted_residual_fused": (models.inverted_residual, {"preset": "classifier"}),
}


def _every_new_op_int8():
    model, x, _ = models.every_new_op_model()
    return models.quantize(model, x[:32])


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (build, scheme) in CASES.items():
        data = tflm_train.convert(build(), scheme)
        (OUT / f"{name}.tflite").write_bytes(data)
        print(f"wrote {name}.tflite ({len(data)} bytes)")


if __name__ == "__main__":
    main()
